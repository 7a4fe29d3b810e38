"""bgr.core.queries: status is derived from the OS, never stored; listing and group filters."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

import bgr
from bgr.models import Status
from tests.support import api_start, listing, main, proc_state, read, wait_for


def test_groups_from_the_environment_or_the_flag_and_filter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], bgr_home: Path
) -> None:
    show = "echo group=$BGR_GROUP; exec sleep 60"
    monkeypatch.setenv("BGR_GROUP", "api")
    assert main(capsys, "--name", "auth-api", "--directory", str(tmp_path), "--command", show)[0] == 0
    monkeypatch.delenv("BGR_GROUP")
    assert main(capsys, "--name", "billing", "--group", "api", "--command", show)[0] == 0
    assert main(capsys, "--name", "web", "--command", show)[0] == 0
    assert [(d["name"], d["group"]) for d in listing(capsys)] == [
        ("auth-api", "api"), ("billing", "api"), ("web", None),
    ]  # fmt: skip
    assert [d["name"] for d in listing(capsys, "--filter", "api")] == ["auth-api", "billing"]
    code, out, _ = main(capsys, "--filter", "api")
    assert code == 0 and "auth-api" in out and "billing" in out and "web" not in out
    assert listing(capsys, "--filter", "nothing") == []
    wait_for(lambda: read(bgr_home / "auth-api-out.txt"), what="output")
    assert read(bgr_home / "auth-api-out.txt") == "group=api\n"
    wait_for(lambda: read(bgr_home / "web-out.txt"), what="output")
    assert read(bgr_home / "web-out.txt") == "group=\n"


def test_a_zombie_counts_as_dead(tmp_path: Path) -> None:
    info = api_start("z", "sleep 60", tmp_path).info
    assert info.pid is not None and info.record.pgid is not None
    os.killpg(info.record.pgid, signal.SIGKILL)
    # This test process is the parent and does not reap: the leader stays a zombie.
    wait_for(lambda: proc_state(info.pid or 0) == "Z", what="zombie")
    got = bgr.get("z")
    assert got.status is not Status.RUNNING and got.pid is None
    assert [i.status for i in bgr.list_processes()] == [got.status]
