"""Fixtures of the guard's tests: a wall clock that a test can step, for the guard alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ClockShift, build_clock_shift


@pytest.fixture(scope="session")
def clock_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_clock_shift(tmp_path_factory.mktemp("clock-shift"))


@pytest.fixture
def clock(clock_library: Path, tmp_path: Path) -> Iterator[ClockShift]:
    yield ClockShift(clock_library, tmp_path / "clock-shift")
