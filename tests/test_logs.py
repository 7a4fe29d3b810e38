"""bgr.logfiles on real files: tail, follow, backups, rotation under a live writer."""

from __future__ import annotations

import fcntl
import functools
import itertools
import os
import queue
import re
import shutil
import stat
import subprocess
import sys
import threading
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bgr import home, logfiles
from bgr.errors import BgrError, InvalidName, UsageError

# A fixed local time for backup names: 2026-11-26 10:15:03.
NOON = time.mktime((2026, 11, 26, 10, 15, 3, 0, 0, -1))
STAMP = "2026-11-26T10-15-03"


def fixed_clock() -> float:
    return NOON


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def append(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def numbered(start: int, stop: int) -> bytes:
    return b"".join(b"%09d\n" % i for i in range(start, stop))


# --- parse_size -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("100", 100),
        ("100b", 100),
        ("512K", 512 * 1024),
        ("10M", 10 * 1024**2),
        ("10mb", 10 * 1024**2),
        ("10MiB", 10 * 1024**2),
        ("1G", 1024**3),
        ("1.5M", 1536 * 1024),
        (" 2 k ", 2048),
        (".5K", 512),
        ("0", 0),
    ],
)
def test_parse_size_accepts(text: str, expected: int) -> None:
    assert logfiles.parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "M", "ten", "-1M", "10X", "10iB", "1e3", "1.2.3K", "10 M B"])
def test_parse_size_rejects_with_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="invalid size"):
        logfiles.parse_size(text)


# --- tail -------------------------------------------------------------------------------------


def read_tail(path: Path, lines: int | None) -> str:
    return "".join(logfiles.tail(path, lines))


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
    assert list(logfiles.tail(tmp_path / "nope.txt", 10)) == []
    assert list(logfiles.tail(tmp_path / "nope.txt", None)) == []


