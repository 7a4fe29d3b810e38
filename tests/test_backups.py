"""bgr.logfiles.backups on real files: moving logs aside, pruning, rotation under a live writer."""

from __future__ import annotations

import fcntl
import functools
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
from bgr.errors import BgrError, InvalidName
from bgr.logfiles import backups, rotation
from tests.support import STAMP, fixed_clock, numbered


def test_move_to_backup_names_moves_and_sets_mode(tmp_path: Path) -> None:
    log = tmp_path / "web-out.txt"
    log.write_bytes(b"hello\n")
    log.chmod(0o644)
    backup = backups.move_to_backup(log, "web", "out", clock=fixed_clock)
    assert backup == Path(paths.backup_dir()) / f"web-out-{STAMP}.txt"
    assert backup.read_bytes() == b"hello\n"
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert not log.exists()


def test_move_to_backup_adds_a_counter_on_collision(tmp_path: Path) -> None:
    log = tmp_path / "web-err.txt"
    made = []
    for i in range(3):
        log.write_bytes(b"run %d\n" % i)
        made.append(backups.move_to_backup(log, "web", "err", clock=fixed_clock))
    names = [p.name for p in made if p is not None]
    assert names == [f"web-err-{STAMP}.txt", f"web-err-{STAMP}-1.txt", f"web-err-{STAMP}-2.txt"]
    assert [p.read_bytes() for p in backups.backups("web", "err")] == [b"run 0\n", b"run 1\n", b"run 2\n"]


def test_move_to_backup_ignores_missing_and_empty_files(tmp_path: Path) -> None:
    assert backups.move_to_backup(tmp_path / "missing.txt", "web", "out") is None
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    assert backups.move_to_backup(empty, "web", "out") is None
    assert empty.exists()
    assert backups.move_to_backup(Path(os.devnull), "web", "out") is None
    assert backups.backups("web", "out") == []


def test_move_to_backup_prunes_oldest_beyond_keep(tmp_path: Path) -> None:
    log = tmp_path / "api-out.txt"
    for day in range(1, 6):
        log.write_bytes(b"day %d\n" % day)
        stamp = time.mktime((2026, 1, day, 12, 0, 0, 0, 0, -1))
        backups.move_to_backup(log, "api", "out", keep=2, clock=functools.partial(float, stamp))
    kept = backups.backups("api", "out")
    assert [p.read_bytes() for p in kept] == [b"day 4\n", b"day 5\n"]


def test_backups_do_not_mix_names_that_share_a_prefix(tmp_path: Path) -> None:
    log = tmp_path / "x.txt"
    for name in ("web", "web-out", "web2"):
        log.write_bytes(name.encode())
        backups.move_to_backup(log, name, "out", clock=fixed_clock)
    assert [p.read_bytes() for p in backups.backups("web", "out")] == [b"web"]
    assert [p.read_bytes() for p in backups.backups("web-out", "out")] == [b"web-out"]
    removed = backups.prune_backups("web", "out", 0)
    assert [p.name for p in removed] == [f"web-out-{STAMP}.txt"]
    assert len(backups.backups("web-out", "out")) == 1


def test_backup_names_are_validated(tmp_path: Path) -> None:
    log = tmp_path / "x.txt"
    log.write_bytes(b"x\n")
    with pytest.raises(InvalidName):
        backups.move_to_backup(log, "../evil", "out")
    with pytest.raises(ValueError, match="stream"):
        backups.move_to_backup(log, "web", "both")
    assert log.exists()


def test_move_to_backup_across_filesystems_copies_then_unlinks(other_filesystem: Path) -> None:
    log = other_filesystem / "web-out.txt"
    content = os.urandom(3 * 1024 * 1024 + 17)
    log.write_bytes(content)
    backup = backups.move_to_backup(log, "web", "out")
    assert backup is not None
    assert backup.read_bytes() == content
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert not log.exists()


# --- rotate_live ------------------------------------------------------------------------------


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
