"""bgr.proc.spawn: the detached launch itself (session, stdin, environment, logs, exit codes)."""

from __future__ import annotations

import contextlib
import os
import signal
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from bgr import paths
from bgr.errors import SpawnError
from bgr.models import ProcessRecord
from bgr.proc import command, spawn
from tests.support import alive, environ_of, proc_state, process, read, session_of, wait_for


@pytest.fixture
def launched() -> Iterator[list[spawn.Spawned]]:
    """Instances started by a test; killed (whole group) and reaped afterwards."""
    started: list[spawn.Spawned] = []
    yield started
    for item in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(item.pid, signal.SIGKILL)
        spawn.wait_exit(item.pid, 5)


def settled_environ(pid: int) -> dict[str, str]:
    """The environment once the launcher's exec chain is done (mid-exec, /proc shows nothing)."""

    def settled() -> dict[str, str] | None:
        env = environ_of(pid)
        return env if "BGR_INSTANCE" in env else None

    return wait_for(settled, what="environ")


def run(
    launched: list[spawn.Spawned],
    command: str,
    directory: Path,
    *,
    name: str = "t",
    overlay: dict[str, str] | None = None,
    group: str | None = None,
    search_path: str | None = None,
) -> spawn.Spawned:
    layout = paths.layout()
    out, err = layout.log_paths(name)
    layout.ensure_home()
    record = ProcessRecord(
        name=name,
        command=command,
        directory=str(directory),
        stdout=out,
        stderr=err,
        env=overlay or {},
        search_path=search_path,
        group=group,
    )
    started = spawn.spawn(record, layout=layout, instance=spawn.new_instance())
    launched.append(started)
    return started


def test_child_runs_in_its_own_session_with_stdin_from_dev_null(
    launched: list[spawn.Spawned], tmp_path: Path
) -> None:
    started = run(launched, "sleep 60", tmp_path)
    assert started.identity.pgid == started.pid
    assert session_of(started.pid) == started.pid != os.getsid(0)
    assert os.readlink(f"/proc/{started.pid}/fd/0") == "/dev/null"
    assert started.identity.token and not started.identity.token.startswith("unknown")
    assert spawn.is_our_child(started.pid)
    assert spawn.wait_exit(started.pid, 0.05) is None  # still running


def test_environment_markers_overlay_group_and_path(
    launched: list[spawn.Spawned], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bgr_home: Path
) -> None:
    # As if this bgr ran inside another managed process: its markers must not leak into the child.
    monkeypatch.setenv("BGR_INSTANCE", "parent-instance")
    monkeypatch.setenv("BGR_NAME", "parent")
    monkeypatch.setenv("BGR_GROUP", "parent-group")
    started = run(
        launched,
        "exec /bin/sleep 60",  # absolute: the overlay's PATH has no sleep in it
        tmp_path,
        name="child",
        overlay={"A": "1,2=3 'q' \"d\"", "PATH": "/overlay"},
        search_path="/stored/bin:/usr/bin:/bin",
    )
    env = settled_environ(started.pid)
    assert env["BGR_NAME"] == "child"
    assert env["BGR_INSTANCE"] == started.identity.instance != "parent-instance"
    assert "BGR_GROUP" not in env
    assert env["A"] == "1,2=3 'q' \"d\""
    assert env["PATH"] == "/overlay"  # an explicit value wins over the stored search path
    assert env["BGR_HOME"] == str(bgr_home)
    grouped = run(launched, "sleep 60", tmp_path, name="grouped", group="api", search_path="/x:/bin")
    env = settled_environ(grouped.pid)
    assert env["BGR_GROUP"] == "api"
    assert env["PATH"] == "/x:/bin"


