"""bgr.cli.watching: ``bgr NAME --watch`` in the foreground, and how Ctrl-C ends it."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

from tests.support import Watch, assert_one_error_line, child_command, listed, needs_inotify, run_bgr


def has_inotify_fd(pid: int) -> bool:
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:inotify":
                return True
        except OSError:
            continue
    return False


@needs_inotify
def test_ctrl_c_leaves_the_process_running(tmp_path: Path, watching: Callable[..., Watch]) -> None:
    app = tmp_path / "app"
    app.mkdir()
    # An existing process: `bgr NAME --watch` takes it over (restarts it, as its parent).
    assert run_bgr("--name", "keep", "-d", str(app), "-c", child_command(tmp_path)).returncode == 0
    old_pid = listed("keep")["pid"]
    w = watching("keep", "--watch", "--debounce", "50", cwd=tmp_path)
    (line,) = w.wait_for(r"^restarted keep \(pid \d+\); logs")
    pid = int(re.findall(r"pid (\d+)", line)[0])
    assert pid != old_pid
    assert not has_inotify_fd(pid)  # the watcher's inotify fd did not leak into the child
    assert w.interrupt() == 0
    assert w.matching(rf"^stopped watching; keep keeps running \(pid {pid}\): stop it with `bgr --stop keep`")
    row = listed("keep")
    assert row["status"] == "running"
    assert row["pid"] == pid
    os.kill(pid, 0)
    assert run_bgr("--stop", "keep").returncode == 0


@needs_inotify
def test_a_second_watch_of_a_name_is_refused(
    tmp_path: Path, bgr_home: Path, watching: Callable[..., Watch]
) -> None:
    app = tmp_path / "app"
    app.mkdir()
    first = watching("--name", "dev", "-d", str(app), "-c", "sleep 60", "--watch", cwd=tmp_path)
    first.wait_for(r"^started dev \(pid \d+\)")
    second = run_bgr("--name", "dev", "-d", str(app), "-c", "sleep 60", "--watch", cwd=tmp_path)
    assert second.returncode == 10 and second.stdout == ""
    assert_one_error_line(second.stderr)
    assert f"another bgr --watch (pid {first.proc.pid}) already watches dev" in second.stderr
    assert first.interrupt() == 0
    assert run_bgr("--delete", "dev", "--grace", "0.5").returncode == 0
    assert not list((bgr_home / "locks").glob("dev.*"))  # the lock files went too


def test_a_bad_config_is_one_line_before_anything_is_watched(tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / ".dev.toml").write_text("A = 1\n")
    done = run_bgr(
        "--name", "dev", "-d", str(app), "-c", "sleep 60", "--config", ".dev.toml", "--watch", cwd=tmp_path
    )  # fmt: skip
    assert done.returncode == 5 and done.stdout == ""
    assert_one_error_line(done.stderr)
    assert "relative --config is read from the current directory" in done.stderr
    assert f"--config {app / '.dev.toml'}" in done.stderr
