"""guard.health: liveness checks of real servers; unhealthy after retries, healthy again, one at a time."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bgr.models import ProcessRecord
from guard.health import HealthChecks
from tests.support import health_server, main, must, one, wait_for


def _serve(tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> Path:
    command, port, mode = health_server(tmp_path)
    url = f"http://127.0.0.1:{port}/health"
    code, _, err = main(capsys, "--name", "web", "--command", command, "--health", url, *extra)
    assert code == 0, err
    return mode


def checks() -> tuple[HealthChecks, list[tuple[str, str]], list[str]]:
    events: list[tuple[str, str]] = []
    unhealthy: list[str] = []

    def on_event(record: ProcessRecord, event: str, detail: str) -> None:
        events.append((record.name, event))

    def on_unhealthy(record: ProcessRecord, detail: str) -> None:
        unhealthy.append(detail)

    return HealthChecks(None, on_unhealthy=on_unhealthy, on_event=on_event), events, unhealthy


def test_unhealthy_after_retries_then_healthy_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mode = _serve(tmp_path, capsys, "--health-retries", "2")
    health, events, unhealthy = checks()
    assert health.check("web") is None  # already healthy since the start
    mode.write_text("fail")
    assert [health.check("web"), health.check("web")] == [None, "unhealthy"]
    assert unhealthy == ["HTTP 500"]
    data = one(capsys, "web")["health"]
    assert (data["state"], data["failures"], data["last_error"]) == ("unhealthy", 2, "HTTP 500")
    assert health.check("web") is None and unhealthy == ["HTTP 500"]  # reported once
    mode.write_text("ok")
    assert health.check("web") == "healthy again"
    assert events == [("web", "unhealthy"), ("web", "healthy again")]
    kinds = [e["event"] for e in must("web").events]
    assert kinds[-2:] == ["unhealthy", "healthy again"]


def test_a_hanging_server_fails_within_the_timeout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mode = _serve(tmp_path, capsys, "--health-retries", "1", "--health-timeout", "300ms")
    health, _, unhealthy = checks()
    mode.write_text("hang")
    began = time.monotonic()
    assert health.check("web") == "unhealthy"
    assert time.monotonic() - began < 2
    assert unhealthy == ["no answer within 0.3s"]


def test_ticks_run_due_checks_in_the_pool_one_per_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mode = _serve(
        tmp_path, capsys, "--health-every", "100ms", "--health-retries", "1", "--health-timeout", "1s"
    )
    health, events, _ = checks()
    try:
        health.sync([must("web")])
        mode.write_text("hang")
        assert health.tick() == 1
        assert health.tick() == 0  # the first check still runs: no second one for the same process
        wait_for(lambda: events == [("web", "unhealthy")], what="the check from the pool")
        mode.write_text("ok")
        deadline = time.monotonic() + 10
        while ("web", "healthy again") not in events and time.monotonic() < deadline:
            health.tick()
            time.sleep(0.05)
        assert events == [("web", "unhealthy"), ("web", "healthy again")]
        health.sync([])  # no longer guarded: nothing more is checked
        time.sleep(0.2)
        assert health.tick() == 0
    finally:
        health.close()


def test_a_process_that_is_not_running_is_not_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _serve(tmp_path, capsys)
    assert main(capsys, "stop", "web", "--grace", "0.5")[0] == 0
    health, events, _ = checks()
    assert health.check("web") is None and events == []
