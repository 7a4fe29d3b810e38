"""bgr.core.ready: a start of a probed process returns once the probe passes, bounded by --wait."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support import assert_one_error_line, health_server, main, must, one, record_alive


def test_a_start_waits_until_the_probe_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    command, port, _ = health_server(tmp_path, delay=0.6)  # listens only after 0.6 s
    began = time.monotonic()
    code, out, err = main(
        capsys, "--name", "web", "--command", command, "--health", f"http://127.0.0.1:{port}/health"
    )
    took = time.monotonic() - began
    assert code == 0, err
    assert out.startswith("started web (pid ") and ", healthy after " in out
    assert took >= 0.6
    health = one(capsys, "web")["health"]
    assert (health["state"], health["failures"], health["last_error"]) == ("healthy", 0, None)
    assert health["check"] == f"http://127.0.0.1:{port}/health" and health["every"] == 10.0


def test_a_probe_that_never_passes_fails_the_start_and_leaves_it_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    command, port, mode = health_server(tmp_path)
    mode.write_text("fail")
    url = f"http://127.0.0.1:{port}/health"
    code, out, err = main(capsys, "--name", "web", "--command", command, "--health", url, "--wait", "1")
    assert (code, out) == (6, "")
    first = err.splitlines()[0]
    assert first == (
        "bgr: web did not pass its health check within 1s (last: HTTP 500); it keeps running: "
        "bgr web --logs, or bgr stop web"
    )
    assert '"GET /health HTTP/1.1" 500' in err  # the stderr tail: the server's request log
    assert record_alive(must("web"))
    assert one(capsys, "web")["health"]["last_error"] == "HTTP 500"
    mode.write_text("ok")
    code, out, err = main(capsys, "restart", "web", "--grace", "0.5")
    assert code == 0 and ", healthy after " in out, err


def test_a_process_that_dies_while_waiting_fails_like_any_start(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = main(
        capsys,
        "--name",
        "dies",
        "--command",
        "sleep 0.3; echo gone >&2; exit 4",
        "--health",
        "tcp:127.0.0.1:1",
    )
    assert code == 6
    assert err.startswith("bgr: dies exited right after starting: exit code 4") and "gone" in err


def test_wait_0_does_not_wait_and_no_probe_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    command, port, _ = health_server(tmp_path, delay=5)
    code, out, _ = main(
        capsys, "--name", "slow", "--command", command, "--health", f"tcp:127.0.0.1:{port}", "--wait", "0"
    )
    assert code == 0 and out.startswith("started slow (pid ") and "healthy" not in out
    assert one(capsys, "slow")["health"]["state"] == "starting"
    code, out, _ = main(capsys, "--name", "plain", "--command", "sleep 60")
    assert code == 0 and "healthy" not in out and one(capsys, "plain")["health"] is None


def test_a_cmd_probe_runs_in_the_process_directory_and_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = tmp_path / "app"
    app.mkdir()
    code, out, err = main(
        capsys, "--name", "job", "-d", str(app), "--env", "FLAG=up",
        "--command", "sleep 0.3; touch ready; exec sleep 60",
        "--health", 'cmd:test -f ready && [ "$FLAG" = up ] && [ "$BGR_NAME" = job ]',
    )  # fmt: skip
    assert code == 0 and ", healthy after " in out, err


def test_probe_options_are_stored_changed_and_removed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ("--name", "w", "--command", "sleep 60", "--health", "cmd:true", "--wait", "0")
    assert main(capsys, *argv, "--health-every", "5s", "--health-retries", "2")[0] == 0
    health = one(capsys, "w")["health"]
    assert (health["every"], health["timeout"], health["retries"], health["start"]) == (5.0, 2.0, 2, 0.0)
    assert main(capsys, "--name", "w", "--health-timeout", "500ms", "--force", "--wait", "0")[0] == 0
    health = one(capsys, "w")["health"]
    assert (health["check"], health["every"], health["timeout"]) == ("cmd:true", 5.0, 0.5)
    assert main(capsys, "--name", "w", "--no-health", "--force", "--wait", "0")[0] == 0
    assert one(capsys, "w")["health"] is None
    code, _, err = main(capsys, "--name", "w", "--health-every", "5s", "--force")
    assert code == 2 and "need --health" in err
    assert_one_error_line(err)
