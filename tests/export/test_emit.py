"""bgr.export.emit: block YAML that a YAML parser reads back as exactly the data written."""

from __future__ import annotations

import pytest

from bgr.export import emit

yaml = pytest.importorskip("yaml")  # PyYAML comes with kubernetes-validate (the dev extras)

TRICKY = {
    "on": "yes",
    "version": "3.10",
    "NO": "off",
    "empty": "",
    "nothing": None,
    "flags": [True, False],
    "numbers": [1, -2, 1.5],
    "text": 'quote " backslash \\ tab \t newline \n unicode zoë 🎉 colon: hash #',
    "nested": {"list": [{"a": 1, "b": [1, [2, 3]]}, [], {}], "deep": {"x": {"y": "z"}}},
    "app.kubernetes.io/name": "x",
    "1key": "starts with a digit",
    "": "empty key",
}


def test_what_is_written_reads_back_the_same() -> None:
    text = emit.document(TRICKY, ["a comment", ""])
    assert text.startswith("# a comment\n#\n")
    assert yaml.safe_load(text) == TRICKY


def test_several_documents_make_one_stream() -> None:
    text = emit.documents([{"a": 1}, {"b": [1]}, {"c": {}}])
    assert list(yaml.safe_load_all(text)) == [{"a": 1}, {"b": [1]}, {"c": {}}]


def test_values_it_cannot_write() -> None:
    with pytest.raises(ValueError):
        emit.scalar(float("nan"))
    with pytest.raises(TypeError):
        emit.scalar(object())