def test_tail_rejects_negative_count(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        list(logfiles.tail(tmp_path / "x.txt", -1))


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
    chunks = list(logfiles.tail(path, None))
    assert len(chunks) > 1
    assert max(len(chunk) for chunk in chunks) <= logfiles.CHUNK
    assert "".join(chunks) == path.read_text()


def test_tail_survives_invalid_utf8_and_nul(tmp_path: Path) -> None:
    path = tmp_path / "bin.txt"
    path.write_bytes(b"first\n\xff\xfe bad\n\x00\x00nul\n\xc3")
    assert read_tail(path, 3) == "\ufffd\ufffd bad\n\x00\x00nul\n\ufffd"
    assert read_tail(path, None).startswith("first\n")


def test_tail_decodes_a_character_split_across_chunks(tmp_path: Path) -> None:
    path = tmp_path / "utf8.txt"
    path.write_bytes(b"x" * (logfiles.CHUNK - 1) + "é→\n".encode())
    assert read_tail(path, None) == "x" * (logfiles.CHUNK - 1) + "é→\n"


# --- follow -----------------------------------------------------------------------------------


class Follower:
    """Runs logfiles.follow in a thread and collects what it yields."""

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
        stream = logfiles.follow(paths, self.stop, poll_interval, start=start)
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
    assert "".join(logfiles.tail(path, 2, end=end)) == "b\nc\n"
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
    if not logfiles.collapse_supported(tmp_path):
        pytest.skip("filesystem cannot collapse ranges")
    # A slow poll: the rotation and the next appends most likely land while the follower sleeps,
    # so it sees a file that shrank and then grew past its old position.
    with Follower([("svc", path)], poll_interval=0.3) as f:
        append(path, numbered(100, 3000))
        f.wait_text(numbered(100, 3000).decode())
        result = logfiles.rotate_live(path, "svc", "out", 1000)
        assert result is not None and result.method == "collapse"
        append(path, numbered(3000, 9000))
        f.wait_text(numbered(100, 9000).decode())
        result = logfiles.rotate_live(path, "svc", "out", 1000)
        assert result is not None and result.method == "collapse"
        append(path, numbered(9000, 9100))
        f.wait_text(numbered(100, 9100).decode())


# --- move_to_backup ---------------------------------------------------------------------------


def test_move_to_backup_names_moves_and_sets_mode(tmp_path: Path) -> None:
    log = tmp_path / "web-out.txt"
    log.write_bytes(b"hello\n")
    log.chmod(0o644)
    backup = logfiles.move_to_backup(log, "web", "out", clock=fixed_clock)
    assert backup == home.backup_dir() / f"web-out-{STAMP}.txt"
    assert backup.read_bytes() == b"hello\n"
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert not log.exists()


def test_move_to_backup_adds_a_counter_on_collision(tmp_path: Path) -> None:
    log = tmp_path / "web-err.txt"
    made = []
    for i in range(3):
        log.write_bytes(b"run %d\n" % i)
        made.append(logfiles.move_to_backup(log, "web", "err", clock=fixed_clock))
    names = [p.name for p in made if p is not None]
    assert names == [f"web-err-{STAMP}.txt", f"web-err-{STAMP}-1.txt", f"web-err-{STAMP}-2.txt"]
    assert [p.read_bytes() for p in logfiles.backups("web", "err")] == [b"run 0\n", b"run 1\n", b"run 2\n"]


def test_move_to_backup_ignores_missing_and_empty_files(tmp_path: Path) -> None:
    assert logfiles.move_to_backup(tmp_path / "missing.txt", "web", "out") is None
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    assert logfiles.move_to_backup(empty, "web", "out") is None
    assert empty.exists()
    assert logfiles.move_to_backup(Path(os.devnull), "web", "out") is None
    assert logfiles.backups("web", "out") == []


def test_move_to_backup_prunes_oldest_beyond_keep(tmp_path: Path) -> None:
    log = tmp_path / "api-out.txt"
    for day in range(1, 6):
        log.write_bytes(b"day %d\n" % day)
        stamp = time.mktime((2026, 1, day, 12, 0, 0, 0, 0, -1))
        logfiles.move_to_backup(log, "api", "out", keep=2, clock=functools.partial(float, stamp))
    kept = logfiles.backups("api", "out")
    assert [p.read_bytes() for p in kept] == [b"day 4\n", b"day 5\n"]


def test_backups_do_not_mix_names_that_share_a_prefix(tmp_path: Path) -> None:
    log = tmp_path / "x.txt"
    for name in ("web", "web-out", "web2"):
        log.write_bytes(name.encode())
        logfiles.move_to_backup(log, name, "out", clock=fixed_clock)
    assert [p.read_bytes() for p in logfiles.backups("web", "out")] == [b"web"]
    assert [p.read_bytes() for p in logfiles.backups("web-out", "out")] == [b"web-out"]
    removed = logfiles.prune_backups("web", "out", 0)
    assert [p.name for p in removed] == [f"web-out-{STAMP}.txt"]
    assert len(logfiles.backups("web-out", "out")) == 1


def test_backup_names_are_validated(tmp_path: Path) -> None:
    log = tmp_path / "x.txt"
    log.write_bytes(b"x\n")
    with pytest.raises(InvalidName):
        logfiles.move_to_backup(log, "../evil", "out")
    with pytest.raises(ValueError, match="stream"):
        logfiles.move_to_backup(log, "web", "both")
    assert log.exists()


@pytest.fixture
def other_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A directory on a filesystem other than tmp_path's (tmpfs /dev/shm), removed afterwards."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second filesystem available")
    directory = shm / f"bgr-test-{uuid.uuid4().hex}"
    directory.mkdir(mode=0o700)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_move_to_backup_across_filesystems_copies_then_unlinks(other_filesystem: Path) -> None:
    log = other_filesystem / "web-out.txt"
    content = os.urandom(3 * 1024 * 1024 + 17)
    log.write_bytes(content)
    backup = logfiles.move_to_backup(log, "web", "out")
    assert backup is not None
    assert backup.read_bytes() == content
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert not log.exists()


# --- rotate_live ------------------------------------------------------------------------------


def test_rotate_live_leaves_small_or_missing_files_alone(tmp_path: Path) -> None:
    assert logfiles.rotate_live(tmp_path / "missing.txt", "w", "out", 10) is None
    log = tmp_path / "w-out.txt"
    log.write_bytes(b"x" * 100)
    assert logfiles.rotate_live(log, "w", "out", 100) is None
    assert log.read_bytes() == b"x" * 100
    assert logfiles.backups("w", "out") == []


def test_rotate_live_under_one_block_falls_back_to_truncate(tmp_path: Path) -> None:
    log = tmp_path / "w-out.txt"
    log.write_bytes(b"line\n" * 100)
    result = logfiles.rotate_live(log, "w", "out", 100, clock=fixed_clock)
    assert result == logfiles.RotationResult(home.backup_dir() / f"w-out-{STAMP}.txt", 500, "truncate")
    assert result.backup.read_bytes() == b"line\n" * 100
    assert stat.S_IMODE(result.backup.stat().st_mode) == 0o600
    assert log.read_bytes() == b""
    log.write_bytes(b"line\n" * 100)
    with pytest.raises(BgrError, match="cannot rotate"):
        logfiles.rotate_live(log, "w", "out", 100, method="collapse")
    assert log.read_bytes() == b"line\n" * 100
    assert len(logfiles.backups("w", "out")) == 1  # the failed attempt left no backup behind


def test_rotate_live_collapses_a_block_aligned_head(tmp_path: Path) -> None:
    if not logfiles.collapse_supported(tmp_path):
        pytest.skip("filesystem cannot collapse ranges")
    log = tmp_path / "w-out.txt"
    content = numbered(0, 5000)  # 50,000 bytes
    log.write_bytes(content)
    result = logfiles.rotate_live(log, "w", "out", 10_000)
    assert result is not None and result.method == "collapse"
    block = os.stat(log).st_blksize
    assert result.bytes_moved % block == 0
    assert 0 < len(content) - result.bytes_moved <= block
    assert result.backup.read_bytes() + log.read_bytes() == content


def test_rotate_live_falls_back_where_the_filesystem_refuses(other_filesystem: Path) -> None:
    log = other_filesystem / "w-out.txt"  # tmpfs: no FALLOC_FL_COLLAPSE_RANGE
    content = numbered(0, 5000)
    log.write_bytes(content)
    if logfiles.collapse_supported(other_filesystem):
        pytest.skip("this tmpfs can collapse ranges")
    result = logfiles.rotate_live(log, "w", "out", 10_000)
    assert result is not None and result.method == "truncate"
    assert result.backup.read_bytes() == content
    assert log.read_bytes() == b""


def test_rotate_live_prunes_to_keep(tmp_path: Path) -> None:
    log = tmp_path / "w-err.txt"
    for i in range(5):
        log.write_bytes(b"%d\n" % i * 10)
        assert logfiles.rotate_live(log, "w", "err", 5, keep=3, clock=fixed_clock) is not None
    assert [p.read_bytes()[:2] for p in logfiles.backups("w", "err")] == [b"2\n", b"3\n", b"4\n"]


def test_rotate_live_skips_a_file_another_rotation_holds(tmp_path: Path) -> None:
    log = tmp_path / "w-out.txt"
    log.write_bytes(b"x\n" * 1000)
    with log.open("rb") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)
        assert logfiles.rotate_live(log, "w", "out", 10) is None
    assert logfiles.rotate_live(log, "w", "out", 10) is not None


