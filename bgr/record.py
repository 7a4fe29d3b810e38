"""``Record``: the class syntax of ``typing.NamedTuple`` without importing ``typing``.

Every ``bgr`` call builds records, and ``typing.NamedTuple`` was an eighth of a ``bgr --json``
(``bench/``, ``-X importtime``): importing ``typing``, then turning each string annotation (``from
__future__ import annotations``) into a ``ForwardRef``, which compiles it. ``Record`` builds an
immutable tuple class with the same fields, defaults, methods and repr from the class body, and
leaves annotations as strings. It does not call ``collections.namedtuple`` either, whose ``eval``
of a generated ``__new__`` is half of the cost of each class, and a listing defines a few dozen:
its ``__new__`` is one generic function, and ``_make`` (what the registry uses for every row) goes
straight to ``tuple.__new__``. mypy sees ``typing.NamedTuple`` and checks the classes as such.

The same reason is behind ``TYPE_CHECKING = False`` at the top of the modules on those paths:
importing ``typing`` only to read ``typing.TYPE_CHECKING`` would cost what this module saves, and
mypy treats any name ``TYPE_CHECKING`` as true.
"""

from __future__ import annotations

__all__ = ["Record"]

TYPE_CHECKING = False  # mypy treats this name as True
if TYPE_CHECKING:
    from typing import NamedTuple as Record
else:
    # The field accessor namedtuple uses, from its C module: ``collections`` itself imports more.
    from _collections import _tuplegetter

    # Names a class body may not define, because the tuple machinery uses them.
    _RESERVED = frozenset(
        {"__new__", "__init__", "__slots__", "__getnewargs__", "_fields", "_make", "_asdict", "_replace"}
    )
    _tuple_new = tuple.__new__

    def _new(cls, *args, **kwargs):
        fields = cls._fields
        if not kwargs and len(args) == len(fields):
            return _tuple_new(cls, args)
        if len(args) > len(fields):
            raise TypeError(f"{cls.__name__}() takes {len(fields)} arguments but {len(args)} were given")
        values = list(args)
        defaults = cls._field_defaults
        for field in fields[len(args) :]:
            if field in kwargs:
                values.append(kwargs.pop(field))
            elif field in defaults:
                values.append(defaults[field])
            else:
                raise TypeError(f"{cls.__name__}() missing required argument: {field!r}")
        if kwargs:
            extra = next(iter(kwargs))
            why = "multiple values for argument" if extra in fields else "an unexpected keyword argument"
            raise TypeError(f"{cls.__name__}() got {why} {extra!r}")
        return _tuple_new(cls, values)

    @classmethod
    def _make(cls, iterable):
        result = _tuple_new(cls, iterable)
        if len(result) != len(cls._fields):
            raise TypeError(f"Expected {len(cls._fields)} arguments, got {len(result)}")
        return result

    def _replace(self, /, **changes):
        result = self._make(map(changes.pop, self._fields, self))
        if changes:
            raise ValueError(f"Got unexpected field names: {list(changes)!r}")
        return result

    def _repr(self):
        pairs = ", ".join(f"{name}={value!r}" for name, value in zip(self._fields, self, strict=True))
        return f"{self.__class__.__name__}({pairs})"

    def _asdict(self):
        return dict(zip(self._fields, self, strict=True))

    def _getnewargs(self):
        return tuple(self)

    class _RecordMeta(type):
        def __new__(mcs, name, bases, namespace):
            if not bases:  # Record itself
                return super().__new__(mcs, name, bases, namespace)
            annotations = namespace.get("__annotations__", {})
            fields = tuple(annotations)
            defaults = [namespace[field] for field in fields if field in namespace]
            # Defaults apply to the last fields, whichever had them (as in namedtuple): refuse a gap.
            if any(field not in namespace for field in fields[len(fields) - len(defaults) :]):
                raise TypeError(f"{name}: a field without a default follows one with a default")
            body = {
                "__slots__": (),
                "__doc__": namespace.get("__doc__") or f"{name}({', '.join(fields)})",
                "__module__": namespace["__module__"],
                "__qualname__": namespace.get("__qualname__", name),
                "__annotations__": dict(annotations),
                "__match_args__": fields,
                "_fields": fields,
                "_field_defaults": dict(zip(fields[len(fields) - len(defaults) :], defaults, strict=True)),
                "__new__": _new,
                "_make": _make,
                "_replace": _replace,
                "__repr__": _repr,
                "_asdict": _asdict,
                "__getnewargs__": _getnewargs,
            }
            for index, field in enumerate(fields):
                body[field] = _tuplegetter(index, f"Alias for field number {index}")
            for key, value in namespace.items():
                if key in _RESERVED:
                    raise AttributeError(f"cannot overwrite NamedTuple attribute {key}")
                if key not in annotations and key not in body:
                    body[key] = value
            return type.__new__(type, name, (tuple,), body)

    class Record(metaclass=_RecordMeta):
        """Base of the record classes: ``class Point(Record): x: int; y: int = 0``."""
