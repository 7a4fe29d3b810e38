"""One pending deadline per name, on a clock that never steps: the guard's backoff retries.

The exit watcher owns the retries (guard/watcher.py): it already sleeps in ``poll(2)``, whose
timeout is relative and counted by the kernel on the monotonic clock, so a deadline there is
immune to wall-clock steps, and a retry never has to go through the scheduler, whose lock a
wall-clock step once held for minutes while the watcher waited to add a retry. This module is
only the bookkeeping, pure and clock-injected: ``at(name, when)``, ``cancel(name)``, ``timeout()``
until the nearest one, and ``pop_due()``.
"""

from __future__ import annotations

import heapq
import threading

from guard import policy


class Deadlines:
    """Thread-safe; a later ``at`` for a name replaces its earlier deadline."""

    def __init__(self, clock: policy.Clock = policy.boot_clock) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._when: dict[str, float] = {}
        # (when, name) entries; superseded ones stay until they surface and are skipped.
        self._heap: list[tuple[float, str]] = []

    def at(self, name: str, when: float) -> None:
        """Be due for ``name`` at ``when`` (on :attr:`clock`), instead of any earlier deadline."""
        with self._lock:
            self._when[name] = when
            heapq.heappush(self._heap, (when, name))
            if len(self._heap) > 4 * len(self._when) + 64:  # many replaced deadlines: keep it small
                self._heap = [(t, n) for n, t in self._when.items()]
                heapq.heapify(self._heap)

    def after(self, name: str, delay: float) -> None:
        """Be due for ``name`` in ``delay`` seconds."""
        self.at(name, self.clock() + max(0.0, delay))

    def cancel(self, name: str) -> bool:
        """Drop ``name``'s deadline; True if it had one."""
        with self._lock:
            return self._when.pop(name, None) is not None

    def pending(self) -> dict[str, float]:
        """``{name: seconds from now}`` (negative: overdue)."""
        now = self.clock()
        with self._lock:
            return {name: when - now for name, when in self._when.items()}

    def timeout(self) -> float | None:
        """Seconds until the nearest deadline (0 if one is due), None without any."""
        with self._lock:
            self._drop_superseded()
            if not self._heap:
                return None
            return max(0.0, self._heap[0][0] - self.clock())

    def pop_due(self) -> list[str]:
        """The names whose deadline has come, removed, earliest first."""
        now = self.clock()
        due = []
        with self._lock:
            self._drop_superseded()
            while self._heap and self._heap[0][0] <= now:
                when, name = heapq.heappop(self._heap)
                if self._when.get(name) == when:
                    del self._when[name]
                    due.append(name)
                self._drop_superseded()
        return due

    def _drop_superseded(self) -> None:
        # Caller holds the lock.
        heap = self._heap
        while heap and self._when.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)
