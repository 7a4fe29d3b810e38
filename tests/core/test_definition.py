"""bgr.core.definition: what a start stores (request merged into the stored row, config and
env), validated before anything is stopped or started."""

from __future__ import annotations

from pathlib import Path

import pytest

import bgr
from bgr.errors import NotFound, UsageError
from bgr.models import StartRequest, Status
from tests.support import (
    GRACE,
    api_start,
    assert_one_error_line,
    main,
    managed,
    one,
    registry_snapshot,
    started_pid,
)


def test_directory_defaults_to_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = main(capsys, "--name", "here", "--command", "pwd; exec sleep 60")
    assert code == 0, err
    assert one(capsys, "here")["directory"] == str(tmp_path)


def test_stopped_and_crashed_names_start_again_with_the_stored_definition(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(capsys, "--name", "w", "--directory", str(tmp_path), "--command", "sleep 60")
    assert main(capsys, "--stop", "w", "--grace", "0.5")[0] == 0
    code, out, err = main(capsys, "--name", "w")
    assert code == 0, err
    data = one(capsys, "w")
    assert data["status"] == "running" and data["pid"] == started_pid(out)
    assert data["command"] == "sleep 60" and data["directory"] == str(tmp_path)
    # crashed: fix the command by giving a new one
    assert main(capsys, "--name", "c", "--command", "exit 3")[0] != 0
    assert one(capsys, "c")["status"] == "crashed"
    code, _, err = main(capsys, "--name", "c", "--command", "sleep 60")
    assert code == 0, err
    assert one(capsys, "c")["status"] == "running"


def test_stopped_name_starts_again_with_its_stored_definition_unless_overridden(
    tmp_path: Path,
) -> None:
    api_start("web", "sleep 60", tmp_path, startup_window=0)
    bgr.stop("web", grace=GRACE)
    other = tmp_path / "other"
    other.mkdir()
    again = bgr.start(StartRequest(name="web"), grace=GRACE).info
    assert again.status is Status.RUNNING
    assert again.record.command == "sleep 60" and again.record.directory == str(tmp_path)
    assert again.record.restarts == 1
    bgr.stop("web", grace=GRACE)
    changed = bgr.start(StartRequest(name="web", command="sleep 61", directory=str(other)), grace=GRACE).info
    assert changed.record.command == "sleep 61" and changed.record.directory == str(other)


def test_env_from_request_accumulates_and_bad_keys_are_refused(tmp_path: Path) -> None:
    api_start("e", "sleep 60", tmp_path, startup_window=0)
    bgr.stop("e", grace=GRACE)
    bgr.start(StartRequest(name="e", env={"A": "1"}), grace=GRACE, startup_window=0)
    bgr.stop("e", grace=GRACE)
    info = bgr.start(StartRequest(name="e", env={"B": "2"}), grace=GRACE, startup_window=0).info
    assert info.record.env == {"A": "1", "B": "2"}
    with pytest.raises(UsageError, match="invalid environment variable name"):
        bgr.start(StartRequest(name="e2", command="true", env={"1X": "v"}))
    with pytest.raises(NotFound):
        bgr.stop("nope")
    with pytest.raises(UsageError, match="give --command"):
        bgr.start(StartRequest(name="nope"))


# --------------------------------------------------------------------------------------------
# nothing changes when the definition is wrong


def test_the_env_key_rule_is_the_documented_pattern_over_every_kind_of_character() -> None:
    """is_env_key uses sets (no ``re`` on a start); it must accept exactly [A-Za-z_][A-Za-z0-9_]*."""
    import re

    from bgr.core.definition import is_env_key

    pattern = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
    characters = [chr(c) for c in range(0x250)] + ["\u0661", "\u00b2", "\u212a", "\U0001f642"]
    keys = characters + [f"A{c}" for c in characters] + [f"{c}A" for c in characters]
    for key in [*keys, "", "_", "__", "PATH", "my_var_2", "2X", "A-B", "A B", "A=B"]:
        assert is_env_key(key) is (pattern.fullmatch(key) is not None), repr(key)


def test_a_forced_start_that_cannot_launch_leaves_the_running_instance_alone(
    tmp_path: Path,
) -> None:
    first = api_start("web", "sleep 60", tmp_path).info
    bad = StartRequest(name="web", force=True, stdout=str(tmp_path / "missing" / "web.log"))
    with pytest.raises(UsageError, match="log directory"):
        bgr.start(bad, grace=GRACE)
    again = bgr.get("web")
    assert again.status is Status.RUNNING and again.pid == first.pid
    assert again.record == first.record


def test_restart_of_a_broken_config_changes_nothing(tmp_path: Path) -> None:
    first = api_start("cfg", "sleep 60", tmp_path).info
    (tmp_path / ".config.toml").write_text("[server]\nport = \n")
    with pytest.raises(bgr.BgrError, match="line 2, column"):
        bgr.restart("cfg", grace=GRACE)
    again = bgr.get("cfg")
    assert again.pid == first.pid and again.status is Status.RUNNING
    assert again.record == first.record


@pytest.mark.parametrize(
    ("content", "message"),
    [("[server]\nport = 3000\nname = \n", "line 3, column"), ('a = "x"\na = "y"\n', "line 2, column")],
)
def test_invalid_toml_starts_nothing_and_changes_nothing(
    content: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], bgr_home: Path
) -> None:
    main(capsys, "--name", "keep", "--directory", str(tmp_path), "--command", "exit 0")
    before = registry_snapshot(bgr_home / "bgr.sqlite")
    (tmp_path / ".config.toml").write_text(content)
    code, out, err = main(capsys, "--name", "new", "--directory", str(tmp_path), "--command", "sleep 60")
    assert code == 5 and out == ""
    assert_one_error_line(err)
    assert message in err and str(tmp_path / ".config.toml") in err
    code, _, err = main(capsys, "keep", "--restart")
    assert code == 5 and message in err
    assert registry_snapshot(bgr_home / "bgr.sqlite") == before
    assert managed("new") == []


