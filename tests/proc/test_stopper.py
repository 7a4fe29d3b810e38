"""bgr.proc.stopper against real processes: only our own processes are signalled, stubborn ones are killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid

from bgr.models import Identity
from bgr.proc import host, identity, stopper
from tests.support import SLEEP, process, readline

IGNORE_TERM = [
    sys.executable,
    "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); "
    "time.sleep(120)",
]


def test_collect_targets_never_includes_a_stranger_but_finds_marked_escapees() -> None:
    instance = uuid.uuid4().hex
    env = dict(os.environ)
    with (
        process(SLEEP, env=env, stdout=subprocess.PIPE, start_new_session=True) as stranger,
        process(
            SLEEP, env={**env, "BGR_INSTANCE": instance}, stdout=subprocess.PIPE, start_new_session=True
        ) as escapee,
    ):
        readline(stranger)
        readline(escapee)
        # A stale row: the stranger's pid and group, a start token that is not the stranger's.
        target = stopper.collect_targets(
            Identity(stranger.pid, stranger.pid, "bogus:1", instance), identity.scan()
        )
        assert target.members == ()
        assert target.pgid is None
        seen = identity.scan([instance])
        target = stopper.collect_targets(Identity(stranger.pid, stranger.pid, "bogus:1", instance), seen)
        assert [m.pid for m in target.members] == [escapee.pid]
        stopper.stop_targets([target], grace=2)
        assert escapee.wait(timeout=5) == -signal.SIGTERM
        assert stranger.poll() is None


def test_stop_targets_kills_what_ignores_sigterm_after_the_grace_period() -> None:
    with (
        process(IGNORE_TERM, stdout=subprocess.PIPE, start_new_session=True) as stubborn,
        process(SLEEP, stdout=subprocess.PIPE, start_new_session=True) as polite,
    ):
        readline(stubborn)
        readline(polite)
        targets = [
            stopper.StopTarget(p.pid, (stopper.Target(p.pid, host.start_token(p.pid) or ""),))
            for p in (stubborn, polite)
        ]
        killed, leftover = stopper.stop_targets(targets, grace=0.3)
        assert killed == {0}
        assert leftover == {}
        assert stubborn.wait(timeout=5) == -signal.SIGKILL
        assert polite.wait(timeout=5) == -signal.SIGTERM
