"""``Watcher``: watch a directory tree, minus ignored paths, and put changed paths in an inbox.

On Linux the per-directory inotify backend (``bgr.watch.inotify``); elsewhere watchdog's recursive
platform ``Observer`` (macOS FSEvents watches a tree with one stream, so there is no
per-directory budget to protect) whose events are filtered through the same rules. Changed paths
are relative to the root with ``/`` separators; a directory that moved away ends with ``/``.

watchdog is imported only when a ``Watcher`` is created, never by ``import bgr.watch.watcher``.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from bgr.errors import UsageError
from bgr.watch.inbox import Inbox
from bgr.watch.inotify import InotifyBackend, inotify_available, watch_error
from bgr.watch.tree import WatchedTree

if TYPE_CHECKING:
    from watchdog.events import FileSystemEvent


class _Backend(Protocol):
    def start(self) -> int: ...

    def close(self) -> None: ...

    def watched(self) -> list[str]: ...


class _ObserverBackend:
    """watchdog's platform observer, recursive on the root; ignored paths are filtered out."""

    def __init__(self, tree: WatchedTree, inbox: Inbox) -> None:
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        self._tree = tree
        self._inbox = inbox
        self._lock = threading.Lock()
        backend = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                backend._handle(event)

        self._handler = Handler()
        self._observer = Observer()

    def start(self) -> int:
        counted: list[str] = []

        def count(rel: str) -> bool:
            counted.append(rel)
            return True

        self._tree.walk("", count)  # also loads the .gitignore files
        try:
            self._observer.schedule(self._handler, self._tree.root, recursive=True)
            self._observer.start()
        except OSError as exc:
            raise watch_error(exc, self._tree.root) from exc
        return len(counted)

    def watched(self) -> list[str]:
        return []

    def close(self) -> None:
        with contextlib.suppress(RuntimeError):
            self._observer.stop()
            self._observer.join(timeout=2)

    def _handle(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed", "closed_no_write"):
            return
        with self._lock:
            for raw in (event.src_path, getattr(event, "dest_path", "")):
                path = os.fsdecode(raw)
                rel = self._tree.rel(path) if path else None
                if not rel or self._tree.rules.ignored(rel, event.is_directory):
                    continue
                if event.is_directory and event.event_type != "moved":
                    continue
                self._inbox.change(rel + ("/" if event.is_directory else ""))


class Watcher:
    """Watch ``directory`` (recursively, minus ignored paths) and put changed paths in an inbox."""

    def __init__(
        self,
        directory: Path,
        *,
        ignore: Sequence[str] = (),
        ignore_paths: Iterable[Path] = (),
        inbox: Inbox | None = None,
        backend: str = "auto",
    ) -> None:
        if not Path(directory).is_dir():
            raise UsageError(f"directory {directory} does not exist; create it or pass --directory")
        self.tree = WatchedTree(Path(directory), ignore, ignore_paths)
        self.inbox = inbox or Inbox()
        if backend == "auto":
            backend = "inotify" if inotify_available() else "observer"
        if backend not in ("inotify", "observer"):
            raise ValueError(f"unknown watch backend {backend!r}")
        self.backend = backend
        self._impl: _Backend | None = None

    def start(self) -> int:
        """Place the watches; return how many directories are watched."""
        impl: _Backend = (
            InotifyBackend(self.tree, self.inbox)
            if self.backend == "inotify"
            else _ObserverBackend(self.tree, self.inbox)
        )
        self._impl = impl
        try:
            return impl.start()
        except BaseException:
            self.close()
            raise

    def watched(self) -> list[str]:
        """The watched directories relative to the root ("" is the root); inotify only."""
        return self._impl.watched() if self._impl else []

    def changes(self, timeout: float) -> list[str]:
        """Wait up to ``timeout`` for changes; the changed paths (raises what the watcher hit)."""
        batch = self.inbox.take(timeout)
        if batch.error:
            raise batch.error
        return list(batch.changes)

    def close(self) -> None:
        """Remove every watch and stop the watching thread."""
        impl, self._impl = self._impl, None
        if impl is not None:
            impl.close()

    def __enter__(self) -> Watcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
