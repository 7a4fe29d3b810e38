"""bgr.logfiles.reading on real files: tail, follow (across moves, truncation and rotation)."""

from __future__ import annotations

import os
import queue
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from bgr.errors import UsageError
from bgr.logfiles import reading, rotation
from tests.support import append, numbered, wait_for

# --- tail -------------------------------------------------------------------------------------


def read_tail(path: Path, lines: int | None) -> str:
    return "".join(reading.tail(path, lines))


@pytest.mark.parametrize(
    ("content", "lines", "expected"),
    [
        (b"a\nb\nc\n", 2, "b\nc\n"),
        (b"a\nb\nc", 2, "b\nc"),  # an unterminated last line counts
        (b"a\nb\nc", 1, "c"),
        (b"a\nb\nc\n", 1, "c\n"),
        (b"a\nb\nc\n", 3, "a\nb\nc\n"),
        (b"a\nb\nc\n", 10, "a\nb\nc\n"),
        (b"a\n\n\nb\n", 2, "\nb\n"),  # empty lines are lines
        (b"\n", 1, "\n"),
        (b"", 5, ""),
        (b"a\nb\n", None, "a\nb\n"),
        (b"a\nb\n", 0, ""),
    ],
)
def test_tail_returns_exactly_n_lines(
    tmp_path: Path, content: bytes, lines: int | None, expected: str
) -> None:
    path = tmp_path / "log.txt"
    path.write_bytes(content)
    assert read_tail(path, lines) == expected


def test_tail_of_missing_file_is_empty(tmp_path: Path) -> None:
    assert list(reading.tail(tmp_path / "nope.txt", 10)) == []
    assert list(reading.tail(tmp_path / "nope.txt", None)) == []


