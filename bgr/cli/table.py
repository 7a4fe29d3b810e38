"""Declarative option tables: a program's options are the fields of one record class.

A program (``bgr``, ``bgr-guard``) declares its parse result as a record whose fields default to
:func:`flag`, :func:`value`, :func:`many` or :func:`positional`. :class:`Table` reads those
declarations once and derives everything else from them: the options part of the docopt usage
text (docopt stays the parser of record and of error wording), the sets the fast path of
:mod:`bgr.cli.parse` uses, and the typed record built from either parser's result. Adding an
option is one field.
"""

from __future__ import annotations

from bgr.record import Record

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: see bgr/record.py
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any

FLAG, VALUE, MANY, POSITIONAL, POSITIONALS = "flag", "value", "many", "positional", "positionals"
_HELP_COLUMN = 26
_EMPTY = {FLAG: False, VALUE: None, MANY: (), POSITIONAL: None, POSITIONALS: ()}


class Option(Record):
    """One declared option (or positional argument)."""

    kind: str  # FLAG, VALUE, MANY or POSITIONAL
    long: str  # "--name"; for a positional its metavar, "NAME"
    metavar: str | None
    help: str
    short: str | None = None  # "-d"
    heading: str | None = None  # starts a --help section ("" for one without a title)
    # (text, option) → the typed value; raises UsageError. None keeps the text.
    convert: Callable[[str, str], Any] | None = None

    @property
    def empty(self) -> Any:
        """The record's value when the option is not given."""
        return _EMPTY[self.kind]

    def spelling(self) -> str:
        """The option as docopt's option descriptions write it: ``-d DIR, --directory=DIR``."""
        if self.kind in (POSITIONAL, POSITIONALS):
            return self.long
        arg = "" if self.metavar is None else f"={self.metavar}"
        short = (
            ""
            if self.short is None
            else f"{self.short}{'' if self.metavar is None else ' ' + self.metavar}, "
        )
        return f"{short}{self.long}{arg}"


def flag(long: str, help: str, *, short: str | None = None, heading: str | None = None) -> Any:
    """A field that is True when ``long`` is given."""
    return Option(FLAG, long, None, help, short, heading)


def value(
    long: str,
    metavar: str,
    help: str,
    *,
    short: str | None = None,
    heading: str | None = None,
    convert: Callable[[str, str], Any] | None = None,
) -> Any:
    """A field holding ``long``'s value (converted by ``convert``), None when not given."""
    return Option(VALUE, long, metavar, help, short, heading, convert)


def many(
    long: str,
    metavar: str,
    help: str,
    *,
    heading: str | None = None,
    convert: Callable[[str, str], Any] | None = None,
) -> Any:
    """A field holding every value of a repeatable ``long`` (each converted), as a tuple."""
    return Option(MANY, long, metavar, help, None, heading, convert)


def positional(metavar: str, help: str = "", *, heading: str | None = None, convert: Any = None) -> Any:
    """A field holding a positional argument, None when not given."""
    return Option(POSITIONAL, metavar, metavar, help, None, heading, convert)


def positionals(metavar: str, help: str = "", *, heading: str | None = None) -> Any:
    """A field holding every positional argument (``[NAME]...``, the last slot), as a tuple."""
    return Option(POSITIONALS, metavar, metavar, help, None, heading)


class Table:
    """The options of one program, read from its record class (see the module docstring).

    Building the table also gives the record its real defaults (False, None, ``()``) in place of
    the declarations, so ``Args()`` is "nothing given".
    """

    def __init__(
        self,
        record: type[tuple[Any, ...]],
        *,
        program: str,
        summary: str,
        usage: Sequence[str],  # patterns; ``{repeatable}`` stands for every repeatable option
        epilog: str = "",
    ) -> None:
        self.record = record
        self.program = program
        self._summary = summary
        self._usage = tuple(usage)
        self._epilog = epilog
        declared: dict[str, Option] = dict(record._field_defaults)  # type: ignore[attr-defined]
        self.options = tuple(declared.values())
        self.field_of = {option.long: field for field, option in declared.items()}
        defaults = tuple(option.empty for option in self.options)
        # Records read their defaults from here when built: this makes ``Args()`` "nothing given".
        record._field_defaults = dict(zip(declared, defaults, strict=True))  # type: ignore[attr-defined]
        by_kind: dict[str, frozenset[str]] = {
            kind: frozenset(o.long for o in self.options if o.kind == kind) for kind in _EMPTY
        }
        self.flags, self.values, self.lists = by_kind[FLAG], by_kind[VALUE], by_kind[MANY]
        self.positionals = tuple(o.long for o in self.options if o.kind in (POSITIONAL, POSITIONALS))
        # The repeated slot, if any: every positional word after the single ones lands there.
        self.repeated = next((o.long for o in self.options if o.kind == POSITIONALS), None)
        self.shorts = {o.short: o.long for o in self.options if o.short}
        self.known = self.flags | self.values | self.lists

    def usage(self) -> str:
        """The docopt usage text, which is also ``--help``."""
        lines = [self._summary, "", "Usage:"]
        # docopt collects a repeated option only where the pattern says ``[--x=V]...``.
        repeatable = " ".join(f"[{o.long}={o.metavar}]..." for o in self.options if o.kind == MANY)
        lines += [f"  {self.program} {pattern.format(repeatable=repeatable)}" for pattern in self._usage]
        for option in self.options:
            if option.heading is not None:
                lines += ["", f"{option.heading}:"] if option.heading else [""]
            if not option.help:
                continue
            spelled = option.spelling()
            help_lines = option.help.split("\n")
            gap = " " * max(2, _HELP_COLUMN - len(spelled))
            lines.append(f"  {spelled}{gap}{help_lines[0]}".rstrip())
            lines += [" " * (_HELP_COLUMN + 2) + more for more in help_lines[1:]]
        if self._epilog:
            lines += ["", self._epilog.strip("\n")]
        return "\n".join(lines) + "\n"

    def build(self, given: Mapping[str, Any]) -> Any:
        """The record for ``{long option or positional: raw value}``: converted, absent ones empty."""
        values = {}
        for option in self.options:
            raw = given.get(option.long, option.empty)
            if option.kind == POSITIONALS:
                raw = tuple(raw or ())
            elif option.kind == MANY:
                raw = tuple(raw if option.convert is None else (option.convert(v, option.long) for v in raw))
            elif option.convert is not None and isinstance(raw, str):
                raw = option.convert(raw, option.long)
            values[self.field_of[option.long]] = raw
        return self.record(**values)

    def from_docopt(self, parsed: Mapping[str, Any]) -> Any:
        """The record for docopt's dict (keys are long options and positional names)."""
        return self.build({option.long: parsed.get(option.long) for option in self.options})
