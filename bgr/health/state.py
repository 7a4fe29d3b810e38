"""What a run of checks makes of a process: ``starting`` until a check passes, ``healthy``, and
``unhealthy`` after ``retries`` failures in a row. A pure function of the checks and the clock
(faked in the tests); the guard and the CLI store the result in the row's ``health_state``.

After each start, failures do not count for the probe's ``start`` grace period (a slow server
warming up is not unhealthy); a pass ends the grace at once.
"""

from __future__ import annotations

from collections.abc import Mapping

from bgr.health.probes import Probe, Result
from bgr.record import Record

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: see bgr/record.py
if TYPE_CHECKING:
    from typing import Any

STARTING, HEALTHY, UNHEALTHY = "starting", "healthy", "unhealthy"
# The events a change of state records (and that the guard's hooks hear about).
BECAME_HEALTHY, BECAME_UNHEALTHY, HEALTHY_AGAIN = "healthy", "unhealthy", "healthy again"


class HealthState(Record):
    """The health of the current instance."""

    state: str = STARTING
    last_check: float | None = None  # wall clock of the last check
    last_error: str = ""  # what the last failed check saw
    failures: int = 0  # failed checks in a row
    since: float | None = None  # when ``state`` began

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "last_check": self.last_check,
            "last_error": self.last_error,
            "failures": self.failures,
            "since": self.since,
        }


def from_dict(data: Mapping[str, Any]) -> HealthState:
    state = data.get("state")
    return HealthState(
        state=state if state in (STARTING, HEALTHY, UNHEALTHY) else STARTING,
        last_check=_number(data.get("last_check")),
        last_error=str(data.get("last_error") or ""),
        failures=int(data.get("failures") or 0),
        since=_number(data.get("since")),
    )


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def fresh(now: float) -> HealthState:
    """The state of an instance that was just started."""
    return HealthState(STARTING, since=now)


def observe(
    state: HealthState, result: Result, *, probe: Probe, now: float, started_at: float | None
) -> tuple[HealthState, str | None]:
    """The state after one more check, and the event the change makes (None: no change)."""
    if result.ok:
        if state.state == HEALTHY:
            return state._replace(last_check=now, last_error="", failures=0), None
        event = HEALTHY_AGAIN if state.state == UNHEALTHY else BECAME_HEALTHY
        return HealthState(HEALTHY, now, "", 0, now), event
    if state.state == STARTING and started_at is not None and now - started_at < probe.start:
        return state._replace(last_check=now, last_error=result.detail), None  # warming up
    failures = state.failures + 1
    if failures >= probe.retries and state.state != UNHEALTHY:
        return HealthState(UNHEALTHY, now, result.detail, failures, now), BECAME_UNHEALTHY
    return state._replace(last_check=now, last_error=result.detail, failures=failures), None
