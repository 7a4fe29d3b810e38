"""Log backups: move a finished log aside at restart, list and prune the backups of a name.

Managed children write their own log files (opened ``O_WRONLY|O_APPEND|O_CREAT``, 0600), so
this module is never in the data path: it only copies and renames files, in chunks (bounded
memory whatever the log size). Live rotation, which cuts a file's head while it is written, is
``bgr.logfiles.rotation``.

Backups live in a registry's backup directory (``Layout.backup_dir``) as
``<name>-<stream>-<YYYY-MM-DDTHH-MM-SS>[-N].txt`` (local time; ``-1``, ``-2``, ... when that
second is taken). Concatenating a name+stream's backups oldest first, then the live file, gives the
exact byte stream the process wrote (see ``rotation.rotate_live`` for the one exception, the
copy-then-truncate fallback).
"""

from __future__ import annotations

import errno
import itertools
import os
import re
import stat
import time
from collections.abc import Callable
from pathlib import Path

from bgr import paths
from bgr.errors import BgrError, UsageError
from bgr.logfiles.reading import CHUNK

_STAMP = "%Y-%m-%dT%H-%M-%S"
_STREAMS = ("out", "err")

__all__ = ["backups", "check_stream", "copy_range", "move_to_backup", "prune_backups", "reserve_backup"]


def check_stream(name: str, stream: str) -> None:
    paths.validate_name(name)
    if stream not in _STREAMS:
        raise ValueError(f"stream must be 'out' or 'err', not {stream!r}")


def _backup_pattern(name: str, stream: str) -> re.Pattern[str]:
    return re.compile(rf"{re.escape(name)}-{stream}-(\d{{4}}-\d\d-\d\dT\d\d-\d\d-\d\d)(?:-(\d+))?\.txt")


def backups(name: str, stream: str, *, directory: str | None = None) -> list[Path]:
    """This name+stream's backup files in ``directory``, oldest first (by the timestamp and counter
    in the name); none when the directory does not exist."""
    check_stream(name, stream)
    directory = directory or _default_dir(create=False)
    pattern = _backup_pattern(name, stream)
    found: list[tuple[str, int, Path]] = []
    if not os.path.isdir(directory):
        return []
    with os.scandir(directory) as entries:
        for entry in entries:
            match = pattern.fullmatch(entry.name)
            if match and entry.is_file(follow_symlinks=False):
                found.append((match[1], int(match[2] or 0), Path(entry.path)))
    return [path for _, _, path in sorted(found)]


def _default_dir(*, create: bool = True) -> str:
    """The default registry's backup directory: where backups go when the caller names none."""
    layout = paths.layout()
    return layout.backup_dir() if create else os.path.join(layout.home, "backup")


def prune_backups(name: str, stream: str, keep: int, *, directory: str | None = None) -> list[Path]:
    """Delete all but the ``keep`` newest backups of this name+stream; return what was removed."""
    if keep < 0:
        raise UsageError(f"invalid backup count {keep}: use 0 or more")
    existing = backups(name, stream, directory=directory)
    doomed = existing[: max(0, len(existing) - keep)]
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed


def reserve_backup(name: str, stream: str, now: float, *, directory: str | None = None) -> tuple[Path, int]:
    """Create a new, empty, 0600 backup file with a unique name; O_EXCL makes the name ours."""
    directory = directory or _default_dir()
    stamp = time.strftime(_STAMP, time.localtime(now))
    # Count on from the highest counter used this second, never re-using a pruned lower one:
    # a re-used name would sort as the oldest backup and be pruned at once.
    pattern = _backup_pattern(name, stream)
    used = [
        int(match[2] or 0)
        for match in map(pattern.fullmatch, os.listdir(directory))
        if match and match[1] == stamp
    ]
    for n in itertools.count(max(used) + 1 if used else 0):
        suffix = f"-{n}" if n else ""
        candidate = Path(directory) / f"{name}-{stream}-{stamp}{suffix}.txt"
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
            fd = os.open(candidate, flags, paths.FILE_MODE)
        except FileExistsError:
            continue
        os.fchmod(fd, paths.FILE_MODE)  # the umask may have taken bits away; be explicit
        return candidate, fd
    raise AssertionError("unreachable")


def move_to_backup(
    path: os.PathLike[str] | str,
    name: str,
    stream: str,
    keep: int | None = None,
    *,
    directory: str | None = None,
    clock: Callable[[], float] = time.time,
) -> Path | None:
    """Move a finished log to the backup directory before a (re)start; return the backup path.

    A missing, empty or non-regular file (e.g. ``/dev/null``) is left alone and gives None.
    Same filesystem: an atomic rename onto a freshly reserved name. Otherwise: copy in chunks,
    fsync, then unlink. Then keep only the ``keep`` newest backups when ``keep`` is given.
    """
    check_stream(name, stream)
    path = Path(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(info.st_mode) or info.st_size == 0:
        return None
    backup, out_fd = reserve_backup(name, stream, clock(), directory=directory)
    try:
        try:
            os.rename(path, backup)  # atomically replaces the empty file we reserved
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            with open(path, "rb") as src:
                copy_range(src.fileno(), out_fd, 0, None)
            os.fsync(out_fd)
            path.unlink()
        else:
            os.chmod(backup, paths.FILE_MODE)
    except OSError as exc:
        backup.unlink(missing_ok=True)  # nothing moved yet, or the original is still there
        raise BgrError(
            f"cannot move log {path} to {backup.parent}: {exc.strerror}; check permissions and free space"
        ) from exc
    finally:
        os.close(out_fd)
    if keep is not None:
        prune_backups(name, stream, keep, directory=directory)
    return backup


def copy_range(src: int, dst: int, start: int, end: int | None) -> int:
    """Copy ``[start, end)`` of ``src`` (to EOF when ``end`` is None) onto the end of ``dst``."""
    pos = start
    in_kernel = hasattr(os, "copy_file_range")
    while end is None or pos < end:
        want = CHUNK if end is None else min(CHUNK, end - pos)
        if in_kernel:
            try:
                copied = os.copy_file_range(src, dst, want, pos)
            except OSError as exc:
                if exc.errno not in {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP}:
                    raise
                in_kernel = False
                continue
        else:
            data = os.pread(src, want, pos)
            copied = len(data)
            view = memoryview(data)
            while view:
                view = view[os.write(dst, view) :]
        if copied == 0:
            break
        pos += copied
    return pos - start
