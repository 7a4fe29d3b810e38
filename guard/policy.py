"""Restart policy for bgr-guard: restart now, after a backoff, or never. Pure: no I/O, no clock.

Every call takes ``now`` on a clock the caller owns (:func:`boot_clock`) and backoff jitter as a
number in [-1, 1] the caller draws (``rng.uniform(-1, 1)``), so tests are exact. Transitions return
a new :class:`PolicyState`:

- ``on_started(state, now=, uptime=0.0)``: it runs (started ``uptime`` s ago if seen late).
- ``on_exit(state, cfg, now=, exit_code=, jitter=, uptime=None)``: it died; BACKOFF until
  ``next_attempt`` (``now`` itself after a stable run) or FATAL.
- ``due(state, now)``: restart now?   ``settle(state, cfg, now=)``: clear failures once stable.
- ``reset()``: manual restart.   ``to_dict``/``from_dict``: the registry's JSON ``guard`` column.

Crash loops: a run's uptime counts from the *latest* ``on_started`` (each exit consumes it) and a
caller's ``uptime`` can only shorten it, so a process that dies at once is a rapid failure however
long ago it first started (pm2 measures from the first start: ~190 restarts/s once it is old).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Protocol, TypeGuard

from bgr.guard_api import UsageError, describe_exit


class Phase(StrEnum):
    """Where the policy stands for one process."""

    OK = "ok"  # running, or never seen dead
    BACKOFF = "backoff"  # dead; restart at ``next_attempt`` (may be "now")
    FATAL = "fatal"  # dead; no restart until a manual one (``reset``)


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """Tunables; defaults give a ≤15 ms restart after a stable run, minutes of retrying otherwise.

    - ``base_delay`` 1 s, ``factor`` 2, ``max_delay`` 60 s: 1, 2, 4 ... 32, 60 s. A second lets a
      port or a dependency come back; a minute bounds how long a healed outage keeps us down.
    - ``jitter`` 0.1: delays x (1 ± 10 %), clamped to ``max_delay``, so processes sharing a failing
      dependency do not retry in lockstep.
    - ``stable_after`` 10 s: a run this long ends the loop (failures reset, next restart immediate);
      misconfigured servers usually die within seconds.
    - ``restart_at_once_after`` 1 s: the first failure in a row of a run at least this long is
      restarted at once, as pm2 and supervisord do after a second of uptime and Kubernetes does the
      first time: a crash costs no backoff. The backoff starts with the next quick failure, so a
      crash loop still never restarts faster than it.
    - ``max_failures`` 10: the 10th rapid failure in a row is FATAL, ~4 min after the first
      (1+2+...+32+60+60+60 s): rides out a database restart, yet flags a broken deploy quickly.
    - ``fatal_exit_codes`` 126/127 (not executable / not found) will not fix themselves. Fatal only
      after a short run: after a stable one the code came from the program (a script calling a
      missing tool) and is retried like any failure.
    """

    base_delay: float = 1.0
    factor: float = 2.0
    max_delay: float = 60.0
    jitter: float = 0.1
    stable_after: float = 10.0
    restart_at_once_after: float = 1.0
    max_failures: int = 10
    fatal_exit_codes: frozenset[int] = frozenset({126, 127})

    def __post_init__(self) -> None:
        ok = 0 < self.base_delay <= self.max_delay and self.factor >= 1 and 0 <= self.jitter < 1
        if not (ok and self.stable_after > 0 and self.max_failures >= 1):
            raise UsageError(
                "invalid restart policy: need 0 < base_delay <= max_delay, factor >= 1, "
                "0 <= jitter < 1, stable_after > 0, max_failures >= 1"
            )


@dataclass(frozen=True, slots=True)
class PolicyState:
    """The policy's memory of one process; ``next_attempt``/``started_at`` on the caller's clock."""

    phase: Phase = Phase.OK
    failures: int = 0  # consecutive rapid failures
    next_attempt: float | None = None
    last_exit: int | None = None
    reason: str = ""
    started_at: float | None = None  # start of the current run; None once it has exited
    at_once: bool = False  # this streak's first failure was restarted at once (no backoff)

    def to_dict(self, *, boot_id: str = "") -> dict[str, Any]:
        """JSON-safe form; ``boot_id`` tags the clock values so another boot can discard them."""
        return {
            "phase": self.phase.value,
            "failures": self.failures,
            "next_attempt": _finite(self.next_attempt),
            "last_exit": self.last_exit,
            "reason": self.reason,
            "started_at": _finite(self.started_at),
            "at_once": self.at_once,
            "boot_id": boot_id,
        }

    @classmethod
    def from_dict(
        cls,
        data: object,
        *,
        boot_id: str = "",
        now: float | None = None,
        cfg: PolicyConfig | None = None,
    ) -> PolicyState:
        """Rebuild from :meth:`to_dict` output; anything missing or mistyped takes its default.

        Clock values are dropped if saved under another ``boot_id`` (both known) or, given ``now``,
        impossible on this clock (start in the future, attempt beyond ``max_delay``: the clock
        restarted, e.g. macOS after a reboot).
        """
        if not isinstance(data, Mapping):
            return cls()
        try:
            phase = Phase(data.get("phase", Phase.OK))
        except (ValueError, TypeError):
            phase = Phase.OK
        failures = data.get("failures")
        last_exit = data.get("last_exit")
        reason = data.get("reason")
        next_attempt = _finite(data.get("next_attempt"))
        started_at = _finite(data.get("started_at"))
        saved_boot = data.get("boot_id")
        stale = isinstance(saved_boot, str) and bool(saved_boot and boot_id) and saved_boot != boot_id
        if now is not None:
            horizon = now + (cfg or PolicyConfig()).max_delay
            stale = stale or (started_at is not None and started_at > now)
            stale = stale or (next_attempt is not None and next_attempt > horizon)
        return cls(
            phase=phase,
            failures=failures if _is_int(failures) and failures > 0 else 0,
            next_attempt=None if stale else next_attempt,
            last_exit=last_exit if _is_int(last_exit) else None,
            reason=reason if isinstance(reason, str) else "",
            started_at=None if stale else started_at,
            at_once=data.get("at_once") is True,
        )


def backoff_delay(cfg: PolicyConfig, failures: int, jitter: float = 0.0) -> float:
    """Seconds to wait after the ``failures``-th rapid failure in a row (0 if ``failures`` < 1)."""
    if failures < 1:
        return 0.0
    try:
        nominal = min(cfg.max_delay, cfg.base_delay * cfg.factor ** (failures - 1))
    except OverflowError:
        nominal = cfg.max_delay
    scaled = nominal * (1 + max(-1.0, min(1.0, jitter)) * cfg.jitter)
    return min(cfg.max_delay, scaled)


def on_started(state: PolicyState, *, now: float, uptime: float = 0.0) -> PolicyState:
    """It runs since ``now`` (or ``uptime`` s before, if seen late). After FATAL, reset first."""
    started = now - max(0.0, uptime)
    return replace(state, phase=Phase.OK, next_attempt=None, started_at=started, reason="running")


def on_exit(
    state: PolicyState,
    cfg: PolicyConfig,
    *,
    now: float,
    exit_code: int | None,
    jitter: float = 0.0,
    uptime: float | None = None,
) -> PolicyState:
    """Record a death and decide: restart now, after a backoff, or never (FATAL).

    The run's uptime is ``now`` minus the latest :func:`on_started`; ``uptime``, when the caller
    knows better (e.g. from the registry's start/stop times), can only shorten it. Unknown uptime
    counts as a rapid failure. ``exit_code`` None (not our child) is a failure, never fatal at once.
    """
    measured = [u for u in (uptime, _since(state.started_at, now)) if u is not None]
    run = min(measured) if measured else None
    what = describe_exit(exit_code)
    base = replace(state, last_exit=exit_code, started_at=None, next_attempt=None)
    if state.phase is Phase.FATAL:
        return replace(base, reason=f"{what}; still fatal until a manual restart")
    if run is not None and run >= cfg.stable_after:
        reason = f"{what} after {run:.1f}s up; restarting now"
        return replace(base, phase=Phase.BACKOFF, failures=0, next_attempt=now, reason=reason, at_once=False)
    failures = state.failures + 1
    what += " at once" if run is None else f" after {run:.1f}s"
    first_after_a_run = state.failures == 0 and run is not None and run >= cfg.restart_at_once_after
    if first_after_a_run and exit_code not in cfg.fatal_exit_codes and failures < cfg.max_failures:
        reason = f"{what} (failure {failures}/{cfg.max_failures}); restarting now"
        return replace(
            base, phase=Phase.BACKOFF, failures=failures, next_attempt=now, reason=reason, at_once=True
        )
    if exit_code in cfg.fatal_exit_codes:
        reason = f"{what}; this will not fix itself: fix the command, then restart"
    elif failures >= cfg.max_failures:
        reason = f"{what}: {failures} quick failures in a row; gave up until a manual restart"
    else:
        # After a first failure that was restarted at once, the backoff starts from its base.
        delay = backoff_delay(cfg, failures - int(state.at_once), jitter)
        reason = f"{what} (failure {failures}/{cfg.max_failures}); retry in {delay:.1f}s"
        return replace(base, phase=Phase.BACKOFF, failures=failures, next_attempt=now + delay, reason=reason)
    return replace(base, phase=Phase.FATAL, failures=failures, reason=reason)


def due(state: PolicyState, now: float) -> bool:
    """True when the process should be restarted now (in backoff and its time has come)."""
    waited = state.next_attempt is None or now >= state.next_attempt
    return state.phase is Phase.BACKOFF and waited


def settle(state: PolicyState, cfg: PolicyConfig, *, now: float) -> PolicyState:
    """Clear failures once this run lasted ``stable_after``; ``state`` itself if no change."""
    up = _since(state.started_at, now)
    if state.phase is not Phase.OK or not state.failures or up is None or up < cfg.stable_after:
        return state
    return replace(state, failures=0, at_once=False, reason=f"running; stable after {up:.0f}s")


def reset(reason: str = "manual restart") -> PolicyState:
    """A fresh state: a manual restart clears FATAL, backoff and the failure count."""
    return PolicyState(reason=reason)


class Clock(Protocol):
    """Seconds on a clock that never goes backwards; what ``now`` arguments are measured on."""

    def __call__(self) -> float: ...


def boot_clock() -> float:
    """Seconds since boot: Linux ``CLOCK_BOOTTIME`` (shared by all processes, so a restarted guard
    can use persisted values; counts through suspend), else ``time.monotonic()``."""
    clock_id = getattr(time, "CLOCK_BOOTTIME", None)
    if clock_id is not None:
        return time.clock_gettime(clock_id)
    return time.monotonic()


def _since(start: float | None, now: float) -> float | None:
    return None if start is None else max(0.0, now - start)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _finite(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None
