"""The restart policy, driven by a fake clock (pure: no processes needed)."""

from __future__ import annotations

import itertools
import json
import random
import signal
import time
from dataclasses import dataclass

import pytest

from bgr.errors import UsageError
from bgr.proc import host
from guard import policy
from guard.policy import Phase, PolicyConfig, PolicyState

CFG = PolicyConfig()


@dataclass
class FakeClock:
    """Seconds on a made-up boot clock; starts far from 0 so "old process" cases are the default."""

    now: float = 100_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def crash(
    state: PolicyState, clock: FakeClock, *, ran: float, code: int | None = 1, jitter: float = 0.0
) -> PolicyState:
    """Start at the current time, run ``ran`` seconds, die with ``code``."""
    state = policy.on_started(state, now=clock())
    clock.advance(ran)
    return policy.on_exit(state, CFG, now=clock(), exit_code=code, jitter=jitter)


def test_first_restart_after_stable_run_is_immediate() -> None:
    clock = FakeClock()
    state = crash(PolicyState(), clock, ran=3600, code=-signal.SIGKILL)
    assert state.phase is Phase.BACKOFF
    assert state.next_attempt == clock()
    assert policy.due(state, clock())
    assert state.failures == 0
    assert state.last_exit == -signal.SIGKILL
    assert "SIGKILL" in state.reason


def test_a_run_of_a_second_or_more_is_restarted_at_once_the_first_time_then_backs_off() -> None:
    """pm2 and supervisord restart at once after a second of uptime, Kubernetes the first time:
    one crash costs no backoff. A loop of such runs backs off from the next failure on, from the
    base delay, and still counts towards fatal."""
    clock = FakeClock()
    state = crash(PolicyState(), clock, ran=1.5)
    assert state.phase is Phase.BACKOFF and policy.due(state, clock()) and state.failures == 1
    assert "restarting now" in state.reason
    delays = []
    for _ in range(4):
        state = crash(state, clock, ran=1.5)
        assert state.next_attempt is not None
        delays.append(round(state.next_attempt - clock(), 6))
        clock.now = state.next_attempt
    assert delays == [1, 2, 4, 8]
    assert state.failures == 5
    # A run shorter than a second backs off even the first time.
    quick = crash(PolicyState(), clock, ran=0.5)
    assert quick.next_attempt == clock() + 1 and not policy.due(quick, clock())
    # A stable run starts over: the next crash is at once again.
    state = crash(state, clock, ran=CFG.stable_after + 1)
    clock.now = state.next_attempt or clock()
    again = crash(state, clock, ran=1.5)
    assert policy.due(again, clock()) and again.failures == 1
    # 126/127 stay fatal at once, whatever the uptime.
    assert crash(PolicyState(), clock, ran=1.5, code=127).phase is Phase.FATAL


def test_the_at_once_mark_survives_a_guard_restart() -> None:
    clock = FakeClock()
    state = crash(PolicyState(), clock, ran=1.5)
    loaded = PolicyState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert loaded.at_once
    state = crash(loaded, clock, ran=1.5)
    assert state.next_attempt == clock() + 1  # the base delay, not the second step


def test_rapid_failures_double_up_to_the_cap() -> None:
    cfg = PolicyConfig(max_failures=100)
    clock = FakeClock()
    state = PolicyState()
    delays = []
    for _ in range(10):
        state = policy.on_started(state, now=clock())
        state = policy.on_exit(state, cfg, now=clock.advance(0.1), exit_code=1)
        assert state.phase is Phase.BACKOFF
        assert state.next_attempt is not None
        delays.append(round(state.next_attempt - clock(), 6))
        assert not policy.due(state, clock())
        clock.now = state.next_attempt
        assert policy.due(state, clock())
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]


def test_backoff_delay_schedule_and_huge_failure_counts() -> None:
    assert policy.backoff_delay(CFG, 0) == 0
    assert policy.backoff_delay(CFG, 1) == 1
    assert policy.backoff_delay(CFG, 6) == 32
    assert policy.backoff_delay(CFG, 7) == 60
    assert policy.backoff_delay(CFG, 10**6) == 60  # 2.0 ** 10**6 overflows a float


