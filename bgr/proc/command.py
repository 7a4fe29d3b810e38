"""How a command line will run: straight from the launcher when it is one simple command, else
through ``/bin/sh -c``.

Debian's ``/bin/sh`` (dash) runs the last command of ``sh -c 'prog args'`` as a child instead of
replacing itself with it, so the pid bgr records (and shows, and ``kill`` gets) would be the shell's.
A command made only of words (quoted or not) has no shell meaning beyond splitting, so bgr splits it
the way the shell would and replaces the launcher with the program itself; anything with shell syntax (``$``,
pipes, redirections, globs, ``;``, ``&&``, assignments, builtins...) still goes to ``/bin/sh -c``.
"""

from __future__ import annotations

import os

# A first word the shell looks up in PATH: no quoting, expansion, assignment or redirection. A set,
# not a regular expression: ``re`` is the costliest import of a start.
_PLAIN_WORD_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./+,:@%-")
# Reserved words and builtins of dash and bash (either may be /bin/sh): never looked up in PATH.
_SHELL_WORDS = frozenset(
    """case do done elif else esac fi for function if in select then time until while . : alias bg
    bind break builtin caller cd command compgen complete continue declare dirs disown echo enable
    eval exec exit export false fc fg getopts hash help history jobs kill let local logout mapfile
    popd printf pushd pwd read readarray readonly return set shift shopt source suspend test times
    trap true type typeset ulimit umask unalias unset wait""".split()  # noqa: SIM905 (a word list)
)


def cannot_exec(command: str, directory: str, path: str | None) -> bool:
    """True when ``/bin/sh -c command`` will surely fail to run its first word: not found (exit
    127), or not an executable file (126).

    A start uses this to wait for that exit, however loaded the machine, instead of hoping it
    lands inside the startup window. Only a plain first word is judged; False means "cannot
    tell", not "it will run".
    """
    words = command.split(None, 1)
    if not words or words[0] in _SHELL_WORDS or not _PLAIN_WORD_CHARS.issuperset(words[0]):
        return False
    word = words[0]
    if "/" in word:
        candidates = [os.path.join(directory, word)]
    elif path is None:
        return False  # the shell's built-in default PATH; not ours to guess
    else:
        # The shell runs in ``directory``: relative and empty PATH entries are relative to it.
        candidates = [os.path.join(directory, entry, word) for entry in path.split(":")]
    return not any(os.path.isfile(c) and os.access(c, os.X_OK) for c in candidates)


# Anything that means more to the shell than word splitting and quoting.
_SHELL_SYNTAX = frozenset("$`\\|&;<>()*?[]{}~#!\n\r")


def plain_argv(command: str) -> list[str] | None:
    """The argv of ``command`` if it is one simple command of plain words, else None (use sh -c)."""
    if not command.strip() or any(char in _SHELL_SYNTAX for char in command):
        return None
    words = _split(command)
    if not words or words[0] in _SHELL_WORDS or "=" in words[0] or not words[0]:
        return None
    return words


def _split(command: str) -> list[str] | None:
    """Words as the shell splits them, for a command with no ``$``, backquote or backslash: quotes
    only group (``'a b'``, ``"a b"``, ``x"y"z``). None for an unbalanced quote (the shell says why).

    Not ``shlex``: importing it is a noticeable part of a start, and nothing here needs more.
    """
    words: list[str] = []
    word: list[str] | None = None  # None: between words
    quote = ""
    for char in command:
        if quote:
            if char == quote:
                quote = ""
            else:
                word.append(char)  # type: ignore[union-attr]  # inside a quote, a word is open
        elif char in " \t":
            if word is not None:
                words.append("".join(word))
                word = None
        else:
            word = [] if word is None else word
            if char in "'\"":
                quote = char
            else:
                word.append(char)
    if quote:
        return None
    if word is not None:
        words.append("".join(word))
    return words
