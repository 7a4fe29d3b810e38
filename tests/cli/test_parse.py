"""bgr.cli.parse: the fast path gives what docopt gives over the whole option table; long
options only in full."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from bgr.cli import options, parse
from bgr.cli.table import FLAG, MANY, POSITIONAL, Option
from bgr.errors import UsageError
from tests.support import listing, main

TABLE = options.TABLE


# Every option but --help and --version, which win over everything before either parser runs.
OPTIONS = [o for o in TABLE.options if o.kind != POSITIONAL and o.long not in ("--help", "--version")]


def spellings(option: Option) -> list[list[str]]:
    """Each way a user can write ``option``: long with a separate or an attached value, short."""
    if option.kind == FLAG:
        return [[option.long]] + ([[option.short]] if option.short else [])
    forms = [[option.long, "v=1 x"], [f"{option.long}=a=b,c"]]
    if option.short:
        forms.append([option.short, "v"])
    if option.kind == MANY:
        forms.append([option.long, "a", f"{option.long}=b"])
    return forms


def corpus() -> list[list[str]]:
    """Every option in every spelling, alone and with NAME before and after it; every pair of
    options (in both orders) with NAME; nothing, and NAME alone."""
    argvs: list[list[str]] = [[], ["web"], ["web", "api", "db"]]
    for option in OPTIONS:
        for form in spellings(option):
            argvs += [form, ["web", *form], [*form, "web"]]
    for first, second in itertools.permutations(OPTIONS, 2):
        argvs.append([*spellings(first)[0], *spellings(second)[-1], "web"])
    return argvs


def normalised(given: Mapping[str, Any]) -> dict[str, Any]:
    """Raw values per option, absent ones empty (lists as lists), from either parser."""
    return {
        o.long: list(given.get(o.long) or []) if o.kind == MANY else given.get(o.long, o.empty)
        for o in TABLE.options
    }


def test_the_corpus_covers_every_option_in_every_spelling() -> None:
    seen = {token.partition("=")[0] for argv in corpus() for token in argv}
    assert {o.long for o in OPTIONS} <= seen
    assert {o.short for o in OPTIONS if o.short} <= seen


# Thousands of docopt parses (every option, every pair): ~30 s on two cores, twice that when
# coverage.py traces docopt's pattern matching, which is not our code (the fast path is measured
# by the other tests of this file). So not traced, and a time limit of its own that grows with
# the table rather than the suite's 60 s.
@pytest.mark.no_cover
@pytest.mark.timeout(300)
def test_the_fast_path_gives_exactly_what_docopt_gives() -> None:
    from docopt import docopt

    usage = TABLE.usage()
    mismatches = []
    for argv in corpus():
        fast = parse.fast(TABLE, argv)
        slow = normalised(docopt(usage, argv=argv, default_help=False))
        if fast is None or normalised(fast) != slow:
            mismatches.append((argv, fast, slow))
    assert not mismatches, mismatches[:3]


@pytest.mark.parametrize(
    "argv",
    [
        ["--json", "--json"],
        ["--name", "a", "--name", "b"],
        ["--filter"],
        ["--filter", "--json"],
        ["--command", "-x"],
        ["--name="],
        ["--json=yes"],
        ["--js"],
        ["--nu"],
        ["-csleep 1"],
        ["-c", "sleep 1", "--command", "sleep 2"],
        ["-x", "1"],
        ["--", "web"],
        ["-h"],
        ["--help"],
        ["--version"],
        ["-"],
    ],
)
def test_anything_unusual_goes_through_docopt(argv: list[str]) -> None:
    assert parse.fast(TABLE, argv) is None


def test_help_and_version_win_over_mistakes() -> None:
    assert parse.parse(TABLE, ["--bogus", "--help"]).help
    assert parse.parse(TABLE, ["-h", "--nu"]).help
    assert parse.parse(TABLE, ["--version", "--stop", "--delete"]).version


def test_values_are_typed_and_bad_ones_named() -> None:
    args = parse.parse(TABLE, ["web", "--logs", "--lines", "20", "--grace=0.5"])
    assert (args.targets, args.logs, args.lines, args.grace) == (("web",), True, 20, 0.5)
    with pytest.raises(UsageError, match="--grace takes a finite number, not 'nan'"):
        parse.parse(TABLE, ["--grace", "nan"])
    with pytest.raises(UsageError, match="--lines must not be negative"):
        parse.parse(TABLE, ["web", "--logs", "--lines", "-1"])


def test_the_usage_text_lists_every_option_of_the_table() -> None:
    usage = TABLE.usage()
    for option in OPTIONS:
        assert option.spelling() in usage


# --------------------------------------------------------------------------------------------
# through the CLI


def test_prefix_of_nuke_does_not_nuke(populated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = main(capsys, "--nu")
    assert code == 2 and "--nuke" in err and "in full" in err
    assert [d["name"] for d in listing(capsys)] == ["known"]


@pytest.mark.parametrize(
    ("typed", "meant"),
    [("--nmae", "--name"), ("--comand", "--command"), ("--stpo", "--stop"), ("--folow", "--follow")],
)
def test_a_mistyped_option_gets_a_suggestion(typed: str, meant: str) -> None:
    with pytest.raises(UsageError, match=f"unknown option {typed} \\(did you mean {meant}\\?\\)"):
        parse.parse(TABLE, [typed, "x"])
    with pytest.raises(UsageError, match=r"unknown option --bogus; see bgr --help"):
        parse.parse(TABLE, ["--bogus"])
