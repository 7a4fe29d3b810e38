"""bgr.choice.Choice must behave as enum.StrEnum does, without importing enum."""

from __future__ import annotations

import copy
import json
import pickle
from enum import StrEnum
from typing import Any

import pytest

from bgr.choice import Choice
from bgr.models import Desired, Status


class Light(Choice):
    """A traffic light."""

    RED = "red"
    AMBER = "amber"  # a comment does not make a member
    GREEN = "green"

    def stopping(self) -> bool:
        return self is Light.RED


class EnumLight(StrEnum):
    """A traffic light."""

    RED = "red"
    AMBER = "amber"
    GREEN = "green"


def test_members_are_strings_equal_to_their_values_as_in_a_str_enum() -> None:
    for ours, theirs in zip(Light, EnumLight, strict=True):
        assert ours == theirs.value and str(theirs) == ours
        assert hash(ours) == hash(theirs)
        assert (str(ours), f"{ours}", f"{ours:>7}", ours.name, ours.value) == (
            str(theirs), f"{theirs}", f"{theirs:>7}", theirs.name, theirs.value,
        )  # fmt: skip
        assert type(ours.value) is str
        assert repr(ours) == repr(theirs).replace("EnumLight", "Light")
        assert isinstance(ours, Light) and isinstance(ours, str)
    assert [m.name for m in Light] == [m.name for m in EnumLight] == ["RED", "AMBER", "GREEN"]
    assert len(Light) == len(EnumLight) == 3
    assert Light.RED.stopping() and not Light.GREEN.stopping()
    assert Light.__doc__ == "A traffic light."


def test_lookup_by_value_returns_the_member_itself_and_refuses_others() -> None:
    assert Light("amber") is Light.AMBER
    assert Light(Light.AMBER) is Light.AMBER
    assert Light["GREEN"] is Light.GREEN
    bad: Any
    for bad in ("blue", "RED", 3, None):
        with pytest.raises(ValueError) as expected:
            EnumLight(bad)
        with pytest.raises(ValueError) as got:
            Light(bad)
        assert str(got.value) == str(expected.value).replace("EnumLight", "Light")
    with pytest.raises(KeyError):
        Light["red"]
    light: Any = Light  # mypy's enum types take members only
    assert "red" in light and Light.RED in light
    assert "blue" not in light and 3 not in light


def test_members_stay_the_same_object_through_copy_pickle_and_json() -> None:
    for member in Light:
        assert copy.copy(member) is member
        assert copy.deepcopy(member) is member
        assert pickle.loads(pickle.dumps(member)) is member
    assert json.dumps({"light": Light.RED, Light.GREEN: [Light.AMBER]}) == json.dumps(
        {"light": EnumLight.RED, EnumLight.GREEN: [EnumLight.AMBER]}
    )


def test_members_cannot_be_reassigned_or_deleted_and_a_repeated_value_is_an_alias() -> None:
    with pytest.raises(AttributeError):
        Light.RED = "blue"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del Light.RED
    assert Light.RED.value == "red"

    class Twice(Choice):
        ONE = "x"
        OTHER = "x"

    class EnumTwice(StrEnum):
        ONE = "x"
        OTHER = "x"

    alias: object = Twice.OTHER
    enum_alias: object = EnumTwice.OTHER
    assert alias is Twice.ONE and enum_alias is EnumTwice.ONE
    assert [m.name for m in Twice] == [m.name for m in EnumTwice] == ["ONE"]
    assert Twice["OTHER"] is Twice.ONE and EnumTwice["OTHER"] is EnumTwice.ONE


def test_the_models_choices_read_back_from_the_registry_as_their_members() -> None:
    assert Desired("stopped") is Desired.STOPPED
    assert [s.value for s in Status] == [
        "running", "stopped", "exited", "crashed", "starting", "backoff", "fatal", "scheduled",
    ]  # fmt: skip
