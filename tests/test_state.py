"""Keeping the state honest (see also test_paths.py, test_store.py): what reading, typos, symlinks,
a missing home, restarts and a full disk do to ~/.bgr.

Mirrors no single module: each test drives the real ``bgr`` and looks at the files it leaves.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

import bgr
from tests.support import GRACE, api_start, assert_one_error_line, run_bgr


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


# --------------------------------------------------------------------------------------------
# reading never creates state


@pytest.mark.parametrize(
    ("env", "argv"),
    [
        ({}, []),
        ({}, ["--json"]),
        ({}, ["web"]),
        ({}, ["web", "--logs"]),
        ({"DB_NAME": "typo"}, []),
        ({}, ["--db", "typo.sqlite"]),
        ({}, ["--filter", "api"]),
    ],
)
def test_reading_a_registry_that_does_not_exist_says_so_and_creates_nothing(
    env: dict[str, str], argv: list[str], tmp_path: Path, bgr_home: Path
) -> None:
    before = files_under(tmp_path)
    done = run_bgr(*argv, env={**os.environ, **env}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]" if "--json" in argv else done.stdout.startswith("no registry at ")
    assert files_under(tmp_path) == before


def test_a_bgr_home_whose_parent_is_missing_is_an_error_not_a_new_tree(tmp_path: Path) -> None:
    env = {**os.environ, "BGR_HOME": str(tmp_path / "nonexistent" / "deep" / "x")}
    for argv in ([], ["--name", "web", "--command", "sleep 1"]):
        done = run_bgr(*argv, env=env, cwd=tmp_path)
        assert not (tmp_path / "nonexistent").exists()
        if argv:
            assert done.returncode == 7
            assert_one_error_line(done.stderr)
            assert "does not exist" in done.stderr and "BGR_HOME" in done.stderr
        else:
            assert done.returncode == 0 and done.stdout.startswith("no registry at ")


def test_no_home_and_no_passwd_entry_asks_for_bgr_home() -> None:
    """A uid without a passwd entry and without HOME (some containers, systemd DynamicUser):
    expanduser would give a relative "~", and bgr a registry in ./~/.bgr."""
    if os.geteuid() != 0:
        pytest.skip("running as a uid without a passwd entry needs root")
    python = "/usr/bin/python3"
    if not os.access(python, os.X_OK):
        pytest.skip("no /usr/bin/python3 for the other uid")
    # A copy of bgr another uid may read (the test's own tree is under root's private dirs).
    place = Path(tempfile.mkdtemp(prefix="bgr-nopasswd-", dir="/tmp"))
    try:
        shutil.copytree(Path(__file__).resolve().parents[1] / "bgr", place / "bgr")
        for path in [place, *place.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        env = {k: v for k, v in os.environ.items() if k not in ("HOME", "BGR_HOME", "PYTHONPATH")}
        env["PYTHONPATH"] = str(place)

        def as_stranger() -> None:
            os.setgroups([])
            os.setgid(54321)
            os.setuid(54321)

        done = subprocess.run(
            [python, "-m", "bgr", "--json"], env=env, cwd=place, preexec_fn=as_stranger,
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert done.returncode == 7, done.stderr
        assert_one_error_line(done.stderr)
        assert "no home directory" in done.stderr and "BGR_HOME" in done.stderr
        assert not (place / "~").exists()
    finally:
        shutil.rmtree(place)


# --------------------------------------------------------------------------------------------
# one registry, one set of files


def test_two_registries_with_a_process_of_the_same_name_share_no_file(tmp_path: Path, bgr_home: Path) -> None:
    default = run_bgr("--name", "myapp", "--command", "echo default; exec sleep 60", cwd=tmp_path)
    other = run_bgr(
        "--name", "myapp", "--command", "echo other; exec sleep 60", cwd=tmp_path,
        env={**os.environ, "DB_NAME": "second"},
    )  # fmt: skip
    assert default.returncode == 0 and other.returncode == 0, (default.stderr, other.stderr)
    assert (bgr_home / "myapp-out.txt").read_text() == "default\n"
    assert (bgr_home / "second.d" / "myapp-out.txt").read_text() == "other\n"
    deleted = run_bgr("--delete", "myapp", "--grace", "0.5", env={**os.environ, "DB_NAME": "second"})
    assert deleted.returncode == 0, deleted.stderr
    assert not (bgr_home / "second.d" / "myapp-out.txt").exists()
    assert (bgr_home / "myapp-out.txt").read_text() == "default\n"  # the other registry's: untouched
    assert bgr.get("myapp").status.value == "running"
    bgr.delete("myapp", grace=GRACE)


# --------------------------------------------------------------------------------------------
# symlinks


def test_a_symlink_where_bgr_expects_its_own_log_is_refused_and_its_target_untouched(
    tmp_path: Path, bgr_home: Path
) -> None:
    bgr_home.mkdir(mode=0o700)
    target = tmp_path / "precious.txt"
    target.write_text("keep me\n")
    target.chmod(0o644)
    (bgr_home / "web-out.txt").symlink_to(target)
    done = run_bgr("--name", "web", "--command", "echo hi", cwd=tmp_path)
    assert done.returncode != 0
    assert_one_error_line(done.stderr)
    assert "web-out.txt is a symlink" in done.stderr
    assert target.read_text() == "keep me\n" and stat.S_IMODE(target.stat().st_mode) == 0o644


def test_user_given_log_paths_keep_their_mode_and_are_followed(tmp_path: Path) -> None:
    target = tmp_path / "mine.log"
    target.write_text("")
    target.chmod(0o640)
    link = tmp_path / "link.log"
    link.symlink_to(target)
    done = run_bgr("--name", "web", "--command", "echo hi", "--stdout", str(link), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert target.read_text() == "hi\n" and stat.S_IMODE(target.stat().st_mode) == 0o640


# --------------------------------------------------------------------------------------------
# bounded backups; delete, clean and nuke leave nothing of the names they forget


def test_restarts_keep_ten_backups_per_stream(tmp_path: Path, bgr_home: Path) -> None:
    api_start("web", "echo run; exec sleep 60", tmp_path)
    for _ in range(15):
        bgr.restart("web", grace=GRACE)
    names = [p.name for p in (bgr_home / "backup").iterdir()]
    assert len([n for n in names if n.startswith("web-out-")]) == 10
    bgr.delete("web", grace=GRACE)
    assert list((bgr_home / "backup").iterdir()) == []
    assert not (bgr_home / "locks" / "web.lock").exists()


def test_nuke_and_clean_leave_no_backups_or_locks_behind(tmp_path: Path, bgr_home: Path) -> None:
    for name in ("a", "b"):
        api_start(name, "echo run; exec sleep 60", tmp_path)
        bgr.restart(name, grace=GRACE)
    api_start("done", "echo hi", tmp_path)
    # A start that fails before it records anything leaves no lock file either.
    assert run_bgr("--name", "typo", "--command", "true", "--directory", "/nonexistent").returncode == 2
    assert not (bgr_home / "locks" / "typo.lock").exists()
    assert bgr.clean() == ["done"]
    assert {p.name for p in (bgr_home / "locks").iterdir()} == {"a.lock", "b.lock", "@registry.lock"}
    bgr.nuke(grace=GRACE)
    assert list((bgr_home / "backup").iterdir()) == []
    assert {p.name for p in (bgr_home / "locks").iterdir()} == {"@registry.lock"}
    assert [p.name for p in bgr_home.iterdir() if p.suffix == ".txt"] == []
