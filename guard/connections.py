"""One open registry connection per guard thread, instead of one per look at a name.

Opening a registry (checks of the state directory, connect, three pragmas) and closing it cost
more than the reads and writes a restart does with it (bench/scale.py), and a restart looked at
its name through four of them. A thread of the guard (the exit watcher, a scheduler worker)
keeps its connection for its life; it is opened again when the registry file was replaced or
removed (then ``open_registry`` says so, as before) and after any registry error. SQLite
connections belong to the thread that made them, hence one per thread. Only plain reads and
single-statement transactions run on them, so nesting a ``use()`` in another is harmless.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

from bgr.guard_api import BgrError, LockHeld, Registry, db_path, open_registry

# Each connection's SQLite page cache grows up to 2 MiB by default, and the guard keeps one per
# thread for its whole life: with 1000 processes that grew bgr-guard by ~3 MiB over 600 restarts
# and ~6 MiB over 2000 (bench/scale.py --rounds). The guard's reads are mostly one row by its
# key; what a full scan needs again is in the operating system's cache of the file.
PAGE_CACHE_KIB = 256


class Connections:
    """``with connections.use() as reg:`` instead of ``with open_registry(db) as reg:``."""

    def __init__(self, db: str | None) -> None:
        self.db = db
        self._local = threading.local()

    @contextlib.contextmanager
    def use(self) -> Iterator[Registry]:
        reg = self._current()
        try:
            yield reg
        except LockHeld:
            raise  # a name's lock, not the registry's trouble: the connection is fine
        except BgrError:
            self.drop()  # a locked, full or replaced registry: start afresh next time
            raise

    def drop(self) -> None:
        """Close this thread's connection (the next ``use`` opens a new one)."""
        reg: Registry | None = getattr(self._local, "reg", None)
        self._local.reg = None
        if reg is not None:
            reg.close()

    def _current(self) -> Registry:
        reg: Registry | None = getattr(self._local, "reg", None)
        path = db_path(self.db)  # --db, $DB_NAME or the default, as open_registry resolves it
        if reg is not None and (reg.path != path or _file_id(path) != self._local.file):
            self.drop()
            reg = None
        if reg is None:
            reg = open_registry(self.db)
            reg.limit_page_cache(PAGE_CACHE_KIB)
            self._local.reg, self._local.file = reg, _file_id(path)
        return reg


def _file_id(path: str) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino
