"""Debouncing for ``bgr --watch`` (pure, clock passed in): many changes in a burst, one restart.

An editor's save, a ``git checkout`` or a build touches many files within milliseconds; the
``Debouncer`` gathers them and declares the burst due once ``delay`` seconds pass without a new
change, so the process restarts once, after the last file landed.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Debouncer:
    """Collects changed paths; a burst is due once ``delay`` seconds passed without a new change."""

    delay: float
    _paths: dict[str, None] = field(default_factory=dict)
    _last: float | None = None

    def add(self, path: str, when: float) -> None:
        """Note a change to ``path`` at ``when`` (monotonic seconds)."""
        self._paths.setdefault(path, None)
        self._last = when if self._last is None else max(self._last, when)

    def remaining(self, now: float) -> float | None:
        """Seconds until the burst is due; None when nothing is pending."""
        if self._last is None:
            return None
        return max(0.0, self._last + self.delay - now)

    def due(self, now: float) -> bool:
        """True when changes are pending and have been quiet for ``delay``."""
        return self.remaining(now) == 0.0

    def take(self) -> tuple[str, ...]:
        """The burst's paths in the order they first changed; forget them."""
        paths = tuple(self._paths)
        self._paths.clear()
        self._last = None
        return paths
