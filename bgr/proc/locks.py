"""Per-name locks: ``flock`` on a file in the registry's ``locks/`` folder.

The kernel releases an flock when its holder dies, so a crashed ``bgr`` or guard can never leave a
name locked. A holder may remove its lock file (``Held.forget``: the name was deleted, or never
came to exist) while it still holds the lock; whoever was waiting on the removed file notices
that the path names another file (or none) once it gets the lock, and locks the path again, so
two holders never overlap.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator

from bgr import paths
from bgr.errors import LockHeld, StateDirError
from bgr.record import Record


class Held(Record):
    """A lock being held; ``forget()`` removes its file when the lock is released."""

    path: str
    forgotten: list[bool]

    def forget(self) -> None:
        self.forgotten[0] = True


@contextlib.contextmanager
def name_lock(layout: paths.Layout, name: str, *, timeout: float = 30.0) -> Iterator[Held]:
    """Hold the lock for ``name`` (already validated) in registry ``layout`` for the block."""
    with file_lock(layout.lock_path(name), timeout=timeout, held_by=f"process {name!r}") as held:
        yield held


@contextlib.contextmanager
def file_lock(path: os.PathLike[str] | str, *, timeout: float, held_by: str) -> Iterator[Held]:
    """Exclusive flock on ``path``; waits up to ``timeout`` seconds (0 = try once)."""
    path = os.fspath(path)
    deadline = time.monotonic() + timeout
    fd = _acquire(path, deadline, held_by)
    held = Held(path, [False])
    try:
        yield held
    finally:
        if held.forgotten[0]:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)  # still locked: nobody can be inside between this and the close
        os.close(fd)


def _acquire(path: str, deadline: float, held_by: str) -> int:
    delay = 0.001
    while True:
        try:
            fd = paths.open_private(path, os.O_RDWR | os.O_CREAT)
        except OSError as exc:  # a read-only or full file system, permissions
            raise StateDirError(f"cannot open lock file {path}: {exc.strerror}; check its directory") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() >= deadline:
                raise LockHeld(f"{held_by} is busy (another bgr holds its lock); try again") from None
            time.sleep(delay)
            delay = min(delay * 2, 0.02)
            continue
        if _same_file(fd, path):
            return fd
        os.close(fd)  # the holder before us removed this file: lock the one at the path now


def _same_file(fd: int, path: str) -> bool:
    try:
        here, there = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)
