from xlcollab.cli import run

run()
