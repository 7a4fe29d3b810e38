"""Quantities on the command line and in messages: sizes, durations and counts, both ways.

The parsers take the option's name so that their errors say which option was wrong; they raise
UsageError. Sizes are powers of 1024 in both directions (``10M`` is 10 MiB, and 10 MiB prints as
``10.0M``).
"""

from __future__ import annotations

from bgr.errors import UsageError

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: see bgr/record.py
if TYPE_CHECKING:
    from collections.abc import Callable

# Not math.inf: math is a shared library of its own, loaded by every bgr call for two comparisons.
_INFINITY = float("inf")
# Matched with ``re`` imported on first use: every bgr call imports this module, few parse a size
# or a duration, and ``re`` is the costliest import of a bgr call.
_SIZE = r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?)(i?b)?\s*"
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_DURATION = r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d)?\s*"
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_size(text: str) -> int:
    """Parse "100", "512K", "10M", "1.5G", "10MB", "10MiB" (case-insensitive, powers of 1024)."""
    import re

    match = re.fullmatch(_SIZE, text, re.IGNORECASE)
    if match is None or (match[3] and match[3].lower() == "ib" and not match[2]):
        raise UsageError(
            f"invalid size {text!r}: use a number of bytes with an optional K, M or G suffix, "
            "e.g. 512K or 10M"
        )
    unit = _SIZE_UNITS[match[2].lower()]
    number = match[1]
    return int(number) * unit if number.isdigit() else int(float(number) * unit)


def format_size(num_bytes: float | None) -> str:
    """``512B``, ``1.5K``, ``10.0M``, ``2.0G``, ``3.0T``; ``-`` for None."""
    if num_bytes is None:
        return "-"
    value = float(num_bytes)
    for unit in ("B", "K", "M", "G"):
        if value < 1024:
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    return f"{value:.1f}T"


def parse_duration(text: str, option: str = "duration") -> float:
    """``"30"`` / ``"0.5"`` (seconds), ``"500ms"``, ``"90s"``, ``"5m"``, ``"1h"``, ``"1d"`` → seconds > 0."""
    import re

    match = re.fullmatch(_DURATION, text, re.IGNORECASE)
    if match is None:
        raise UsageError(f"{option} takes a duration such as 30, 0.5, 90s, 5m or 1h, not {text!r}")
    seconds = float(match[1]) * _DURATION_UNITS[(match[2] or "s").lower()]
    if not 0 < seconds < _INFINITY:  # also false for nan
        raise UsageError(f"{option} must be more than 0, not {text!r}")
    return seconds


def size_option(text: str, option: str) -> int:
    """An option's size (more than 0 bytes)."""
    try:
        size = parse_size(text)
    except UsageError as exc:
        raise UsageError(f"{option}: {exc}") from None
    if size <= 0:
        raise UsageError(f"{option} must be more than 0")
    return size


def seconds(text: str, option: str) -> float:
    """A non-negative, finite number of seconds (``--grace 0.5``)."""
    try:
        number = float(text)
    except ValueError:
        raise UsageError(f"{option} takes a number, not {text!r}") from None
    # nan would make every deadline comparison false: a stop would wait forever.
    if not -_INFINITY < number < _INFINITY:
        raise UsageError(f"{option} takes a finite number, not {text!r}")
    if number < 0:
        raise UsageError(f"{option} must not be negative")
    return number


def whole_number(text: str, option: str) -> int:
    """A non-negative whole number (``--lines 20``)."""
    try:
        number = int(text)
    except ValueError:
        raise UsageError(f"{option} takes a number, not {text!r}") from None
    if number < 0:
        raise UsageError(f"{option} must not be negative")
    return number


def port(text: str, option: str) -> int:
    """A TCP/UDP port number, 1-65535."""
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise UsageError(f"{option} takes a port number from 1 to 65535, not {text!r}")
    return int(text)


def count_from(minimum: int) -> Callable[[str, str], int]:
    """A converter for a whole number of at least ``minimum`` (``--max-failures``)."""

    def count(text: str, option: str) -> int:
        try:
            number = int(text)
        except ValueError:
            raise UsageError(f"{option} takes a whole number, not {text!r}") from None
        if number < minimum:
            raise UsageError(f"{option} must be at least {minimum}, not {number}")
        return number

    return count


def duration(text: str, option: str) -> float:
    """A duration more than 0 (``--health-every 5s``), see ``parse_duration``."""
    return parse_duration(text, option)


def _off(text: str) -> bool:
    return text.strip().lower() == "off"


def size_or_off(text: str, option: str) -> int:
    """A size more than 0 (``--max-memory 200M``), or 0 for ``off`` (remove the stored one)."""
    return 0 if _off(text) else size_option(text, option)


def duration_or_off(text: str, option: str) -> float:
    """A duration more than 0 (``--restart-every 24h``), or 0 for ``off`` (remove the stored one)."""
    return 0.0 if _off(text) else parse_duration(text, option)


def count(text: str, option: str) -> int:
    """A whole number of at least 1 (``--health-retries 3``)."""
    number = whole_number(text, option)
    if number < 1:
        raise UsageError(f"{option} must be at least 1")
    return number
