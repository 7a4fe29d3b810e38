"""One thread at a time per process name inside the guard, without anyone waiting for a check.

The exit watcher and the scheduled jobs (interval check, backoff retries, pulls, limits) may all
want the same name at once. :meth:`NameGate.poke` asks for a check of a name: it runs the check
now, or, if another thread holds the name, makes that thread check it again before letting go, so
an exit noticed while a restart is in progress is never lost and the watcher never blocks.
:meth:`NameGate.hold` waits for the name, for work that must not be skipped (a pull's restart).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator

log = logging.getLogger(__name__)


class NameGate:
    """Serialises work per name; ``check(name)`` is what a poke runs."""

    def __init__(self, check: Callable[[str], None]) -> None:
        self._check = check
        self._cond = threading.Condition()
        self._busy: set[str] = set()
        self._poked: set[str] = set()

    def poke(self, name: str) -> bool:
        """Check ``name`` now, or have its current holder check it again. True if run here."""
        with self._cond:
            if name in self._busy:
                self._poked.add(name)
                return False
            self._busy.add(name)
            self._poked.add(name)
        self._release(name)
        return True

    @contextlib.contextmanager
    def hold(self, name: str) -> Iterator[None]:
        """Hold ``name`` for the block (waiting for it); pending pokes run afterwards."""
        with self._cond:
            while name in self._busy:
                self._cond.wait()
            self._busy.add(name)
        try:
            yield
        finally:
            self._release(name)

    def busy(self) -> set[str]:
        with self._cond:
            return set(self._busy)

    def _release(self, name: str) -> None:
        # Run the checks asked for while we held the name, then let go: both under the condition
        # lock, so a poke either lands before the final look or finds the name free.
        while True:
            with self._cond:
                if name not in self._poked:
                    self._busy.discard(name)
                    self._cond.notify_all()
                    return
                self._poked.discard(name)
            try:
                self._check(name)
            except Exception:
                log.exception("%s: check failed", name)
