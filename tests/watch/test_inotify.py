"""bgr.watch.inotify: one watch per kept directory, moved with the tree and its .gitignore
files, and the kernel's limits in words (in process, and through ``bgr --watch``)."""

from __future__ import annotations

import errno
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from bgr.errors import WatchError
from bgr.watch.inotify import watch_error
from bgr.watch.watcher import Watcher
from tests.support import (
    Watch,
    child_command,
    collect,
    inotify_watches,
    listed,
    make_tree,
    needs_inotify,
    run_bgr,
)


def test_watch_errors_say_what_to_do() -> None:
    full = watch_error(OSError(errno.ENOSPC, "inotify watch limit reached"), "/app")
    assert "fs.inotify.max_user_watches" in str(full)
    assert "sudo sysctl fs.inotify.max_user_watches=" in str(full)
    assert full.exit_code == WatchError.exit_code
    many = watch_error(OSError(errno.EMFILE, "inotify instance limit reached"), "/app")
    assert "fs.inotify.max_user_instances" in str(many)


@needs_inotify
def test_watches_only_directories_that_are_not_ignored(tmp_path: Path) -> None:
    tmp_path = make_tree(tmp_path)
    before = inotify_watches()
    with Watcher(tmp_path, ignore=["skipme"], backend="inotify") as watcher:
        assert watcher.watched() == ["", "src", "src/pkg"]
        assert inotify_watches() - before == 3
    assert inotify_watches() == before


@needs_inotify
def test_new_and_moved_directories_are_followed(tmp_path: Path) -> None:
    tmp_path = make_tree(tmp_path)
    with Watcher(tmp_path) as watcher:
        # Created faster than we can add the watch: the files inside are still reported.
        (tmp_path / "new" / "a" / "b").mkdir(parents=True)
        (tmp_path / "new" / "a" / "b" / "c.py").write_text("1")
        seen = collect(watcher, lambda s: "new/a/b/c.py" in s)
        assert "new/a/b/c.py" in seen
        assert {"new", "new/a", "new/a/b"} <= set(watcher.watched())
        (tmp_path / "new" / "node_modules").mkdir()  # ignored at any depth: no watch
        (tmp_path / "new").rename(tmp_path / "renamed")
        seen = collect(watcher, lambda s: "renamed/a/b/c.py" in s)
        assert "new/" in seen
        assert "renamed/a/b/c.py" in seen
        assert not any(p == "new" or p.startswith("new/") for p in watcher.watched())
        (tmp_path / "renamed" / "a" / "b" / "d.py").write_text("1")
        assert "renamed/a/b/d.py" in collect(watcher, lambda s: "renamed/a/b/d.py" in s)
        assert "renamed/node_modules" not in watcher.watched()
        assert len(watcher.watched()) == inotify_watches()


@needs_inotify
def test_gitignore_edits_move_the_watches(tmp_path: Path) -> None:
    tmp_path = make_tree(tmp_path)
    with Watcher(tmp_path) as watcher:
        assert "generated" not in watcher.watched()
        (tmp_path / ".gitignore").write_text("src/\n")
        # write_text truncates, then writes: two events, possibly in two batches. Wait for the
        # final rules to be in force, then drain what is still queued.
        collect(watcher, lambda s: ".gitignore" in s and "src" not in watcher.watched())
        assert {"generated", "generated/deep"} <= set(watcher.watched())
        assert "src" not in watcher.watched()
        watcher.changes(0.2)
        (tmp_path / "src" / "pkg" / "mod.py").write_text("x = 3\n")
        (tmp_path / "generated" / "deep" / "g.py").write_text("1")
        assert set(collect(watcher, lambda s: "generated/deep/g.py" in s)) == {"generated/deep/g.py"}


@needs_inotify
def test_removing_the_watched_directory_is_reported(tmp_path: Path) -> None:
    root = make_tree(tmp_path)
    with Watcher(root) as watcher:
        shutil.rmtree(root)
        with pytest.raises(WatchError, match="was removed"):
            collect(watcher, lambda s: False, timeout=10)


# --------------------------------------------------------------------------------------------
# running out of watches, through the real CLI


def limited_watches(limit: int) -> tuple[str, ...]:
    """A command prefix: a user namespace whose inotify watch limit is ``limit``.

    Each user namespace has its own limit (/proc/sys/user/max_inotify_watches): lowering it there
    leaves the machine's limit alone.
    """
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1)")
    probe = subprocess.run(
        ["unshare", "--user", "--map-root-user", "sh", "-c",
         f"echo {limit} > /proc/sys/user/max_inotify_watches"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    if probe.returncode != 0:
        pytest.skip(f"cannot lower the watch limit in a user namespace: {probe.stderr.strip()}")
    script = f'echo {limit} > /proc/sys/user/max_inotify_watches && exec "$@"'
    return ("unshare", "--user", "--map-root-user", "sh", "-c", script, "sh")


@needs_inotify
def test_running_out_of_watches_at_start(tmp_path: Path, watching: Callable[..., Watch]) -> None:
    app = tmp_path / "app"
    for i in range(8):
        (app / f"d{i}").mkdir(parents=True)
    w = watching(
        "--name", "full", "-d", str(app), "-c", "sleep 30", "--watch",
        cwd=tmp_path, prefix=limited_watches(3),
    )  # fmt: skip
    assert w.proc.wait(30) == WatchError.exit_code, w.text()
    w.wait_for(r"^bgr: out of inotify watches while watching .*/app")
    assert "sudo sysctl fs.inotify.max_user_watches=" in w.text()
    assert json.loads(run_bgr("--json").stdout) == []  # nothing was started


@needs_inotify
def test_running_out_of_watches_later(tmp_path: Path, watching: Callable[..., Watch]) -> None:
    app = tmp_path / "app"
    app.mkdir()
    w = watching(
        "--name", "grows", "-d", str(app), "-c", child_command(tmp_path), "--watch",
        cwd=tmp_path, prefix=limited_watches(2),
    )  # fmt: skip
    w.wait_for(r"^started grows")
    for name in ("a", "b", "c"):
        (app / name).mkdir()
    assert w.proc.wait(30) == WatchError.exit_code, w.text()
    w.wait_for(r"^bgr: out of inotify watches")
    w.wait_for(r"^stopped watching; grows keeps running")
    assert listed("grows")["status"] == "running"
