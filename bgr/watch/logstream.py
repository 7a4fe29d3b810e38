"""Stream a process's log files into ``bgr --watch``'s inbox, across restarts.

``reading.follow`` blocks and polls, so it runs on a thread of its own and hands lines to the
loop through the ``Inbox`` (which makes it wait when the loop falls behind). A restart moves the
log files to backups and the new instance creates them again; ``follow`` finishes the old file,
then reads the new one from its start.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from bgr.logfiles import reading
from bgr.watch.inbox import Inbox


class LogFollower:
    """The last ``lines`` lines of each file (``tail``: ``(label, text)`` pieces), then, from a
    thread, everything written after exactly that point, into ``inbox``."""

    def __init__(self, paths: Sequence[tuple[str, Path]], inbox: Inbox, lines: int) -> None:
        ends: dict[str, int] = {}
        self.tail: list[tuple[str, str]] = []
        for label, path in paths:
            try:
                ends[label] = path.stat().st_size
            except OSError:
                continue
            text = "".join(reading.tail(path, lines, end=ends[label]))
            if text:
                self.tail.append((label, text))
        self._stop = threading.Event()
        self._lines = reading.follow(paths, self._stop, start=ends)
        self._inbox = inbox
        self._thread = threading.Thread(target=self._run, name="bgr-watch-logs", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for label, text in self._lines:
            if not self._inbox.output(label, text):
                return

    def stop(self) -> None:
        """Stop following (close the inbox first: it releases a thread waiting for room)."""
        self._stop.set()
        self._thread.join(timeout=2)
