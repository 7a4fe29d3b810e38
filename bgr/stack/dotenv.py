"""The ``.env`` format: ``KEY=VALUE`` lines, as honcho, foreman and Docker Compose read them.

- Blank lines and lines starting with ``#`` are skipped; ``export KEY=VALUE`` is accepted (a file
  that a shell can also ``source``).
- ``'single quoted'`` values are taken literally; ``"double quoted"`` ones understand ``\\n``,
  ``\\t``, ``\\"`` and ``\\\\``; both may hold ``#`` and spaces.
- An unquoted value ends before `` #`` (a comment after whitespace) and loses surrounding spaces.

Anything else (a line without ``=``, a key that is not a variable name, an unclosed quote) is an
error naming the file and the line, never a silently dropped variable.
"""

from __future__ import annotations

import re

from bgr.errors import StackError

_LINE = re.compile(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}


def parse(text: str, where: str) -> dict[str, str]:
    """The variables of a ``.env`` text; ``where`` (the file) names it in errors."""
    env: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _LINE.fullmatch(line)
        if match is None:
            raise StackError(f"{where}, line {number}: expected KEY=VALUE, not {stripped[:60]!r}")
        try:
            env[match[1]] = _value(match[2])
        except ValueError as exc:
            raise StackError(f"{where}, line {number}: {exc}") from None
    return env


def _value(raw: str) -> str:
    if raw[:1] == "'":
        end = raw.find("'", 1)
        if end < 0:
            raise ValueError("the ' quote is not closed")
        _only_comment_after(raw[end + 1 :])
        return raw[1:end]
    if raw[:1] == '"':
        return _double_quoted(raw)
    comment = re.search(r"\s#", raw)
    return (raw[: comment.start()] if comment else raw).strip()


def _double_quoted(raw: str) -> str:
    out: list[str] = []
    index = 1
    while index < len(raw):
        char = raw[index]
        if char == '"':
            _only_comment_after(raw[index + 1 :])
            return "".join(out)
        if char == "\\" and index + 1 < len(raw):
            following = raw[index + 1]
            out.append(_ESCAPES.get(following, "\\" + following))
            index += 2
            continue
        out.append(char)
        index += 1
    raise ValueError('the " quote is not closed')


def _only_comment_after(rest: str) -> None:
    rest = rest.strip()
    if rest and not rest.startswith("#"):
        raise ValueError(f"unexpected {rest[:30]!r} after the quoted value")


def load(path: str) -> dict[str, str]:
    """The variables of the ``.env`` file at ``path`` (StackError when it cannot be read)."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise StackError(f"env file {path} not found") from None
    except OSError as exc:
        raise StackError(f"cannot read env file {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise StackError(f"env file {path} is not valid UTF-8") from None
    return parse(text, path)
