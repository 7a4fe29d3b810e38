"""Per-name locks: ``flock`` on a file under the state directory.

The kernel releases an flock when its holder dies, so a crashed ``bgr`` or guard can never leave a
name locked. Lock files are never deleted: unlinking a lock file someone waits on would let two holders
in at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator

from bgr import paths
from bgr.errors import LockHeld


@contextlib.contextmanager
def name_lock(name: str, *, timeout: float = 30.0, what: str = "process") -> Iterator[None]:
    """Hold the lock for ``name`` (already validated) for the duration of the block."""
    with file_lock(paths.lock_path(name), timeout=timeout, held_by=f"{what} {name!r}"):
        yield


@contextlib.contextmanager
def file_lock(path: os.PathLike[str] | str, *, timeout: float, held_by: str) -> Iterator[None]:
    """Exclusive flock on ``path``; waits up to ``timeout`` seconds (0 = try once)."""
    fd = paths.open_private(os.fspath(path), os.O_RDWR | os.O_CREAT)
    try:
        deadline = time.monotonic() + timeout
        delay = 0.001
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockHeld(f"{held_by} is busy (another bgr holds its lock); try again") from None
                time.sleep(delay)
                delay = min(delay * 2, 0.02)
        yield
    finally:
        os.close(fd)
