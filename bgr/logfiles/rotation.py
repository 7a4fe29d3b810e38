"""Live rotation: move the head of a log to a backup while its process keeps appending to it.

On Linux ext4/XFS the head is copied, fsynced, then cut out of the live file with
``fallocate(FALLOC_FL_COLLAPSE_RANGE)``, which the kernel orders with the writer's ``O_APPEND``
writes: nothing is lost or repeated. Elsewhere (tmpfs, NFS, macOS) it falls back to copy then
truncate, which can lose what is written in the microseconds between the two (README).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

from bgr import paths
from bgr.errors import BgrError
from bgr.logfiles.backups import check_stream, copy_range, prune_backups, reserve_backup
from bgr.logfiles.reading import block_size

FALLOC_FL_COLLAPSE_RANGE = 0x08
# errnos meaning "this filesystem/kernel can't collapse here": fall back to copy-then-truncate.
_NO_COLLAPSE = {errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL, errno.ENOSYS, errno.ENODEV}

__all__ = ["FALLOC_FL_COLLAPSE_RANGE", "RotationResult", "collapse_supported", "rotate_live"]

Method = Literal["collapse", "truncate"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RotationResult:
    """One live rotation: where the head went, how many bytes moved, and how it was cut."""

    backup: Path
    bytes_moved: int
    method: Method


@cache
def _fallocate() -> Any:
    """libc's ``fallocate`` via ctypes (Python has no binding for its mode flags), or None where
    libc has none (only Linux has this call; elsewhere rotation copies, then truncates)."""
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
    directory: str | None = None,
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
    check_stream(name, stream)
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
        result = _rotate(
            fd, path, name, stream, info.st_size, method=method, now=clock(), directory=directory
        )
    finally:
        os.close(fd)
    prune_backups(name, stream, keep, directory=directory)
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
    directory: str | None,
) -> RotationResult:
    block = block_size(fd)
    # Collapse must end before EOF, hence size - 1.
    length = (size - 1) // block * block
    backup, out_fd = reserve_backup(name, stream, now, directory=directory)
    try:
        copied = 0
        if method != "truncate" and length > 0:
            copied = copy_range(fd, out_fd, 0, length)
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
        copied += copy_range(fd, out_fd, copied, None)
        os.fsync(out_fd)
        # Catch up with what arrived during the fsync, then truncate at once: the loss window
        # is the time between the last (empty) read and the truncate, microseconds.
        copied += copy_range(fd, out_fd, copied, None)
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
