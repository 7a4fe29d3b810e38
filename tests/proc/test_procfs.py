"""bgr.proc.procfs: /proc read directly, whatever a command is called."""

from __future__ import annotations

import os
from pathlib import Path

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
