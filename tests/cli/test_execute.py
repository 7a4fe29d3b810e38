"""bgr.cli.execute: the commands that print what they read (--help, --version, --logs, --follow)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import (
    assert_one_error_line,
    listed,
    listing,
    main,
    process,
    read,
    readline,
    run_bgr,
    wait_for,
)


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


# --------------------------------------------------------------------------------------------
# bulk actions: several names, --filter GROUP, --all and the word all


def _three(capsys: pytest.CaptureFixture[str], command: str = "sleep 60") -> None:
    for name, group in (("web", "api"), ("worker", "api"), ("db", "data")):
        code, _, err = main(capsys, "--name", name, "--group", group, "--command", command, "--wait", "0")
        assert code == 0, err


def _running(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [p["name"] for p in listing(capsys) if p["status"] == "running"]


def test_several_names_stop_in_parallel_under_one_grace_period(capsys: pytest.CaptureFixture[str]) -> None:
    _three(capsys, "trap '' TERM; while :; do sleep 0.05; done")  # each needs the SIGKILL
    began = time.monotonic()
    code, out, err = main(capsys, "stop", "web", "worker", "db", "--grace", "1")
    took = time.monotonic() - began
    assert code == 0, err
    assert out.splitlines() == [
        f"stopped {n} (killed after the grace period)" for n in ("web", "worker", "db")
    ]
    assert took < 2.5, f"three grace periods one after the other ({took:.1f}s): not in parallel"
    assert _running(capsys) == []


def test_filter_all_and_the_word_all(capsys: pytest.CaptureFixture[str]) -> None:
    _three(capsys)
    code, out, _ = main(capsys, "--stop", "--filter", "api", "--grace", "0.5")
    assert (code, out) == (0, "stopped web\nstopped worker\n")
    assert _running(capsys) == ["db"]
    code, out, _ = main(capsys, "start", "--filter", "api")
    assert code == 0 and [line.split(" (")[0] for line in out.splitlines()] == [
        "started web",
        "started worker",
    ]
    code, out, _ = main(capsys, "restart", "--all", "--grace", "0.5")
    assert (
        code == 0
        and len(out.splitlines()) == 3
        and all(line.startswith("restarted ") for line in out.splitlines())
    )
    code, out, _ = main(capsys, "stop", "all", "--grace", "0.5")
    assert (code, out) == (0, "stopped db\nstopped web\nstopped worker\n")
    code, out, _ = main(capsys, "start", "all")
    assert code == 0 and len(out.splitlines()) == 3
    code, out, _ = main(capsys, "start", "all")  # nothing left to start: says so, no failure
    assert (code, out) == (
        0,
        "db is already running\nweb is already running\nworker is already running\nno processes\n",
    )
    code, out, _ = main(capsys, "delete", "all", "--grace", "0.5")
    assert (code, out) == (0, "deleted db\ndeleted web\ndeleted worker\n")
    code, out, _ = main(capsys, "stop", "--all")
    assert (code, out) == (0, "no processes\n")


def test_one_unknown_name_changes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    _three(capsys)
    code, out, err = main(capsys, "stop", "web", "wrker", "db")
    assert (code, out) == (3, "")
    assert err == "bgr: no process named 'wrker' (did you mean worker?); run `bgr` to list them\n"
    assert _running(capsys) == ["db", "web", "worker"]


def test_an_empty_group_is_named_with_the_groups_there_are(capsys: pytest.CaptureFixture[str]) -> None:
    _three(capsys)
    code, out, err = main(capsys, "stop", "--filter", "apii")
    assert (code, out) == (3, "")
    assert "no processes in group 'apii' (the groups are api, data;" in err
    code, out, _ = main(capsys, "--filter", "apii")
    assert code == 0 and out.startswith("no processes in group 'apii' (the groups are api, data;")
    assert listing(capsys, "--filter", "apii") == []


def test_a_bulk_restart_says_what_happened_to_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flag = tmp_path / "broken"
    _three(capsys, f"if [ -f {flag} ]; then echo broken >&2; exit 3; fi; exec sleep 60")
    flag.write_text("")
    code, out, err = main(capsys, "restart", "web", "worker", "--grace", "0.5")
    assert code == 6  # a start failure
    assert out == ""
    assert err.splitlines()[0].startswith("bgr: web: web exited right after starting: exit code 3")
    assert "\nbgr: worker: worker exited right after starting: exit code 3" in err
    flag.unlink()
    code, out, err = main(capsys, "restart", "web", "worker", "--json", "--grace", "0.5")
    assert code == 0, err
    assert [p["status"] for p in json.loads(out)] == ["running", "running"]


def test_logs_of_several_name_each_stream(capsys: pytest.CaptureFixture[str], bgr_home: Path) -> None:
    _three(capsys, "echo hello from $BGR_NAME; exec sleep 60")
    wait_for(lambda: "hello" in read(bgr_home / "worker-out.txt"), what="output")
    code, out, _ = main(capsys, "logs", "--filter", "api", "--log-stdout")
    assert code == 0
    assert out == (
        f"==> web stdout: {bgr_home / 'web-out.txt'} <==\nhello from web\n"
        f"==> worker stdout: {bgr_home / 'worker-out.txt'} <==\nhello from worker\n"
    )


def test_ctrl_c_during_a_stop_says_what_is_left(capsys: pytest.CaptureFixture[str]) -> None:
    _three(capsys, "trap '' TERM; while :; do sleep 0.05; done")
    # SIGINT as a terminal sends it, even where this test runs with SIGINT ignored.
    default_int = (
        "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
        "os.execv(sys.executable, [sys.executable, '-m', 'bgr', 'stop', 'web', 'db', '--grace', '30'])"
    )
    with process(
        [sys.executable, "-c", default_int], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as stopper:
        wait_for(lambda: listed("web")["desired"] == "stopped" and listed("db")["desired"] == "stopped")
        time.sleep(0.3)  # into the grace period
        stopper.send_signal(signal.SIGINT)
        _, err = stopper.communicate(timeout=15)
    assert stopper.returncode == 130
    assert_one_error_line(err)
    assert "interrupted: db, web got SIGTERM and still run" in err and "bgr stop db web --grace 0" in err
    assert main(capsys, "stop", "db", "web", "--grace", "0")[0] == 0
    assert _running(capsys) == ["worker"]
