"""bgr.core.scheduled: what the guard writes for --cron and --restart-at, and with which locks."""

from __future__ import annotations

import threading
import time

import pytest

from bgr import store
from bgr.core import scheduled
from bgr.proc.locks import name_lock
from tests.support import main


def test_the_next_run_noted_during_a_launch_is_not_lost_to_the_launch_s_own_write(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A launch (a scheduled run, a restart) rewrites the whole row from what it read under the
    # name's lock. The guard notes the next time from another thread meanwhile; without the lock,
    # that note landed first and the launch's write put the old time back (seen as a NEXT stuck
    # in the past under load).
    assert main(capsys, "--name", "job", "--command", "true", "--cron", "* * * * *")[0] == 0
    with store.open_registry() as reg:
        before = reg.require("job")
        noted = threading.Thread(target=scheduled.set_next_run, args=("job", 4_102_444_800.0))
        with name_lock(reg.layout, "job"):
            noted.start()
            time.sleep(0.2)  # the note waits for the lock instead of writing now
            assert reg.require("job").schedule.get("next_run") == before.schedule.get("next_run")
            reg.put(before)  # what a launch writes: the row as read under the lock
        noted.join(10)
        assert not noted.is_alive()
        assert reg.require("job").schedule["next_run"] == 4_102_444_800.0
