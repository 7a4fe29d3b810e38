"""The ``bgr`` command line: argv → :class:`~bgr.cli.options.Args` → one command → output.

The only package that sees argv, prints or exits. ``verbs`` turns ``bgr stop web`` into
``bgr --stop web``, ``parse`` turns argv into the typed record
(``options`` declares it), ``rules`` turns that into exactly one command, ``execute`` carries it
out through the core and ``output`` shapes every answer; ``funnel`` maps errors to exit codes for
both programs.
"""

from __future__ import annotations

from bgr.cli import funnel

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: see bgr/record.py
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import NoReturn


def run(argv: Sequence[str]) -> int:
    """Parse ``argv`` and do one thing. Raises BgrError for anything the user must fix."""
    from bgr.cli import execute, options, parse, rules, verbs

    line = verbs.translate(options.TABLE, argv)
    args = parse.parse(options.TABLE, line.argv)
    assert isinstance(args, options.Args)
    return execute.execute(rules.command(args, literal=line.literal, verb=line.verb))


def main(argv: Sequence[str] | None = None) -> int:
    """``bgr`` for in-process callers: run, map BgrError to one stderr line and its exit code."""
    return funnel.run_program("bgr", run, argv)


def entry() -> NoReturn:
    """The ``bgr`` program (console script and ``python -m bgr``): ``main()``, then ``leave``."""
    funnel.leave(main())
