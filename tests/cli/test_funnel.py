"""bgr.cli.funnel, around both programs: output that cannot be written, closed standard
streams, a non-UTF-8 stdout, and ``leave`` (the fast exit of the one-shot ``bgr``)."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

from tests.support import assert_one_error_line, bgr_in_shell, process, run_bgr, wait_for

# --------------------------------------------------------------------------------------------
# output that cannot be written


def test_a_reader_that_left_early_causes_no_traceback(populated: Path, bgr_home: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # the normal case
    for argv in (["--json"], [], ["known"]):
        reader, writer = os.pipe()
        os.close(reader)  # like `bgr --json | head -c 0`: gone before bgr writes
        try:
            done = subprocess.run(
                [sys.executable, "-m", "bgr", *argv], stdout=writer, stderr=subprocess.PIPE,
                env=env, text=True, timeout=30, check=False,
            )  # fmt: skip
        finally:
            os.close(writer)
        assert done.returncode == 0, done.stderr
        assert done.stderr == ""
    # `bgr NAME --logs | head -c 10` with a log far larger than a pipe buffer
    (bgr_home / "known-out.txt").write_text("x" * 200 + "\n" * 5000 + "y" * 500_000)
    with process(
        [sys.executable, "-m", "bgr", "known", "--logs"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    ) as big:
        assert big.stdout is not None and big.stderr is not None
        assert len(big.stdout.read(10)) == 10
        big.stdout.close()
        assert big.wait(timeout=30) == 0
        assert "Traceback" not in big.stderr.read()


def test_a_non_utf8_stdout_gets_escapes_not_a_traceback(tmp_path: Path) -> None:
    done = run_bgr("--name", "u", "--command", "sleep 60 # é ↺ 😀", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    table = run_bgr(env=env)
    assert table.returncode == 0 and "Traceback" not in table.stderr
    assert "sleep 60 #" in table.stdout
    as_json = run_bgr("--json", env=env)
    assert as_json.returncode == 0
    assert json.loads(as_json.stdout)[0]["command"] == "sleep 60 # é ↺ 😀"


def test_closed_standard_streams_give_no_traceback_and_no_corrupt_registry(tmp_path: Path) -> None:
    """cron and some daemons run commands with stdout or stderr closed (`>&-`)."""
    directory = shlex.quote(str(tmp_path))
    assert bgr_in_shell(f"exec BGR --name web --command 'sleep 60' -d {directory} >&- 2>&-").returncode == 0
    listed = bgr_in_shell("exec BGR --json >&-")
    assert listed.returncode == 0 and listed.stderr == ""
    missing = bgr_in_shell("exec BGR nope <&- >&-")
    assert missing.returncode != 0
    assert_one_error_line(missing.stderr)
    shown = run_bgr("--json")
    assert [(p["name"], p["status"]) for p in json.loads(shown.stdout)] == [("web", "running")]


def test_a_guard_with_closed_standard_streams_still_runs_its_pass(tmp_path: Path) -> None:
    """cron may run `bgr-guard --all --once` with its streams closed: the pass must still run."""
    assert run_bgr("--name", "web", "--command", "sleep 60", cwd=tmp_path).returncode == 0
    pgid = json.loads(run_bgr("web", "--json").stdout)["pid"]
    os.killpg(pgid, signal.SIGKILL)
    wait_for(lambda: json.loads(run_bgr("web", "--json").stdout)["status"] != "running", timeout=5.0)
    python = shlex.quote(sys.executable)
    done = subprocess.run(
        ["sh", "-c", f"exec {python} -m guard --all --once --stable-after 0.001 <&- >&- 2>&-"],
        timeout=60,
        check=False,
    )
    assert done.returncode == 0
    shown = json.loads(run_bgr("web", "--json").stdout)
    assert shown["status"] == "running" and shown["restarts"] == 1


# --------------------------------------------------------------------------------------------
# leaving without finalisation


def _leave_after(setup: str) -> subprocess.CompletedProcess[str]:
    code = f"import sys, bgr.cli.funnel\n{setup}\nsys.stdout.write('x' * 200_000)\nbgr.cli.funnel.leave(3)\n"
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
    )


def test_leave_flushes_buffered_output_and_keeps_the_exit_code() -> None:
    done = _leave_after("")
    assert done.returncode == 3 and done.stdout == "x" * 200_000


def test_leave_still_finalises_when_an_atexit_handler_or_a_thread_needs_it() -> None:
    with_handler = _leave_after("import atexit; atexit.register(print, 'handler ran', file=sys.stderr)")
    assert with_handler.returncode == 3 and with_handler.stderr == "handler ran\n"
    thread = (
        "import threading, time\n"
        "threading.Thread(target=lambda: (time.sleep(0.3), print('thread done', file=sys.stderr))).start()"
    )
    with_thread = _leave_after(thread)
    assert with_thread.returncode == 3 and with_thread.stderr == "thread done\n"


def test_the_program_output_survives_the_fast_exit_when_piped(tmp_path: Path) -> None:
    for i in range(30):
        assert run_bgr("--name", f"p{i:02d}", "--command", "sleep 60", cwd=tmp_path).returncode == 0
    listed = run_bgr("--json")
    assert listed.returncode == 0 and len(json.loads(listed.stdout)) == 30
    missing = run_bgr("nope")
    assert missing.returncode != 0 and missing.stderr.startswith("bgr: ")