def test_a_relative_config_that_is_missing_says_where_it_was_looked_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = tmp_path / "backend"
    backend.mkdir()
    (backend / ".dev.toml").write_text("A = 1\n")
    monkeypatch.chdir(tmp_path)
    argv = ("--name", "b", "--directory", "./backend", "--command", "sleep 60", "--config", ".dev.toml")
    code, out, err = main(capsys, *argv)
    assert (code, out) == (5, "")
    assert err == (
        f"bgr: config file {tmp_path / '.dev.toml'} not found; a relative --config is read from the "
        f"current directory ({tmp_path}), not --directory; for the one in --directory: "
        f"--config {backend / '.dev.toml'}\n"
    )
    code, _, err = main(capsys, *argv[:-1], str(backend / ".dev.toml"))
    assert code == 0, err


def test_a_stack_request_is_the_whole_definition_and_a_change_by_hand_drops_its_hash(tmp_path: Path) -> None:
    """From a stack file, what the file leaves out goes back to the default (env is replaced, not
    merged); a change made on the command line keeps the membership but not the hash, so the
    next --up puts the file's definition back."""
    from bgr.core import definition
    from bgr.paths import layout

    layout().ensure_home()
    (tmp_path / "conf.toml").write_text("a = 1\n")
    stack = {"file": "/s/bgr.toml", "name": "s", "hash": "abc", "depends_on": {}}
    first = definition.build(
        None,
        StartRequest(
            name="w", command="sleep 1", directory=str(tmp_path), env={"A": "1", "B": "2"},
            config=str(tmp_path / "conf.toml"), stdout=str(tmp_path / "out.txt"), stack=stack,
        ),
        layout(),
    )  # fmt: skip
    assert first.stack == stack and first.config_env == {"A": "1"}
    again = definition.build(
        first,
        StartRequest(name="w", command="sleep 1", directory=str(tmp_path), env={"B": "3"}, stack=stack),
        layout(),
    )
    assert again.env == {"B": "3"} and again.config_path is None and again.config_env == {}
    assert again.stdout == layout().log_paths("w")[0]
    restarted = definition.build(again, StartRequest(name="w"), layout())
    assert restarted.stack == stack
    by_hand = definition.build(again, StartRequest(name="w", command="sleep 2"), layout())
    assert by_hand.stack == {"file": "/s/bgr.toml", "name": "s", "depends_on": {}}


def test_limits_from_the_api_are_merged_and_a_negative_one_is_refused(tmp_path: Path) -> None:
    first = StartRequest(name="w", command="sleep 60", directory=str(tmp_path), max_memory=50 * 1024**2)
    bgr.start(first, grace=GRACE, startup_window=0)
    again = bgr.start(StartRequest(name="w", restart_every=30.0, force=True), grace=GRACE).info
    assert again.record.limits == {"max_memory": 50 * 1024**2, "restart_every": 30.0}
    with pytest.raises(UsageError, match="max_memory must not be negative"):
        bgr.start(StartRequest(name="w", max_memory=-1, force=True), grace=GRACE)
    assert bgr.get("w").record.limits == again.record.limits
