"""pm2-style verbs: ``bgr restart web`` is ``bgr --restart web``, before either parser sees argv.

Only the first bare word can be a verb (``bgr --force restart worker`` is the seed README's own
example), so every name stays reachable: ``bgr web stop`` names two processes, and a process
called ``restart`` is ``bgr --name restart`` or ``bgr -- restart``. Every word after ``--`` is a
name, taken literally (not a verb, and not the word ``all``).
"""

from __future__ import annotations

from bgr.cli.table import Table
from bgr.record import Record

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: see bgr/record.py
if TYPE_CHECKING:
    from collections.abc import Sequence

# verb → the option it stands for ("" for none: the list, or one process's details).
VERBS = {
    "start": "--start",
    "stop": "--stop",
    "restart": "--restart",
    "delete": "--delete",
    "logs": "--logs",
    "list": "",
    "ls": "",
    "status": "",
    "help": "--help",
}


class Translated(Record):
    """argv with its verb turned into an option, and the names that followed ``--``."""

    argv: tuple[str, ...]
    literal: tuple[str, ...] = ()
    verb: str | None = None


def translate(table: Table, argv: Sequence[str]) -> Translated:
    """Replace a leading verb by its option and set aside the words after ``--``."""
    out: list[str] = []
    verb: str | None = None
    takes_value = table.values | table.lists
    tokens = iter(enumerate(argv))
    seen_word = False
    for index, token in tokens:
        if token == "--":
            return Translated(tuple(out), tuple(argv[index + 1 :]), verb)
        if token.startswith("-") and token != "-":
            out.append(token)
            if "=" not in token and table.shorts.get(token, token) in takes_value:
                following = next(tokens, None)  # the option's value: never a verb or a name
                if following is not None:
                    out.append(following[1])
            continue
        if not seen_word and token in VERBS:
            verb = token
            if VERBS[token]:
                out.append(VERBS[token])
        else:
            out.append(token)
        seen_word = True
    return Translated(tuple(out), (), verb)
