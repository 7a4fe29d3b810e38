"""Log files: tail and follow them while someone else appends.

Managed children write their own log files (opened ``O_WRONLY|O_APPEND|O_CREAT``, 0600), so
this module is never in the data path: it only reads files that someone else is appending to, and
``follow`` keeps its place while ``backups`` moves them aside or cuts their head. Nothing here
reads a whole log into memory; everything goes in chunks.
"""

from __future__ import annotations

import codecs
import contextlib
import math
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bgr.errors import UsageError

CHUNK = 1024 * 1024  # copy/read granularity: bounded memory whatever the log size
_TAIL_BLOCK = 64 * 1024  # backwards scan step when looking for the start of the last N lines
_MAX_ROUND = 4 * CHUNK  # follow: per file and poll, so one busy file can't starve the others
_MAX_PARTIAL = 64 * 1024  # follow: a longer unterminated line is emitted without its newline
_SIGNATURE = 64  # follow: bytes remembered before the read position to recognise a head collapse

__all__ = [
    "CHUNK",
    "block_size",
    "follow",
    "tail",
]


# ---------------------------------------------------------------------------------------------
# reading


def tail(path: os.PathLike[str] | str, lines: int | None, *, end: int | None = None) -> Iterator[str]:
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
    paths: Sequence[tuple[str, os.PathLike[str] | str]],
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
    new_pos = t.pos % block_size(t.fd)
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


def block_size(fd: int) -> int:
    """Collapse granularity: a multiple of both the preferred I/O size and the fs block size.

    ``rotation.rotate_live`` cuts a log's head in these units; ``follow`` finds its place again by them.
    """
    size = os.fstat(fd).st_blksize or 4096
    with contextlib.suppress(OSError):
        size = math.lcm(size, os.fstatvfs(fd).f_bsize or size)
    return size