@pytest.mark.parametrize("failures", [1, 3, 6, 7, 20])
def test_jitter_stays_within_ten_percent_and_under_the_cap(failures: int) -> None:
    nominal = policy.backoff_delay(CFG, failures)
    rng = random.Random(failures)
    samples = [policy.backoff_delay(CFG, failures, rng.uniform(-1, 1)) for _ in range(500)]
    samples += [policy.backoff_delay(CFG, failures, j) for j in (-1, 1, -5, 5)]  # clamped input
    assert min(samples) >= nominal * 0.9 - 1e-9
    assert max(samples) <= min(nominal * 1.1, CFG.max_delay) + 1e-9
    assert min(samples) < nominal * 0.95  # jitter really spreads the delays
    assert policy.backoff_delay(CFG, failures, -1) == pytest.approx(nominal * 0.9)


def test_a_stable_run_resets_the_failure_count() -> None:
    clock = FakeClock()
    state = PolicyState()
    for _ in range(5):
        state = crash(state, clock, ran=0.5)
        clock.now = state.next_attempt or clock.now
    assert state.failures == 5
    state = crash(state, clock, ran=CFG.stable_after)
    assert (state.failures, state.next_attempt) == (0, clock())
    state = crash(state, clock, ran=0.5)
    assert state.failures == 1
    assert state.next_attempt == clock() + 1


def test_settle_clears_failures_only_after_the_stable_window() -> None:
    clock = FakeClock()
    state = crash(PolicyState(), clock, ran=1)
    state = crash(state, clock, ran=1)
    running = policy.on_started(state, now=clock())
    assert policy.settle(running, CFG, now=clock.advance(9.9)) is running
    settled = policy.settle(running, CFG, now=clock.advance(0.1))
    assert settled.failures == 0
    assert settled.phase is Phase.OK
    assert policy.settle(settled, CFG, now=clock.advance(100)) is settled
    dead = policy.on_exit(running, CFG, now=clock(), exit_code=1)
    assert policy.settle(dead, CFG, now=clock.advance(100)) is dead


def test_goes_fatal_after_max_failures_rapid_failures() -> None:
    clock = FakeClock()
    state = PolicyState()
    for n in range(1, CFG.max_failures):
        state = crash(state, clock, ran=0.01)
        assert state.phase is Phase.BACKOFF, n
        clock.now = state.next_attempt or clock.now
    state = crash(state, clock, ran=0.01)
    assert state.phase is Phase.FATAL
    assert state.failures == CFG.max_failures
    assert state.next_attempt is None
    assert not policy.due(state, clock.advance(10**6))
    assert "manual restart" in state.reason
    fresh = policy.reset()
    assert (fresh.phase, fresh.failures, fresh.next_attempt) == (Phase.OK, 0, None)


@pytest.mark.parametrize("code", [126, 127])
def test_not_found_and_not_executable_are_fatal_at_once(code: int) -> None:
    clock = FakeClock()
    state = crash(PolicyState(), clock, ran=0.01, code=code)
    assert state.phase is Phase.FATAL
    assert state.failures == 1
    assert not policy.due(state, clock.advance(3600))
    assert "fix the command" in state.reason


def test_127_after_a_stable_run_is_retried_like_any_exit() -> None:
    clock = FakeClock()
    state = crash(PolicyState(), clock, ran=600, code=127)
    assert state.phase is Phase.BACKOFF
    assert policy.due(state, clock())


def test_fatal_stays_fatal_when_a_late_exit_is_reported() -> None:
    clock = FakeClock()
    state = crash(PolicyState(), clock, ran=0.01, code=127)
    again = policy.on_exit(state, CFG, now=clock.advance(600), exit_code=0, uptime=600)
    assert again.phase is Phase.FATAL
    assert again.last_exit == 0
    assert not policy.due(again, clock())


def test_seen_running_after_fatal_is_ok_but_one_more_quick_failure_is_fatal() -> None:
    clock = FakeClock()
    state = PolicyState()
    while state.phase is not Phase.FATAL:
        state = crash(state, clock, ran=0.01)
    running = policy.on_started(state, now=clock())  # someone started it by hand without reset
    assert running.phase is Phase.OK
    assert crash(running, clock, ran=0.01).phase is Phase.FATAL
    assert crash(running, clock, ran=60).phase is Phase.BACKOFF


def test_unknown_exit_code_is_a_failure_but_not_fatal_at_once() -> None:
    clock = FakeClock()
    state = crash(PolicyState(), clock, ran=0.2, code=None)
    assert state.phase is Phase.BACKOFF
    assert state.failures == 1
    assert state.last_exit is None
    assert "exit code unknown" in state.reason


def test_unknown_uptime_counts_as_rapid_and_caller_uptime_only_shortens() -> None:
    clock = FakeClock()
    never_seen_started = policy.on_exit(PolicyState(), CFG, now=clock(), exit_code=1)
    assert never_seen_started.failures == 1
    assert never_seen_started.next_attempt == clock() + 1
    # The guard saw it start 0.5 s ago; a caller claiming an hour (pm2's "since first start") loses.
    started = policy.on_started(PolicyState(), now=clock())
    claimed = policy.on_exit(started, CFG, now=clock.advance(0.5), exit_code=1, uptime=3600)
    assert claimed.failures == 1
    # The caller knows the run was short although the start was seen long ago: short wins.
    started = policy.on_started(PolicyState(), now=clock())
    short = policy.on_exit(started, CFG, now=clock.advance(3600), exit_code=1, uptime=2)
    assert short.failures == 1
    # Seen late: on_started back-dates the start by the uptime it was given.
    late = policy.on_started(PolicyState(), now=clock(), uptime=30)
    assert policy.on_exit(late, CFG, now=clock.advance(1), exit_code=1).failures == 0


def test_each_exit_consumes_the_start() -> None:
    clock = FakeClock()
    state = policy.on_started(PolicyState(), now=clock())
    state = policy.on_exit(state, CFG, now=clock.advance(3600), exit_code=1)
    assert state.started_at is None
    # Restarted without on_started (a caller bug): the old start must not make it look stable.
    state = policy.on_exit(state, CFG, now=clock.advance(0.1), exit_code=1)
    assert state.failures == 1


def test_crash_loop_never_restarts_faster_than_the_backoff_however_old() -> None:
    """1000 restarts of a process that dies at once; the caller even reports pm2's buggy uptime
    (time since the *first* start). Gaps must follow the schedule and stay the same once it is old.
    """
    cfg = PolicyConfig(max_failures=10**9)
    rng = random.Random(1234)
    clock = FakeClock()
    first_start = clock()
    state = PolicyState()
    restarts: list[float] = []
    for n in range(1, 1001):
        restarts.append(clock())
        state = policy.on_started(state, now=clock())
        clock.advance(rng.uniform(0, 0.05))  # dies within 50 ms
        age = clock() - first_start
        state = policy.on_exit(state, cfg, now=clock(), exit_code=1, jitter=rng.uniform(-1, 1), uptime=age)
        assert state.failures == n
        assert state.next_attempt is not None
        # The guard polls now and then; it may be late, never early.
        while not policy.due(state, clock()):
            clock.advance(rng.uniform(0, 0.3))
    gaps = [b - a for a, b in itertools.pairwise(restarts)]
    for n, gap in enumerate(gaps, start=1):
        assert gap >= policy.backoff_delay(cfg, n) * (1 - cfg.jitter), (n, gap)
    assert clock() - first_start > 50_000  # "aged" far beyond any stable window
    assert min(gaps[10:]) >= cfg.max_delay * (1 - cfg.jitter)
    assert len(restarts) / (clock() - first_start) < 1 / (cfg.max_delay * 0.85)


def test_crash_loop_with_defaults_goes_fatal() -> None:
    rng = random.Random(99)
    clock = FakeClock()
    state = PolicyState()
    attempts = 0
    for _ in range(1000):
        if state.phase is Phase.FATAL:
            break
        attempts += 1
        state = crash(state, clock, ran=0.0, jitter=rng.uniform(-1, 1))
        if state.next_attempt is not None:
            clock.now = state.next_attempt
    assert state.phase is Phase.FATAL
    assert attempts == CFG.max_failures


def test_round_trip_through_json() -> None:
    clock = FakeClock()
    state = crash(PolicyState(), clock, ran=0.3, code=139)
    state = policy.on_started(state, now=clock())
    state = policy.on_exit(state, CFG, now=clock.advance(0.1), exit_code=3, jitter=0.5)
    data = json.loads(json.dumps(state.to_dict(boot_id="b1"), allow_nan=False))
    assert data["boot_id"] == "b1"
    assert PolicyState.from_dict(data, boot_id="b1", now=clock(), cfg=CFG) == state
    running = policy.on_started(state, now=clock())
    assert PolicyState.from_dict(running.to_dict()) == running
    fatal = crash(PolicyState(), clock, ran=0, code=127)
    assert PolicyState.from_dict(fatal.to_dict()) == fatal


@pytest.mark.parametrize(
    "garbage",
    [
        None,
        "ok",
        42,
        [1, 2],
        {},
        {"phase": "banana", "failures": "3", "next_attempt": "soon", "last_exit": 1.5},
        {"phase": ["x"], "failures": True, "next_attempt": float("nan"), "reason": 7},
        {"phase": None, "failures": -4, "next_attempt": float("inf"), "started_at": {}},
    ],
)
def test_from_dict_turns_garbage_into_a_fresh_state(garbage: object) -> None:
    assert PolicyState.from_dict(garbage) == PolicyState()


def test_from_dict_keeps_good_fields_next_to_bad_ones() -> None:
    state = PolicyState.from_dict({"phase": "fatal", "failures": 10, "reason": None, "extra": 1})
    assert (state.phase, state.failures, state.reason) == (Phase.FATAL, 10, "")


def test_from_dict_drops_clock_values_from_another_boot_or_clock() -> None:
    clock = FakeClock()
    waiting = crash(PolicyState(), clock, ran=0.1)
    data = waiting.to_dict(boot_id="old-boot")
    other = PolicyState.from_dict(data, boot_id="new-boot")
    assert (other.phase, other.failures, other.next_attempt) == (Phase.BACKOFF, 1, None)
    assert policy.due(other, 0.0)  # after a reboot, a backoff is due at once
    assert PolicyState.from_dict(data, boot_id="old-boot") == waiting
    assert PolicyState.from_dict(data, boot_id="") == waiting  # unknown boot: trust it
    # macOS: no boot id, the monotonic clock restarted near 0 after a reboot.
    assert PolicyState.from_dict(data, now=5.0).next_attempt is None
    running = policy.on_started(PolicyState(), now=clock())
    assert PolicyState.from_dict(running.to_dict(), now=5.0).started_at is None
    assert PolicyState.from_dict(running.to_dict(), now=clock()).started_at == clock()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base_delay": 0},
        {"factor": 0.5},
        {"max_delay": 0.5},
        {"jitter": 1.0},
        {"jitter": -0.1},
        {"stable_after": 0},
        {"max_failures": 0},
    ],
)
def test_invalid_config_is_a_usage_error(kwargs: dict[str, float]) -> None:
    with pytest.raises(UsageError, match="invalid restart policy"):
        PolicyConfig(**kwargs)  # type: ignore[arg-type]


def test_boot_clock_and_boot_id() -> None:
    a = policy.boot_clock()
    b = policy.boot_clock()
    assert 0 <= a <= b
    clock: policy.Clock = policy.boot_clock
    assert clock() >= b
    ident = host.boot_id()
    assert ident == host.boot_id()
    if hasattr(time, "CLOCK_BOOTTIME"):
        assert abs(a - time.clock_gettime(time.CLOCK_BOOTTIME)) < 60
        assert len(ident) == 36  # a uuid
    else:
        assert ident == ""
