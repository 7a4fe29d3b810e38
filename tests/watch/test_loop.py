"""bgr.watch.loop: start, restart once per burst, wait after a crash; in process, and through
the real ``bgr --watch`` with real processes and real inotify."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bgr.models import StartRequest
from bgr.proc import spawn
from bgr.watch import loop
from tests.support import Watch, child_command, inotify_watches, listed, needs_inotify, run_bgr, starts

# --------------------------------------------------------------------------------------------
# the loop, in process


@needs_inotify
def test_run_yields_start_restart_crash_and_reaps(tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    stop = threading.Event()
    request = StartRequest(name="inproc", command=child_command(tmp_path, "crash"), directory=str(app))
    events = loop.run(request, stop=stop, debounce=0.05, db=None, grace=1)
    seen: list[loop.WatchEvent] = []
    try:
        for event in events:
            seen.append(event)
            if isinstance(event, loop.Exited) and len(seen) < 4:
                (app / "trigger.py").write_text("1")
            elif isinstance(event, loop.Exited):
                break
    finally:
        events.close()
    kinds = [type(e).__name__ for e in seen]
    assert kinds == ["Watching", "Started", "Exited", "Started", "Exited"]
    first, second = seen[2], seen[4]
    assert isinstance(first, loop.Exited) and first.exit_code == 3
    assert "boom 1" in first.stderr_tail
    restart = seen[3]
    assert isinstance(restart, loop.Started) and restart.changes == ("trigger.py",)
    assert isinstance(second, loop.Exited) and second.exit_code == 3
    assert spawn.reap_spawned() == {}  # nothing left unreaped
    assert starts(tmp_path) == 2


# --------------------------------------------------------------------------------------------
# the real CLI in a subprocess


@needs_inotify
def test_a_burst_of_changes_restarts_once_and_names_the_files(
    tmp_path: Path, watching: Callable[..., Watch]
) -> None:
    app = tmp_path / "app"
    app.mkdir()
    w = watching("--name", "burst", "-d", str(app), "-c", child_command(tmp_path), "--watch", cwd=app)
    w.wait_for(r"^started burst \(pid \d+\)")
    for i in range(10):
        (app / f"f{i}.py").write_text(str(i))
    (first,) = w.wait_for(r"^restarted burst")
    assert re.search(r"\(pid \d+\): f0\.py, f1\.py and 8 more changed$", first), first
    # A later change is a second burst; nothing happened in between.
    (app / "later.py").write_text("1")
    lines = w.wait_for(r"^restarted burst", count=2)
    assert lines[1].endswith(": later.py changed")
    assert starts(tmp_path, at_least=3) == 3
    assert w.interrupt() == 0


@needs_inotify
def test_ignored_paths_never_restart(tmp_path: Path, watching: Callable[..., Watch]) -> None:
    # The watched directory holds the state directory (BGR_HOME) and the process's own log files,
    # which the child writes to all the time.
    app = tmp_path
    harness = tmp_path / "harness"  # the child's script and start stamps, .gitignore'd
    harness.mkdir()
    (app / ".git" / "refs").mkdir(parents=True)
    (app / "node_modules" / "pkg").mkdir(parents=True)
    (app / "src").mkdir()
    (app / ".gitignore").write_text("*.secret\nharness/\n")
    w = watching(
        "--name", "quiet", "-d", str(app), "-c", child_command(harness, "chatty"),
        "--stdout", str(app / "out.log"), "--stderr", str(app / "err.log"),
        "--watch", "--debounce", "100", "--ignore", "scratch/", cwd=app,
    )  # fmt: skip
    w.wait_for(r"^started quiet")
    # Only the root and src/ are watched: the state dir, .git and node_modules cost nothing.
    watched_dirs = {".", "src", "user-home"}
    assert inotify_watches(w.proc.pid) == len(watched_dirs)
    (app / ".git" / "refs" / "main").write_text("abc")
    (app / "node_modules" / "pkg" / "index.js").write_text("1")
    (app / "token.secret").write_text("1")
    (app / "scratch").mkdir()
    (app / "scratch" / "notes.txt").write_text("1")
    (app / ".main.py.swp").write_text("1")
    (app / "src" / "main.py").write_text("1")
    (first,) = w.wait_for(r"^restarted quiet")
    assert first.endswith(": src/main.py changed"), w.text()
    # The restart moved the log files to the backup directory (inside the watched tree) and the
    # new instance recreated them: still no restart of its own.
    (app / "src" / "main.py").write_text("2")
    lines = w.wait_for(r"^restarted quiet", count=2)
    assert lines[1].endswith(": src/main.py changed"), w.text()
    assert len(w.matching("^restarted")) == 2
    assert starts(harness, at_least=3) == 3
    assert w.interrupt() == 0


@needs_inotify
def test_a_crash_waits_for_a_change(tmp_path: Path, watching: Callable[..., Watch]) -> None:
    app = tmp_path / "app"
    app.mkdir()
    w = watching(
        "--name", "crashy", "-d", str(app), "-c", child_command(tmp_path, "crash"),
        "--watch", "--debounce", "100", cwd=app,
    )  # fmt: skip
    w.wait_for(r"^crashy crashed with exit code 3; waiting for a change")
    w.wait_for(r"^  boom 1$")  # the stderr tail
    assert starts(tmp_path) == 1
    assert listed("crashy")["status"] == "crashed"
    assert listed("crashy")["exit_code"] == 3
    time.sleep(0.5)  # room for a restart loop to show itself
    assert starts(tmp_path) == 1
    (app / "fix.py").write_text("1")
    w.wait_for(r"^restarted crashy \(pid \d+\): fix\.py changed")
    w.wait_for(r"^crashy crashed with exit code 3", count=2)
    assert starts(tmp_path) == 2
    assert w.interrupt() == 0
    assert w.matching(r"^stopped watching; crashy is not running \(crashed\)")


@needs_inotify
def test_a_failed_start_keeps_watching(tmp_path: Path, watching: Callable[..., Watch]) -> None:
    app = tmp_path / "app"
    app.mkdir()
    command = f"test -f ready || exit 4; exec {child_command(tmp_path)}"
    w = watching("--name", "late", "-d", str(app), "-c", command, "--watch", "--debounce", "50", cwd=app)
    w.wait_for(r"^bgr: late exited right after starting: exit code 4")
    w.wait_for(r"^waiting for a change to start late again")
    (app / "ready").write_text("")
    w.wait_for(r"^restarted late \(pid \d+\): ready changed")
    assert listed("late")["status"] == "running"
    assert w.interrupt() == 0


@needs_inotify
def test_stop_and_delete_from_another_terminal(tmp_path: Path, watching: Callable[..., Watch]) -> None:
    app = tmp_path / "app"
    app.mkdir()
    w = watching("--name", "other", "-d", str(app), "-c", child_command(tmp_path), "--watch", cwd=app)
    w.wait_for(r"^started other")
    assert run_bgr("--stop", "other").returncode == 0
    w.wait_for(r"^other was stopped \(bgr --stop\); the next change starts it again")
    (app / "go.py").write_text("1")
    w.wait_for(r"^restarted other \(pid \d+\): go\.py changed")
    assert listed("other")["status"] == "running"
    assert run_bgr("--delete", "other").returncode == 0
    w.wait_for(r"^other was deleted; stopped watching")
    assert w.proc.wait(20) == 0
