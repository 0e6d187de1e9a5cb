"""``python -m langtts``: the command line."""

import sys

from langtts.cli import main

sys.exit(main())
