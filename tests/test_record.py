"""bgr.record.Record must build the same classes typing.NamedTuple does, without importing typing."""

from __future__ import annotations

from typing import NamedTuple

import pytest

from bgr.record import Record


class Point(Record):
    """A point."""

    x: int
    y: int = 0
    label: str | None = None

    @property
    def norm1(self) -> int:
        return abs(self.x) + abs(self.y)

    def moved(self, dx: int) -> Point:
        return self._replace(x=self.x + dx)


class TypedPoint(NamedTuple):
    """A point."""

    x: int
    y: int = 0
    label: str | None = None


def test_a_record_has_the_fields_defaults_and_behaviour_of_a_typing_namedtuple() -> None:
    point = Point(3, -4)
    assert Point._fields == TypedPoint._fields
    assert Point._field_defaults == TypedPoint._field_defaults
    assert tuple(point) == tuple(TypedPoint(3, -4)) == (3, -4, None)
    assert repr(point) == "Point(x=3, y=-4, label=None)"
    assert point == Point(x=3, y=-4) and point != Point(3, 4)
    assert point.norm1 == 7 and point.moved(1) == Point(4, -4)
    assert Point.__doc__ == "A point." and Point.__module__ == __name__
    assert Point.__qualname__ == "Point"
    with pytest.raises(AttributeError):
        point.x = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        Point()  # type: ignore[call-arg]


def test_a_field_without_default_after_one_with_is_refused_like_namedtuple() -> None:
    with pytest.raises(TypeError):

        class Bad(Record):
            a: int = 0
            b: int  # type: ignore[misc]


def test_a_record_cannot_redefine_the_namedtuple_machinery() -> None:
    with pytest.raises(AttributeError):

        class Bad(Record):
            a: int

            def _replace(self, **changes: int) -> Bad:  # type: ignore[misc]
                return self
