"""The gitignore-style rules bgr --watch filters changes with (pure)."""

from __future__ import annotations

import pytest

from bgr.watch.ignore import DEFAULT_IGNORES, IgnoreRules, parse_rules


def rules(*patterns: str) -> IgnoreRules:
    return IgnoreRules(parse_rules("\n".join(patterns)))


@pytest.mark.parametrize(
    ("patterns", "path", "is_dir", "expected"),
    [
        (["*.log"], "a.log", False, True),
        (["*.log"], "deep/er/a.log", False, True),
        (["*.log"], "a.logx", False, False),
        (["/build"], "build", True, True),
        (["/build"], "src/build", True, False),
        (["build/"], "src/build", True, True),
        (["build/"], "build", False, False),  # a file named build is not a directory
        (["doc/frotz"], "doc/frotz", False, True),
        (["doc/frotz"], "a/doc/frotz", False, False),  # a slash in the middle anchors
        (["src/*.py"], "src/a.py", False, True),
        (["src/*.py"], "src/x/a.py", False, False),  # * never crosses /
        (["**/foo"], "foo", False, True),
        (["**/foo"], "a/b/foo", False, True),
        (["a/**/b"], "a/b", False, True),
        (["a/**/b"], "a/x/y/b", False, True),
        (["a/**/b"], "a/xb", False, False),
        (["abc/**"], "abc/x/y", False, True),
        (["abc/**"], "abc", True, False),
        (["*.log", "!keep.log"], "keep.log", False, False),
        (["*.log", "!keep.log"], "other.log", False, True),
        (["!keep.log", "*.log"], "keep.log", False, True),  # the last match wins
        (["logs/", "!logs/keep.txt"], "logs/keep.txt", False, True),  # parent excluded: final
        (["/*", "!/src"], "src/a.py", False, False),
        (["/*", "!/src"], "docs/a.md", False, True),
        (["#comment"], "#comment", False, False),
        (["\\#lit"], "#lit", False, True),
        (["\\!bang"], "!bang", False, True),
        (["foo   "], "foo", False, True),
        (["foo\\ "], "foo ", False, True),
        (["[abc].py"], "b.py", False, True),
        (["[!abc].py"], "b.py", False, False),
        (["[!abc].py"], "d.py", False, True),
        (["[a-c]x"], "bx", False, True),
        (["?.py"], "a.py", False, True),
        (["?.py"], "ab.py", False, False),
        (["a?b"], "a/b", False, False),
        (["[unclosed"], "[unclosed", False, True),
        (["a.b"], "axb", False, False),  # regex characters are literal
        (["**"], "anything/at/all", False, True),
    ],
)
def test_gitignore_semantics(patterns: list[str], path: str, is_dir: bool, expected: bool) -> None:
    assert rules(*patterns).ignored(path, is_dir) is expected


def test_rules_from_a_nested_gitignore_apply_below_it_only() -> None:
    nested = IgnoreRules(parse_rules("*.tmp\n/only\n", base="sub"))
    assert nested.ignored("sub/a.tmp", False)
    assert nested.ignored("sub/x/a.tmp", False)
    assert not nested.ignored("a.tmp", False)
    assert nested.ignored("sub/only", False)
    assert not nested.ignored("sub/x/only", False)


@pytest.mark.parametrize(
    ("path", "is_dir", "expected"),
    [
        (".git", True, True),
        (".git", False, True),  # a worktree's .git file
        ("node_modules/pkg/index.js", False, True),
        ("web/node_modules", True, True),
        ("__pycache__/a.pyc", False, True),
        (".venv/lib/x.py", False, True),
        ("venv", True, True),
        ("dist/app.js", False, True),
        ("build", True, True),
        ("build", False, False),
        (".app.py.swp", False, True),
        ("app.py~", False, True),
        (".#app.py", False, True),
        ("4913", False, True),
        ("src/app.py", False, False),
        ("README.md", False, False),
    ],
)
def test_default_ignores(path: str, is_dir: bool, expected: bool) -> None:
    defaults = IgnoreRules(parse_rules("\n".join(DEFAULT_IGNORES)))
    assert defaults.ignored(path, is_dir) is expected
