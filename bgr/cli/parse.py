"""argv → a program's typed record, through a fast path or docopt, with clean one-line errors.

docopt-ng is the parser of record: it words every error. But it re-parses the usage text on every
call (importing and parsing cost a quarter of a ``bgr`` listing or start; see ``bench/``), so argv made
only of full options (plus the table's short options, each a token of its own) and positional
words, none repeated, skips it: :func:`fast` builds the same values from the table's sets, and
anything else (``-cCMD``, ``--``, a repeated option, a value that is empty or starts with ``-``)
goes to docopt. A test compares both over the table's whole option space.

docopt also expands unique prefixes (``--nu`` becomes ``--nuke``), which must never happen for a
destructive flag, so long options are accepted only in full; and its errors show its internals
(``Option('-x', None, 0, True)``), so they are turned into one readable line.
"""

from __future__ import annotations

from bgr.cli.table import Table
from bgr.errors import UsageError

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: see bgr/record.py
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

_UNMATCHED = "Warning: found unmatched"


def parse(
    table: Table,
    argv: Sequence[str],
    *,
    explain_unmatched: Callable[[str], str] | None = None,
    use_fast: bool = True,
) -> Any:
    """argv → ``table``'s record; UsageError with one clean line when argv is wrong.

    ``-h``/``--help`` or ``--version`` anywhere wins over everything else, mistakes included.
    ``use_fast=False`` for a usage whose positional arguments depend on the pattern matched.
    """
    for wanted in ("--help", "--version"):
        if wanted in table.flags and any(a == wanted or table.shorts.get(a) == wanted for a in argv):
            return table.build({wanted: True})
    given = fast(table, argv) if use_fast else None
    if given is not None:
        return table.build(given)
    return table.from_docopt(with_docopt(table, argv, explain_unmatched=explain_unmatched))


def fast(table: Table, argv: Sequence[str]) -> dict[str, Any] | None:
    """``{long option or positional: raw value}`` for plain argv, else None (see the module doc)."""
    found: dict[str, Any] = {key: [] for key in table.lists}
    if table.repeated is not None:
        found[table.repeated] = []
    positionals = iter(table.positionals)
    tokens = iter(argv)
    for token in tokens:
        if not token.startswith("-"):
            slot = next(positionals, table.repeated)
            if slot is None:
                return None
            if slot == table.repeated:
                found[slot].append(token)
            else:
                found[slot] = token
            continue
        option, equals, value = token.partition("=")
        option = table.shorts.get(token, option)
        if option in table.flags:
            if equals or option in found or option in ("--help", "--version"):
                return None
            found[option] = True
        elif not _take_value(table, found, option, value if equals else next(tokens, "")):
            return None
    return found


def _take_value(table: Table, found: dict[str, Any], option: str, value: str) -> bool:
    """Note a value option's value; False when docopt must decide (unknown, empty, ``-x``, repeated)."""
    if not value or value.startswith("-"):
        return False
    if option in table.lists:
        found[option].append(value)
        return True
    if option not in table.values or option in found:
        return False
    found[option] = value
    return True


def with_docopt(
    table: Table, argv: Sequence[str], *, explain_unmatched: Callable[[str], str] | None = None
) -> dict[str, Any]:
    """argv → docopt's dict for ``table``'s usage, or UsageError with one clean line.

    ``explain_unmatched`` turns docopt's "found unmatched arguments" text into the program's own
    words; by default the extra arguments are named.
    """
    from docopt import DocoptExit, docopt

    check_spelling(argv, table.known, table.program)
    try:
        return dict(docopt(table.usage(), argv=list(argv), default_help=False))
    except DocoptExit as exc:
        text = str(exc).strip().splitlines()
        reason = text[0] if text and not text[0].startswith("Usage") else "invalid arguments"
        if reason.startswith(_UNMATCHED):
            if explain_unmatched is not None:
                reason = explain_unmatched(reason)
            else:
                named = " ".join(unmatched_names(reason)) or "(see usage)"
                reason = f"unknown, extra or repeated argument {named}"
        raise UsageError(f"{reason}; see {table.program} --help") from None


def check_spelling(argv: Sequence[str], known: frozenset[str], program: str) -> None:
    """Refuse a long option that is not spelled in full (or not known at all)."""
    for token in argv:
        if token == "--":
            break
        if token.startswith("--"):
            option = token.split("=", 1)[0]
            if option not in known:
                raise UsageError(f"unknown option {option}{_near(option, known)}; see {program} --help")


def _near(option: str, known: frozenset[str]) -> str:
    """`` (did you mean --name?)`` for a prefix (never expanded: see the module doc) or a typo."""
    prefixed = sorted(o for o in known if o.startswith(option))
    if prefixed:
        return f" (did you mean {' or '.join(prefixed)}? options must be typed in full)"
    import difflib  # only on this error path

    # Without the dashes, which every option shares and which would make any two look alike.
    words = {o.lstrip("-"): o for o in known}
    close = difflib.get_close_matches(option.lstrip("-"), sorted(words), n=2, cutoff=0.7)
    return f" (did you mean {' or '.join(words[c] for c in close)}?)" if close else ""


def unmatched_names(reason: str) -> list[str]:
    """The arguments named in docopt's "found unmatched (duplicate?) arguments [...]" message."""
    import re

    return re.findall(r"(?:Option|Argument)\((?:None, )?'([^']*)'", reason)
