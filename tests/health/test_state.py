"""bgr.health.state: starting → healthy → unhealthy → healthy again, on a faked clock."""

from __future__ import annotations

from bgr.health import state
from bgr.health.probes import Probe, Result

PROBE = Probe("tcp", "127.0.0.1:1", retries=3, start=5)
PASS, FAIL = Result(True, "connected", 0.0), Result(False, "connection refused", 0.0)


def run(results: list[Result], *, started_at: float = 0.0, step: float = 1.0) -> list[tuple[str, str | None]]:
    found, seen = state.fresh(started_at), []
    for i, result in enumerate(results):
        found, event = state.observe(
            found, result, probe=PROBE, now=started_at + (i + 1) * step, started_at=started_at
        )
        seen.append((found.state, event))
    return seen


def test_failures_in_the_start_grace_do_not_count_and_a_pass_ends_it() -> None:
    assert run([FAIL] * 4) == [("starting", None)] * 4  # t = 1..4 s: within the 5 s grace
    assert run([FAIL] * 4 + [FAIL, FAIL, FAIL])[-1] == ("unhealthy", "unhealthy")  # 3 after the grace
    assert run([PASS, FAIL, FAIL]) == [("healthy", "healthy"), ("healthy", None), ("healthy", None)]


def test_retries_in_a_row_make_it_unhealthy_once_and_a_pass_heals_it() -> None:
    seen = run([PASS, FAIL, FAIL, PASS, FAIL, FAIL, FAIL, FAIL, PASS])
    assert [event for _, event in seen] == [
        "healthy", None, None, None, None, None, "unhealthy", None, "healthy again"
    ]  # fmt: skip


def test_what_it_keeps() -> None:
    found, _ = state.observe(state.fresh(0), PASS, probe=PROBE, now=10, started_at=0)
    for at in (11, 12, 13):
        found, _ = state.observe(found, FAIL, probe=PROBE, now=at, started_at=0)
    assert found == state.HealthState("unhealthy", 13, "connection refused", 3, 13)
    assert state.from_dict(found.to_dict()) == found
    assert state.from_dict({"state": "bogus"}).state == "starting"
