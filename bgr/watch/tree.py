"""The directory tree ``bgr --watch`` watches: its real path, its ignore rules, and a walk.

The rules are built from ``ignore.DEFAULT_IGNORES``, then the tree's ``.gitignore`` files (deeper
ones later, so they override shallower ones, as in git), then ``--ignore`` patterns, which
override all. ``.gitignore`` files are read during the walk and again when they change.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from bgr.watch.ignore import DEFAULT_IGNORES, IgnoreRules, Rule, compile_rule, parse_rules

GITIGNORE = ".gitignore"
_GITIGNORE_MAX = 1024 * 1024


class WatchedTree:
    """The watched directory and which paths below it don't count (``rules``)."""

    def __init__(self, root: Path, ignore: Sequence[str], ignore_paths: Iterable[Path]) -> None:
        self.root = os.path.realpath(root)
        self._defaults = parse_rules("\n".join(DEFAULT_IGNORES))
        self._extra = tuple(r for p in ignore if (r := compile_rule(self._relative_pattern(p))))
        self._paths = frozenset(rel for path in ignore_paths if (rel := self.rel(os.path.realpath(path))))
        self._layers: dict[str, tuple[Rule, ...]] = {}
        self._texts: dict[str, str] = {}
        self.rules = IgnoreRules(self._defaults + self._extra, self._paths)

    def _relative_pattern(self, pattern: str) -> str:
        # An absolute path inside the tree is what the user means, not a pattern anchored at "/".
        if os.path.isabs(pattern):
            rel = self.rel(os.path.realpath(pattern))
            if rel:
                return "/" + rel + ("/" if pattern.endswith("/") else "")
        return pattern

    def rel(self, path: str) -> str | None:
        """``path`` relative to the root with ``/`` separators; None when outside it."""
        if path == self.root:
            return ""
        prefix = self.root.rstrip("/") + "/"
        return path[len(prefix) :] if path.startswith(prefix) else None

    def abs(self, rel: str) -> str:
        """The absolute path of ``rel`` ("" is the root)."""
        return os.path.join(self.root, rel) if rel else self.root

    def load_gitignore(self, rel_dir: str) -> bool:
        """(Re)read ``rel_dir/.gitignore``; True when the rules changed."""
        try:
            with open(os.path.join(self.abs(rel_dir), GITIGNORE), "rb") as fh:
                text = fh.read(_GITIGNORE_MAX).decode("utf-8", errors="replace")
        except OSError:
            text = ""
        if text == self._texts.get(rel_dir, ""):
            return False
        if text:
            self._texts[rel_dir] = text
            self._layers[rel_dir] = parse_rules(text, rel_dir)
        else:
            self._texts.pop(rel_dir, None)
            self._layers.pop(rel_dir, None)
        layers = sorted(self._layers.items(), key=lambda item: (item[0].count("/"), item[0]))
        gitignored = tuple(rule for _, rules in layers for rule in rules)
        self.rules = IgnoreRules(self._defaults + gitignored + self._extra, self._paths)
        return True

    def walk(
        self, start: str, on_dir: Callable[[str], bool], on_file: Callable[[str], None] | None = None
    ) -> None:
        """Visit ``start`` and every directory below it that is not ignored, parents first.

        ``on_dir`` runs before a directory is listed (so a watch placed there sees files created
        while we list it) and returns False to skip it. Symlinks are not followed.
        """
        stack = [start]
        while stack:
            rel = stack.pop()
            if not on_dir(rel):
                continue
            self.load_gitignore(rel)
            try:
                with os.scandir(self.abs(rel)) as entries:
                    listed = [(e.name, e.is_dir(follow_symlinks=False)) for e in entries]
            except OSError:
                continue
            for name, is_dir in sorted(listed, reverse=True):
                child = f"{rel}/{name}" if rel else name
                if self.rules.excluded(child, is_dir):
                    continue
                if is_dir:
                    stack.append(child)
                elif on_file is not None:
                    on_file(child)
