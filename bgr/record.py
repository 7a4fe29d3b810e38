"""``Record``: the class syntax of ``typing.NamedTuple`` without importing ``typing``.

Every ``bgr`` call builds records, and ``typing.NamedTuple`` was an eighth of a ``bgr --json``
(``bench/``, ``-X importtime``): importing ``typing``, then turning each string annotation (``from
__future__ import annotations``) into a ``ForwardRef``, which compiles it. ``Record`` builds the
same ``collections.namedtuple`` class, fields and defaults from the class body, and leaves
annotations as strings. mypy sees ``typing.NamedTuple`` and checks the classes as such.

The same reason is behind ``TYPE_CHECKING = False`` at the top of the modules on those paths:
importing ``typing`` only to read ``typing.TYPE_CHECKING`` would cost what this module saves, and
mypy treats any name ``TYPE_CHECKING`` as true.
"""

from __future__ import annotations

from collections import namedtuple

__all__ = ["Record"]

TYPE_CHECKING = False  # mypy treats this name as True
if TYPE_CHECKING:
    from typing import NamedTuple as Record
else:
    # Names a class body may not define, because namedtuple's machinery uses them.
    _RESERVED = frozenset(
        {"__new__", "__init__", "__slots__", "__getnewargs__", "_fields", "_make", "_asdict", "_replace"}
    )

    class _RecordMeta(type):
        def __new__(mcs, name, bases, namespace):
            if not bases:  # Record itself
                return super().__new__(mcs, name, bases, namespace)
            annotations = namespace.get("__annotations__", {})
            fields = list(annotations)
            defaults = [namespace[field] for field in fields if field in namespace]
            # namedtuple applies defaults to the last fields, whichever had them: refuse a gap.
            if any(field not in namespace for field in fields[len(fields) - len(defaults) :]):
                raise TypeError(f"{name}: a field without a default follows one with a default")
            cls = namedtuple(name, fields, defaults=defaults, module=namespace["__module__"])
            cls.__annotations__ = dict(annotations)
            for key, value in namespace.items():
                if key in _RESERVED:
                    raise AttributeError(f"cannot overwrite NamedTuple attribute {key}")
                if key not in annotations and key not in {"__module__", "__annotations__"}:
                    setattr(cls, key, value)
            return cls

    class Record(metaclass=_RecordMeta):
        """Base of the record classes: ``class Point(Record): x: int; y: int = 0``."""
