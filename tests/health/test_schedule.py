"""bgr.health.schedule: cron expressions checked as the guard runs them, local time, DST."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bgr.errors import UsageError
from bgr.health import schedule


@pytest.mark.parametrize(
    ("expression", "message"),
    [("0 3 * *", "takes 5 cron fields"), ("61 3 * * *", "invalid cron expression"),
     ("a b c d e", "invalid cron expression"), ("", "takes 5 cron fields")],
)  # fmt: skip
def test_bad_expressions(expression: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        schedule.validate(expression, "--cron")


def test_normalised() -> None:
    assert schedule.validate("  0   3 * *  1-5 ", "--cron") == "0 3 * * 1-5"


def _in_berlin(code: str) -> str:
    """Run ``code`` with the local time zone set to Europe/Berlin; its stdout."""
    prelude = (
        "import datetime, zoneinfo\nfrom bgr.health import schedule\n"
        "z = zoneinfo.ZoneInfo('Europe/Berlin')\n"
        "at = lambda *f: datetime.datetime(*f, tzinfo=z).timestamp()\n"
        "show = lambda t: print(datetime.datetime.fromtimestamp(t, z).isoformat())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", prelude + code], env={**os.environ, "TZ": "Europe/Berlin"},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout


def test_local_time_and_daylight_saving_changes() -> None:
    out = _in_berlin(
        "show(schedule.next_time('0 3 * * *', at(2026, 7, 1, 12, 0)))\n"
        # clocks go forward at 02:00 on 29 March: 02:30 does not exist that day
        "show(schedule.next_time('30 2 * * *', at(2026, 3, 28, 12, 0)))\n"
        # clocks go back at 03:00 on 25 October: 02:30 happens twice, the job runs once
        "first = schedule.next_time('30 2 * * *', at(2026, 10, 24, 12, 0)); show(first)\n"
        "show(schedule.next_time('30 2 * * *', first + 1, ran_at=first))\n"
    )
    assert out.splitlines() == [
        "2026-07-02T03:00:00+02:00",
        "2026-03-29T03:30:00+02:00",
        "2026-10-25T02:30:00+02:00",
        "2026-10-26T02:30:00+01:00",
    ]
