"""guard.watcher: exits noticed at once (pidfds) or by polling, for processes the guard did not start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from bgr.proc import host
from guard import watcher
from tests.support import wait_for


@pytest.fixture
def exits() -> Iterator[tuple[watcher.ExitWatcher, list[str]]]:
    seen: list[str] = []
    w = watcher.ExitWatcher(seen.append, poll_interval=0.01)
    w.start()
    try:
        yield w, seen
    finally:
        w.stop()


def sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "30"])


def token(pid: int) -> str:
    found = host.start_token(pid)
    assert found is not None
    return found


def test_watcher_reports_an_exit_of_a_process_it_did_not_start(
    exits: tuple[watcher.ExitWatcher, list[str]],
) -> None:
    w, seen = exits
    child = sleeper()
    try:
        w.watch("web", [(child.pid, token(child.pid))])
        assert w.watched() == {"web": [child.pid]}
        time.sleep(0.05)
        assert seen == []
        child.kill()
        wait_for(lambda: seen == ["web"], timeout=5.0)
        assert w.watched() == {}  # fired names are no longer watched
    finally:
        child.kill()
        child.wait()


def test_watcher_fires_at_once_for_a_dead_or_reused_pid(
    exits: tuple[watcher.ExitWatcher, list[str]],
) -> None:
    w, seen = exits
    child = sleeper()
    try:
        w.watch("reused", [(child.pid, "another-boot:123")])  # same pid, other process
        wait_for(lambda: seen == ["reused"], timeout=5.0)
    finally:
        child.kill()
        child.wait()
    w.watch("gone", [(child.pid, token(os.getpid()))])
    w.watch("nothing", [])
    wait_for(lambda: sorted(seen) == ["gone", "nothing", "reused"], timeout=5.0)


def test_watcher_forget_and_replace(exits: tuple[watcher.ExitWatcher, list[str]]) -> None:
    w, seen = exits
    first, second = sleeper(), sleeper()
    try:
        w.watch("a", [(first.pid, token(first.pid))])
        w.watch("a", [(second.pid, token(second.pid))])  # replaces the first
        first.kill()
        first.wait()
        time.sleep(0.1)
        assert seen == []
        w.forget("a")
        second.kill()
        second.wait()
        time.sleep(0.1)
        assert seen == []
    finally:
        for child in (first, second):
            child.kill()
            child.wait()


def test_watcher_polls_when_out_of_descriptors(
    exits: tuple[watcher.ExitWatcher, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    w, seen = exits
    monkeypatch.setattr(watcher, "_ensure_fd_room", lambda needed: False)
    child = sleeper()
    try:
        w.watch("web", [(child.pid, token(child.pid))])
        assert w._entries["web"][0].fd == -1
        assert not w.pinned("web")  # polled: the interval check still looks at it itself
        child.kill()
        wait_for(lambda: seen == ["web"], timeout=5.0)
    finally:
        child.kill()
        child.wait()


def test_watcher_wake_calls_back_and_is_usable_from_a_signal_handler() -> None:
    woken = threading.Event()
    w = watcher.ExitWatcher(lambda name: None, on_wake=woken.set)
    w.start()
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: w.wake())
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
        assert woken.wait(5)
    finally:
        signal.signal(signal.SIGUSR1, previous)
        w.stop()


def test_fd_limit_is_raised_only_when_needed() -> None:
    """In a child process: a low soft limit is raised towards the hard one when more is needed."""
    code = (
        "import resource\n"
        "from guard import watcher\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))\n"
        "assert watcher._ensure_fd_room(100)\n"
        "assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == 256\n"
        "assert watcher._ensure_fd_room(300)\n"
        "assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] > 300\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))\n"
        "assert not watcher._ensure_fd_room(300)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)


def test_watcher_keeps_deadlines_on_its_own_clock() -> None:
    due: list[tuple[str, float]] = []
    w = watcher.ExitWatcher(lambda name: None, on_due=lambda name: due.append((name, time.monotonic())))
    w.start()
    try:
        began = time.monotonic()
        w.after("late", 0.3)
        w.after("soon", 0.1)
        w.after("dropped", 0.05)
        w.cancel("dropped")
        w.after("moved", 0.05)
        w.after("moved", 0.2)  # replaces the earlier one
        assert set(w.pending()) == {"late", "soon", "moved"}
        wait_for(lambda: len(due) == 3, timeout=5.0)
        assert [name for name, _ in due] == ["soon", "moved", "late"]
        # Never early (lower bounds only: a busy machine may be late).
        for (name, at), delay in zip(due, (0.1, 0.2, 0.3), strict=True):
            assert at - began >= delay - 0.005, name
        time.sleep(0.1)
        assert len(due) == 3 and w.pending() == {}
    finally:
        w.stop()


def test_many_watched_processes_share_one_poll_registration(
    exits: tuple[watcher.ExitWatcher, list[str]],
) -> None:
    """Watching and forgetting keep the poll object in step: one exit among many fires once."""
    w, seen = exits
    children = [sleeper() for _ in range(20)]
    try:
        for i, child in enumerate(children):
            w.watch(f"p{i}", [(child.pid, token(child.pid))])
        w.forget("p3")
        wait_for(lambda: len(w._by_fd) == 19, timeout=5.0)
        children[3].kill()
        children[7].kill()
        wait_for(lambda: seen == ["p7"], timeout=5.0)
        time.sleep(0.1)
        assert seen == ["p7"]
        assert len(w._by_fd) == 18
    finally:
        for child in children:
            child.kill()
            child.wait()


def test_when_quiet_runs_once_in_the_watcher_thread_after_the_exits_that_were_due() -> None:
    seen: list[str] = []
    release = threading.Event()

    def on_exit(name: str) -> None:
        release.wait(10)  # the watcher is busy with exits until the test lets go
        seen.append(name)

    ran: list[tuple[str, str, list[str]]] = []
    w = watcher.ExitWatcher(on_exit)
    w.start()
    try:
        watch_dead(w, 3)
        # Dead before the callbacks are asked for: their exits come first, whatever the timing.
        w.when_quiet(lambda: ran.append(("first", threading.current_thread().name, list(seen))))
        w.when_quiet(lambda: ran.append(("second", threading.current_thread().name, list(seen))))
        release.set()
        wait_for(lambda: ran != [], timeout=5.0)
        time.sleep(3 * watcher.QUIET)
        assert ran == [("second", "bgr-guard-exits", ["p0", "p1", "p2"])]
    finally:
        release.set()
        w.stop()


def test_a_name_is_pinned_while_its_members_have_pidfds_and_the_watcher_thread_runs() -> None:
    w = watcher.ExitWatcher(lambda name: None)
    child = sleeper()
    stopped = False
    try:
        w.watch("web", [(child.pid, token(child.pid))])
        assert not w.pinned("web")  # nobody polls the pidfd yet
        w.start()
        assert w.pinned("web") and not w.pinned("other")
        w.stop()
        stopped = True
        assert not w.pinned("web")
    finally:
        if not stopped:
            w.stop()
        child.kill()
        child.wait()


def test_wait_calm_returns_once_the_watcher_has_handled_the_exits() -> None:
    entered, release = threading.Event(), threading.Event()

    def on_exit(name: str) -> None:
        entered.set()
        release.wait(10)

    w = watcher.ExitWatcher(on_exit)
    w.start()
    child = sleeper()
    try:
        w.wait_calm(5)  # calm: returns at once
        w.watch("web", [(child.pid, token(child.pid))])
        child.kill()
        child.wait()
        assert entered.wait(5)
        waited: list[bool] = []

        def wait() -> None:
            w.wait_calm(10)
            waited.append(release.is_set())

        waiter = threading.Thread(target=wait)
        waiter.start()
        time.sleep(0.1)
        assert waited == []  # still waiting: the watcher is busy with the exit
        release.set()
        waiter.join(5)
        assert waited == [True]
    finally:
        release.set()
        w.stop()
        child.kill()
        child.wait()


def test_a_wake_up_that_finds_several_exits_announces_them_all_first() -> None:
    calls: list[object] = []
    w = watcher.ExitWatcher(calls.append, on_burst=lambda names: calls.append(list(names)))
    try:
        watch_dead(w, 3)
        w.start()  # all three are dead before the first poll: one wake-up finds them together
        wait_for(lambda: len(calls) == 4, timeout=5.0)
        assert calls == [["p0", "p1", "p2"], "p0", "p1", "p2"]
    finally:
        w.stop()


def watch_dead(w: watcher.ExitWatcher, count: int) -> None:
    """Watch ``count`` processes as p0, p1, ... and have them all dead (and reaped) on return."""
    children = [sleeper() for _ in range(count)]
    for i, child in enumerate(children):
        w.watch(f"p{i}", [(child.pid, token(child.pid))])
    for child in children:
        child.kill()
        child.wait()