WRITER = r"""
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
i = 0
while i < 5_000_000:
    os.write(fd, b"%09d\n" % i)
    i += 1
    if i % 1000 == 0 and i >= 200_000 and os.path.exists(sys.argv[2]):
        break
"""
RECORD = re.compile(rb"\d{9}")


def rotate_under_load(tmp_path: Path, method: str) -> tuple[bytes, int]:
    """Rotate every 64 KiB while a writer appends 200k+ lines flat out; return (stream, rotations)."""
    log = tmp_path / "load-out.txt"
    stop_file = tmp_path / "writer.stop"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(log), str(stop_file)])
    rotations = 0
    try:
        deadline = time.monotonic() + 40
        while writer.poll() is None:
            assert time.monotonic() < deadline, "writer did not finish"
            result = logfiles.rotate_live(log, "load", "out", 64 * 1024, keep=10_000, method=method)  # type: ignore[arg-type]
            if result is None:
                time.sleep(0.001)
                continue
            assert result.method == method
            rotations += 1
            if rotations >= 25:
                stop_file.touch()
    finally:
        if writer.poll() is None:
            writer.kill()
        writer.wait(10)
    assert writer.returncode == 0
    stream = b"".join(p.read_bytes() for p in logfiles.backups("load", "out")) + log.read_bytes()
    return stream, rotations


def test_collapse_rotation_under_a_live_writer_loses_nothing(tmp_path: Path) -> None:
    if not logfiles.collapse_supported(tmp_path):
        pytest.skip("filesystem cannot collapse ranges")
    stream, rotations = rotate_under_load(tmp_path, "collapse")
    assert rotations >= 20
    assert b"\0" not in stream
    count = len(stream) // 10
    assert count >= 200_000
    assert stream == numbered(0, count)  # every line once, in order, nothing else
    print(f"\ncollapse: {rotations} rotations, {count} lines, 0 lost, 0 duplicated")


def test_truncate_rotation_under_a_live_writer_never_duplicates(tmp_path: Path) -> None:
    stream, rotations = rotate_under_load(tmp_path, "truncate")
    assert rotations >= 20
    assert b"\0" not in stream
    lines = stream.split(b"\n")
    assert lines[-1] == b""
    numbers = [int(line) for line in lines[:-1] if RECORD.fullmatch(line)]
    damaged = sum(1 for line in lines[:-1] if not RECORD.fullmatch(line))
    # Each cut can lose the bytes written during its tiny window, gluing at most one fragment
    # to the next line; nothing is ever repeated or reordered.
    assert damaged <= rotations
    assert all(a < b for a, b in itertools.pairwise(numbers))
    assert numbers[0] == 0 and numbers[-1] >= 200_000 - 1
    lost = numbers[-1] + 1 - len(numbers)
    print(f"\ntruncate: {rotations} rotations, {numbers[-1] + 1} lines, {lost} lost, {damaged} damaged")
