"""The mailbox between ``bgr --watch``'s threads and its loop.

The file watcher (changed paths, or an error that ends watching) and the log follower (output
lines) put things in from their own threads; the loop takes everything at once, and wakes the
moment something arrives. The follower waits when the loop falls far behind, so a chatty process
cannot fill memory.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from bgr.errors import BgrError

_OUTPUT_BACKLOG = 2000  # lines: the log follower waits when the loop is this far behind


@dataclass(frozen=True, slots=True)
class Batch:
    """What arrived since the last ``take``."""

    changes: dict[str, float]  # path → monotonic time of its latest event, first-changed first
    output: list[tuple[str, str]]  # (label, text) log lines
    error: BgrError | None = None


class Inbox:
    """Thread-safe mailbox between the watcher/log threads and the loop; wakes the loop at once."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self._changes: dict[str, float] = {}
        self._output: deque[tuple[str, str]] = deque()
        self._error: BgrError | None = None
        self._closed = False

    def change(self, path: str) -> None:
        """Note that ``path`` changed, now."""
        with self._cond:
            self._changes[path] = self._clock()
            self._cond.notify_all()

    def fail(self, error: BgrError) -> None:
        """Hand the loop an error that ends watching (the first one wins)."""
        with self._cond:
            self._error = self._error or error
            self._cond.notify_all()

    def output(self, label: str, text: str) -> bool:
        """Queue a log line; waits while the loop is far behind. False once closed."""
        with self._cond:
            while len(self._output) >= _OUTPUT_BACKLOG and not self._closed:
                self._cond.wait()
            if self._closed:
                return False
            self._output.append((label, text))
            self._cond.notify_all()
            return True

    def close(self) -> None:
        """Refuse further output and release a follower waiting for room."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def take(self, timeout: float) -> Batch:
        """Wait up to ``timeout`` for something, then hand over everything that arrived."""
        with self._cond:
            if not (self._changes or self._output or self._error):
                self._cond.wait(max(0.0, timeout))
            batch = Batch(dict(self._changes), list(self._output), self._error)
            self._changes.clear()
            self._output.clear()
            self._error = None
            self._cond.notify_all()
            return batch
