"""bgr.jsontext must give json's own results and errors, without importing json on its way."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from bgr import jsontext
from bgr.models import Status

NESTED = {
    "name": "web",
    "env": {"PATH": "/bin", "é": "日本", 'quote"': "back\\slash\n\t\x00\u2028"},
    "ports": [8080, 0, -1, 10**30],
    "figures": [1.5, -0.0, 1e300, 2.5e-8, 3.0],
    "flags": [True, False, None],
    "empty": [{}, [], (), ""],
    "deep": [[[{"a": [{"b": ()}]}]]],
    "status": Status.CRASHED,
    "surrogate": "\ud800",
    "emoji": "🙂",
}
VALUES: list[Any] = [
    None, True, False, 0, 1, -7, 2**64, 0.1, -1.25, 1e-7, "", "plain", "ünïcode", "🙂", "\x1f",
    [], {}, (), [None], (1, (2, (3,))), {"k": {}}, Status.RUNNING, NESTED,
]  # fmt: skip
NOT_FINITE = [float("nan"), float("inf"), float("-inf"), [float("nan"), {"x": float("-inf")}]]


@pytest.mark.parametrize("value", VALUES + NOT_FINITE)
def test_the_indented_output_is_json_dumps_indent_2(value: Any) -> None:
    assert jsontext.dumps_indented(value) == json.dumps(value, indent=2, ensure_ascii=False)


@pytest.mark.parametrize("value", VALUES + NOT_FINITE)
def test_the_stored_form_is_json_dumps_compact(value: Any) -> None:
    assert jsontext.dumps(value) == json.dumps(value, separators=(",", ":"))


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("spelling", ["compact", "default", "indented"])
def test_loads_reads_what_json_writes(value: Any, spelling: str) -> None:
    text = {
        "compact": jsontext.dumps(value),
        "default": json.dumps(value),
        "indented": json.dumps(value, indent=2),
    }[spelling]
    assert jsontext.loads(text) == json.loads(text)
    assert type(jsontext.loads(text)) is type(json.loads(text))


def test_loads_reads_the_constants_and_surrounding_whitespace_like_json() -> None:
    assert math.isnan(jsontext.loads("NaN"))
    assert jsontext.loads("[Infinity, -Infinity]") == [math.inf, -math.inf]
    assert jsontext.loads(' \n {"a": [1, 2]} \t') == {"a": [1, 2]}


@pytest.mark.parametrize("text", ["", " ", "{", "[1,]", "nul", "1 2", '{"a" 1}', '"\x01"', "[1] x"])
def test_invalid_text_raises_what_json_raises(text: str) -> None:
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(text)
    with pytest.raises(json.JSONDecodeError) as got:
        jsontext.loads(text)
    assert str(got.value) == str(expected.value)


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _indented(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def test_values_json_cannot_write_fail_the_same_way() -> None:
    for value in ({1, 2}, {"a": 1j}, [object()]):
        for ours, theirs in ((jsontext.dumps, _compact), (jsontext.dumps_indented, _indented)):
            with pytest.raises(TypeError) as expected:
                theirs(value)
            with pytest.raises(TypeError) as got:
                ours(value)
            assert str(got.value) == str(expected.value)
    cycle: list[Any] = []
    cycle.append(cycle)
    for write in (jsontext.dumps, jsontext.dumps_indented):
        with pytest.raises(ValueError, match="Circular reference detected"):
            write(cycle)


def test_keys_that_are_not_strings_are_written_as_json_writes_them() -> None:
    value: dict[Any, Any] = {1: "one", 2.5: None, False: [], None: {}}
    assert jsontext.dumps_indented(value) == json.dumps(value, indent=2, ensure_ascii=False)
    assert jsontext.dumps(value) == json.dumps(value, separators=(",", ":"))
