"""bgr.units: sizes and durations on the command line (pure)."""

from __future__ import annotations

import pytest

from bgr import units
from bgr.errors import UsageError
from bgr.units import parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("100", 100),
        ("100b", 100),
        ("512K", 512 * 1024),
        ("10M", 10 * 1024**2),
        ("10mb", 10 * 1024**2),
        ("10MiB", 10 * 1024**2),
        ("1G", 1024**3),
        ("1.5M", 1536 * 1024),
        (" 2 k ", 2048),
        (".5K", 512),
        ("0", 0),
    ],
)
def test_parse_size_accepts(text: str, expected: int) -> None:
    assert units.parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "M", "ten", "-1M", "10X", "10iB", "1e3", "1.2.3K", "10 M B"])
def test_parse_size_rejects_with_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="invalid size"):
        units.parse_size(text)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30", 30.0), ("0.5", 0.5), (".25", 0.25), ("500ms", 0.5), ("90s", 90.0), ("5m", 300.0),
     ("1.5h", 5400.0), ("1d", 86400.0), (" 2M ", 120.0)],
)  # fmt: skip
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "0", "0s", "-1", "1x", "nan", "inf", "5 m s", "1e3"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(UsageError):
        parse_duration(text, "INTERVAL")


def test_limits_take_off_as_zero() -> None:
    assert units.size_or_off("200M", "--max-memory") == 200 * 1024**2
    assert units.size_or_off(" Off ", "--max-memory") == 0
    assert units.duration_or_off("1.5s", "--restart-every") == 1.5
    assert units.duration_or_off("off", "--restart-every") == 0.0
    with pytest.raises(UsageError, match="--max-memory must be more than 0"):
        units.size_or_off("0", "--max-memory")
    with pytest.raises(UsageError, match="--restart-every takes a duration"):
        units.duration_or_off("never", "--restart-every")
