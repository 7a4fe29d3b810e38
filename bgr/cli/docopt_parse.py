"""docopt-ng parsing shared by ``bgr`` and ``bgr-guard``, with the two fixes both need.

docopt expands unique prefixes (``--nu`` becomes ``--nuke``), which must never happen for a
destructive flag, so long options are accepted only in full; and its errors show its internals
(``Option('-x', None, 0, True)``), so they are turned into one readable line. This module only
parses: the ``cli`` modules print and exit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from bgr.errors import UsageError

_UNMATCHED = "Warning: found unmatched"


def check_spelling(argv: Sequence[str], known: frozenset[str], program: str) -> None:
    """Refuse a long option that is not spelled in full (or not known at all)."""
    for token in argv:
        if token == "--":
            break
        if token.startswith("--"):
            option = token.split("=", 1)[0]
            if option not in known:
                near = sorted(o for o in known if o.startswith(option))
                hint = f" (did you mean {' or '.join(near)}? options must be typed in full)" if near else ""
                raise UsageError(f"unknown option {option}{hint}; see {program} --help")


def unmatched_names(reason: str) -> list[str]:
    """The arguments named in docopt's "found unmatched (duplicate?) arguments [...]" message."""
    return re.findall(r"(?:Option|Argument)\((?:None, )?'([^']*)'", reason)


def parse(
    usage: str,
    argv: Sequence[str],
    known: frozenset[str],
    program: str,
    *,
    explain_unmatched: Callable[[str], str] | None = None,
) -> dict[str, Any]:
    """argv → docopt's dict, or UsageError with one clean line.

    ``explain_unmatched`` turns docopt's "found unmatched arguments" text into the program's own
    words; by default the extra arguments are named.
    """
    from docopt import DocoptExit, docopt

    check_spelling(argv, known, program)
    try:
        return dict(docopt(usage, argv=list(argv), default_help=False))
    except DocoptExit as exc:
        text = str(exc).strip().splitlines()
        reason = text[0] if text and not text[0].startswith("Usage") else "invalid arguments"
        if reason.startswith(_UNMATCHED):
            if explain_unmatched is not None:
                reason = explain_unmatched(reason)
            else:
                named = " ".join(unmatched_names(reason)) or "(see usage)"
                reason = f"unknown, extra or repeated argument {named}"
        raise UsageError(f"{reason}; see {program} --help") from None
