"""The ``bgr`` command: in process (``bgr.cli.main``) and as real ``python -m bgr`` subprocesses."""

from __future__ import annotations

import json
import os
import pty
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bgr import store
from bgr.proc import ports
from tests.support import (
    CLIENT,
    LISTENER,
    PY,
    TRACKED,
    Repos,
    accepts,
    alive,
    assert_one_error_line,
    bgr_in_shell,
    environ_of,
    free_port,
    in_deleted_directory,
    listing,
    main,
    managed,
    one,
    process,
    processes_with_env,
    read,
    readline,
    registry_snapshot,
    run_bgr,
    session_of,
    start_many,
    started_pid,
    wait_for,
)

# --------------------------------------------------------------------------------------------
# start: detached, refused when running, again from the stored definition


def test_start_returns_at_once_detached_and_details_show_everything(tmp_path: Path, bgr_home: Path) -> None:
    app = tmp_path / "myapp"
    app.mkdir()
    port = free_port()
    done = run_bgr(
        "--name", "myapp", "--directory", "./myapp", "--command", f"{PY} -m http.server {port}",
        "--env", "TOKEN=secret-value",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("started myapp (pid ")
    pid = started_pid(done.stdout)
    # The CLI has exited; the process lives on in a session of its own.
    assert alive(pid)
    assert session_of(pid) == pid != os.getsid(0)
    wait_for(lambda: accepts(port), what="http.server listening")

    details = run_bgr("myapp")
    assert details.returncode == 0, details.stderr
    facts = dict(line.split(None, 1) for line in details.stdout.splitlines() if "  " in line)
    assert facts["status"] == "running"
    assert facts["pid"] == str(pid)
    assert facts["restarts"] == "0"
    assert facts["directory"] == str(app)
    assert facts["command"] == f"{PY} -m http.server {port}"
    assert facts["stdout"] == str(bgr_home / "myapp-out.txt")
    assert facts["stderr"] == str(bgr_home / "myapp-err.txt")
    assert facts["config"].startswith(str(app / ".config.toml"))
    assert facts["ports"] == str(port)
    assert "keys" in details.stdout and "TOKEN" in details.stdout
    assert "secret-value" not in details.stdout
    for label in ("started", "uptime", "memory", "cpu", "exit code"):
        assert label in facts or any(line.startswith(label) for line in details.stdout.splitlines())
    shown = run_bgr("myapp", "--json", "--show-env")
    data = json.loads(shown.stdout)
    assert data["ports"] == [port] and data["env"] == {"TOKEN": "secret-value"}
    assert data["memory"] > 0 and data["cpu_percent"] is not None


def test_ctrl_c_and_hangup_in_the_starting_terminal_do_not_reach_the_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Like a terminal: bgr runs inside a process group that then gets SIGINT and SIGHUP."""
    script = f"{PY} -m bgr --name calm --command 'sleep 60' >/dev/null && echo started && exec sleep 60"
    with process(
        ["/bin/sh", "-c", script], stdout=subprocess.PIPE, start_new_session=True, cwd=tmp_path
    ) as shell:
        assert readline(shell).strip() == "started"
        pid = one(capsys, "calm")["pid"]
        assert os.getsid(pid) != os.getsid(shell.pid)
        os.killpg(shell.pid, signal.SIGINT)
        os.killpg(shell.pid, signal.SIGHUP)
        # The signals did reach the caller's group (whichever was delivered first ended it).
        assert shell.wait(timeout=10) in (-signal.SIGINT, -signal.SIGHUP)
    assert alive(pid)
    assert one(capsys, "calm")["status"] == "running"


def test_directory_defaults_to_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = main(capsys, "--name", "here", "--command", "pwd; exec sleep 60")
    assert code == 0, err
    assert one(capsys, "here")["directory"] == str(tmp_path)


def test_starting_a_running_name_is_refused_and_leaves_it_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = main(capsys, "--name", "w", "--directory", str(tmp_path), "--command", "sleep 60")
    assert code == 0
    pid = started_pid(out)
    code, out, err = main(capsys, "--name", "w", "--command", "sleep 61")
    assert code == 4 and out == ""
    assert_one_error_line(err)
    assert "already running" in err and "--force" in err
    data = one(capsys, "w")
    assert data["pid"] == pid and data["command"] == "sleep 60" and data["restarts"] == 0


def test_stopped_and_crashed_names_start_again_with_the_stored_definition(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(capsys, "--name", "w", "--directory", str(tmp_path), "--command", "sleep 60")
    assert main(capsys, "--stop", "w", "--grace", "0.5")[0] == 0
    code, out, err = main(capsys, "--name", "w")
    assert code == 0, err
    data = one(capsys, "w")
    assert data["status"] == "running" and data["pid"] == started_pid(out)
    assert data["command"] == "sleep 60" and data["directory"] == str(tmp_path)
    # crashed: fix the command by giving a new one
    assert main(capsys, "--name", "c", "--command", "exit 3")[0] != 0
    assert one(capsys, "c")["status"] == "crashed"
    code, _, err = main(capsys, "--name", "c", "--command", "sleep 60")
    assert code == 0, err
    assert one(capsys, "c")["status"] == "running"


# --------------------------------------------------------------------------------------------
# instant failures


@pytest.mark.parametrize(
    "case",
    [
        ("no-such-binary", 127, "command not found", "not found"),
        ("./script.sh", 126, "not executable", "Permission denied"),
        ("echo boom >&2; exit 3", 3, "exit code 3", "boom"),
    ],
)
def test_instant_failures_are_reported_and_the_definition_kept(
    case: tuple[str, int, str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    command, expected_code, what, tail = case
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    code, out, err = main(capsys, "--name", "bad", "--directory", str(tmp_path), "--command", command)
    assert code != 0 and out == ""
    first, *rest = err.splitlines()
    assert first.startswith("bgr: bad exited right after starting") and what in first
    assert any(tail in line for line in rest), err  # the stderr tail
    data = one(capsys, "bad")
    assert data["status"] == "crashed" and data["exit_code"] == expected_code
    assert data["pid"] is None and data["command"] == command


@pytest.mark.parametrize("command", ["no-such-binary", "./script.sh"])
def test_a_command_that_cannot_run_is_reported_even_with_a_window_too_short_to_see_it(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 1 µs is far less than the shell needs to fail (~2 ms): only the check before the window ends
    # (spawn.cannot_exec) can make this report, on any machine load.
    (tmp_path / "script.sh").write_text("#!/bin/sh\necho hi\n")
    args = ("--name", "bad", "--directory", str(tmp_path), "--command", command, "--wait", "0.000001")
    code, _, err = main(capsys, *args)
    assert code != 0 and "exited right after starting" in err
    assert one(capsys, "bad")["exit_code"] in (126, 127)


def test_instant_failure_through_the_real_cli(tmp_path: Path) -> None:
    done = run_bgr("--name", "nope", "--command", "no-such-binary", cwd=tmp_path)
    assert done.returncode != 0
    assert "exit 127" in done.stderr and "Traceback" not in done.stderr
    listed = json.loads(run_bgr("--json").stdout)
    assert [(p["name"], p["status"], p["exit_code"]) for p in listed] == [("nope", "crashed", 127)]


# --------------------------------------------------------------------------------------------
# list


def test_empty_registry_prints_a_short_hint(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = main(capsys)
    assert code == 0
    assert out.startswith("no processes yet") and len(out.splitlines()) == 1
    assert listing(capsys) == []


def test_table_is_aligned_and_plain_when_not_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(capsys, "--name", "a", "--directory", str(tmp_path), "--command", "sleep 60")
    main(capsys, "--name", "much-longer-name", "--group", "api", "--command", "sleep 61")
    code, out, _ = main(capsys)
    assert code == 0
    assert "\033[" not in out
    header, *rows = out.splitlines()
    assert header.split() == ["NAME", "GROUP", "STATUS", "PID", "UPTIME", "↺", "MEMORY", "COMMAND"]
    assert len(rows) == 2
    for column in ("GROUP", "STATUS", "PID", "COMMAND"):
        start = header.index(column)
        for row in rows:
            assert row[start - 2 : start] == "  " and row[start] != " ", (column, row)
    assert rows[0].split()[:3] == ["a", "-", "running"]
    assert rows[1].split()[:3] == ["much-longer-name", "api", "running"]
    assert rows[1].endswith("sleep 61")


def _run_on_a_terminal(args: list[str], env: dict[str, str]) -> str:
    """Run the real CLI with stdout on a pseudo-terminal; return what it printed."""
    leader, follower = pty.openpty()
    try:
        with process(
            [sys.executable, "-m", "bgr", *args], stdout=follower, stderr=subprocess.PIPE, env=env
        ) as child:
            os.close(follower)
            follower = -1
            chunks = []
            while True:
                try:
                    chunk = os.read(leader, 4096)
                except OSError:  # EIO: the other side closed
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            assert child.wait(timeout=20) == 0
    finally:
        os.close(leader)
        if follower >= 0:
            os.close(follower)
    return b"".join(chunks).decode()


def test_colour_only_on_a_terminal_and_never_with_no_color(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(capsys, "--name", "a", "--directory", str(tmp_path), "--command", "sleep 60")
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env["TERM"] = "xterm"
    assert "\033[32mrunning" in _run_on_a_terminal([], env)
    assert "\033[" not in _run_on_a_terminal([], {**env, "NO_COLOR": "1"})
    assert "\033[" not in run_bgr(env=env).stdout  # a pipe is not a terminal


JSON_KEYS = {
    "name", "status", "pid", "group", "directory", "command", "started_at", "exit_code",
    "restarts", "stdout", "stderr", "config", "env_keys",
}  # fmt: skip


def test_json_list_fields_env_values_only_on_request_and_a_jq_style_filter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(capsys, "--name", "up", "--directory", str(tmp_path), "--command", "sleep 60",
         "--env", "API_KEY=s3cret")  # fmt: skip
    main(capsys, "--name", "down", "--command", "sleep 60")
    main(capsys, "--stop", "down", "--grace", "0.5")
    data = listing(capsys)
    assert [d["name"] for d in data] == ["down", "up"]
    for entry in data:
        assert entry.keys() >= JSON_KEYS
        assert "env" not in entry
    down, up = data
    assert down["pid"] is None and down["status"] == "stopped"
    assert isinstance(up["pid"], int) and up["status"] == "running"
    assert up["env_keys"] == ["API_KEY"] and "s3cret" not in json.dumps(data)
    assert up["started_at"].endswith("Z") and up["restarts"] == 0 and up["exit_code"] is None
    assert listing(capsys, "--show-env")[1]["env"] == {"API_KEY": "s3cret"}
    # bgr --json | jq '.[] | select(.status == "running") | .name'
    assert [d["name"] for d in data if d["status"] == "running"] == ["up"]
    if shutil.which("jq"):
        piped = subprocess.run(
            f"{PY} -m bgr --json | jq -r '.[] | select(.status == \"running\") | .name'",
            shell=True, capture_output=True, text=True, check=True, timeout=30,
        )  # fmt: skip
        assert piped.stdout == "up\n"


# --------------------------------------------------------------------------------------------
# groups


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
# control: restart, stop, delete, clean, nuke


@pytest.mark.parametrize("spelling", [("app", "--restart"), ("--restart", "app")])
def test_restart_rereads_config_keeps_definition_and_backs_up_logs(
    spelling: tuple[str, str], tmp_path: Path, bgr_home: Path
) -> None:
    config = tmp_path / ".config.toml"
    config.write_text("[server]\nport = 3000\n")
    command = "echo port=$SERVER_PORT; exec sleep 60"
    done = run_bgr("--name", "app", "--command", command, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out_log = bgr_home / "app-out.txt"
    wait_for(lambda: read(out_log), what="first output")
    assert read(out_log) == "port=3000\n"

    config.write_text("[server]\nport = 4000\n")
    restarted = run_bgr(*spelling, "--grace", "0.5", cwd=bgr_home)  # another cwd on purpose
    assert restarted.returncode == 0, restarted.stderr
    assert restarted.stdout.startswith("restarted app (pid ")
    wait_for(lambda: read(out_log), what="second output")
    assert read(out_log) == "port=4000\n"
    # The old stdout moved whole to a date-stamped backup (the empty stderr log has nothing to keep).
    (backup,) = (bgr_home / "backup").iterdir()
    assert backup.name.startswith("app-out-20") and backup.name.endswith(".txt")
    assert read(backup) == "port=3000\n"
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    data = json.loads(run_bgr("app", "--json").stdout)
    assert data["command"] == command and data["directory"] == str(tmp_path)
    assert data["restarts"] == 1 and data["status"] == "running"
    assert data["pid"] == started_pid(restarted.stdout) != started_pid(done.stdout)


@pytest.mark.parametrize("spelling", [("w", "--stop"), ("--stop", "w")])
def test_stop_keeps_the_definition(
    spelling: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = main(capsys, "--name", "w", "--directory", str(tmp_path), "--command", "sleep 60")
    pid = started_pid(out)
    code, out, err = main(capsys, *spelling, "--grace", "0.5")
    assert code == 0, err
    assert out.strip() == "stopped w: stopped"
    assert not alive(pid)
    data = one(capsys, "w")
    assert data["status"] == "stopped" and data["pid"] is None and data["command"] == "sleep 60"
    code, out, _ = main(capsys, *spelling)
    assert code == 0 and "was not running" in out


@pytest.mark.parametrize("spelling", [("tree", "--delete"), ("--delete", "tree")])
def test_delete_takes_the_whole_tree_the_row_and_the_logs(
    spelling: tuple[str, str], tmp_path: Path, bgr_home: Path
) -> None:
    escape = f"{PY} -c 'import os, time; os.setsid(); print(\"escaped\", flush=True); time.sleep(60)'"
    command = f"{escape} & sh -c 'sleep 60 & sleep 60' & echo started; wait"
    done = run_bgr("--name", "tree", "--command", command, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    wait_for(lambda: "escaped" in read(bgr_home / "tree-out.txt"), what="setsid grandchild")
    mine = processes_with_env("BGR_HOME", str(bgr_home))
    assert len(mine) >= 5
    assert any(session_of(p) == p for p in mine)  # one left the session
    deleted = run_bgr(*spelling, "--grace", "0.5")
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout.strip() == "deleted tree: stopped"
    assert processes_with_env("BGR_HOME", str(bgr_home)) == []
    assert json.loads(run_bgr("--json").stdout) == []
    assert not (bgr_home / "tree-out.txt").exists() and not (bgr_home / "tree-err.txt").exists()
    missing = run_bgr("tree")
    assert missing.returncode == 3
    assert_one_error_line(missing.stderr)


def test_clean_forgets_dead_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(capsys, "--name", "up", "--directory", str(tmp_path), "--command", "sleep 60")
    main(capsys, "--name", "bad", "--command", "exit 4")
    code, out, _ = main(capsys, "--clean")
    assert code == 0 and out.strip() == "forgot 1: bad"
    assert [d["name"] for d in listing(capsys)] == ["up"]
    assert main(capsys, "--clean")[1].strip() == "nothing to clean"


def test_nuke_stops_many_term_ignoring_processes_in_parallel(tmp_path: Path, bgr_home: Path) -> None:
    command = "trap '' TERM; echo ready; sleep 60 & wait"
    for code, err in start_many([f"s{i}" for i in range(10)], tmp_path, command):
        assert code == 0, err
    logs = [bgr_home / f"s{i}-out.txt" for i in range(10)]
    wait_for(lambda: all("ready" in read(log) for log in logs), what="all ready")
    began = time.monotonic()
    nuked = run_bgr("--nuke", "--grace", "1")
    elapsed = time.monotonic() - began
    assert nuked.returncode == 0, nuked.stderr
    assert nuked.stdout.count("killed after the grace period") == 10
    assert elapsed < 5, f"--nuke took {elapsed:.1f} s: not in parallel"
    assert processes_with_env("BGR_HOME", str(bgr_home)) == []
    assert json.loads(run_bgr("--json").stdout) == []


# --------------------------------------------------------------------------------------------
# config and env


def _env_dump(*keys: str) -> str:
    code = f"import json, os; print(json.dumps({{k: os.environ.get(k) for k in {json.dumps(list(keys))}}}))"
    return f"{PY} -c '{code}'; exec sleep 60"


def test_config_and_env_values_reach_the_child_losslessly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bgr_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "conf" / "settings.toml"
    config.parent.mkdir()
    config.write_text(
        '[server]\nport = 3000\nhosts = ["a", "b"]\n[db]\nurl = "postgres://u:p=w@h/db?x=1,y=\'2\'"\n'
    )
    tricky = "a,b=c \"dq\" 'sq' $HOME `x` ; \\"
    monkeypatch.chdir(tmp_path)  # --config is relative to the caller's directory
    code, _, err = main(
        capsys, "--name", "cfg", "--config", "conf/settings.toml",
        "--env", f"TRICKY={tricky}", "--env", "EMPTY=",
        "--command", _env_dump("SERVER_PORT", "DB_URL", "TRICKY", "EMPTY", "SERVER_HOSTS"),
    )  # fmt: skip
    assert code == 0, err
    wait_for(lambda: read(bgr_home / "cfg-out.txt").endswith("\n"), what="env dump")
    seen = json.loads(read(bgr_home / "cfg-out.txt"))
    assert seen["SERVER_PORT"] == "3000"
    assert seen["DB_URL"] == "postgres://u:p=w@h/db?x=1,y='2'"
    assert seen["TRICKY"] == tricky and seen["EMPTY"] == ""
    assert seen["SERVER_HOSTS"] == "a,b"  # arrays of scalars are comma-joined
    data = one(capsys, "cfg")
    assert data["config"] == str(config)
    assert set(data["env_keys"]) >= {"SERVER_PORT", "DB_URL", "TRICKY", "EMPTY"}
    shown = listing(capsys, "--show-env")[0]["env"]
    assert shown["TRICKY"] == tricky and shown["DB_URL"] == seen["DB_URL"]


def test_missing_default_config_is_fine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = main(capsys, "--name", "n", "--directory", str(tmp_path), "--command", "sleep 60")
    assert code == 0, err
    assert one(capsys, "n")["config"] is None


@pytest.mark.parametrize(
    ("content", "message"),
    [("[server]\nport = 3000\nname = \n", "line 3, column"), ('a = "x"\na = "y"\n', "line 2, column")],
)
def test_invalid_toml_starts_nothing_and_changes_nothing(
    content: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], bgr_home: Path
) -> None:
    main(capsys, "--name", "keep", "--directory", str(tmp_path), "--command", "exit 0")
    before = registry_snapshot(bgr_home / "bgr.sqlite")
    (tmp_path / ".config.toml").write_text(content)
    code, out, err = main(capsys, "--name", "new", "--directory", str(tmp_path), "--command", "sleep 60")
    assert code == 5 and out == ""
    assert_one_error_line(err)
    assert message in err and str(tmp_path / ".config.toml") in err
    code, _, err = main(capsys, "keep", "--restart")
    assert code == 5 and message in err
    assert registry_snapshot(bgr_home / "bgr.sqlite") == before
    assert managed("new") == []


# --------------------------------------------------------------------------------------------
# --force and ports


def test_force_frees_the_declared_port_and_never_touches_a_client(tmp_path: Path) -> None:
    port = free_port()
    with process([sys.executable, "-c", LISTENER, str(port)], stdout=subprocess.PIPE) as squatter:
        assert readline(squatter).strip() == "listening"
        with process([sys.executable, "-c", CLIENT, str(port)], stdout=subprocess.PIPE) as client:
            assert readline(client).strip() == "connected"
            done = run_bgr(
                "--name", "web", "--env", f"PORT={port}", "--force", "--grace", "0.5",
                "--command", f'{PY} -m http.server "$PORT"', cwd=tmp_path,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            assert f"freed port {port}: stopped pid {squatter.pid} (" in done.stdout
            assert LISTENER.strip().splitlines()[0] in done.stdout  # which command it was
            assert squatter.wait(timeout=10) == -signal.SIGTERM
            assert client.poll() is None
            pid = started_pid(done.stdout)
            wait_for(lambda: port in ports.listening_ports([pid, *_children(pid)]), what="web up")


def _children(pid: int) -> list[int]:
    import psutil

    return [c.pid for c in psutil.Process(pid).children(recursive=True)]


def test_force_replaces_a_running_instance_and_its_port(tmp_path: Path) -> None:
    port = free_port()
    command = f"{PY} -m http.server {port}"
    first = run_bgr("--name", "web", "--command", command, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    old = started_pid(first.stdout)
    wait_for(lambda: accepts(port), what="first instance listening")
    again = run_bgr("--name", "web", "--command", command, "--force", "--grace", "0.5")
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("restarted web (pid ")
    new = started_pid(again.stdout)
    assert new != old and not alive(old)
    data = wait_for(
        lambda: (d := json.loads(run_bgr("web", "--json").stdout))["ports"] == [port] and d,
        what="second instance listening",
    )
    assert data["pid"] == new and data["restarts"] == 1


# --------------------------------------------------------------------------------------------
# --fetch


def test_fetch_pulls_before_starting(
    repos: Repos, capsys: pytest.CaptureFixture[str], bgr_home: Path
) -> None:
    repos.push("v2\n")  # the app clone is one commit behind
    app = repos.app
    command = f"cat {TRACKED}; exec sleep 60"
    code, out, err = main(capsys, "--name", "app", "--directory", str(app), "--fetch", "--command", command)
    assert code == 0, err
    assert out.startswith("git: pulled main: ") and "(1 commit)" in out
    wait_for(lambda: read(bgr_home / "app-out.txt"), what="output")
    assert read(bgr_home / "app-out.txt") == "v2\n"
    assert one(capsys, "app")["fetch"] is True


def test_fetch_with_a_dirty_tree_reports_and_resets_nothing(
    repos: Repos, capsys: pytest.CaptureFixture[str]
) -> None:
    repos.push("v2\n")  # the app clone is one commit behind
    app = repos.app
    (app / TRACKED).write_text("local edit\n")
    code, out, err = main(
        capsys, "--name", "app", "--directory", str(app), "--fetch", "--command", "sleep 60"
    )
    assert code == 8 and out == ""
    assert "uncommitted changes" in err and "Traceback" not in err
    assert (app / TRACKED).read_text() == "local edit\n"
    assert listing(capsys) == []
    assert managed("app") == []


def test_fetch_outside_a_git_repository_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    code, _, err = main(capsys, "--name", "p", "--directory", str(plain), "--fetch", "--command", "sleep 60")
    assert code == 8
    assert_one_error_line(err)
    assert "not a git repository" in err


# --------------------------------------------------------------------------------------------
# paths: logs, DB_NAME, --db


def test_log_paths_default_and_overrides_remembered_across_restart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bgr_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    main(capsys, "--name", "d", "--directory", str(tmp_path), "--command", "sleep 60")
    data = one(capsys, "d")
    assert data["stdout"] == str(bgr_home / "d-out.txt")
    assert data["stderr"] == str(bgr_home / "d-err.txt")
    logs = tmp_path / "logs"
    logs.mkdir()
    monkeypatch.chdir(tmp_path)  # relative log paths are taken from the caller's directory
    code, _, err = main(capsys, "--name", "o", "--command", "echo $BGR_NAME; echo e >&2; exec sleep 60",
                        "--stdout", "logs/o.out", "--stderr", "logs/o.err")  # fmt: skip
    assert code == 0, err
    wait_for(lambda: read(logs / "o.err"), what="output")
    assert read(logs / "o.out") == "o\n" and read(logs / "o.err") == "e\n"
    assert main(capsys, "o", "--restart", "--grace", "0.5")[0] == 0
    data = one(capsys, "o")
    assert data["stdout"] == str(logs / "o.out") and data["stderr"] == str(logs / "o.err")
    wait_for(lambda: read(logs / "o.err"), what="output after restart")
    assert read(logs / "o.out") == "o\n"
    assert not (bgr_home / "o-out.txt").exists()


def test_db_name_and_db_select_the_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], bgr_home: Path
) -> None:
    monkeypatch.setenv("DB_NAME", "x")
    assert main(capsys, "--name", "a", "--directory", str(tmp_path), "--command", "sleep 60")[0] == 0
    assert (bgr_home / "x.sqlite").exists() and not (bgr_home / "bgr.sqlite").exists()
    assert [d["name"] for d in listing(capsys)] == ["a"]
    monkeypatch.delenv("DB_NAME")
    assert listing(capsys) == []
    db = str(tmp_path / "elsewhere.sqlite")
    assert main(capsys, "--db", db, "--name", "b", "--command", "echo hi; exec sleep 60")[0] == 0
    assert [d["name"] for d in listing(capsys, "--db", db)] == ["b"]
    assert main(capsys, "b", "--db", db)[0] == 0
    wait_for(lambda: read(bgr_home / "b-out.txt"), what="output")
    assert "hi" in main(capsys, "b", "--logs", "--db", db)[1]
    assert main(capsys, "b", "--restart", "--db", db, "--grace", "0.5")[0] == 0
    assert main(capsys, "--stop", "b", "--db", db, "--grace", "0.5")[0] == 0
    assert main(capsys, "--clean", "--db", db)[0] == 0
    assert listing(capsys, "--db", db) == []
    assert main(capsys, "b")[0] == 3  # never in the default registry
    assert main(capsys, "--nuke", "--db", db)[0] == 0
    monkeypatch.setenv("DB_NAME", "x")
    assert main(capsys, "--delete", "a", "--grace", "0.5")[0] == 0
    assert stat.S_IMODE(Path(db).stat().st_mode) == 0o600


# --------------------------------------------------------------------------------------------
# concurrency


def test_thirty_concurrent_starts_of_one_name_give_one_process(tmp_path: Path, bgr_home: Path) -> None:
    results = start_many(["same"] * 30, tmp_path)
    assert sorted(code for code, _ in results) == [0] + [4] * 29
    for _, err in results:
        assert "Traceback" not in err and "database is locked" not in err
    listed = json.loads(run_bgr("--json").stdout)
    assert [(d["name"], d["status"]) for d in listed] == [("same", "running")]
    instances = {environ_of(p)["BGR_INSTANCE"] for p in managed("same")}
    assert len(instances) == 1


def test_thirty_concurrent_distinct_names_all_run(tmp_path: Path) -> None:
    names = [f"p{i:02d}" for i in range(30)]
    results = start_many(names, tmp_path)
    for code, err in results:
        assert code == 0, err
        assert "Traceback" not in err and "locked" not in err
    listed = json.loads(run_bgr("--json").stdout)
    assert [d["name"] for d in listed] == names
    assert all(d["status"] == "running" for d in listed)


# --------------------------------------------------------------------------------------------
# bad input: one line, non-zero, registry unchanged


BAD_INPUT = {
    "unknown flag": ["--bogus"],
    "unknown short flag": ["-x"],
    "prefix of a destructive flag": ["--nu"],
    "prefix of delete": ["--del", "known"],
    "two actions": ["--stop", "--delete", "known"],
    "two names": ["known", "--name", "other", "--command", "true"],
    "unknown name": ["--stop", "nobody"],
    "unknown name details": ["nobody"],
    "unknown name logs": ["nobody", "--logs"],
    "missing directory": ["--name", "n", "--directory", "/nonexistent/dir", "--command", "true"],
    "empty command": ["--name", "n", "--command", ""],
    "blank command": ["--name", "n", "--command", "  "],
    "bad name": ["--name", "../x", "--command", "true"],
    "empty name": ["--name", "", "--command", "true"],
    "empty positional name": [""],
    "missing explicit config": ["--name", "n", "--config", "/nonexistent.toml", "--command", "true"],
    "bad env": ["--name", "n", "--env", "NOEQUALS", "--command", "true"],
    "bad grace": ["--stop", "known", "--grace", "nan"],
    "negative lines": ["known", "--logs", "--lines", "-1"],
    "lines without logs": ["known", "--lines", "3"],
    "nuke with a name": ["--nuke", "known"],
    "stop without a name": ["--stop"],
    "filter with a name": ["known", "--filter", "g"],
    "bad group": ["--name", "n", "--group", "a/b", "--command", "true"],
    "missing log directory": ["--name", "n", "--stdout", "/nonexistent/dir/n.log", "--command", "true"],
    "restart with new values": ["known", "--restart", "--command", "sleep 1"],
    "restart with a new env": ["--restart", "known", "--env", "A=1"],
    "command not UTF-8": ["--name", "n", "--command", "echo \udcff"],
    "log path not UTF-8": ["--name", "n", "--stdout", "/tmp/\udcff.log", "--command", "true"],
}


@pytest.mark.parametrize("argv", list(BAD_INPUT.values()), ids=list(BAD_INPUT))
def test_bad_input_is_one_line_and_changes_nothing(
    argv: list[str], populated: Path, capsys: pytest.CaptureFixture[str], bgr_home: Path
) -> None:
    before = registry_snapshot(populated)
    files = _files(bgr_home.parent)
    code, out, err = main(capsys, *argv)
    assert code != 0
    assert out == ""
    assert_one_error_line(err)
    assert registry_snapshot(populated) == before
    assert _files(bgr_home.parent) == files


def _files(root: Path) -> list[Path]:
    """Every path under ``root`` except per-name lock files (kept forever by design)."""
    return sorted(p.relative_to(root) for p in root.rglob("*") if "locks" not in p.parts)


def test_prefix_of_nuke_does_not_nuke(populated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = main(capsys, "--nu")
    assert code == 2 and "--nuke" in err and "in full" in err
    assert [d["name"] for d in listing(capsys)] == ["known"]


def test_corrupt_registry_is_one_line_through_the_real_cli(bgr_home: Path) -> None:
    bgr_home.mkdir(mode=0o700)
    db = bgr_home / "bgr.sqlite"
    db.write_bytes(b"garbage " * 1000)
    for argv in ([], ["--name", "n", "--command", "sleep 60"], ["--nuke"]):
        done = run_bgr(*argv)
        assert done.returncode == 7
        assert_one_error_line(done.stderr)
        assert "corrupt" in done.stderr
    assert db.read_bytes() == b"garbage " * 1000
    assert managed("n") == []


def test_a_directory_given_as_registry_is_one_line(tmp_path: Path) -> None:
    for argv in ([], ["--name", "n", "--command", "sleep 60"]):
        done = run_bgr("--db", str(tmp_path), *argv)
        assert done.returncode == 7
        assert_one_error_line(done.stderr)
        assert "is a directory" in done.stderr
    assert managed("n") == []


def test_newer_registry_is_refused(populated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import sqlite3

    conn = sqlite3.connect(populated)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    before = registry_snapshot(populated)
    for argv in ([], ["--name", "n", "--command", "sleep 60"], ["--delete", "known"]):
        code, out, err = main(capsys, *argv)
        assert code == 7 and out == ""
        assert_one_error_line(err)
        assert "newer bgr" in err
    assert registry_snapshot(populated) == before


def test_locked_registry_is_one_line_and_starts_nothing(
    populated: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    monkeypatch.setattr(store, "BUSY_TIMEOUT_MS", 100)
    before = registry_snapshot(populated)
    holder = sqlite3.connect(populated, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        for argv in (["--name", "n", "--command", "sleep 60"], ["known", "--restart"], ["--nuke"]):
            code, out, err = main(capsys, *argv)
            assert code == 7 and out == ""
            assert_one_error_line(err)
            assert "locked" in err
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert registry_snapshot(populated) == before
    assert managed("n") == []
    assert managed("known") == []


def _read_only_mount_works() -> bool:
    probe = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "true"], capture_output=True, check=False
    ) if shutil.which("unshare") else None  # fmt: skip
    return probe is not None and probe.returncode == 0


def test_read_only_registry_is_one_line(populated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Mode bits do not stop root, so as root the state directory is bind-mounted read-only in a
    private mount namespace (`unshare -m`); as another user, chmod does the job."""
    before = registry_snapshot(populated)
    state = populated.parent
    commands = (["--name", "n", "--command", "sleep 60"], ["known", "--restart"], ["--stop", "known"])
    if os.geteuid() != 0:
        populated.chmod(0o400)
        state.chmod(0o500)
        try:
            for argv in commands:
                code, _, err = main(capsys, *argv)
                assert code == 7
                assert_one_error_line(err)
                assert "read-only" in err.lower()
        finally:
            state.chmod(0o700)
            populated.chmod(0o600)
    else:
        if not _read_only_mount_works():
            pytest.skip("root, and no mount namespace to make the state directory read-only")
        for argv in commands:
            script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
            done = subprocess.run(
                ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", str(state),
                 sys.executable, "-m", "bgr", *argv],
                capture_output=True, text=True, timeout=30, check=False,
            )  # fmt: skip
            assert done.returncode == 7, done.stderr
            assert_one_error_line(done.stderr)
            assert "read-only" in done.stderr.lower()
    assert registry_snapshot(populated) == before
    assert managed("n") == []


