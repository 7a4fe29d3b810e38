"""bgr.proc.identity against real processes: identity, zombies, markers, group liveness, figures."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from pathlib import Path

from bgr.models import Identity
from bgr.proc import host, identity, procfs
from tests.support import SLEEP, alive, proc_state, process, readline, wait_for


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


def test_read_stat_copes_with_spaces_and_parentheses_in_the_command_name(tmp_path: Path) -> None:
    odd = tmp_path / "x) y (z"
    odd.symlink_to("/bin/sleep")
    with process([str(odd), "60"]) as child:
        stat = wait_for(lambda: procfs.read_stat(child.pid), what="stat")
        assert stat.ppid == os.getpid()
        assert stat.pgid == os.getpgid(child.pid)
        assert not stat.dead


def test_a_zombie_counts_as_dead() -> None:
    with process(SLEEP, stdout=subprocess.PIPE, start_new_session=True) as child:
        token = host.start_token(child.pid)
        readline(child)
        os.kill(child.pid, signal.SIGKILL)
        # Not reaped: the process table entry stays, as a zombie.
        wait_for(lambda: proc_state(child.pid) == "Z", what="zombie")
        assert not host.is_alive(child.pid, token)
        assert not identity.instance_alive(Identity(child.pid, child.pid, token, "whatever"))


def test_marked_pids_finds_exactly_the_processes_carrying_the_marker() -> None:
    ours, theirs = uuid.uuid4().hex, uuid.uuid4().hex
    env = dict(os.environ)
    with (
        process(SLEEP, env={**env, "BGR_INSTANCE": ours}, stdout=subprocess.PIPE) as a,
        process(SLEEP, env={**env, "BGR_INSTANCE": theirs}, stdout=subprocess.PIPE) as b,
        process(SLEEP, env=env, stdout=subprocess.PIPE) as c,
    ):
        for p in (a, b, c):
            readline(p)
        found = identity.marked_pids([ours])
        assert found == {ours: [a.pid]}
        assert identity.marked_pids([]) == {}


def test_instance_alive_follows_the_group_after_the_leader_died() -> None:
    """dash forks the command: the recorded pid may die while the real program runs on."""
    instance = uuid.uuid4().hex
    env = {**os.environ, "BGR_INSTANCE": instance}
    with process(
        ["/bin/sh", "-c", "sleep 60 & echo $!"], env=env, stdout=subprocess.PIPE, start_new_session=True
    ) as leader:
        token = host.start_token(leader.pid)
        orphan = int(readline(leader))
        leader.wait()
        try:
            assert not host.is_alive(leader.pid, token)
            assert identity.instance_alive(Identity(leader.pid, leader.pid, token, instance))
            # The same group seen through another instance's row: a stranger, not ours.
            assert not identity.instance_alive(Identity(leader.pid, leader.pid, token, uuid.uuid4().hex))
        finally:
            os.kill(orphan, signal.SIGKILL)
        wait_for(lambda: not alive(orphan), what="orphan gone")
        assert not identity.instance_alive(Identity(leader.pid, leader.pid, token, instance))


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