def test_tail_rejects_negative_count(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        list(reading.tail(tmp_path / "x.txt", -1))


def test_tail_of_big_file_reads_only_the_end(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    count = 600_000  # 6 MB
    with path.open("wb") as fh:
        for start in range(0, count, 100_000):
            fh.write(numbered(start, start + 100_000))
    tracemalloc.start()
    try:
        last3 = read_tail(path, 3)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert last3 == numbered(count - 3, count).decode()
    assert peak < 1024 * 1024, f"tail of 3 lines used {peak} bytes"
    # Many lines spanning several backward-scan blocks.
    assert read_tail(path, 20_000) == numbered(count - 20_000, count).decode()
    chunks = list(reading.tail(path, None))
    assert len(chunks) > 1
    assert max(len(chunk) for chunk in chunks) <= reading.CHUNK
    assert "".join(chunks) == path.read_text()


def test_tail_survives_invalid_utf8_and_nul(tmp_path: Path) -> None:
    path = tmp_path / "bin.txt"
    path.write_bytes(b"first\n\xff\xfe bad\n\x00\x00nul\n\xc3")
    assert read_tail(path, 3) == "\ufffd\ufffd bad\n\x00\x00nul\n\ufffd"
    assert read_tail(path, None).startswith("first\n")


def test_tail_decodes_a_character_split_across_chunks(tmp_path: Path) -> None:
    path = tmp_path / "utf8.txt"
    path.write_bytes(b"x" * (reading.CHUNK - 1) + "é→\n".encode())
    assert read_tail(path, None) == "x" * (reading.CHUNK - 1) + "é→\n"


# --- follow -----------------------------------------------------------------------------------


class Follower:
    """Runs reading.follow in a thread and collects what it yields."""

    def __init__(
        self,
        paths: list[tuple[str, Path]],
        poll_interval: float = 0.02,
        start: dict[str, int] | None = None,
    ) -> None:
        self.stop = threading.Event()
        self.items: queue.Queue[tuple[str, str]] = queue.Queue()
        self.seen: list[tuple[str, str]] = []
        self.error: BaseException | None = None
        # follow notes where each file ends right here, in the calling thread.
        stream = reading.follow(paths, self.stop, poll_interval, start=start)
        self.thread = threading.Thread(target=self._run, args=(stream,), daemon=True)

    def _run(self, stream: Iterator[tuple[str, str]]) -> None:
        try:
            for item in stream:
                self.items.put(item)
        except BaseException as exc:
            self.error = exc

    def __enter__(self) -> Follower:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)
        assert not self.thread.is_alive()
        assert self.error is None

    def drain(self) -> list[tuple[str, str]]:
        while True:
            try:
                self.seen.append(self.items.get_nowait())
            except queue.Empty:
                return self.seen

    def text(self, label: str | None = None) -> str:
        return "".join(t for lab, t in self.drain() if label is None or lab == label)

    def wait_text(self, expected: str, label: str | None = None, timeout: float = 10) -> None:
        wait_for(lambda: self.text(label) == expected or len(self.text(label)) > len(expected), timeout)
        assert self.text(label) == expected


def test_follow_yields_appended_lines_per_label_from_the_current_end(tmp_path: Path) -> None:
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    out.write_bytes(b"old line, not shown\n")
    with Follower([("out", out), ("err", err)]) as f:
        append(out, b"one\ntwo\n")
        append(err, b"created later\n")  # err didn't exist when following started
        f.wait_text("one\ntwo\n", "out")
        f.wait_text("created later\n", "err")
        assert ("out", "one\n") in f.seen and ("out", "two\n") in f.seen


def test_tail_up_to_an_offset_then_follow_from_it_misses_and_repeats_nothing(tmp_path: Path) -> None:
    path = tmp_path / "gap.txt"
    path.write_bytes(b"a\nb\nc\n")
    end = path.stat().st_size
    append(path, b"written between tail and follow\n")
    assert "".join(reading.tail(path, 2, end=end)) == "b\nc\n"
    with Follower([("g", path)], start={"g": end}) as f:
        append(path, b"later\n")
        f.wait_text("written between tail and follow\nlater\n")
        assert [t for _, t in f.seen] == ["written between tail and follow\n", "later\n"]


def test_follow_holds_a_partial_line_about_one_poll(tmp_path: Path) -> None:
    path = tmp_path / "p.txt"
    path.write_bytes(b"")
    with Follower([("p", path)], poll_interval=0.05) as f:
        append(path, b"abc\ndef")
        f.wait_text("abc\ndef")
        append(path, b"ghi\n")
        f.wait_text("abc\ndefghi\n")
        assert [t for _, t in f.seen] == ["abc\n", "def", "ghi\n"]


def test_follow_splits_only_on_newline_and_decodes_leniently(tmp_path: Path) -> None:
    path = tmp_path / "d.txt"
    path.write_bytes(b"")
    with Follower([("d", path)], poll_interval=0.05) as f:
        append(path, b"10%\r50%\r100%\x0cdone\n\xff\x00bin\ncaf\xc3")
        f.wait_text("10%\r50%\r100%\x0cdone\n\ufffd\x00bin\ncaf")  # the half "é" waits
        append(path, b"\xa9\n")
        f.wait_text("10%\r50%\r100%\x0cdone\n\ufffd\x00bin\ncaf\u00e9\n")
        assert [t for _, t in f.seen] == ["10%\r50%\r100%\x0cdone\n", "\ufffd\x00bin\n", "caf", "\u00e9\n"]


def test_follow_survives_truncation(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_bytes(b"before\n")
    with Follower([("t", path)]) as f:
        append(path, b"first line here\n")
        f.wait_text("first line here\n")
        os.truncate(path, 0)
        append(path, b"after\n")
        f.wait_text("first line here\nafter\n")


def test_follow_survives_replacement(tmp_path: Path) -> None:
    path = tmp_path / "r.txt"
    path.write_bytes(b"")
    with Follower([("r", path)]) as f:
        append(path, b"old 1\n")
        f.wait_text("old 1\n")
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        os.rename(path, tmp_path / "r.backup")
        os.write(fd, b"old 2, written after the move\n")  # the old writer's last words
        os.close(fd)
        append(path, b"new 1\n")
        f.wait_text("old 1\nold 2, written after the move\nnew 1\n")


def test_follow_continues_exactly_across_a_collapse_rotation(tmp_path: Path) -> None:
    path = tmp_path / "svc-out.txt"
    path.write_bytes(numbered(0, 100))
    if not rotation.collapse_supported(tmp_path):
        pytest.skip("filesystem cannot collapse ranges")
    # A slow poll: the rotation and the next appends most likely land while the follower sleeps,
    # so it sees a file that shrank and then grew past its old position.
    with Follower([("svc", path)], poll_interval=0.3) as f:
        append(path, numbered(100, 3000))
        f.wait_text(numbered(100, 3000).decode())
        result = rotation.rotate_live(path, "svc", "out", 1000)
        assert result is not None and result.method == "collapse"
        append(path, numbered(3000, 9000))
        f.wait_text(numbered(100, 9000).decode())
        result = rotation.rotate_live(path, "svc", "out", 1000)
        assert result is not None and result.method == "collapse"
        append(path, numbered(9000, 9100))
        f.wait_text(numbered(100, 9100).decode())
