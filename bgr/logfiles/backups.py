"""Log backups: move a finished log aside at restart, rotate a live log by size, prune old backups.

Managed children write their own log files (opened ``O_WRONLY|O_APPEND|O_CREAT``, 0600), so
this module is never in the data path: it only copies, renames, and cuts files that someone else
is appending to, in chunks (bounded memory whatever the log size).

Backups live in ``paths.backup_dir()`` as ``<name>-<stream>-<YYYY-MM-DDTHH-MM-SS>[-N].txt`` (local
time; ``-1``, ``-2``, ... when that second is taken). Concatenating a name+stream's backups
oldest first, then the live file, gives the exact byte stream the process wrote (see
``rotate_live`` for the one exception, the copy-then-truncate fallback).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import itertools
import logging
import os
import re
import stat
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

from bgr import paths
from bgr.errors import BgrError, UsageError
from bgr.logfiles.reading import CHUNK, block_size

_STAMP = "%Y-%m-%dT%H-%M-%S"
_STREAMS = ("out", "err")
FALLOC_FL_COLLAPSE_RANGE = 0x08
# errnos meaning "this filesystem/kernel can't collapse here": fall back to copy-then-truncate.
_NO_COLLAPSE = {errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL, errno.ENOSYS, errno.ENODEV}

__all__ = [
    "FALLOC_FL_COLLAPSE_RANGE",
    "RotationResult",
    "backups",
    "collapse_supported",
    "move_to_backup",
    "prune_backups",
    "rotate_live",
]

Method = Literal["collapse", "truncate"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RotationResult:
    """One live rotation: where the head went, how many bytes moved, and how it was cut."""

    backup: Path
    bytes_moved: int
    method: Method


# ---------------------------------------------------------------------------------------------
# backups


def _check(name: str, stream: str) -> None:
    paths.validate_name(name)
    if stream not in _STREAMS:
        raise ValueError(f"stream must be 'out' or 'err', not {stream!r}")


def _backup_pattern(name: str, stream: str) -> re.Pattern[str]:
    return re.compile(rf"{re.escape(name)}-{stream}-(\d{{4}}-\d\d-\d\dT\d\d-\d\d-\d\d)(?:-(\d+))?\.txt")


def backups(name: str, stream: str) -> list[Path]:
    """This name+stream's backup files, oldest first (by the timestamp and counter in the name)."""
    _check(name, stream)
    pattern = _backup_pattern(name, stream)
    found: list[tuple[str, int, Path]] = []
    with os.scandir(paths.backup_dir()) as entries:
        for entry in entries:
            match = pattern.fullmatch(entry.name)
            if match and entry.is_file(follow_symlinks=False):
                found.append((match[1], int(match[2] or 0), Path(entry.path)))
    return [path for _, _, path in sorted(found)]