def test_directory_and_command_travel_as_data_never_spliced(
    launched: list[spawn.Spawned], tmp_path: Path, bgr_home: Path
) -> None:
    weird = tmp_path / "d i r $(touch pwned) ; `touch pwned2` \"q' -x"
    weird.mkdir()
    started = run(launched, "pwd", weird)
    assert spawn.wait_exit(started.pid, 10) == 0
    assert read(bgr_home / "t-out.txt") == f"{weird}\n"
    assert not list(tmp_path.rglob("pwned*"))
    assert not list(bgr_home.rglob("pwned*"))


def test_logs_are_appended_never_truncated_and_private(
    launched: list[spawn.Spawned], tmp_path: Path, bgr_home: Path
) -> None:
    paths.ensure_state_dir()
    out = bgr_home / "t-out.txt"
    out.write_text("old line\n")
    out.chmod(0o644)
    started = run(launched, "echo new line; echo oops >&2", tmp_path)
    assert spawn.wait_exit(started.pid, 10) == 0
    assert read(out) == "old line\nnew line\n"
    assert read(bgr_home / "t-err.txt") == "oops\n"
    # The log bgr created is private; the one it found keeps the mode its owner gave it.
    assert stat.S_IMODE((bgr_home / "t-err.txt").stat().st_mode) == 0o600
    assert stat.S_IMODE(out.stat().st_mode) == 0o644


def test_stdout_and_stderr_may_share_one_file(launched: list[spawn.Spawned], tmp_path: Path) -> None:
    log = tmp_path / "both.txt"
    record = ProcessRecord(
        name="t", command="echo out; echo err >&2", directory=str(tmp_path), stdout=str(log), stderr=str(log)
    )
    started = spawn.spawn(record, layout=paths.layout(), instance=spawn.new_instance())
    launched.append(started)
    assert spawn.wait_exit(started.pid, 10) == 0
    assert sorted(read(log).splitlines()) == ["err", "out"]
    assert stat.S_IMODE(log.stat().st_mode) == 0o600


def test_child_gets_default_signal_dispositions(
    launched: list[spawn.Spawned], tmp_path: Path, bgr_home: Path
) -> None:
    """Python ignores SIGPIPE; a child inheriting that would break `yes | head`."""
    started = run(launched, "grep SigIgn /proc/self/status; yes | head -n 2", tmp_path)
    assert spawn.wait_exit(started.pid, 10) == 0
    lines = read(bgr_home / "t-out.txt").splitlines()
    ignored = int(lines[0].split()[1], 16)
    for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGHUP, signal.SIGINT, signal.SIGTERM):
        assert not ignored & (1 << (sig - 1)), f"{sig.name} is ignored in the child"
    assert lines[1:] == ["y", "y"]
    assert read(bgr_home / "t-err.txt") == ""


def test_wait_exit_reports_shell_style_codes(launched: list[spawn.Spawned], tmp_path: Path) -> None:
    assert spawn.wait_exit(run(launched, "exit 3", tmp_path).pid, 10) == 3
    assert spawn.wait_exit(run(launched, "kill -9 $$", tmp_path).pid, 10) == 137
    assert spawn.wait_exit(run(launched, "no-such-binary-xyz", tmp_path).pid, 10) == 127
    assert spawn.wait_exit(run(launched, "true", tmp_path / "missing").pid, 10) == 126


def test_reap_spawned_collects_only_exited_children(launched: list[spawn.Spawned], tmp_path: Path) -> None:
    quick = run(launched, "exit 5", tmp_path)
    slow = run(launched, "sleep 60", tmp_path)
    wait_for(lambda: not alive(quick.pid), what="quick exit")
    reaped = spawn.reap_spawned()
    assert reaped.get(quick.pid) == 5
    assert slow.pid not in reaped
    assert not spawn.is_our_child(quick.pid)
    assert spawn.is_our_child(slow.pid)


