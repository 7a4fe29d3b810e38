"""The guard's health loop end to end (guard/scheduler.py wiring guard/health.py, guard/cron.py,
guard/hooks.py and the keeper): a real ``python -m guard`` probing real servers, restarting the
unhealthy under the restart policy, running ``--cron`` jobs and ``--restart-at`` restarts on its
wall clock (stepped by the test's clock library, for the guard alone), and running alert hooks.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

from tests.support import (
    FAST,
    ClockShift,
    Guard,
    events,
    health_server,
    kill_instance,
    managed,
    must,
    record_alive,
    restarted_since,
    run_bgr,
    start_cli,
    status,
    wait_for,
)

HOOK = 'env | grep "^BGR_" | sort > {file}'


def serve(tmp_path: Path, *extra: str) -> Path:
    """``web``: an HTTP server whose /health answers by the word in the returned file."""
    command, port, mode = health_server(tmp_path)
    url = f"http://127.0.0.1:{port}/health"
    start_cli("web", command, "--health", url, "--health-every", "1s", *extra)
    return mode


def kinds(name: str) -> list[str]:
    return [str(e["event"]) for e in must(name).events]


def hook_env(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines() if path.exists() else []
    return dict(line.partition("=")[::2] for line in lines)


def test_a_server_answering_500_is_restarted_fully_and_its_hooks_are_told(
    guard: Callable[..., Guard], tmp_path: Path
) -> None:
    own, every = tmp_path / "own-hook", tmp_path / "all-hook"
    mode = serve(tmp_path, "--health-retries", "2", "--on-failure", HOOK.format(file=own))
    g = guard("--all", "1", *FAST, "--on-event", HOOK.format(file=every))
    g.wait_log("web: guarded")
    old = must("web")
    mode.write_text("fail")
    wait_for(lambda: events("web", "restarted (health)"), what="a restart for its health")
    new = must("web")
    assert new.instance != old.instance and record_alive(new) and not record_alive(old)
    assert events("web", "unhealthy") == ["HTTP 500"]
    for hook in (own, every):
        wait_for(lambda hook=hook: hook_env(hook).get("BGR_EVENT"), what=f"{hook.name} run")  # type: ignore[misc]
        told = hook_env(hook)
        assert told["BGR_EVENT"] == "unhealthy" and told["BGR_NAME"] == "web"
        assert told["BGR_REASON"] == "HTTP 500" and told["BGR_EXIT_CODE"] == ""
    mode.write_text("ok")
    wait_for(lambda: must("web").health_state.get("state") == "healthy", what="healthy again")
    assert status("web") == "running" and len(managed("web")) == 1


def test_unhealthy_again_and_again_backs_off_then_goes_fatal(
    guard: Callable[..., Guard], tmp_path: Path
) -> None:
    every = tmp_path / "all-hook"
    mode = serve(tmp_path, "--health-retries", "1")
    time.sleep(1.2)  # a run of over a second: its first failure is restarted at once
    mode.write_text("fail")
    policy = ["--backoff-base", "0.2", "--backoff-max", "0.4", "--stable-after", "60", "--max-failures", "3"]
    guard("--all", "1", *policy, "--on-event", HOOK.format(file=every))
    wait_for(lambda: status("web") == "fatal", 60, "fatal")
    seen = kinds("web")
    # The first failure after a run of over a second is restarted at once, the next after a
    # backoff (stopped meanwhile), and the third quick failure in a row is fatal: stopped for good.
    assert seen.count("unhealthy") == 3
    assert "restarted (health)" in seen and "backoff" in seen and "restarted by guard" in seen
    assert seen.index("restarted (health)") < seen.index("backoff") < seen.index("fatal")
    assert must("web").desired.value == "running"
    wait_for(lambda: hook_env(every).get("BGR_EVENT") == "fatal", what="the fatal hook")
    assert "3 quick failures in a row" in hook_env(every)["BGR_REASON"]
    # Nothing of it runs (a hook carries BGR_NAME too: it may still be finishing).
    wait_for(lambda: managed("web") == [], what="nothing of web running")


def test_a_hanging_probe_never_delays_an_exit(guard: Callable[..., Guard], tmp_path: Path) -> None:
    mode = serve(tmp_path, "--health-timeout", "5s")
    g = guard("--all", "1", *FAST)
    g.wait_log("web: guarded")
    mode.write_text("hang")
    time.sleep(2.5)  # a probe is now waiting on the server, for up to 5 s
    old = kill_instance("web")
    wait_for(lambda: restarted_since("web", old), what="the restart")
    seen = kinds("web")
    assert "restarted by guard" in seen and "unhealthy" not in seen
    assert "web: restarted (pid" in g.text()


def test_a_crash_runs_both_hooks_with_its_exit_code(guard: Callable[..., Guard], tmp_path: Path) -> None:
    own, every = tmp_path / "own-hook", tmp_path / "all-hook"
    start_cli("w", "sleep 300", "--on-failure", HOOK.format(file=own))
    g = guard("--all", "1", *FAST, "--on-event", HOOK.format(file=every))
    g.wait_log("w: guarded")
    time.sleep(0.4)
    old = kill_instance("w")
    wait_for(lambda: restarted_since("w", old), what="the restart")
    time.sleep(0.4)
    old = kill_instance("w")  # the guard's own child now: it knows the signal
    wait_for(lambda: restarted_since("w", old), what="the second restart")
    wait_for(lambda: hook_env(own).get("BGR_EXIT_CODE") == "137", what="the hook with the exit code")
    told = hook_env(own)
    assert told["BGR_EVENT"] == "crashed" and told["BGR_NAME"] == "w"
    assert "SIGKILL" in told["BGR_REASON"]
    wait_for(lambda: hook_env(every).get("BGR_EVENT") == "crashed", what="the guard's hook")


# --------------------------------------------------------------------------------------------
# calendar schedules, on the guard's (stepped) wall clock


def seconds_before_a_minute(ahead: float) -> float:
    """The shift that puts the guard's wall clock ``ahead`` seconds before the next full minute."""
    now = time.time()
    target = math.ceil((now + ahead + 1) / 60) * 60 - ahead
    return target - now


