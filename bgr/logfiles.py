"""Log files: tail and follow them, move them to backups at restart, rotate a live file by size.

Managed children write their own log files (opened ``O_WRONLY|O_APPEND|O_CREAT``, 0600), so
this module is never in the data path: it only reads, copies, renames, and cuts files that someone
else is appending to. Nothing here reads a whole log into memory; everything goes in chunks.

Backups live in ``home.backup_dir()`` as ``<name>-<stream>-<YYYY-MM-DDTHH-MM-SS>[-N].txt`` (local
time; ``-1``, ``-2``, ... when that second is taken). Concatenating a name+stream's backups
oldest first, then the live file, gives the exact byte stream the process wrote (see
``rotate_live`` for the one exception, the copy-then-truncate fallback).
"""

from __future__ import annotations

import codecs
import contextlib
import ctypes
import errno
import fcntl
import itertools
import logging
import math
import os
import re
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

from bgr import home
from bgr.errors import BgrError, UsageError

CHUNK = 1024 * 1024  # copy/read granularity: bounded memory whatever the log size
_TAIL_BLOCK = 64 * 1024  # backwards scan step when looking for the start of the last N lines
_MAX_ROUND = 4 * CHUNK  # follow: per file and poll, so one busy file can't starve the others
_MAX_PARTIAL = 64 * 1024  # follow: a longer unterminated line is emitted without its newline
_SIGNATURE = 64  # follow: bytes remembered before the read position to recognise a head collapse
_STAMP = "%Y-%m-%dT%H-%M-%S"
_STREAMS = ("out", "err")
FALLOC_FL_COLLAPSE_RANGE = 0x08
# errnos meaning "this filesystem/kernel can't collapse here": fall back to copy-then-truncate.
_NO_COLLAPSE = {errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL, errno.ENOSYS, errno.ENODEV}

__all__ = [
    "CHUNK",
    "FALLOC_FL_COLLAPSE_RANGE",
    "RotationResult",
    "backups",
    "collapse_supported",
    "follow",
    "move_to_backup",
    "parse_size",
    "prune_backups",
    "rotate_live",
    "tail",
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
# sizes


_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?)(i?b)?\s*", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(text: str) -> int:
    """Parse "100", "512K", "10M", "1.5G", "10MB", "10MiB" (case-insensitive, powers of 1024)."""
    match = _SIZE.fullmatch(text)
    if match is None or (match[3] and match[3].lower() == "ib" and not match[2]):
        raise UsageError(
            f"invalid size {text!r}: use a number of bytes with an optional K, M or G suffix, "
            "e.g. 512K or 10M"
        )
    unit = _UNITS[match[2].lower()]
    number = match[1]
    return int(number) * unit if number.isdigit() else int(float(number) * unit)


# ---------------------------------------------------------------------------------------------
# reading


def tail(path: Path, lines: int | None, *, end: int | None = None) -> Iterator[str]:
    """Yield the text of the last ``lines`` lines of ``path`` (all of it when ``lines`` is None).

    With ``end``, only the first ``end`` bytes count: ``follow(..., start=...)`` then continues at
    exactly that offset, so tail-then-follow neither misses nor repeats a line.

    A final line without a newline counts as a line. Text comes in chunks (not one per line),
    decoded as UTF-8 with replacement characters, so binary garbage never raises. A missing
    file, or ``lines == 0``, yields nothing.
    """
    if lines is not None and lines < 0:
        raise UsageError(f"invalid line count {lines}: use 0 or more")
    if lines == 0:
        return
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        size = os.fstat(fd).st_size
        end = size if end is None else min(end, size)
        pos = 0 if lines is None else _start_of_last_lines(fd, end, lines)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        while pos < end:
            chunk = os.pread(fd, min(CHUNK, end - pos), pos)
            if not chunk:  # truncated while we read
                break
            pos += len(chunk)
            text = decoder.decode(chunk)
            if text:
                yield text
        rest = decoder.decode(b"", final=True)
        if rest:
            yield rest
    finally:
        os.close(fd)


def _start_of_last_lines(fd: int, end: int, lines: int) -> int:
    """Offset where the last ``lines`` lines of the first ``end`` bytes begin."""
    pos = end
    # A trailing newline ends the last line; it doesn't begin an empty one after it.
    if end and os.pread(fd, 1, end - 1) == b"\n":
        pos -= 1
    needed = lines
    while pos > 0:
        size = min(_TAIL_BLOCK, pos)
        pos -= size
        block = os.pread(fd, size, pos)
        idx = len(block)
        while (idx := block.rfind(b"\n", 0, idx)) >= 0:
            needed -= 1
            if needed == 0:
                return pos + idx + 1
    return 0


