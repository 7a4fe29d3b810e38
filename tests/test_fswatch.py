"""The file watcher, in process, with real inotify (and the portable observer backend)."""

from __future__ import annotations

import errno
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bgr.errors import UsageError, WatchError
from bgr.watch.inotify import watch_error
from bgr.watch.watcher import Watcher
from tests.support import inotify_watches, needs_inotify


def test_watch_errors_say_what_to_do() -> None:
    full = watch_error(OSError(errno.ENOSPC, "inotify watch limit reached"), "/app")
    assert "fs.inotify.max_user_watches" in str(full)
    assert "sudo sysctl fs.inotify.max_user_watches=" in str(full)
    assert full.exit_code == WatchError.exit_code
    many = watch_error(OSError(errno.EMFILE, "inotify instance limit reached"), "/app")
    assert "fs.inotify.max_user_instances" in str(many)


def make_tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "pkg" / "mod.py").write_text("x = 1\n")
    for i in range(60):  # a big ignored tree must cost no watches
        (root / "node_modules" / f"p{i}" / "lib").mkdir(parents=True)
    (root / ".git" / "objects" / "ab").mkdir(parents=True)
    (root / "generated" / "deep").mkdir(parents=True)
    (root / "skipme" / "deep").mkdir(parents=True)
    (root / ".gitignore").write_text("generated/\n*.tmp\n")
    return root


def collect(watcher: Watcher, until: Callable[[list[str]], bool], timeout: float = 10) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while not until(seen) and time.monotonic() < deadline:
        seen += watcher.changes(0.1)
    return seen


@needs_inotify
def test_watches_only_directories_that_are_not_ignored(tmp_path: Path) -> None:
    tmp_path = make_tree(tmp_path)
    before = inotify_watches()
    with Watcher(tmp_path, ignore=["skipme"], backend="inotify") as watcher:
        assert watcher.watched() == ["", "src", "src/pkg"]
        assert inotify_watches() - before == 3
    assert inotify_watches() == before


@needs_inotify
def test_ignored_changes_are_dropped_and_real_ones_reported(tmp_path: Path) -> None:
    tmp_path = make_tree(tmp_path)
    log = tmp_path / "out.log"
    with Watcher(tmp_path, ignore=["/skipme/", "*.bak"], ignore_paths=[log]) as watcher:
        (tmp_path / "node_modules" / "p1" / "x.js").write_text("1")
        (tmp_path / ".git" / "HEAD").write_text("ref")
        (tmp_path / "generated" / "g.py").write_text("1")
        (tmp_path / "skipme" / "s.py").write_text("1")
        (tmp_path / "note.tmp").write_text("1")
        (tmp_path / "src" / "old.bak").write_text("1")
        (tmp_path / ".app.py.swp").write_text("1")
        log.write_text("a line\n")
        (tmp_path / "src" / "pkg" / "mod.py").write_text("x = 2\n")
        seen = collect(watcher, lambda s: "src/pkg/mod.py" in s)
    assert set(seen) == {"src/pkg/mod.py"}


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
def test_nested_gitignore_is_honoured(tmp_path: Path) -> None:
    tmp_path = tmp_path / "tree"
    (tmp_path / "web" / "cache").mkdir(parents=True)
    (tmp_path / "web" / ".gitignore").write_text("cache/\n*.gen.js\n")
    with Watcher(tmp_path) as watcher:
        assert watcher.watched() == ["", "web"]
        (tmp_path / "web" / "a.gen.js").write_text("1")
        (tmp_path / "a.gen.js").write_text("1")  # the rule lives in web/ only
        assert set(collect(watcher, lambda s: "a.gen.js" in s)) == {"a.gen.js"}


@needs_inotify
def test_removing_the_watched_directory_is_reported(tmp_path: Path) -> None:
    root = make_tree(tmp_path)
    with Watcher(root) as watcher:
        shutil.rmtree(root)
        with pytest.raises(WatchError, match="was removed"):
            collect(watcher, lambda s: False, timeout=10)


def test_observer_backend_filters_the_same_way(tmp_path: Path) -> None:
    tmp_path = make_tree(tmp_path)
    with Watcher(tmp_path, backend="observer") as watcher:
        (tmp_path / "node_modules" / "p1" / "x.js").write_text("1")
        (tmp_path / "generated" / "g.py").write_text("1")
        (tmp_path / "src" / "pkg" / "new.py").write_text("1")
        seen = collect(watcher, lambda s: "src/pkg/new.py" in s)
    assert set(seen) == {"src/pkg/new.py"}


def test_missing_directory_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        Watcher(tmp_path / "nope")
