"""Block-style YAML for the plain data exports produce: dicts, lists, strings, numbers, booleans.

Strings are always written double-quoted, with JSON's escapes, which YAML's double-quoted scalars
share (YAML 1.2 is a superset of JSON): so no value can be read back as a number, a boolean, a
date, ``null`` or an alias, which is where hand-written YAML usually goes wrong (``on: yes``,
``version: 3.10``, ``NO``). Keys are written plain only when they cannot be mistaken for anything
else. About 60 lines instead of a YAML library: exports need no parser and no other feature.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: see bgr/record.py
if TYPE_CHECKING:
    from typing import Any

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_./-]*")
# Words YAML 1.1 parsers (PyYAML, docker-compose's) read as booleans or null, whatever the case.
_RESERVED = frozenset(["y", "n", "yes", "no", "on", "off", "true", "false", "null"])


def document(data: Mapping[str, Any], comments: Sequence[str] = ()) -> str:
    """One YAML document for ``data``, after ``# comments``."""
    head = "".join(f"# {line}\n" if line else "#\n" for line in comments)
    return head + "\n".join(_block(data, 0)) + "\n"


def documents(items: Sequence[Mapping[str, Any]], comments: Sequence[str] = ()) -> str:
    """Several documents in one stream, separated by ``---``."""
    return document(items[0], comments) + "".join("---\n" + document(item) for item in items[1:])


def scalar(value: object) -> str:
    """A value that is not a container, as YAML."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"YAML export of {value!r}")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    raise TypeError(f"cannot write {type(value).__name__} as YAML")


def key(name: str) -> str:
    if _PLAIN_KEY.fullmatch(name) and name.lower() not in _RESERVED:
        return name
    return json.dumps(name, ensure_ascii=False)


def _block(value: object, indent: int) -> list[str]:
    pad = " " * indent
    if isinstance(value, Mapping):
        lines = []
        for name, item in value.items():
            if _nested(item):
                lines.append(f"{pad}{key(name)}:")
                lines += _block(item, indent + 2)
            else:
                lines.append(f"{pad}{key(name)}: {_inline(item)}")
        return lines or [f"{pad}{{}}"]
    if isinstance(value, list | tuple):
        lines = []
        for item in value:
            if _nested(item):
                inner = _block(item, indent + 2)
                lines.append(f"{pad}- {inner[0].lstrip()}")
                lines += inner[1:]
            else:
                lines.append(f"{pad}- {_inline(item)}")
        return lines or [f"{pad}[]"]
    return [pad + scalar(value)]


def _nested(value: object) -> bool:
    return isinstance(value, Mapping | list | tuple) and len(value) > 0


def _inline(value: object) -> str:
    if isinstance(value, Mapping):
        return "{}"
    if isinstance(value, list | tuple):
        return "[]"
    return scalar(value)
