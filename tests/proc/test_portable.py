"""bgr.proc.portable (psutil, for systems without /proc) gives the answers bgr.proc.procfs gives.

psutil works on Linux too, so the fallback runs here against the same real processes as the
/proc reader; only what a platform cannot have (a boot id, a subreaper) differs by design.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator

import pytest

from bgr.proc import portable, procfs
from tests.support import process, readline, wait_for

MARKER = "BGR_TEST_PORTABLE"


@pytest.fixture
def group() -> Iterator[subprocess.Popen[str]]:
    """A session leader with two sleeping children, all carrying a marker in their environment."""
    script = "sleep 60 & sleep 60 & echo ready; wait"
    env = {**os.environ, MARKER: "yes"}
    with process(
        ["/bin/sh", "-c", script], stdout=subprocess.PIPE, start_new_session=True, env=env
    ) as leader:
        readline(leader)
        # The sleeps may still be between fork and exec (an empty environment): wait for both.
        wait_for(lambda: len(procfs.marked_pids([f"{MARKER}=yes"])[f"{MARKER}=yes"]) == 3, what="3 marked")
        try:
            yield leader
        finally:
            os.killpg(leader.pid, signal.SIGKILL)


def test_start_tokens_pin_a_process_and_outlive_nothing() -> None:
    with process(["sleep", "60"]) as child:
        token = portable.start_token(child.pid)
        assert token is not None and portable.is_alive(child.pid, token)
        assert not portable.is_alive(child.pid, "0.00") and not portable.is_alive(None, token)
        assert not portable.send_signal(child.pid, "0.00", signal.SIGTERM)  # not the pinned process
        assert child.poll() is None
        assert portable.send_signal(child.pid, token, signal.SIGTERM)
        child.wait(timeout=10)
        assert not portable.is_alive(child.pid, token) and portable.start_token(child.pid) is None
        assert not portable.send_signal(child.pid, token, signal.SIGTERM)


def test_the_group_queries_agree_with_procfs(group: subprocess.Popen[str]) -> None:
    pgid = group.pid
    assert portable.pgid_of(pgid) == procfs.pgid_of(pgid) == pgid
    assert sorted(portable.group_members(pgid)) == sorted(procfs.group_members(pgid))
    assert len(portable.group_members(pgid)) == 3
    assert sorted(portable.descendants(pgid)) == sorted(procfs.descendants(pgid))
    assert portable.alive_groups([pgid, 999_999_999]) == procfs.alive_groups([pgid, 999_999_999]) == {pgid}
    assert portable.alive_groups([]) == set()
    marker = f"{MARKER}=yes"
    assert sorted(portable.marked_pids([marker])[marker]) == sorted(procfs.marked_pids([marker])[marker])
    assert sorted(portable.group_marked(pgid, marker)) == sorted(procfs.group_marked(pgid, marker))
    assert portable.environ_value(pgid, MARKER) == procfs.environ_value(pgid, MARKER) == "yes"
    assert portable.environ_value(pgid, "BGR_NO_SUCH_KEY") is None
    assert not portable.environ_overwritten(pgid)
    cpu, running = portable.group_activity(pgid)
    assert cpu >= 0 and isinstance(running, bool)
    rss, seconds = portable.group_usage([pgid])[pgid]
    # Three idle processes: about the same sum either way (one missing would be a third off).
    assert rss > 0 and abs(rss - procfs.group_usage([pgid])[pgid][0]) <= rss // 5
    assert seconds >= 0 and portable.group_usage([]) == {}


def test_what_the_fallback_cannot_have_is_said_plainly() -> None:
    assert portable.boot_id() == ""
    assert portable.become_subreaper() is False
    assert portable.inherited_zombies() == []
    assert portable.pgid_of(999_999_999) is None and portable.start_token(999_999_999) is None
    assert portable.environ_value(999_999_999, "PATH") is None
    assert not portable.environ_overwritten(999_999_999)
