"""What a full disk kept a stop or a delete from recording, kept until the next command can.

A stop works when the disk is full (signals need no space), but the registry cannot say so: SQLite
needs room to write. So every registry has a small file of reserved space, ``<folder>/pending``,
written with zeros when the registry is made; overwriting bytes that already exist needs no new
space, so a line fits there even then. The next command that can write the registry applies those
lines (desired=stopped, the row forgotten) and zeroes the file again.
"""

from __future__ import annotations

import contextlib
import os
import time

from bgr import jsontext, paths
from bgr.errors import RegistryError
from bgr.models import Desired
from bgr.store import Registry, append_event

SIZE = 64 * 1024


def _path(layout: paths.Layout) -> str:
    return layout.pending_path


def prepare(layout: paths.Layout) -> None:
    """Reserve the space (once per registry; a disk already full leaves it out, nothing fails)."""
    path = _path(layout)
    if os.path.exists(path):
        return
    with contextlib.suppress(OSError):
        fd = paths.open_private(path, os.O_WRONLY | os.O_CREAT)
        try:
            if os.fstat(fd).st_size < SIZE:
                os.pwrite(fd, bytes(SIZE), 0)
                os.fsync(fd)
        finally:
            os.close(fd)


def note(layout: paths.Layout, op: str, name: str, instance: str | None) -> bool:
    """Keep one thing to record later (``op``: "stop" or "delete"); False if there is no room."""
    line = jsontext.dumps({"op": op, "name": name, "instance": instance, "at": time.time()}).encode() + b"\n"
    try:
        fd = paths.open_private(_path(layout), os.O_RDWR)
    except OSError:
        return False
    try:
        used = os.pread(fd, SIZE, 0).find(b"\0")
        if used < 0 or used + len(line) > SIZE:
            return False
        os.pwrite(fd, line, used)  # within the bytes written at prepare(): no new block
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def replay(reg: Registry) -> list[str]:
    """Record what was kept for later, then clear it; the names it applied to. A registry that
    still cannot be written keeps them for the next try."""
    try:
        fd = paths.open_private(_path(reg.layout), os.O_RDWR)
    except OSError:
        return []
    try:
        data = os.pread(fd, SIZE, 0).split(b"\0", 1)[0]
        if not data:
            return []
        entries = [jsontext.loads(line.decode()) for line in data.splitlines() if line.strip()]
        try:
            done = [_apply(reg, entry) for entry in entries]
        except RegistryError:
            return []
        os.pwrite(fd, bytes(len(data)), 0)
        return [name for name in done if name]
    finally:
        os.close(fd)


def _apply(reg: Registry, entry: dict[str, object]) -> str:
    name, instance = str(entry.get("name", "")), entry.get("instance")
    record = reg.get(name)
    if record is None or (instance is not None and record.instance != instance):
        return ""  # a later start owns the row now
    if entry.get("op") == "delete":
        reg.delete(name)
        from bgr.core.teardown import forget_files

        forget_files(reg, record)
        return name
    at = float(entry.get("at") or time.time())  # type: ignore[arg-type]
    event = append_event(record.events, "stopped", "recorded late: the disk was full", at=at)
    reg.update(name, instance=record.instance, desired=Desired.STOPPED, stopped_at=at, events=event)
    return name
