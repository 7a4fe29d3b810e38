"""JSON text for the registry's columns and for ``bgr --json``, without importing ``json``.

``import json`` compiles regular expressions at import time (its decoder, scanner and encoder
each do), so it imports ``re``, and ``re`` imports ``enum``, ``functools`` and ``collections``:
together the largest share of a ``bgr --json`` after the interpreter itself (``bench/``,
``-X importtime``). The C accelerator ``_json``, which ``json`` uses under the hood, needs none of
that. :func:`loads` and :func:`dumps` call it the way ``json.loads``/``json.dumps`` do;
:func:`dumps_indented` writes ``json.dumps(value, indent=2, ensure_ascii=False)``, which ``_json``
cannot indent, for the plain values the output holds. Anything else (surrounding whitespace,
invalid text, other types, cycles) is handed to ``json`` itself, so results and errors are
always ``json``'s own; the tests compare the two over every kind of value.
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: see bgr/record.py
if TYPE_CHECKING:
    from typing import Any

__all__ = ["dumps", "dumps_indented", "loads"]

_CONSTANTS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


class _Decoding:
    """The attributes ``_json.make_scanner`` reads from a ``json.JSONDecoder`` with defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__


def _unserializable(value: object) -> object:
    raise TypeError(f"Object of type {value.__class__.__name__} is not JSON serializable")


_scan = _json.make_scanner(_Decoding())  # type: ignore[arg-type]  # typeshed wants the class itself
# json.dumps(value, separators=(",", ":")): ASCII escapes, circular check, NaN allowed, no indent.
_encode_compact = _json.make_encoder(
    {}, _unserializable, _json.encode_basestring_ascii, None, ":", ",", False, False, True
)
_quote = _json.encode_basestring  # ensure_ascii=False: the text stays as it is, quotes escaped


def loads(text: str) -> Any:
    """``json.loads(text)``."""
    try:
        value, end = _scan(text, 0)
    except StopIteration:
        end = -1
    if end != len(text):
        import json  # whitespace around the value, or no JSON at all: json's answer or error

        return json.loads(text)
    return value


def dumps(value: Any) -> str:
    """``json.dumps(value, separators=(",", ":"))``: the compact form the registry stores."""
    return "".join(_encode_compact(value, 0))


class _Unsupported(Exception):
    """A value :func:`dumps_indented` leaves to ``json``."""


def dumps_indented(value: Any) -> str:
    """``json.dumps(value, indent=2, ensure_ascii=False)``."""
    chunks: list[str] = []
    try:
        _indent(value, "\n", chunks)
    except (_Unsupported, RecursionError):
        import json  # another type, a key that is not a string, or a cycle: json's answer or error

        return json.dumps(value, indent=2, ensure_ascii=False)
    return "".join(chunks)


def _indent(value: Any, newline: str, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(_quote(value))
    elif isinstance(value, dict):
        _indent_dict(value, newline, out)
    elif isinstance(value, (list, tuple)):
        _indent_list(value, newline, out)
    elif value is None or value is True or value is False:
        out.append("null" if value is None else "true" if value else "false")
    elif isinstance(value, (int, float)):
        out.append(dumps(value))  # the C encoder's int and float spelling, NaN and Infinity too
    else:
        raise _Unsupported


def _indent_dict(value: dict[Any, Any], newline: str, out: list[str]) -> None:
    if not value:
        out.append("{}")
        return
    inner = newline + "  "
    separator = "{" + inner
    for key, item in value.items():
        if not isinstance(key, str):
            raise _Unsupported
        out.append(separator + _quote(key) + ": ")
        _indent(item, inner, out)
        separator = "," + inner
    out.append(newline + "}")


def _indent_list(value: list[Any] | tuple[Any, ...], newline: str, out: list[str]) -> None:
    if not value:
        out.append("[]")
        return
    inner = newline + "  "
    separator = "[" + inner
    for item in value:
        out.append(separator)
        _indent(item, inner, out)
        separator = "," + inner
    out.append(newline + "]")
