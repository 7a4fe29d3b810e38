"""``python -m guard``: the same as the ``bgr-guard`` command."""

import sys

from guard.cli import main

sys.exit(main())
