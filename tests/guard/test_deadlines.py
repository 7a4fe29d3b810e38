"""guard.deadlines: one deadline per name on an injected clock."""

from __future__ import annotations

from guard.deadlines import Deadlines


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_deadlines_come_due_in_order_and_once() -> None:
    clock = Clock()
    d = Deadlines(clock)
    assert d.timeout() is None and d.pop_due() == []
    d.after("b", 2.0)
    d.after("a", 1.0)
    assert d.timeout() == 1.0
    assert d.pending() == {"a": 1.0, "b": 2.0}
    clock.now += 1.5
    assert d.pop_due() == ["a"]
    assert d.timeout() == 0.5
    clock.now += 5
    assert d.timeout() == 0.0
    assert d.pop_due() == ["b"]
    assert d.pop_due() == [] and d.timeout() is None


def test_a_later_deadline_replaces_the_earlier_one_and_cancel_drops_it() -> None:
    clock = Clock()
    d = Deadlines(clock)
    d.after("web", 1.0)
    d.after("web", 3.0)
    clock.now += 2
    assert d.pop_due() == []
    assert d.timeout() == 1.0
    assert d.cancel("web") and not d.cancel("web")
    assert d.timeout() is None
    d.after("web", -5)  # a negative delay is "now"
    d.at("web", clock.now)  # the same time twice: due once
    assert d.pop_due() == ["web"]


def test_many_replaced_deadlines_do_not_pile_up() -> None:
    clock = Clock()
    d = Deadlines(clock)
    for i in range(10_000):
        d.after("web", 1.0 + i / 10_000)
    assert d.timeout() is not None
    assert len(d._heap) < 200
    clock.now += 10
    assert d.pop_due() == ["web"]
