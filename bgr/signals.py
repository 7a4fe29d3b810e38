"""The signal numbers a start uses, without importing ``signal``.

``signal`` turns every constant into an ``IntEnum`` member at import time, so it imports ``enum``:
milliseconds of every start (``bench/``, ``-X importtime``) for numbers bgr only passes on.
``_signal`` is the interpreter's built-in module that ``signal`` re-exports: the same numbers, as
plain ints. The code that sends signals (off the list and start paths) and names them in messages
imports ``signal`` where it does. mypy sees ``signal`` (typeshed has no ``_signal``).
"""

from __future__ import annotations

__all__ = ["SIGCONT", "SIGHUP", "SIGINT", "SIGKILL", "SIGPIPE", "SIGQUIT", "SIGTERM", "SIGXFSZ"]

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: see bgr/record.py
if TYPE_CHECKING:
    from signal import SIGCONT, SIGHUP, SIGINT, SIGKILL, SIGPIPE, SIGQUIT, SIGTERM, SIGXFSZ
else:
    from _signal import SIGCONT, SIGHUP, SIGINT, SIGKILL, SIGPIPE, SIGQUIT, SIGTERM, SIGXFSZ
