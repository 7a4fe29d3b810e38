"""bgr.watch.watcher: changed paths minus ignored ones, with either backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from bgr.errors import UsageError
from bgr.watch.watcher import Watcher
from tests.support import collect, make_tree, needs_inotify


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
def test_nested_gitignore_is_honoured(tmp_path: Path) -> None:
    tmp_path = tmp_path / "tree"
    (tmp_path / "web" / "cache").mkdir(parents=True)
    (tmp_path / "web" / ".gitignore").write_text("cache/\n*.gen.js\n")
    with Watcher(tmp_path) as watcher:
        assert watcher.watched() == ["", "web"]
        (tmp_path / "web" / "a.gen.js").write_text("1")
        (tmp_path / "a.gen.js").write_text("1")  # the rule lives in web/ only
        assert set(collect(watcher, lambda s: "a.gen.js" in s)) == {"a.gen.js"}


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
