"""``import bgr``: the Python API, one process through its whole life (start to delete)."""

from __future__ import annotations

from pathlib import Path

import pytest

import bgr
from bgr.errors import NotFound
from bgr.models import Desired, Status
from tests.support import GRACE, alive, api_start, read, wait_for


def test_python_api_lifecycle(tmp_path: Path, bgr_home: Path) -> None:
    command = "echo hello; echo warn >&2; exec sleep 60"
    result = api_start("api", command, tmp_path)
    info = result.info
    assert info.status is Status.RUNNING and info.pid is not None
    first_pid = info.pid
    assert not result.replaced
    assert alive(first_pid)

    got = bgr.get("api")
    assert got.status is Status.RUNNING and got.pid == info.pid
    assert got.record.command == command and got.record.directory == str(tmp_path)
    assert got.memory_rss and got.memory_rss > 0
    assert [i.name for i in bgr.list_processes()] == ["api"]

    wait_for(lambda: read(bgr_home / "api-err.txt"), what="output")
    assert bgr.logs("api") == {"stdout": "hello\n", "stderr": "warn\n"}
    assert bgr.logs("api", stream="stderr", lines=1) == {"stderr": "warn\n"}

    restarted = bgr.restart("api", grace=GRACE)
    assert restarted.replaced
    assert restarted.info.pid is not None and restarted.info.pid != info.pid
    assert restarted.info.record.restarts == 1
    wait_for(lambda: not alive(first_pid), what="old instance gone")

    stopped = bgr.stop("api", grace=GRACE)
    assert stopped.was_running and not stopped.leftover
    after = bgr.get("api")
    assert after.status is Status.STOPPED and after.pid is None
    assert after.record.desired is Desired.STOPPED

    bgr.delete("api", grace=GRACE)
    with pytest.raises(NotFound):
        bgr.get("api")
    assert bgr.list_processes() == []
    assert not (bgr_home / "api-out.txt").exists()
