"""Gitignore-style ignore rules for ``bgr --watch`` (pure: no file system access).

``!`` negation, ``*``/``?``/``[...]`` that never cross ``/``, ``**`` for any depth, a leading or
middle ``/`` anchors a pattern to the directory of its ``.gitignore``, a trailing ``/`` matches
directories only. The last matching rule wins, and nothing inside an ignored directory can be
re-included (as in git). ``DEFAULT_IGNORES`` lists what no one wants a restart for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_IGNORES = (
    ".git",
    ".hg",
    ".svn",
    "node_modules/",
    "__pycache__/",
    ".venv/",
    "venv/",
    ".tox/",
    ".mypy_cache/",
    ".pytest_cache/",
    ".ruff_cache/",
    "dist/",
    "build/",
    "*.swp",
    "*.swx",
    "*~",
    ".#*",
    "#*#",
    "4913",  # vim's probe file: it checks whether it may create files in the directory
    "*___jb_tmp___",  # JetBrains "safe write"
    "*___jb_old___",
)


@dataclass(frozen=True, slots=True)
class Rule:
    """One gitignore-style pattern, compiled."""

    pattern: str
    regex: re.Pattern[str]
    negate: bool = False
    dir_only: bool = False
    anchored: bool = False  # matched against the path from ``base``, else against the last name
    base: str = ""  # directory of the .gitignore that defined it, relative to the watched root

    def matches(self, rel: str, is_dir: bool) -> bool:
        """Whether this rule speaks about ``rel`` (a ``/``-separated path from the root)."""
        if self.dir_only and not is_dir:
            return False
        if self.base:
            if not rel.startswith(self.base + "/"):
                return False
            rel = rel[len(self.base) + 1 :]
        target = rel if self.anchored else rel.rpartition("/")[2]
        return self.regex.fullmatch(target) is not None


def _translate_segment(segment: str) -> str:
    """One path segment of a glob → a regex that never matches ``/``."""
    out: list[str] = []
    i, n = 0, len(segment)
    while i < n:
        char = segment[i]
        i += 1
        if char == "\\" and i < n:
            out.append(re.escape(segment[i]))
            i += 1
        elif char == "*":
            while i < n and segment[i] == "*":
                i += 1
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            j = i + 1 if i < n and segment[i] in "!^" else i
            j = j + 1 if j < n and segment[j] == "]" else j
            while j < n and segment[j] != "]":
                j += 1
            if j >= n:
                out.append(re.escape(char))
                continue
            body, i = segment[i:j], j + 1
            negate = body[:1] in ("!", "^")
            body = "".join(c if c == "-" else re.escape(c) for c in (body[1:] if negate else body))
            out.append(f"[^/{body}]" if negate else f"[{body}]")
        else:
            out.append(re.escape(char))
    return "".join(out)


def compile_rule(line: str, base: str = "") -> Rule | None:
    """A gitignore line → a Rule; None for blank lines and comments."""
    text = line.rstrip("\r\n")
    stripped = text.rstrip(" ")
    if stripped.endswith("\\") and len(stripped) < len(text):
        stripped += " "  # "foo\ " keeps its escaped trailing space
    if not stripped or stripped.startswith("#"):
        return None
    negate = stripped.startswith("!")
    body = stripped[1:] if negate else stripped
    dir_only = body.endswith("/")
    body = body.rstrip("/")
    if not body:
        return None
    anchored = "/" in body
    segments = body.lstrip("/").split("/")
    if not anchored:
        regex = ".*" if body == "**" else _translate_segment(body)
    else:
        parts = []
        for index, segment in enumerate(segments):
            last = index == len(segments) - 1
            if segment == "**":
                parts.append(".*" if last else "(?:[^/]+/)*")
            else:
                parts.append(_translate_segment(segment) + ("" if last else "/"))
        regex = "".join(parts)
    return Rule(stripped, re.compile(regex, re.DOTALL), negate, dir_only, anchored, base)


def parse_rules(text: str, base: str = "") -> tuple[Rule, ...]:
    """Every rule of a .gitignore file's text (or of one pattern per line)."""
    return tuple(rule for line in text.splitlines() if (rule := compile_rule(line, base)))


@dataclass(frozen=True, slots=True)
class IgnoreRules:
    """An ordered rule list (the last rule that matches a path decides), plus exact ``paths``
    that are excluded whatever the rules say (bgr's own log files and state directory)."""

    rules: tuple[Rule, ...] = ()
    paths: frozenset[str] = frozenset()

    def excluded(self, rel: str, is_dir: bool) -> bool:
        """Whether ``rel`` itself is excluded (its parent directories are not looked at)."""
        if rel in self.paths:
            return True
        for rule in reversed(self.rules):
            if rule.matches(rel, is_dir):
                return not rule.negate
        return False

    def ignored(self, rel: str, is_dir: bool) -> bool:
        """Whether ``rel`` is ignored: it is excluded, or one of its parent directories is."""
        parts = rel.split("/")
        for depth in range(1, len(parts)):
            if self.excluded("/".join(parts[:depth]), True):
                return True
        return self.excluded(rel, is_dir)
