"""python -m bgr.health: the readiness wait exported systemd units run as ExecStartPost=."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bgr.health.__main__ import main
from tests.support import health_server, process


def test_it_waits_until_the_probe_passes(tmp_path: Path) -> None:
    command, port, _ = health_server(tmp_path, delay=0.5)
    with process(["/bin/sh", "-c", f"exec {command}"]):
        done = subprocess.run(
            [sys.executable, "-m", "bgr.health", "--within", "20", f"http://127.0.0.1:{port}/health"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert (done.returncode, done.stderr) == (0, "")


def test_it_gives_up_with_the_last_answer(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--within", "0.2", "tcp:127.0.0.1:1"]) == 1
    assert capsys.readouterr().err == (
        "bgr.health: tcp:127.0.0.1:1 did not pass within 0.2s (last: connection refused)\n"
    )


@pytest.mark.parametrize("argv", [[], ["--within", "x", "tcp:h:1"], ["ftp://x"], ["a", "b"]])
def test_bad_arguments(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith(("usage:", "bgr.health:"))