@dataclass(slots=True)
class _Followed:
    """Per-file follow state: the open fd, where we are, and a not-yet-terminated line."""

    label: str
    path: Path
    fd: int | None = None
    ident: tuple[int, int] = (0, 0)
    pos: int = 0
    signature: bytes = b""  # the bytes just before ``pos``
    partial: bytes = b""
    partial_since: float = 0.0
    decoder: codecs.IncrementalDecoder = field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")(errors="replace")
    )

    def mark_end(self, at: int | None = None) -> None:
        """Note where the file ends now, or offset ``at`` (without keeping it open): following
        starts there."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return
        try:
            info = os.fstat(fd)
            size = info.st_size if at is None else min(at, info.st_size)
            self.ident, self.pos = (info.st_dev, info.st_ino), size
            start = max(0, self.pos - _SIGNATURE)
            self.signature = os.pread(fd, self.pos - start, start)
        finally:
            os.close(fd)

    def open(self) -> bool:
        """Open the file; keep the noted position if it is still the same file, else start at 0."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return False
        info = os.fstat(fd)
        ident = (info.st_dev, info.st_ino)
        if ident != self.ident:
            self.ident, self.pos, self.signature = ident, 0, b""
        self.fd = fd
        return True

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def follow(
    paths: Sequence[tuple[str, Path]],
    stop: threading.Event,
    poll_interval: float = 0.1,
    *,
    start: Mapping[str, int] | None = None,
) -> Iterator[tuple[str, str]]:
    """Yield ``(label, text)`` for data appended to each file after this call, until ``stop`` is set.

    The end of each file is noted when ``follow`` is called (not at the first ``next``), so
    nothing written in between is missed. ``start`` (label → byte offset, e.g. where a ``tail``
    stopped) overrides that per file.

    ``text`` is one line with its newline; a partial last line is held until its newline arrives
    or it has waited one ``poll_interval`` (or exceeds 64 KiB), then yielded as is. Copes with:

    - a file that doesn't exist yet: read from its start once it appears;
    - replacement (another inode at the path, e.g. moved to a backup by a restart): finish
      reading the old file, then read the new one from its start;
    - head collapse by ``rotate_live``: the position is moved back by the block-aligned length
      that was cut, recognised by the bytes just before it, so nothing is repeated or skipped
      (unless we were more than the cut length behind: those bytes are only in the backup);
    - truncation (or a shrink we can't match): start again from offset 0.
    """
    files = [_Followed(label, Path(path)) for label, path in paths]
    for tracked in files:
        tracked.mark_end((start or {}).get(tracked.label))
    return _follow(files, stop, poll_interval)


def _follow(files: list[_Followed], stop: threading.Event, poll_interval: float) -> Iterator[tuple[str, str]]:
    try:
        while not stop.is_set():
            busy = False
            for tracked in files:
                for text, more in _poll(tracked, poll_interval):
                    busy = busy or more
                    if text:
                        yield tracked.label, text
                    if stop.is_set():
                        return
            if not busy and stop.wait(poll_interval):
                return
    finally:
        for tracked in files:
            tracked.close()


def _poll(t: _Followed, poll_interval: float) -> Iterator[tuple[str, bool]]:
    """One round for one file: yield ``(text, more_pending)`` pieces."""
    if t.fd is None and not t.open():
        return
    assert t.fd is not None
    try:
        info = os.stat(t.path)
        replaced = (info.st_dev, info.st_ino) != t.ident
    except OSError:  # moved away and not recreated yet: keep draining the old file
        replaced = False
    size = os.fstat(t.fd).st_size
    if size < t.pos or (size > t.pos and not _signature_matches(t)):
        yield from _relocate(t, size)
    data, more = _read(t)
    if replaced and not more:
        data += _drain(t)
    yield from _emit(t, data, poll_interval, more)
    if replaced and not more:
        yield from _flush(t, final=True)
        t.close()
        t.ident = (0, 0)
        if t.open():
            yield from _poll(t, poll_interval)


def _signature_matches(t: _Followed) -> bool:
    assert t.fd is not None
    if not t.signature:
        return True
    return os.pread(t.fd, len(t.signature), t.pos - len(t.signature)) == t.signature