def test_reap_spawned_leaves_other_children_to_their_owner(
    launched: list[spawn.Spawned], tmp_path: Path
) -> None:
    """A child this process made some other way (GitPython's subprocess) keeps its exit code;
    with none of that kind around, only the exited child is looked at, not every pid."""
    with process(["sh", "-c", "exit 7"]) as other:
        ours = run(launched, "exit 5", tmp_path)
        wait_for(lambda: proc_state(other.pid) == "Z" and not alive(ours.pid), what="both exited")
        assert spawn.reap_spawned() == {ours.pid: 5}
        assert other.wait(5) == 7  # still there for its owner
    many = [run(launched, "sleep 60", tmp_path) for _ in range(3)]
    last = run(launched, "exit 4", tmp_path)
    wait_for(lambda: not alive(last.pid), what="the last one to exit")
    assert spawn.reap_spawned() == {last.pid: 4}
    assert spawn.reap_spawned() == {}
    assert all(spawn.is_our_child(m.pid) for m in many)


def test_unopenable_log_is_a_spawn_error(tmp_path: Path) -> None:
    with pytest.raises(SpawnError, match="cannot open log file"):
        record = ProcessRecord(
            name="t",
            command="true",
            directory=str(tmp_path),
            stdout=str(tmp_path / "missing" / "out.txt"),
            stderr=str(tmp_path / "err.txt"),
        )
        spawn.spawn(record, layout=paths.layout(), instance=spawn.new_instance())


# --------------------------------------------------------------------------------------------
# cannot_exec: a failure the start waits for whatever its window


@pytest.fixture
def bindir(tmp_path: Path) -> Path:
    directory = tmp_path / "bin"
    directory.mkdir()
    tool = directory / "tool"
    tool.write_text("#!/bin/sh\nexit 0\n")
    tool.chmod(0o755)
    (directory / "plain").write_text("not executable\n")
    (directory / "subdir").mkdir()
    return directory


@pytest.mark.parametrize(
    ("line", "doomed"),
    [
        ("no-such-binary-xyz", True),
        ("no-such-binary-xyz --flag 'x y'", True),
        ("tool --serve", False),
        ("./bin/tool", False),
        ("./bin/plain", True),  # exists, not executable: 126
        ("./bin/subdir", True),  # a directory: 126
        ("./bin/missing", True),  # 127
        ("plain", True),  # not executable files on PATH are skipped by the shell: 127
        ("exec no-such-binary-xyz", False),  # builtins and keywords are not judged
        ("cd /; tool", False),  # `cd` is a builtin; the rest is not read
        ("FOO=1 no-such-binary-xyz", False),  # an assignment first: cannot tell
        ("'no-such-binary-xyz'", False),  # quoting: cannot tell
        ("$CMD", False),
        ("~/bin/tool", False),
        ("", False),
    ],
)
def test_cannot_exec_knows_only_what_the_shell_surely_does(
    line: str, doomed: bool, bindir: Path, launched: list[spawn.Spawned]
) -> None:
    directory = bindir.parent
    path = f"{bindir}:/usr/bin:/bin"
    assert command.cannot_exec(line, str(directory), path) is doomed
    if line and doomed:  # and the shell agrees
        started = run(launched, line, directory, overlay={"PATH": path})
        assert spawn.wait_exit(started.pid, 10) in (126, 127)


def test_cannot_exec_uses_the_childs_path(bindir: Path) -> None:
    assert spawn.child_path({"PATH": str(bindir)}, "/usr/bin") == str(bindir)
    assert spawn.child_path({}, str(bindir)) == str(bindir)
    assert spawn.child_path({}, None) == os.environ.get("PATH")
    assert not command.cannot_exec("tool", "/", str(bindir))
    assert command.cannot_exec("tool", "/", "/usr/bin:/bin")
    assert not command.cannot_exec("tool", "/", None)  # the shell's default PATH: no guess
    # Empty and relative PATH entries are relative to the process's directory, as for its shell.
    assert not command.cannot_exec("tool", str(bindir), ":/usr/bin")
    assert not command.cannot_exec("tool", str(bindir.parent), "/usr/bin:bin")
    assert command.cannot_exec("tool", "/", "/usr/bin:bin")
