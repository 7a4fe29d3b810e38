"""guard.gate: one thread at a time per name, and no check lost."""

from __future__ import annotations

import threading
import time

from guard.gate import NameGate


def test_gate_runs_a_poke_at_once_or_after_the_current_holder() -> None:
    checks: list[str] = []
    gate = NameGate(checks.append)
    assert gate.poke("a") is True
    assert checks == ["a"]
    entered, leave = threading.Event(), threading.Event()

    def hold() -> None:
        with gate.hold("a"):
            entered.set()
            leave.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    entered.wait(5)
    assert gate.poke("a") is False  # does not wait...
    assert gate.poke("a") is False
    assert gate.poke("b") is True  # ...and other names are free
    assert checks == ["a", "b"]
    leave.set()
    holder.join(5)
    assert checks == ["a", "b", "a"]  # ...but the holder checks once more before letting go
    assert gate.busy() == set()


def test_gate_hold_waits_for_the_holder() -> None:
    order: list[str] = []
    gate = NameGate(lambda name: None)
    started = threading.Event()

    def slow() -> None:
        with gate.hold("a"):
            started.set()
            time.sleep(0.1)
            order.append("first")

    thread = threading.Thread(target=slow)
    thread.start()
    started.wait(5)
    with gate.hold("a"):
        order.append("second")
    thread.join(5)
    assert order == ["first", "second"]