def _relocate(t: _Followed, size: int) -> Iterator[tuple[str, bool]]:
    """The file shrank or its head changed: find our place again, else restart from 0."""
    assert t.fd is not None
    # rotate_live cuts a block-aligned head of (nearly) the whole file, so if we were within one
    # block of its end our byte now sits at pos % block; the remembered bytes confirm it.
    new_pos = t.pos % _block_size(t.fd)
    overlap = min(new_pos, len(t.signature))
    if new_pos <= size and (
        overlap == 0 or os.pread(t.fd, overlap, new_pos - overlap) == t.signature[-overlap:]
    ):
        if new_pos == 0:
            yield from _flush(t, final=True)
        t.pos, t.signature = new_pos, t.signature[len(t.signature) - overlap :]
        return
    yield from _flush(t, final=True)
    t.pos, t.signature = 0, b""


def _read(t: _Followed) -> tuple[bytes, bool]:
    """Read what was appended (up to one round's budget); report whether more is waiting."""
    assert t.fd is not None
    parts: list[bytes] = []
    got = 0
    while got < _MAX_ROUND:
        chunk = os.pread(t.fd, CHUNK, t.pos)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
        t.pos += len(chunk)
    data = b"".join(parts)
    if data:
        t.signature = (t.signature + data[-_SIGNATURE:])[-_SIGNATURE:]
    return data, got >= _MAX_ROUND


def _drain(t: _Followed) -> bytes:
    """The rest of a replaced file, read to its end (it's no longer growing, or soon won't be)."""
    parts = []
    while True:
        data, more = _read(t)
        parts.append(data)
        if not more:
            return b"".join(parts)


def _emit(t: _Followed, data: bytes, poll_interval: float, more: bool) -> Iterator[tuple[str, bool]]:
    now = time.monotonic()
    if data:
        if not t.partial:
            t.partial_since = now
        buffered = t.partial + data
        cut = buffered.rfind(b"\n") + 1
        complete, t.partial = buffered[:cut], buffered[cut:]
        if cut:
            t.partial_since = now
        # Split on "\n" only (str.splitlines would also cut at \r, \f, \x1c, ...).
        lines = t.decoder.decode(complete).split("\n")
        for line in lines[:-1]:
            yield line + "\n", more
    if t.partial and (len(t.partial) > _MAX_PARTIAL or now - t.partial_since >= poll_interval):
        yield from _flush(t)


def _flush(t: _Followed, final: bool = False) -> Iterator[tuple[str, bool]]:
    """Emit the held partial line; ``final`` when the stream jumps, so no half character lingers."""
    if t.partial or final:
        text, t.partial = t.decoder.decode(t.partial, final=final), b""
        if text:
            yield text, False


# ---------------------------------------------------------------------------------------------
# backups


def _check(name: str, stream: str) -> None:
    home.validate_name(name)
    if stream not in _STREAMS:
        raise ValueError(f"stream must be 'out' or 'err', not {stream!r}")


def _backup_pattern(name: str, stream: str) -> re.Pattern[str]:
    return re.compile(rf"{re.escape(name)}-{stream}-(\d{{4}}-\d\d-\d\dT\d\d-\d\d-\d\d)(?:-(\d+))?\.txt")


def backups(name: str, stream: str) -> list[Path]:
    """This name+stream's backup files, oldest first (by the timestamp and counter in the name)."""
    _check(name, stream)
    pattern = _backup_pattern(name, stream)
    found: list[tuple[str, int, Path]] = []
    with os.scandir(home.backup_dir()) as entries:
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
    directory = home.backup_dir()
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
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, home.FILE_MODE)
        except FileExistsError:
            continue
        os.fchmod(fd, home.FILE_MODE)  # the umask may have taken bits away; be explicit
        return candidate, fd
    raise AssertionError("unreachable")


def move_to_backup(
    path: Path,
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
            os.chmod(backup, home.FILE_MODE)
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


def _block_size(fd: int) -> int:
    """Collapse granularity: a multiple of both the preferred I/O size and the fs block size."""
    size = os.fstat(fd).st_blksize or 4096
    with contextlib.suppress(OSError):
        size = math.lcm(size, os.fstatvfs(fd).f_bsize or size)
    return size


def collapse_supported(directory: Path) -> bool:
    """Whether files in ``directory`` can be rotated losslessly (probes with a scratch file)."""
    probe = Path(directory) / f".bgr-collapse-probe-{os.getpid()}-{threading.get_ident()}"
    try:
        fd = os.open(probe, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, home.FILE_MODE)
    except OSError:
        return False
    try:
        block = _block_size(fd)
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
    block = _block_size(fd)
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
