"""guard.hooks: real hook commands, their environment, their bounds."""

from __future__ import annotations

import time
from pathlib import Path

from guard.hooks import Hooks
from tests.support import alive, read, wait_for


def test_a_hook_gets_the_event_in_its_environment_and_returns_at_once(tmp_path: Path) -> None:
    out = tmp_path / "out"
    hooks = Hooks(on_event=f'echo "all $BGR_EVENT $BGR_NAME $BGR_EXIT_CODE $BGR_REASON" >> {out}')
    began = time.monotonic()
    started = hooks.fire(
        "crashed",
        "web",
        exit_code=3,
        reason="exit code 3 after 12.0s",
        on_failure=f"sleep 0.3; echo mine >> {out}",
    )
    assert time.monotonic() - began < 0.2  # never waits for the hook
    assert len(started) == 2
    wait_for(lambda: hooks.running() == 0, what="the hooks to finish")
    assert sorted(read(out).splitlines()) == ["all crashed web 3 exit code 3 after 12.0s", "mine"]
    hooks.fire("unhealthy", "api", exit_code=None, reason="HTTP 500", on_failure=None)
    wait_for(lambda: "api" in read(out), what="the second hook")
    assert "all unhealthy api  HTTP 500" in read(out)
    hooks.close()


def test_one_hook_at_a_time_per_process_and_the_latest_event_waits(tmp_path: Path) -> None:
    out = tmp_path / "out"
    hooks = Hooks()
    slow = f'echo "$BGR_EVENT" >> {out}; sleep 0.5'
    assert hooks.fire("crashed", "web", exit_code=1, reason="", on_failure=slow) == [slow]
    # While it runs: the next events wait, and only the latest of them is run after it.
    assert hooks.fire("unhealthy", "web", exit_code=None, reason="", on_failure=slow) == []
    assert hooks.fire("fatal", "web", exit_code=None, reason="", on_failure=slow) == []
    assert hooks.fire("crashed", "api", exit_code=1, reason="", on_failure=slow) == [slow]  # another process

    # The guard's one-second tick collects finished hooks, which starts the one that waited.
    def fatal_told() -> bool:
        hooks.collect()
        return read(out).count("fatal") == 1

    wait_for(fatal_told, what="the waiting event's hook")
    wait_for(lambda: hooks.running() == 0, what="the hooks to finish")
    assert sorted(read(out).split()) == ["crashed", "crashed", "fatal"]
    assert hooks.fire("crashed", "web", exit_code=1, reason="", on_failure=slow) == [slow]
    hooks.close()


def test_a_hook_past_its_time_is_killed_with_what_it_started(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    hooks = Hooks(timeout=0.3)
    hooks.fire("fatal", "web", exit_code=None, reason="", on_failure=f"sleep 60 & echo $! > {pids}; sleep 60")
    background = int(wait_for(lambda: read(pids).strip(), what="the pid"))
    wait_for(lambda: hooks.running() == 0, what="the hook killed")
    wait_for(lambda: not alive(background), what="what the hook started killed too")


def test_a_hook_that_cannot_start_is_logged_not_raised(tmp_path: Path) -> None:
    hooks = Hooks()
    assert hooks.fire("crashed", "web", exit_code=1, reason="", on_failure="exit 5") == ["exit 5"]
    wait_for(lambda: hooks.running() == 0, what="the hook")
    hooks.close()
