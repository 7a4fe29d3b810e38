"""bgr.proc.host against real processes: start tokens pin a pid; group figures sum the group."""

from __future__ import annotations

import os
import signal
import subprocess

from bgr.proc import host, procfs
from tests.support import SLEEP, process, readline, wait_for


def test_start_token_pins_one_process() -> None:
    me = host.start_token(os.getpid())
    assert me is not None and me == host.start_token(os.getpid())
    with process(SLEEP, stdout=subprocess.PIPE) as child:
        token = host.start_token(child.pid)
        assert token is not None and token != me
        assert host.is_alive(child.pid, token)
        assert not host.is_alive(child.pid, "bogus:1")
        assert not host.is_alive(child.pid, None)
        assert not host.is_alive(None, token)
        child.kill()
        child.wait()
        assert not host.is_alive(child.pid, token)
        assert host.start_token(child.pid) is None


def test_group_usage_sums_the_whole_group() -> None:
    with process(
        ["/bin/sh", "-c", "sleep 60 & sleep 60 & echo ready; wait"],
        stdout=subprocess.PIPE,
        start_new_session=True,
    ) as group:
        readline(group)
        single = procfs.read_stat(group.pid)
        assert single is not None
        alone = single.rss_pages * os.sysconf("SC_PAGE_SIZE")
        # The two sleeps may still be between fork and exec: wait until they count too.
        wait_for(lambda: host.group_usage([group.pid])[group.pid][0] > alone > 0, what="sum")
        assert host.group_usage([group.pid])[group.pid][1] >= 0
        assert host.group_usage([]) == {}
        os.killpg(group.pid, signal.SIGKILL)
