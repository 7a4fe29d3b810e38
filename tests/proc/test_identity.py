"""bgr.proc.identity against real processes: zombies, markers, group liveness."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid

import pytest

from bgr.models import Identity
from bgr.proc import cgroups, host, identity
from tests.support import SLEEP, alive, proc_state, process, readline, wait_for

needs_cgroups = pytest.mark.skipif(
    cgroups.base() is None, reason="bgr makes no cgroups here (BGR_CGROUP=off, or no writable cgroup v2 tree)"
)


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


@needs_cgroups
def test_an_empty_cgroup_means_the_instance_is_gone_without_a_pass_over_proc(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = cgroups.create("test-registry", "web", uuid.uuid4().hex)
    assert path is not None
    instance = uuid.uuid4().hex
    env = {**os.environ, "BGR_INSTANCE": instance}
    try:
        script = f'echo 0 > "{path}/cgroup.procs"; sleep 60 & echo $!'
        with process(
            ["/bin/sh", "-c", script], env=env, stdout=subprocess.PIPE, start_new_session=True
        ) as sh:
            token = host.start_token(sh.pid)
            child = int(readline(sh))
            sh.wait()
            found = Identity(sh.pid, sh.pid, token, instance, (), path)
            assert identity.instance_alive(found)  # the leader is gone, its child lives in the cgroup
            os.kill(child, signal.SIGKILL)
            wait_for(lambda: not cgroups.populated(path), what="an empty cgroup")
            monkeypatch.setattr(host, "group_marked", lambda pgid, marker: pytest.fail("scanned /proc"))
            assert not identity.instance_alive(found)
    finally:
        cgroups.kill(path)
        wait_for(lambda: not cgroups.populated(path), what="empty")
        cgroups.remove_name("test-registry", "web")
        cgroups.remove(cgroups.registry_dir("test-registry"))
