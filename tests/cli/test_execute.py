"""bgr.cli.execute: the commands that print what they read (--help, --version, --logs, --follow)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import main, process, read, readline, run_bgr, wait_for


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = main(capsys, "--help")
    assert code == 0 and "Usage:" in out and "--nuke" in out
    code, out, _ = main(capsys, "--version")
    assert code == 0 and out.startswith("bgr ")


# --------------------------------------------------------------------------------------------
# logs


def _noisy(capsys: pytest.CaptureFixture[str], tmp_path: Path, bgr_home: Path) -> None:
    command = (
        "i=1; while [ $i -le 20 ]; do echo out$i; i=$((i+1)); done; "
        "echo err1 >&2; echo err2 >&2; echo err3 >&2; exec sleep 60"
    )
    assert main(capsys, "--name", "noisy", "--directory", str(tmp_path), "--command", command)[0] == 0
    wait_for(lambda: read(bgr_home / "noisy-err.txt").count("\n") == 3, what="output")


@pytest.mark.parametrize("spelling", [("noisy", "--logs"), ("--logs", "noisy")])
def test_logs_show_stdout_then_stderr_labelled(
    spelling: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str], bgr_home: Path
) -> None:
    _noisy(capsys, tmp_path, bgr_home)
    code, out, _ = main(capsys, *spelling)
    assert code == 0
    expected = [f"==> stdout: {bgr_home / 'noisy-out.txt'} <=="]
    expected += [f"out{i}" for i in range(1, 21)]
    expected += [f"==> stderr: {bgr_home / 'noisy-err.txt'} <==", "err1", "err2", "err3"]
    assert out.splitlines() == expected


def test_logs_lines_and_single_streams(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bgr_home: Path
) -> None:
    _noisy(capsys, tmp_path, bgr_home)
    code, out, _ = main(capsys, "noisy", "--logs", "--lines", "5")
    assert code == 0
    lines = out.splitlines()
    assert lines[1:6] == ["out16", "out17", "out18", "out19", "out20"]
    assert lines[7:] == ["err1", "err2", "err3"] and len(lines) == 10
    code, out, _ = main(capsys, "noisy", "--logs", "--log-stdout", "--lines", "2")
    assert out.splitlines()[1:] == ["out19", "out20"] and "err" not in out
    code, out, _ = main(capsys, "noisy", "--logs", "--log-stderr", "--lines", "1")
    assert out.splitlines()[1:] == ["err3"] and "out" not in out.split("<==", 1)[1]
    code, out, _ = main(capsys, "noisy", "--logs", "--lines", "0")
    assert code == 0 and "out20" not in out and "err3" not in out


def test_binary_and_invalid_utf8_output_does_not_break_logs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bgr_home: Path
) -> None:
    command = r"printf 'ok\377\376\300 tail\n'; head -c 3000 /dev/urandom; printf '\nend\n'; exec sleep 60"
    assert main(capsys, "--name", "bin", "--directory", str(tmp_path), "--command", command)[0] == 0
    wait_for(lambda: read(bgr_home / "bin-out.txt").endswith("end\n"), what="output")
    code, out, err = main(capsys, "bin", "--logs")
    assert code == 0, err
    assert "ok\ufffd" in out and "\nend\n==> stderr: " in out
    done = run_bgr("bin", "--logs", "--lines", "1")
    assert done.returncode == 0 and done.stdout.splitlines()[1] == "end"


def test_follow_prints_new_lines_until_interrupted(tmp_path: Path, bgr_home: Path) -> None:
    # Writes "before", then "after" only once the test creates the file "go": proof of following.
    command = "echo before; while [ ! -f go ]; do sleep 0.02; done; echo after; exec sleep 60"
    assert run_bgr("--name", "tick", "--command", command, cwd=tmp_path).returncode == 0
    wait_for(lambda: read(bgr_home / "tick-out.txt"), what="first line")
    # Like a terminal's Ctrl-C even when this test runs in the background (SIGINT ignored there).
    default_int = (
        "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
        "os.execv(sys.executable, [sys.executable, '-m', 'bgr', 'tick', '--logs', '--follow'])"
    )
    with process(
        [sys.executable, "-c", default_int],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as follower:
        assert readline(follower) == f"==> stdout: {bgr_home / 'tick-out.txt'} <==\n"
        assert readline(follower) == "before\n"
        assert readline(follower) == f"==> stderr: {bgr_home / 'tick-err.txt'} <==\n"
        (tmp_path / "go").touch()
        assert readline(follower) == "[stdout] after\n"
        follower.send_signal(signal.SIGINT)
        assert follower.wait(timeout=10) in (0, 130)
        assert follower.stderr is not None
        assert "Traceback" not in follower.stderr.read()
