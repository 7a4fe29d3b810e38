"""Calendar schedules in the guard: ``--restart-at`` restarts and ``--cron`` job runs.

Each schedule is one APScheduler job with a date trigger, armed at the next time APScheduler's cron
trigger gives (``bgr.health.schedule.next_time``, local time zone) and armed again after it fires;
re-arming (rather than a standing cron trigger) is what lets a fixed-time job run once in the
hour that repeats when the clocks go back. These follow **wall time** by design, unlike the
guard's intervals and retries (elapsed time): "at 03:00" means the clock on the wall. So a time the
guard was not running for is not made up for, and neither is one the wall clock jumped over by
more than ``LATE_LIMIT`` (an NTP step, a suspended laptop): it is recorded as missed and the next
time is worked out from now.

``sync`` is called on every check pass with the guarded rows: schedules that appeared, changed or
went away are armed or dropped there.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable

from bgr.guard_api import BgrError, Desired, ProcessRecord, next_cron_time

log = logging.getLogger(__name__)

KINDS = ("restart_at", "cron")
LATE_LIMIT = 60.0  # seconds late a scheduled time may still run


class Schedules:
    """The armed schedules of one guard. ``add_job`` is the APScheduler scheduler's; ``act(name,
    kind, planned)`` does what is due (restart, or run the job); ``note_next(name, when)`` records
    the next time for the list; ``on_missed(name, kind, planned)`` records a time that was jumped over."""

    def __init__(
        self,
        add_job: Callable[..., object],
        act: Callable[[str, str, float], None],
        note_next: Callable[[str, float | None], None],
        *,
        on_missed: Callable[[str, str, float], None] | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._add_job = add_job
        self._on_missed = on_missed
        self._act = act
        self._note_next = note_next
        self._wall = wall
        self._lock = threading.Lock()
        self._armed: dict[tuple[str, str], tuple[str, object]] = {}  # → (expression, job)

    def sync(self, records: Iterable[ProcessRecord]) -> None:
        """Arm what the rows ask for; drop what they no longer do."""
        wanted: dict[tuple[str, str], str] = {}
        for record in records:
            if record.desired is not Desired.RUNNING:
                continue
            for kind in KINDS:
                expression = record.schedule.get(kind)
                if isinstance(expression, str) and expression:
                    wanted[(record.name, kind)] = expression
        with self._lock:
            for key in [k for k, (expression, _) in self._armed.items() if wanted.get(k) != expression]:
                _, job = self._armed.pop(key)
                _remove(job)
            for key, expression in wanted.items():
                if key not in self._armed:
                    self._arm(key, expression, after=self._wall(), ran_at=None)

    def _arm(self, key: tuple[str, str], expression: str, *, after: float, ran_at: float | None) -> None:
        name, kind = key
        try:
            upcoming = next_cron_time(expression, after, ran_at=ran_at)
        except (BgrError, ValueError) as exc:
            log.error("%s: cannot schedule %s %r: %s", name, kind, expression, exc)
            return
        self._note_next(name, upcoming)
        if upcoming is None:
            return
        import datetime

        job = self._add_job(
            self._fire,
            "date",
            run_date=datetime.datetime.fromtimestamp(upcoming, datetime.UTC),
            args=(key, expression, upcoming),
            misfire_grace_time=None,  # lateness is judged in _fire, where a missed time is recorded
            # _fire arms the next time before it returns: with one instance allowed, a next time due
            # at once (a clock step) would be "skipped: maximum number of running instances" and
            # dropped, leaving the schedule disarmed for good. _armed keeps two from both acting.
            max_instances=2,
            id=f"cron:{kind}:{name}",
            replace_existing=True,
        )
        self._armed[key] = (expression, job)

    def _fire(self, key: tuple[str, str], expression: str, planned: float) -> None:
        name, kind = key
        late = self._wall() - planned
        with self._lock:
            if self._armed.get(key, (None,))[0] != expression:
                return  # changed or dropped meanwhile
            del self._armed[key]
        if late > LATE_LIMIT:
            log.warning(
                "%s: %s time missed by %.0fs (the clock jumped, or the guard was stalled)", name, kind, late
            )
            if self._on_missed is not None:
                try:
                    self._on_missed(name, kind, planned)
                except BgrError as exc:
                    log.warning("%s: missed time not recorded: %s", name, exc)
        else:
            try:
                self._act(name, kind, planned)
            except BgrError as exc:
                log.error("%s: scheduled %s failed: %s", name, kind.replace("_", "-"), exc)
        with self._lock:
            if key not in self._armed:
                self._arm(key, expression, after=max(self._wall(), planned + 1), ran_at=planned)

    def armed(self) -> dict[tuple[str, str], str]:
        with self._lock:
            return {key: expression for key, (expression, _) in self._armed.items()}


def _remove(job: object) -> None:
    remove = getattr(job, "remove", None)
    if callable(remove):
        with contextlib.suppress(LookupError):  # JobLookupError: it already ran
            remove()
