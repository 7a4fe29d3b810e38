"""The debouncer that turns a burst of changes into one restart (pure, clock passed in)."""

from __future__ import annotations

import pytest

from bgr.watch.debounce import Debouncer


def test_debouncer_waits_for_quiet_then_hands_over_the_burst_in_order() -> None:
    debouncer = Debouncer(0.3)
    assert debouncer.remaining(0.0) is None
    assert not debouncer.due(100.0)
    debouncer.add("b.py", 1.0)
    debouncer.add("a.py", 1.2)
    debouncer.add("b.py", 1.25)
    assert debouncer.remaining(1.3) == pytest.approx(0.25)
    assert not debouncer.due(1.5)
    assert debouncer.due(1.55)
    assert debouncer.take() == ("b.py", "a.py")
    assert not debouncer.due(10.0)
    assert debouncer.remaining(10.0) is None


def test_debouncer_zero_delay_and_late_stamps() -> None:
    debouncer = Debouncer(0.0)
    debouncer.add("x", 5.0)
    debouncer.add("y", 4.0)  # an event stamped earlier never moves the deadline back
    assert not debouncer.due(4.5)
    assert debouncer.due(5.0)
    assert debouncer.take() == ("x", "y")
