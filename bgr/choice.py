"""``Choice``: the class syntax and behaviour of ``enum.StrEnum`` without importing ``enum``.

``enum`` imports ``functools`` and with it ``collections``, milliseconds of every ``bgr`` call
(``bench/``, ``-X importtime``) for two small sets of strings (:class:`bgr.models.Status`,
:class:`bgr.models.Desired`). A ``Choice`` subclass lists its members as ``NAME = "value"``; each
member is an instance of the class and a ``str`` equal to its value, so it compares, hashes,
formats and serialises as that string. As with ``StrEnum``: ``Cls("value")`` returns the member
itself (so ``is`` works) and raises ValueError for any other value, ``Cls["NAME"]`` finds one by
name, the class iterates over its members in definition order (an alias, a second name for a
value, is the same member and is not repeated), members have ``.name`` and
``.value``, copy and pickle keep them the same object, and they cannot be reassigned. mypy sees
``enum.StrEnum`` (the same ``TYPE_CHECKING`` trick as :mod:`bgr.record`) and checks them as such.
"""

from __future__ import annotations

__all__ = ["Choice"]

TYPE_CHECKING = False  # mypy treats this name as True
if TYPE_CHECKING:
    from enum import StrEnum as Choice
else:

    def _is_member(key, value):
        return isinstance(value, str) and not key.startswith("_")

    class _ChoiceMeta(type):
        def __new__(mcs, name, bases, namespace):
            body = {key: value for key, value in namespace.items() if not _is_member(key, value)}
            cls = super().__new__(mcs, name, bases, body)
            by_value = {}
            for key, value in namespace.items():
                if _is_member(key, value):
                    member = by_value.get(value)
                    if member is None:  # else an alias, as in enum: the same member by another name
                        member = by_value[value] = str.__new__(cls, value)
                        member._name_ = key
                    type.__setattr__(cls, key, member)
            type.__setattr__(cls, "_value2member_map_", by_value)
            return cls

        def __call__(cls, value):
            try:
                return cls._value2member_map_[value]
            except (KeyError, TypeError):
                raise ValueError(f"{value!r} is not a valid {cls.__qualname__}") from None

        def __getitem__(cls, name):
            member = cls.__dict__.get(name)
            if not isinstance(member, cls):
                raise KeyError(name)
            return member

        def __iter__(cls):
            return iter(tuple(cls._value2member_map_.values()))

        def __len__(cls):
            return len(cls._value2member_map_)

        def __contains__(cls, value):
            try:
                return value in cls._value2member_map_
            except TypeError:
                return False

        def __setattr__(cls, name, value):
            if isinstance(cls.__dict__.get(name), cls):
                raise AttributeError(f"cannot reassign member {name!r}")
            super().__setattr__(name, value)

        def __delattr__(cls, name):
            if isinstance(cls.__dict__.get(name), cls):
                raise AttributeError(f"cannot delete member {name!r}")
            super().__delattr__(name)

        def __repr__(cls):
            return f"<enum {cls.__name__!r}>"

    class Choice(str, metaclass=_ChoiceMeta):
        """Base of the choice classes: ``class Color(Choice): RED = "red"``."""

        @property
        def name(self):
            return self._name_

        @property
        def value(self):
            return str.__str__(self)

        __str__ = str.__str__
        __format__ = str.__format__

        def __repr__(self):
            return f"<{type(self).__name__}.{self._name_}: {str.__repr__(self)}>"

        def __reduce_ex__(self, protocol):
            return type(self), (str.__str__(self),)

        def __copy__(self):
            return self

        def __deepcopy__(self, memo):
            return self
