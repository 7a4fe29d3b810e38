"""bgr.paths: the state directory and its safety checks, file modes, names that could escape it,
where the registry and the logs go (DB_NAME, --db, --stdout/--stderr), and the current directory."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

import bgr
from bgr import paths
from bgr.errors import InvalidName, UsageError
from bgr.models import StartRequest
from tests.support import (
    assert_one_error_line,
    in_deleted_directory,
    listing,
    main,
    one,
    read,
    run_bgr,
    wait_for,
)

# --------------------------------------------------------------------------------------------
# the state directory: private, never a symlink, never someone else's


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_everything_bgr_writes_is_private_even_with_umask_000(tmp_path: Path, bgr_home: Path) -> None:
    command = "echo out; echo err >&2; exec sleep 60"
    assert run_bgr("--name", "m", "--command", command, cwd=tmp_path, umask=0).returncode == 0
    wait_for(lambda: read(bgr_home / "m-err.txt"), what="output")
    restarted = run_bgr("m", "--restart", "--grace", "0.5", cwd=tmp_path, umask=0)
    assert restarted.returncode == 0, restarted.stderr
    assert mode(bgr_home) == 0o700
    files = [p for p in bgr_home.rglob("*") if p.is_file()]
    dirs = [p for p in bgr_home.rglob("*") if p.is_dir()]
    names = {p.relative_to(bgr_home).as_posix() for p in files}
    assert {"bgr.sqlite", "m-out.txt", "m-err.txt", "locks/m.lock"} <= names
    assert len(list((bgr_home / "backup").iterdir())) == 2  # both old logs, moved on restart
    assert {p: mode(p) for p in files} == {p: 0o600 for p in files}
    assert {p: mode(p) for p in dirs} == {p: 0o700 for p in dirs}


def test_an_existing_state_directory_with_loose_permissions_is_tightened(
    tmp_path: Path, bgr_home: Path
) -> None:
    bgr_home.mkdir(mode=0o755)
    bgr_home.chmod(0o755)
    assert run_bgr(cwd=tmp_path).returncode == 0
    assert mode(bgr_home) == 0o755  # a listing only reads: it changes nothing
    assert run_bgr("--name", "t", "--command", "true", "--wait", "0", cwd=tmp_path).returncode == 0
    assert mode(bgr_home) == 0o700


def test_a_state_directory_that_is_a_symlink_is_refused(tmp_path: Path, bgr_home: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    bgr_home.symlink_to(real)
    for argv in ([], ["--name", "x", "--command", "sleep 60"], ["x", "--logs"]):
        done = run_bgr(*argv, cwd=tmp_path)
        assert done.returncode == 7
        assert_one_error_line(done.stderr)
        assert "symlink" in done.stderr and str(bgr_home) in done.stderr
    assert list(real.iterdir()) == []
    # A registry elsewhere keeps its files beside it (o.d/), so the state directory is not used.
    elsewhere = ["--db", str(tmp_path / "o.sqlite"), "--name", "y", "--command", "true", "--wait", "0"]
    assert run_bgr(*elsewhere, cwd=tmp_path).returncode == 0
    assert (tmp_path / "o.d" / "y-out.txt").exists()
    assert list(real.iterdir()) == []


def test_a_state_directory_owned_by_someone_else_is_refused(tmp_path: Path, bgr_home: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give the directory away")
    bgr_home.mkdir(mode=0o700)
    os.chown(bgr_home, 65534, 65534)
    done = run_bgr("--name", "x", "--command", "sleep 60", cwd=tmp_path)
    assert done.returncode == 7
    assert_one_error_line(done.stderr)
    assert "belongs to uid 65534" in done.stderr
    assert list(bgr_home.iterdir()) == []


# --------------------------------------------------------------------------------------------
# names: validated before anything is touched


BAD_NAMES = ["../x", "a/b", ".hidden", "-dash", "x" * 65, "", "a b", "x\n", "é", "../../etc/passwd"]


def _tree(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_bad_names_are_refused_and_create_nothing(name: str, tmp_path: Path, bgr_home: Path) -> None:
    work = tmp_path / "work" / "deeper"
    work.mkdir(parents=True)
    before = _tree(tmp_path)
    # A NAME starting with "-" can only be given as --name=NAME (docopt reads "-dash" as -d ash).
    positional = [name] if not name.startswith("-") else [f"--name={name}"]
    for argv in (
        [f"--name={name}", "--command", "sleep 60"],
        [*positional, "--logs"],
        ["--delete", *positional],
        [*positional, "--restart"],
    ):
        done = run_bgr(*argv, cwd=work)
        assert done.returncode == 2, (argv, done.stderr)
        assert_one_error_line(done.stderr)
        assert "invalid process name" in done.stderr
    assert _tree(tmp_path) == before
    assert not bgr_home.exists()


def test_the_longest_name_is_accepted_and_names_elsewhere_are_checked(tmp_path: Path, bgr_home: Path) -> None:
    longest = "a" * 64
    done = run_bgr("--name", longest, "--command", "sleep 60", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (bgr_home / f"{longest}-out.txt").exists()
    group = run_bgr("--name", "g", "--group", "../api", "--command", "sleep 60", cwd=tmp_path)
    assert group.returncode == 2 and "invalid group" in group.stderr
    db_name = run_bgr(env={**os.environ, "DB_NAME": "../evil"}, cwd=tmp_path)
    assert db_name.returncode == 2 and "invalid DB_NAME" in db_name.stderr
    assert not (tmp_path / "evil.sqlite").exists() and not (bgr_home.parent / "evil.sqlite").exists()


def test_names_are_validated_before_anything_is_touched(bgr_home: Path) -> None:
    for bad in ("../x", "a/b", ".hidden", "x" * 65, ""):
        with pytest.raises(UsageError, match="invalid process name"):
            bgr.start(StartRequest(name=bad, command="true"))
        with pytest.raises(UsageError):
            bgr.stop(bad)
    assert paths.validate_name("a" * 64) == "a" * 64
    assert not bgr_home.exists()


def test_the_name_rule_is_the_documented_pattern_over_every_kind_of_character() -> None:
    """is_valid_name uses sets (no ``re`` on the hot path); it must accept exactly the names of
    the documented pattern: an ASCII letter or digit, then up to 63 of those or '.', '_', '-'."""
    import re

    pattern = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", re.ASCII)
    # Every character up to U+024F and samples beyond (other digits and letters, space, controls).
    beyond = ["\u0661", "\u00b2", "\u00df", "\u0130", "\u212a", "\u65e5", "\U0001f642", "\u2028"]
    characters = [chr(c) for c in range(0x250)] + beyond
    names = characters + [f"a{c}" for c in characters] + [f"{c}a" for c in characters]
    names += ["", ".", "..", "a" * 64, "a" * 65, "A.b_c-9", "9" * 64 + "-", "a..b", "a-"]
    for name in names:
        assert paths.is_valid_name(name) is (pattern.fullmatch(name) is not None), repr(name)


# --------------------------------------------------------------------------------------------
# the registry and log paths: defaults, DB_NAME, --db, --stdout/--stderr


def test_db_path_default_db_name_and_explicit(
    bgr_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert paths.db_path() == str(bgr_home / "bgr.sqlite")
    monkeypatch.setenv("DB_NAME", "x")
    assert paths.db_path() == str(bgr_home / "x.sqlite")
    monkeypatch.setenv("DB_NAME", "x.sqlite")
    assert paths.db_path() == str(bgr_home / "x.sqlite")
    monkeypatch.chdir(tmp_path)
    assert paths.db_path("rel.sqlite") == str(tmp_path / "rel.sqlite")
    for bad in ("../x", "a/b", ".x"):
        monkeypatch.setenv("DB_NAME", bad)
        with pytest.raises(InvalidName):
            paths.db_path()


def test_log_paths_default_and_overrides_remembered_across_restart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bgr_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    main(capsys, "--name", "d", "--directory", str(tmp_path), "--command", "sleep 60")
    data = one(capsys, "d")
    assert data["stdout"] == str(bgr_home / "d-out.txt")
    assert data["stderr"] == str(bgr_home / "d-err.txt")
    logs = tmp_path / "logs"
    logs.mkdir()
    monkeypatch.chdir(tmp_path)  # relative log paths are taken from the caller's directory
    code, _, err = main(capsys, "--name", "o", "--command", "echo $BGR_NAME; echo e >&2; exec sleep 60",
                        "--stdout", "logs/o.out", "--stderr", "logs/o.err")  # fmt: skip
    assert code == 0, err
    wait_for(lambda: read(logs / "o.err"), what="output")
    assert read(logs / "o.out") == "o\n" and read(logs / "o.err") == "e\n"
    assert main(capsys, "o", "--restart", "--grace", "0.5")[0] == 0
    data = one(capsys, "o")
    assert data["stdout"] == str(logs / "o.out") and data["stderr"] == str(logs / "o.err")
    wait_for(lambda: read(logs / "o.err"), what="output after restart")
    assert read(logs / "o.out") == "o\n"
    assert not (bgr_home / "o-out.txt").exists()


def test_db_name_and_db_select_the_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], bgr_home: Path
) -> None:
    monkeypatch.setenv("DB_NAME", "x")
    assert main(capsys, "--name", "a", "--directory", str(tmp_path), "--command", "sleep 60")[0] == 0
    assert (bgr_home / "x.sqlite").exists() and not (bgr_home / "bgr.sqlite").exists()
    assert [d["name"] for d in listing(capsys)] == ["a"]
    monkeypatch.delenv("DB_NAME")
    assert listing(capsys) == []
    db = str(tmp_path / "elsewhere.sqlite")
    assert main(capsys, "--db", db, "--name", "b", "--command", "echo hi; exec sleep 60")[0] == 0
    assert [d["name"] for d in listing(capsys, "--db", db)] == ["b"]
    assert main(capsys, "b", "--db", db)[0] == 0
    # That registry's logs are its own (elsewhere.d/), never beside another registry's.
    wait_for(lambda: read(tmp_path / "elsewhere.d" / "b-out.txt"), what="output")
    assert not (bgr_home / "b-out.txt").exists()
    assert "hi" in main(capsys, "b", "--logs", "--db", db)[1]
    assert main(capsys, "b", "--restart", "--db", db, "--grace", "0.5")[0] == 0
    assert main(capsys, "--stop", "b", "--db", db, "--grace", "0.5")[0] == 0
    assert main(capsys, "--clean", "--db", db)[0] == 0
    assert listing(capsys, "--db", db) == []
    # Never in the default registry, which does not even exist: reading does not create it.
    code, out, _ = main(capsys, "b")
    assert code == 0 and out.startswith("no registry at") and not (bgr_home / "bgr.sqlite").exists()
    assert main(capsys, "--nuke", "--db", db)[0] == 0
    monkeypatch.setenv("DB_NAME", "x")
    assert main(capsys, "--delete", "a", "--grace", "0.5")[0] == 0
    assert stat.S_IMODE(Path(db).stat().st_mode) == 0o600


# --------------------------------------------------------------------------------------------
# the current directory, when it was deleted


def test_a_start_from_a_deleted_directory_is_one_clear_line(tmp_path: Path) -> None:
    done = in_deleted_directory(tmp_path, "--name", "web", "--command", "sleep 60")
    assert done.returncode != 0
    assert_one_error_line(done.stderr)
    assert "current directory no longer exists" in done.stderr
    assert json.loads(run_bgr("--json").stdout) == []
    elsewhere = in_deleted_directory(tmp_path, "--name", "web", "--command", "sleep 60", "-d", str(tmp_path))
    assert elsewhere.returncode == 0, elsewhere.stderr


@pytest.mark.parametrize("argv", [["--json"], ["web", "--logs"], ["--name", "web", "-c", "true", "-d", "/"]])
def test_a_relative_bgr_home_in_a_deleted_directory_is_one_clear_line(
    argv: list[str], tmp_path: Path
) -> None:
    done = in_deleted_directory(tmp_path, *argv, BGR_HOME="relative-home")
    assert done.returncode != 0
    assert_one_error_line(done.stderr)
    assert "current directory no longer exists" in done.stderr
