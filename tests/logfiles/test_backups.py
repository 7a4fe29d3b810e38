"""bgr.logfiles.backups on real files: moving logs aside, listing and pruning backups."""

from __future__ import annotations

import functools
import os
import stat
import time
from pathlib import Path

import pytest

from bgr import paths
from bgr.errors import InvalidName
from bgr.logfiles import backups
from tests.support import STAMP, fixed_clock


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
