"""Linux file watching for ``bgr --watch``: one inotify instance, one watch per kept directory.

We place the watches ourselves (through watchdog's ``InotifyFD``, which owns the reader thread)
instead of scheduling a recursive watchdog observer, because that would put a watch in every
directory of ``node_modules`` and ``.git`` before any filter runs, and inotify watches are a
per-user kernel budget (``fs.inotify.max_user_watches``). Directories that appear are watched
(and their files reported), ignored or removed ones are dropped, and a ``.gitignore`` edit moves
the watches. ``watch_error`` turns the kernel's limits into messages that say how to raise them.

watchdog is imported inside the functions that need it, never by ``import bgr.watch.inotify``.
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, cast

from bgr.errors import BgrError, WatchError
from bgr.watch.inbox import Inbox
from bgr.watch.tree import GITIGNORE, WatchedTree

if TYPE_CHECKING:
    from watchdog.observers.inotify_c import CallbackId, InotifyEvent, Mask, WatchDescriptor

OVERFLOW = "(inotify queue overflowed: some changes were lost)"

_log = logging.getLogger(__name__)


def watch_error(exc: OSError, path: str) -> WatchError:
    """An OSError from setting up a watch → a WatchError that says how to fix it."""
    if exc.errno == errno.ENOSPC:
        limit = _sysctl("max_user_watches")
        return WatchError(
            f"out of inotify watches while watching {path} (fs.inotify.max_user_watches = {limit}); "
            "raise the limit with `sudo sysctl fs.inotify.max_user_watches=524288` (add it to "
            "/etc/sysctl.conf to keep it) or --ignore large directories"
        )
    if exc.errno == errno.EMFILE:
        limit = _sysctl("max_user_instances")
        return WatchError(
            f"too many inotify instances (fs.inotify.max_user_instances = {limit}); stop other "
            "file watchers or run `sudo sysctl fs.inotify.max_user_instances=1024`"
        )
    return WatchError(f"cannot watch {path}: {exc.strerror or exc}")


def _sysctl(name: str) -> str:
    try:
        return Path(f"/proc/sys/fs/inotify/{name}").read_text().strip()
    except OSError:
        return "unknown"


def inotify_available() -> bool:
    """Whether this system has inotify and watchdog offers per-directory watches on it."""
    if not os.path.isdir("/proc/sys/fs/inotify"):  # the kernel's inotify settings: it has inotify
        return False
    try:
        from watchdog.observers.inotify_c import InotifyFD
    except (ImportError, OSError):
        return False
    return hasattr(InotifyFD, "add_callback")


class InotifyBackend:
    """One inotify instance, one reader thread (watchdog's), one watch per kept directory."""

    def __init__(self, tree: WatchedTree, inbox: Inbox) -> None:
        from watchdog.observers.inotify_c import InotifyConstants as C
        from watchdog.observers.inotify_c import InotifyFD

        self._tree = tree
        self._inbox = inbox
        self._lock = threading.RLock()
        self._by_path: dict[str, tuple[int, int]] = {}  # rel dir → (wd, callback id)
        self._by_wd: dict[int, str] = {}
        self._ids = itertools.count(1)
        self._closing = False
        # Directory events only; IN_ONLYDIR/IN_DONT_FOLLOW: never watch a file or follow a symlink.
        # IN_CLOSE_WRITE is left out on purpose: a program that merely opens a file read-write
        # (SQLite) would count as a change and could restart itself forever; a write always
        # gives IN_MODIFY.
        self._mask = cast(
            "Mask",
            C.IN_MODIFY
            | C.IN_ATTRIB
            | C.IN_MOVED_FROM
            | C.IN_MOVED_TO
            | C.IN_CREATE
            | C.IN_DELETE
            | C.IN_ONLYDIR
            | C.IN_DONT_FOLLOW
            | C.IN_EXCL_UNLINK,
        )
        try:
            self._fd = InotifyFD()
        except OSError as exc:
            raise watch_error(exc, tree.root) from exc
        # watchdog creates the inotify fd without O_CLOEXEC: the processes we spawn would inherit
        # it and keep the instance (and all its watches) alive after we exit.
        raw = getattr(self._fd, "_inotify_fd", None)
        if isinstance(raw, int):
            os.set_inheritable(raw, False)
        self._fd.start()

    def start(self) -> int:
        """Place the watches; return how many directories are watched."""
        with self._lock:
            self._sync()
            return len(self._by_path)

    def watched(self) -> list[str]:
        """The watched directories relative to the root ("" is the root)."""
        with self._lock:
            return sorted(self._by_path)

    def close(self) -> None:
        """Close the inotify instance (which removes every watch) and stop its thread."""
        self._closing = True
        self._fd.stop()
        self._fd.join(timeout=2)

    # WatchCallback protocol; runs on watchdog's reader thread.

    def on_event(self, event: InotifyEvent) -> None:
        try:
            with self._lock:
                self._handle(event)
        except BgrError as exc:
            self._inbox.fail(exc)
        except Exception as exc:  # the reader thread must not die silently: say so and stop
            _log.exception("file watching failed")
            self._inbox.fail(WatchError(f"file watching failed: {exc}"))

    def on_watch_deleted(self, wd: WatchDescriptor) -> None:
        with self._lock:
            rel = self._by_wd.pop(wd, None)
            if rel is not None and self._by_path.get(rel, (None, 0))[0] == wd:
                del self._by_path[rel]
            if rel == "" and not self._closing:
                self._inbox.fail(WatchError(f"{self._tree.root} was removed; stopped watching"))

    def on_queue_overflow(self) -> None:
        self._inbox.change(OVERFLOW)
        try:
            with self._lock:
                self._sync()
        except BgrError as exc:
            self._inbox.fail(exc)

    # Everything below runs with self._lock held.

    def _handle(self, event: InotifyEvent) -> None:
        base = self._by_wd.get(event.wd)
        if base is None or not event.name:
            return
        name = os.fsdecode(event.name)
        rel = f"{base}/{name}" if base else name
        if self._tree.rules.excluded(rel, event.is_directory):
            return
        if event.is_directory:
            if event.is_create or event.is_moved_to:
                # Files may have landed before the watch did (mkdir -p a/b && touch a/b/c).
                self._tree.walk(rel, self._watch, self._inbox.change)
            elif event.is_moved_from or event.is_delete:
                self._drop_tree(rel)
                if event.is_moved_from:
                    self._inbox.change(rel + "/")
            return
        # Apply a .gitignore edit before reporting it, so whoever sees the change sees its rules.
        if name == GITIGNORE and self._tree.load_gitignore(base):
            self._sync()
        self._inbox.change(rel)

    def _sync(self) -> None:
        """Make the watches match the tree: drop newly ignored directories, add missing ones."""
        wanted: set[str] = set()

        def visit(rel: str) -> bool:
            wanted.add(rel)
            return self._watch(rel)

        self._tree.walk("", visit)
        for rel in [p for p in self._by_path if p not in wanted]:
            self._unwatch(rel)

    def _drop_tree(self, rel: str) -> None:
        prefix = rel + "/"
        for path in [p for p in self._by_path if p == rel or p.startswith(prefix)]:
            self._unwatch(path)

    def _watch(self, rel: str) -> bool:
        """Make sure ``rel`` has a watch; False when it can't have one (gone, not a directory)."""
        if rel in self._by_path:
            return True
        callback_id = next(self._ids)
        path = os.fsencode(self._tree.abs(rel))
        try:
            wd = self._fd.add_callback(path, self._mask, self, cast("CallbackId", callback_id))
        except OSError as exc:
            if rel == "" or exc.errno in (errno.ENOSPC, errno.EMFILE):
                raise watch_error(exc, self._tree.root) from exc
            return False  # vanished meanwhile, or not a directory any more
        if wd == -1:  # watchdog swallows EACCES and records a watch with wd -1: undo that
            self._fd.remove_callbacks([(wd, cast("CallbackId", callback_id))])
            return False
        stale = self._by_wd.get(wd)
        if stale is not None and stale != rel:
            # The same directory under an old name (moved before we saw it): forget the old name.
            _, old_id = self._by_path.pop(stale)
            self._fd.remove_callbacks([(wd, cast("CallbackId", old_id))])
        self._by_path[rel] = (wd, callback_id)
        self._by_wd[wd] = rel
        return True

    def _unwatch(self, rel: str) -> None:
        wd, callback_id = self._by_path.pop(rel)
        if self._by_wd.get(wd) == rel:
            del self._by_wd[wd]
        self._fd.remove_callbacks([(cast("WatchDescriptor", wd), cast("CallbackId", callback_id))])
