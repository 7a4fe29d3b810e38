"""bgr.proc.identity against real processes: zombies, markers, group liveness."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid

from bgr.models import Identity
from bgr.proc import host, identity
from tests.support import SLEEP, alive, proc_state, process, readline, wait_for


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