def prune_backups(name: str, stream: str, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest backups of this name+stream; return what was removed."""
    if keep < 0:
        raise UsageError(f"invalid backup count {keep}: use 0 or more")
    existing = backups(name, stream)
    doomed = existing[: max(0, len(existing) - keep)]
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed


def _reserve_backup(name: str, stream: str, now: float) -> tuple[Path, int]:
    """Create a new, empty, 0600 backup file with a unique name; O_EXCL makes the name ours."""
    directory = Path(paths.backup_dir())
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
        candidate = directory / f"{name}-{stream}-{stamp}{suffix}.txt"
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, paths.FILE_MODE)
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
    clock: Callable[[], float] = time.time,
) -> Path | None:
    """Move a finished log to the backup directory before a (re)start; return the backup path.

    A missing, empty or non-regular file (e.g. ``/dev/null``) is left alone and gives None.
    Same filesystem: an atomic rename onto a freshly reserved name. Otherwise: copy in chunks,
    fsync, then unlink. Then keep only the ``keep`` newest backups when ``keep`` is given.
    """
    _check(name, stream)
    path = Path(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(info.st_mode) or info.st_size == 0:
        return None
    backup, out_fd = _reserve_backup(name, stream, clock())
    try:
        try:
            os.rename(path, backup)  # atomically replaces the empty file we reserved
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            with open(path, "rb") as src:
                _copy(src.fileno(), out_fd, 0, None)
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
        prune_backups(name, stream, keep)
    return backup


def _copy(src: int, dst: int, start: int, end: int | None) -> int:
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


# ---------------------------------------------------------------------------------------------
# live rotation


@cache
def _fallocate() -> Any:
    """libc's ``fallocate`` via ctypes (Python has no binding for its mode flags), or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        func = getattr(libc, "fallocate64", None) or libc.fallocate
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    func.restype = ctypes.c_int
    return func


def _collapse_head(fd: int, length: int) -> None:
    """Remove bytes ``[0, length)`` from the file in place; raise OSError when refused."""
    func = _fallocate()
    if func is None:
        raise OSError(errno.EOPNOTSUPP, "fallocate is not available on this system")
    if func(fd, FALLOC_FL_COLLAPSE_RANGE, 0, length) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def collapse_supported(directory: Path) -> bool:
    """Whether files in ``directory`` can be rotated losslessly (probes with a scratch file)."""
    probe = Path(directory) / f".bgr-collapse-probe-{os.getpid()}-{threading.get_ident()}"
    try:
        fd = os.open(probe, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, paths.FILE_MODE)
    except OSError:
        return False
    try:
        block = block_size(fd)
        os.write(fd, b"\n" * (block + 1))
        _collapse_head(fd, block)
        return os.fstat(fd).st_size == 1
    except OSError:
        return False
    finally:
        os.close(fd)
        probe.unlink(missing_ok=True)


def rotate_live(
    path: Path,
    name: str,
    stream: str,
    max_bytes: int,
    keep: int = 10,
    *,
    method: Literal["auto", "collapse", "truncate"] = "auto",
    clock: Callable[[], float] = time.time,
) -> RotationResult | None:
    """Move the head of a log that is still being written to a backup, if it exceeds ``max_bytes``.

    ``collapse`` (Linux, ext4/xfs): copy the largest block-aligned head ``[0, L)`` that leaves at
    least one byte to the backup, fsync it, then cut exactly those bytes out of the live file with
    ``fallocate(FALLOC_FL_COLLAPSE_RANGE)``. The kernel serialises this with ``O_APPEND`` writes,
    so nothing is lost or repeated. The cut is block-aligned, not line-aligned, so the last line of
    a backup may continue at the top of the live file.

    ``truncate`` (fallback when collapse is refused, or forced): copy up to the end until caught
    up, then truncate to 0. Bytes written between the last copy and the truncate are lost.

    Returns None when the file is missing, not bigger than ``max_bytes``, or being rotated by
    someone else right now (an ``flock`` on the log). Prunes backups to ``keep`` afterwards.
    """
    _check(name, stream)
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BgrError(f"cannot rotate log {path}: {exc.strerror}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size <= max_bytes:
            return None
        result = _rotate(fd, path, name, stream, info.st_size, method=method, now=clock())
    finally:
        os.close(fd)
    prune_backups(name, stream, keep)
    return result


def _rotate(
    fd: int,
    path: Path,
    name: str,
    stream: str,
    size: int,
    *,
    method: Literal["auto", "collapse", "truncate"],
    now: float,
) -> RotationResult:
    block = block_size(fd)
    # Collapse must end before EOF, hence size - 1.
    length = (size - 1) // block * block
    backup, out_fd = _reserve_backup(name, stream, now)
    try:
        copied = 0
        if method != "truncate" and length > 0:
            copied = _copy(fd, out_fd, 0, length)
            if copied != length:  # someone else truncated it meanwhile: cutting would lose data
                raise OSError(errno.EAGAIN, "the log shrank during rotation; try again")
            os.fsync(out_fd)  # the backup must be durable before the bytes leave the live file
            try:
                _collapse_head(fd, length)
            except OSError as exc:
                if exc.errno not in _NO_COLLAPSE or method == "collapse":
                    raise
                _log.info("cannot collapse %s (%s); copying then truncating", path, exc.strerror)
            else:
                os.close(out_fd)
                return RotationResult(backup, copied, "collapse")
        elif method == "collapse":
            raise OSError(errno.EINVAL, f"file is smaller than two {block}-byte blocks")
        copied += _copy(fd, out_fd, copied, None)
        os.fsync(out_fd)
        # Catch up with what arrived during the fsync, then truncate at once: the loss window
        # is the time between the last (empty) read and the truncate, microseconds.
        copied += _copy(fd, out_fd, copied, None)
        os.ftruncate(fd, 0)
    except OSError as exc:
        os.close(out_fd)
        backup.unlink(missing_ok=True)  # the live file still has everything: no duplicates
        raise BgrError(
            f"cannot rotate log {path}: {exc.strerror}; check the filesystem and free space"
        ) from exc
    try:
        os.fsync(out_fd)  # the tail copied after the first fsync
    except OSError as exc:  # the live file is already cut: keep what the page cache has
        _log.warning("fsync of log backup %s failed: %s", backup, exc.strerror)
    finally:
        os.close(out_fd)
    return RotationResult(backup, copied, "truncate")
