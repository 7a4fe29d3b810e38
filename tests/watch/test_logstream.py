"""bgr.watch.logstream: ``bgr --watch --logs`` streams the logs across restarts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.support import Watch, child_command, needs_inotify


@needs_inotify
def test_logs_stream_across_restarts(tmp_path: Path, watching: Callable[..., Watch]) -> None:
    app = tmp_path / "app"
    app.mkdir()
    w = watching(
        "--name", "talky", "-d", str(app), "-c", child_command(tmp_path),
        "--watch", "--debounce", "50", "--logs", "--log-stdout", cwd=app,
    )  # fmt: skip
    w.wait_for(r"^hello 1$")
    (app / "edit.py").write_text("1")
    w.wait_for(r"^restarted talky")
    w.wait_for(r"^hello 2$")
    assert w.interrupt() == 0
    # A second watch shows the tail of the current log first (--lines), then streams.
    w2 = watching("talky", "--watch", "--logs", "--lines", "1", cwd=app)
    w2.wait_for(r"^\[stdout\] hello 3$")
    before_start = w2.lines.index(w2.matching(r"^restarted talky")[0])
    assert "[stdout] hello 2" in w2.lines[:before_start]
    assert w2.interrupt() == 0
