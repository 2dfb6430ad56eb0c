"""What each bundled tab is: its layout (named blocks), how to build it, how to solve or run it."""
