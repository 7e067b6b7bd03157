import sys

from rsoptd.cli import main

sys.exit(main())
