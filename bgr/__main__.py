"""``python -m bgr``."""

from bgr.cli import entry

entry()
