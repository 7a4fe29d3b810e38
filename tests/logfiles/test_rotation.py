"""bgr.logfiles.rotation on real files: rotate_live, alone and under a live writer."""

from __future__ import annotations

import fcntl
import itertools
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bgr import paths
from bgr.errors import BgrError
from bgr.logfiles import backups, rotation
from tests.support import STAMP, fixed_clock, numbered


def test_rotate_live_leaves_small_or_missing_files_alone(tmp_path: Path) -> None:
    assert rotation.rotate_live(tmp_path / "missing.txt", "w", "out", 10) is None
    log = tmp_path / "w-out.txt"
    log.write_bytes(b"x" * 100)
    assert rotation.rotate_live(log, "w", "out", 100) is None
    assert log.read_bytes() == b"x" * 100
    assert backups.backups("w", "out") == []


def test_rotate_live_under_one_block_falls_back_to_truncate(tmp_path: Path) -> None:
    log = tmp_path / "w-out.txt"
    log.write_bytes(b"line\n" * 100)
    result = rotation.rotate_live(log, "w", "out", 100, clock=fixed_clock)
    assert result == rotation.RotationResult(Path(paths.backup_dir()) / f"w-out-{STAMP}.txt", 500, "truncate")
    assert result.backup.read_bytes() == b"line\n" * 100
    assert stat.S_IMODE(result.backup.stat().st_mode) == 0o600
    assert log.read_bytes() == b""
    log.write_bytes(b"line\n" * 100)
    with pytest.raises(BgrError, match="cannot rotate"):
        rotation.rotate_live(log, "w", "out", 100, method="collapse")
    assert log.read_bytes() == b"line\n" * 100
    assert len(backups.backups("w", "out")) == 1  # the failed attempt left no backup behind


def test_rotate_live_collapses_a_block_aligned_head(tmp_path: Path) -> None:
    if not rotation.collapse_supported(tmp_path):
        pytest.skip("filesystem cannot collapse ranges")
    log = tmp_path / "w-out.txt"
    content = numbered(0, 5000)  # 50,000 bytes
    log.write_bytes(content)
    result = rotation.rotate_live(log, "w", "out", 10_000)
    assert result is not None and result.method == "collapse"
    block = os.stat(log).st_blksize
    assert result.bytes_moved % block == 0
    assert 0 < len(content) - result.bytes_moved <= block
    assert result.backup.read_bytes() + log.read_bytes() == content


def test_rotate_live_falls_back_where_the_filesystem_refuses(other_filesystem: Path) -> None:
    log = other_filesystem / "w-out.txt"  # tmpfs: no FALLOC_FL_COLLAPSE_RANGE
    content = numbered(0, 5000)
    log.write_bytes(content)
    if rotation.collapse_supported(other_filesystem):
        pytest.skip("this tmpfs can collapse ranges")
    result = rotation.rotate_live(log, "w", "out", 10_000)
    assert result is not None and result.method == "truncate"
    assert result.backup.read_bytes() == content
    assert log.read_bytes() == b""


def test_rotate_live_prunes_to_keep(tmp_path: Path) -> None:
    log = tmp_path / "w-err.txt"
    for i in range(5):
        log.write_bytes(b"%d\n" % i * 10)
        assert rotation.rotate_live(log, "w", "err", 5, keep=3, clock=fixed_clock) is not None
    assert [p.read_bytes()[:2] for p in backups.backups("w", "err")] == [b"2\n", b"3\n", b"4\n"]


def test_rotate_live_skips_a_file_another_rotation_holds(tmp_path: Path) -> None:
    log = tmp_path / "w-out.txt"
    log.write_bytes(b"x\n" * 1000)
    with log.open("rb") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)
        assert rotation.rotate_live(log, "w", "out", 10) is None
    assert rotation.rotate_live(log, "w", "out", 10) is not None


# --------------------------------------------------------------------------------------------
# under a live writer


WRITER = r"""
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
i = 0
while i < 5_000_000:
    os.write(fd, b"%09d\n" % i)
    i += 1
    if i % 1000 == 0 and i >= 200_000 and os.path.exists(sys.argv[2]):
        break
"""
RECORD = re.compile(rb"\d{9}")


def rotate_under_load(tmp_path: Path, method: str) -> tuple[bytes, int]:
    """Rotate every 64 KiB while a writer appends 200k+ lines flat out; return (stream, rotations)."""
    log = tmp_path / "load-out.txt"
    stop_file = tmp_path / "writer.stop"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(log), str(stop_file)])
    rotations = 0
    try:
        deadline = time.monotonic() + 40
        while writer.poll() is None:
            assert time.monotonic() < deadline, "writer did not finish"
            result = rotation.rotate_live(log, "load", "out", 64 * 1024, keep=10_000, method=method)  # type: ignore[arg-type]
            if result is None:
                time.sleep(0.001)
                continue
            assert result.method == method
            rotations += 1
            if rotations >= 25:
                stop_file.touch()
    finally:
        if writer.poll() is None:
            writer.kill()
        writer.wait(10)
    assert writer.returncode == 0
    stream = b"".join(p.read_bytes() for p in backups.backups("load", "out")) + log.read_bytes()
    return stream, rotations


def test_collapse_rotation_under_a_live_writer_loses_nothing(tmp_path: Path) -> None:
    if not rotation.collapse_supported(tmp_path):
        pytest.skip("filesystem cannot collapse ranges")
    stream, rotations = rotate_under_load(tmp_path, "collapse")
    assert rotations >= 20
    assert b"\0" not in stream
    count = len(stream) // 10
    assert count >= 200_000
    assert stream == numbered(0, count)  # every line once, in order, nothing else
    print(f"\ncollapse: {rotations} rotations, {count} lines, 0 lost, 0 duplicated")


def test_truncate_rotation_under_a_live_writer_never_duplicates(tmp_path: Path) -> None:
    stream, rotations = rotate_under_load(tmp_path, "truncate")
    assert rotations >= 20
    assert b"\0" not in stream
    lines = stream.split(b"\n")
    assert lines[-1] == b""
    numbers = [int(line) for line in lines[:-1] if RECORD.fullmatch(line)]
    damaged = sum(1 for line in lines[:-1] if not RECORD.fullmatch(line))
    # Each cut can lose the bytes written during its tiny window, gluing at most one fragment
    # to the next line; nothing is ever repeated or reordered.
    assert damaged <= rotations
    assert all(a < b for a, b in itertools.pairwise(numbers))
    assert numbers[0] == 0 and numbers[-1] >= 200_000 - 1
    lost = numbers[-1] + 1 - len(numbers)
    print(f"\ntruncate: {rotations} rotations, {numbers[-1] + 1} lines, {lost} lost, {damaged} damaged")
