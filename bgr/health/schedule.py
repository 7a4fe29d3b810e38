"""Cron expressions (``--restart-at``, ``--cron``): checked when a definition is stored, run by the
guard with APScheduler's cron trigger in the local time zone.

Five fields, ``minute hour day month weekday``, as crontab(5) and pm2's ``cron_restart`` write
them; APScheduler's ``CronTrigger.from_crontab`` parses them, so what is accepted here is exactly
what the guard will run. APScheduler is imported only when an expression is given.
"""

from __future__ import annotations

from bgr.errors import UsageError

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: see bgr/record.py
if TYPE_CHECKING:
    from typing import Any


def trigger(expression: str) -> Any:
    """The APScheduler CronTrigger for ``expression`` in the local time zone."""
    from apscheduler.triggers.cron import CronTrigger
    from tzlocal import get_localzone

    return CronTrigger.from_crontab(expression, timezone=get_localzone())


def validate(expression: str, option: str) -> str:
    """``expression`` normalised (single spaces), or UsageError naming ``option``."""
    words = expression.split()
    if len(words) != 5:
        raise UsageError(
            f"{option} takes 5 cron fields (minute hour day month weekday), e.g. '0 3 * * *', "
            f"not {expression!r}"
        )
    text = " ".join(words)
    try:
        trigger(text)
    except ValueError as exc:
        raise UsageError(f"{option}: invalid cron expression {expression!r}: {exc}") from None
    return text


def next_time(expression: str, after: float, *, ran_at: float | None = None) -> float | None:
    """When ``expression`` fires next at or after ``after`` (wall clock), or None if never.

    ``ran_at``, the last run: when the clocks go back, the repeated hour would give a time of day
    that already ran a second time (APScheduler fires both 02:30s); like cron, it runs once. A
    time skipped when the clocks go forward runs an hour later (APScheduler's choice).
    """
    import datetime

    from tzlocal import get_localzone

    zone = get_localzone()
    cron = trigger(expression)
    fire = cron.get_next_fire_time(None, datetime.datetime.fromtimestamp(after, zone))
    if fire is not None and ran_at is not None:
        last = datetime.datetime.fromtimestamp(ran_at, zone)
        start = fire.timestamp()
        while fire is not None and fire.replace(tzinfo=None) == last.replace(tzinfo=None):
            # Past the repeated time in real seconds (APScheduler loses the fold on wall times).
            start += 60
            fire = cron.get_next_fire_time(None, datetime.datetime.fromtimestamp(start, zone))
    return None if fire is None else float(fire.timestamp())