def test_bad_input_through_the_real_cli_has_no_traceback(tmp_path: Path) -> None:
    for argv in (
        ["--bogus"],
        ["--stop", "nobody"],
        ["--name", "../x", "--command", "true"],
        ["--name", "n", "--command", "echo \udcff"],  # the byte 0xff: not UTF-8
    ):
        done = run_bgr(*argv, cwd=tmp_path)
        assert done.returncode != 0 and done.stdout == ""
        assert_one_error_line(done.stderr)


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = main(capsys, "--help")
    assert code == 0 and "Usage:" in out and "--nuke" in out
    code, out, _ = main(capsys, "--version")
    assert code == 0 and out.startswith("bgr ")


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


# Cheap to use, costly to import (-X importtime here): typing ~3 ms, pathlib ~3.5 ms (urllib.parse,
# ipaddress), the sqlite3 package's datetime adapters ~2 ms, string 0.5 ms.
SLOW_STDLIB = ("typing", "pathlib", "datetime", "sqlite3", "string", "urllib", "ipaddress")


def imported_by_bgr(code: str) -> tuple[str, list[str]]:
    """Run ``code`` in a fresh interpreter: its stdout, and the modules it loaded beyond a bare
    interpreter's. Without site (-S), importing bgr from this checkout: an editable install's path
    hook would otherwise load pathlib before bgr does. The list and start paths need no
    third-party package, and this proves that too."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    report = "\nprint(' '.join(sorted(sys.modules)), file=sys.stderr)\n"

    def run(source: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-S", "-c", "import sys\n" + source + report]
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30, check=False)

    bare, done = run(""), run(code)
    assert done.returncode == 0, done.stderr
    return done.stdout, sorted(set(done.stderr.split()) - set(bare.stderr.split()))


# Modules only starting, stopping, ports, rotation, config, git or watching need; and dataclasses,
# whose import of inspect cost ~10 ms of a listing before bgr.models became NamedTuples.
LIST_FORBIDDEN = (
    "dataclasses",
    "bgr.core.launch", "bgr.core.teardown", "bgr.core.definition",
    "bgr.proc.spawn", "bgr.proc.locks", "bgr.proc.stopper", "bgr.proc.ports",
    "bgr.logfiles.reading", "bgr.logfiles.backups", "bgr.logfiles.rotation", "bgr.config", "bgr.git",
    "bgr.watch.loop", "bgr.watch.watcher", "bgr.watch.inotify", "bgr.watch.tree",
    "bgr.watch.ignore", "bgr.watch.debounce", "bgr.watch.inbox", "bgr.watch.logstream",
    "docopt", "tomli", "git", "apscheduler", "watchdog",
) + SLOW_STDLIB + (("psutil",) if sys.platform.startswith("linux") else ())  # fmt: skip
# What a plain start must not import either: each one was milliseconds of a 50 ms budget.
START_FORBIDDEN = (
    "dataclasses", "docopt", "tomli", "git", "apscheduler", "watchdog", "bgr.logfiles.reading",
    "bgr.logfiles.backups", "bgr.git", "bgr.watch.loop",
) + SLOW_STDLIB + (("psutil",) if sys.platform.startswith("linux") else ())  # fmt: skip


def test_the_list_path_imports_nothing_that_only_changes_need(tmp_path: Path) -> None:
    """Scripts poll `bgr --json`: a top-level import of the start/stop machinery must not creep back."""
    done = run_bgr("--name", "web", "--command", "sleep 60", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out, loaded = imported_by_bgr("import bgr.cli\nassert bgr.cli.main(['--json']) == 0")
    assert json.loads(out)[0]["status"] == "running"
    assert "bgr.core.queries" in loaded
    assert [m for m in loaded if any(m == f or m.startswith(f + ".") for f in LIST_FORBIDDEN)] == []


def test_a_plain_start_imports_only_what_it_needs(tmp_path: Path) -> None:
    argv = ["--name", "web", "--command", "sleep 60", "-d", str(tmp_path)]
    out, loaded = imported_by_bgr(f"import bgr.cli\nassert bgr.cli.main({argv!r}) == 0")
    assert out.startswith("started web")
    assert "bgr.proc.spawn" in loaded
    assert [m for m in loaded if any(m == f or m.startswith(f + ".") for f in START_FORBIDDEN)] == []


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


def test_a_start_from_a_deleted_directory_is_one_clear_line(tmp_path: Path) -> None:
    done = in_deleted_directory(tmp_path, "--name", "web", "--command", "sleep 60")
    assert done.returncode != 0
    assert_one_error_line(done.stderr)
    assert "current directory no longer exists" in done.stderr
    assert json.loads(run_bgr("--json").stdout) == []
    elsewhere = in_deleted_directory(tmp_path, "--name", "web", "--command", "sleep 60", "-d", str(tmp_path))
    assert elsewhere.returncode == 0, elsewhere.stderr


@pytest.mark.parametrize("argv", [["--json"], ["web", "--logs"], ["--name", "web", "-c", "true", "-d", "/"]])
def test_a_relative_bgr_home_in_a_deleted_directory_is_one_clear_line(
    argv: list[str], tmp_path: Path
) -> None:
    done = in_deleted_directory(tmp_path, *argv, BGR_HOME="relative-home")
    assert done.returncode != 0
    assert_one_error_line(done.stderr)
    assert "current directory no longer exists" in done.stderr
