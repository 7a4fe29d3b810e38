"""``python -m bgr``."""

import sys

from bgr.cli import main

sys.exit(main())