def test_a_cron_job_runs_at_its_times_once_at_a_time_and_is_never_restarted(
    guard: Callable[..., Guard], tmp_path: Path, clock: ClockShift
) -> None:
    hook = tmp_path / "hook"
    job = "echo run; sleep 3; exit 4"
    done = run_bgr(
        "--name", "job", "--command", job, "--cron", "* * * * *", "--on-failure", HOOK.format(file=hook)
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert status("job") == "scheduled" and managed("job") == []
    shift = seconds_before_a_minute(2.0)
    clock.set(shift)
    g = guard("--all", "1", *FAST, env=clock.env())
    g.wait_log("job: scheduled run started")
    first = must("job")
    assert first.runs[-1]["took"] is None and managed("job")
    # The next minute comes while this run still goes: skipped, and booked as such.
    clock.set(shift + 60)
    wait_for(lambda: any(r.get("skipped") for r in must("job").runs), what="a skipped run")
    wait_for(lambda: events("job", "run failed"), 15, "the run's end")
    runs = must("job").runs
    finished = [r for r in runs if not r.get("skipped")]
    assert len(finished) == 1 and finished[0]["exit_code"] == 4 and 2.5 <= float(finished[0]["took"]) < 30
    failed = events("job", "run failed")[0]  # "exit code 4 after 3.0s": the run, not the skip
    assert failed.startswith("exit code 4 after") and float(failed.rpartition(" ")[2].rstrip("s")) >= 2.5
    assert "run\n" in Path(first.stdout).read_text()
    assert status("job") == "scheduled" and managed("job") == []
    assert "restarted by guard" not in kinds("job") and must("job").restarts == 0
    assert must("job").schedule.get("next_run") is not None
    wait_for(lambda: hook_env(hook).get("BGR_EXIT_CODE") == "4", what="the hook for the failed run")
    wait_for(lambda: managed("job") == [], what="the hook done")  # it runs as BGR_NAME=job too
    hook.unlink()
    # And at the next time, the next run.
    clock.set(shift + 120)
    wait_for(lambda: len([r for r in must("job").runs if not r.get("skipped")]) == 2, 15, "a second run")
    # Its end as the guard books it: the run is in the row before its processes exist (the launch
    # records it with its intent), so "no processes" alone can be seen before it even began. Then
    # its failure's hook, which runs after the booking.
    wait_for(lambda: [r for r in must("job").runs if not r.get("skipped")][-1]["took"] is not None, 15,
             "the second run's end booked")  # fmt: skip
    wait_for(lambda: hook_env(hook).get("BGR_EXIT_CODE") == "4", what="the hook for the second run")
    wait_for(lambda: managed("job") == [], what="the second run's hook done")
    # A time the clock jumps over (by four minutes here) is recorded as missed, not run late. The
    # step comes once the guard has armed the time after the second run (a loaded machine may
    # take a while to get there).
    second = float([r for r in must("job").runs if not r.get("skipped")][-1]["started"])
    wait_for(
        lambda: float(must("job").schedule.get("next_run") or 0) > second,
        15,
        lambda: f"the next time armed after {second}: {dict(must('job').schedule)}",
    )
    clock.set(shift + 120 + 240)
    wait_for(lambda: events("job", "schedule missed"), 15, "the missed time recorded")
    time.sleep(1)
    assert len([r for r in must("job").runs if not r.get("skipped")]) == 2 and managed("job") == []


def test_restart_at_restarts_a_running_process_and_leaves_a_stopped_one(
    guard: Callable[..., Guard], clock: ClockShift
) -> None:
    start_cli("web", "sleep 300", "--restart-at", "* * * * *")
    shift = seconds_before_a_minute(2.0)
    clock.set(shift)
    g = guard("--all", "1", *FAST, env=clock.env())
    g.wait_log("web: guarded")
    old = must("web")
    wait_for(lambda: events("web", "scheduled restart"), 15, "the scheduled restart")
    wait_for(lambda: restarted_since("web", old.pid or 0), what="the new instance")
    assert must("web").guard.get("phase", "ok") == "ok"
    assert "exited" not in kinds("web") and "outside the guard" not in g.text()
    assert not record_alive(old) and len(managed("web")) == 1
    assert run_bgr("--stop", "web", "--grace", "0.5").returncode == 0
    clock.set(shift + 60)
    time.sleep(3)
    assert len(events("web", "scheduled restart")) == 1 and managed("web") == []
