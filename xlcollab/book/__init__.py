"""One Book interface over a workbook, and its backends: a file on disk, a live LibreOffice, a live Excel."""
