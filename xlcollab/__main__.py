import sys

from xlcollab.cli import main

sys.exit(main())
