"""File modes, the state directory's safety checks, and names that could escape it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.support import assert_one_error_line, read, run_bgr, wait_for


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
    assert mode(bgr_home) == 0o700


def test_a_state_directory_that_is_a_symlink_is_refused(tmp_path: Path, bgr_home: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    bgr_home.symlink_to(real)
    elsewhere = ["--db", str(tmp_path / "o.sqlite"), "--name", "y", "--command", "sleep 60"]
    for argv in ([], ["--name", "x", "--command", "sleep 60"], elsewhere):
        done = run_bgr(*argv, cwd=tmp_path)
        assert done.returncode == 7
        assert_one_error_line(done.stderr)
        assert "symlink" in done.stderr and str(bgr_home) in done.stderr
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
