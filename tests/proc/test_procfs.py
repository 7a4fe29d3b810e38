"""bgr.proc.procfs: /proc read directly, whatever a command is called."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bgr.proc import procfs
from tests.support import process, wait_for


def test_read_stat_copes_with_spaces_and_parentheses_in_the_command_name(tmp_path: Path) -> None:
    odd = tmp_path / "x) y (z"
    odd.symlink_to("/bin/sleep")
    with process([str(odd), "60"]) as child:
        stat = wait_for(lambda: procfs.read_stat(child.pid), what="stat")
        assert stat.ppid == os.getpid()
        assert stat.pgid == os.getpgid(child.pid)
        assert not stat.dead


def test_group_members_asks_the_kernel_before_reading_proc(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty group costs one kill(2), not a read of every process on the machine."""
    with process(["sleep", "60"], start_new_session=True) as child:
        assert procfs.group_exists(child.pid)
        assert procfs.group_members(child.pid) == [child.pid]
        assert procfs.alive_groups([child.pid]) == {child.pid}
        child.kill()
        child.wait()
    scans: list[int] = []
    real = procfs.all_stats

    def counted() -> list[procfs.ProcStat]:
        scans.append(1)
        return real()

    monkeypatch.setattr(procfs, "all_stats", counted)
    assert not procfs.group_exists(child.pid)
    assert procfs.group_members(child.pid) == []
    assert procfs.alive_groups([child.pid]) == set()
    assert procfs.alive_groups([]) == set()
    assert scans == []
    # 0 and -1 mean something else to kill(2): those questions go to the scan.
    assert procfs.group_exists(0) and procfs.group_exists(-1)
