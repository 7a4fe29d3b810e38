"""bgr.git.pull_if_clean against real local repositories (a bare "remote" and two clones), and
``bgr --fetch``, which pulls before it starts."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from bgr.errors import GitError
from bgr.git import PullResult, pull_if_clean
from tests.support import (
    TRACKED,
    Repos,
    assert_one_error_line,
    commit,
    git,
    head,
    listing,
    main,
    managed,
    one,
    read,
    wait_for,
)

pytestmark = pytest.mark.usefixtures("git_identity")


def write_script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.fixture(autouse=True)
def no_git_children_left() -> Iterator[None]:
    """After every test, no git (or ssh) process may remain a child of the test process."""
    yield
    left = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE and ("git" in child.name() or "ssh" in child.name()):
                left.append(f"{child.pid} {child.cmdline()}")
        except psutil.NoSuchProcess:
            pass
    assert not left, f"git processes left behind: {left}"


def test_pull_fast_forwards_then_is_up_to_date(repos: Repos) -> None:
    old = head(repos.app)
    new = repos.push_from_other(count=2)

    result = pull_if_clean(repos.app)

    assert result == PullResult(
        moved=True,
        old_head=old,
        new_head=new,
        branch="main",
        summary=f"pulled main: {old[:7]} → {new[:7]} (2 commits)",
    )
    assert head(repos.app) == new
    assert (repos.app / "app.txt").read_text() == "version 3\n"

    again = pull_if_clean(repos.app)
    assert again == PullResult(
        moved=False,
        old_head=new,
        new_head=new,
        branch="main",
        summary=f"already up to date ({new[:7]})",
    )


def test_up_to_date_without_upstream_changes(repos: Repos) -> None:
    before = head(repos.app)
    result = pull_if_clean(repos.app, timeout=30)
    assert not result.moved
    assert result.old_head == result.new_head == before


def test_untracked_files_do_not_block_a_pull(repos: Repos) -> None:
    (repos.app / "notes.txt").write_text("mine\n")
    new = repos.push_from_other()
    assert pull_if_clean(repos.app).moved
    assert head(repos.app) == new
    assert (repos.app / "notes.txt").read_text() == "mine\n"


@pytest.mark.parametrize("staged", [False, True], ids=["modified", "staged"])
def test_dirty_tree_is_left_alone(repos: Repos, staged: bool) -> None:
    (repos.app / "app.txt").write_text("local edit\n")
    if staged:
        git(repos.app, "add", "app.txt")
    before = head(repos.app)
    repos.push_from_other()

    with pytest.raises(GitError, match=r"has uncommitted changes.*not pulling \(commit or stash"):
        pull_if_clean(repos.app)

    assert (repos.app / "app.txt").read_text() == "local edit\n"
    assert head(repos.app) == before
    assert git(repos.app, "stash", "list") == ""
    assert bool(git(repos.app, "diff", "--cached", "--name-only")) is staged


def test_diverged_branch_is_not_pulled(repos: Repos) -> None:
    local = commit(repos.app, "local.txt", "local work\n", "local")
    repos.push_from_other()

    with pytest.raises(GitError, match=r"diverged from its upstream.*merge or rebase by hand"):
        pull_if_clean(repos.app)

    assert head(repos.app) == local
    assert (repos.app / "app.txt").read_text() == "version 1\n"


def test_local_commits_ahead_are_not_an_error(repos: Repos) -> None:
    local = commit(repos.app, "local.txt", "local work\n", "local")
    result = pull_if_clean(repos.app)
    assert not result.moved
    assert result.new_head == local
    assert result.summary == f"already up to date ({local[:7]}; 1 local commit not pushed)"


def test_untracked_file_in_the_way_aborts_with_gits_reason(repos: Repos) -> None:
    commit(repos.other, "new.txt", "from upstream\n")
    git(repos.other, "push", "--quiet", "origin", "main")
    (repos.app / "new.txt").write_text("untracked local\n")
    before = head(repos.app)

    with pytest.raises(GitError, match="untracked working tree files would be overwritten"):
        pull_if_clean(repos.app)

    assert (repos.app / "new.txt").read_text() == "untracked local\n"
    assert head(repos.app) == before


def test_not_a_repository(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(GitError, match="is not a git repository; run git init or use --no-fetch"):
        pull_if_clean(plain)


def test_subdirectory_of_a_repository_is_not_searched_upwards(repos: Repos) -> None:
    sub = repos.app / "sub"
    sub.mkdir()
    with pytest.raises(GitError, match="is not a git repository"):
        pull_if_clean(sub)


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(GitError, match="does not exist"):
        pull_if_clean(tmp_path / "gone")


def test_detached_head(repos: Repos) -> None:
    git(repos.app, "checkout", "--quiet", "--detach")
    with pytest.raises(GitError, match="detached HEAD"):
        pull_if_clean(repos.app)


def test_branch_without_upstream(repos: Repos) -> None:
    git(repos.app, "checkout", "--quiet", "-b", "feature")
    with pytest.raises(GitError, match=r"branch feature .* has no upstream tracking branch"):
        pull_if_clean(repos.app)


def test_local_upstream_branch_needs_no_fetch(repos: Repos) -> None:
    git(repos.app, "checkout", "--quiet", "-b", "feature", "--track", "main")
    git(repos.app, "checkout", "--quiet", "main")
    new = commit(repos.app, "app.txt", "on main\n")
    git(repos.app, "checkout", "--quiet", "feature")

    result = pull_if_clean(repos.app)

    assert result.moved
    assert (result.branch, result.new_head) == ("feature", new)


def test_hooks_in_the_clone_do_not_run(repos: Repos) -> None:
    marker = repos.app.parent / "hook-ran"
    hooks = repos.app / ".git" / "hooks"
    for hook in ("pre-merge-commit", "post-merge", "post-checkout", "reference-transaction"):
        write_script(hooks / hook, f'echo "{hook}" >> "{marker}"\n')
    new = repos.push_from_other()

    result = pull_if_clean(repos.app)

    assert result.moved and head(repos.app) == new
    assert not marker.exists(), marker.read_text()
    # The same hooks do run for plain git, so the check above is meaningful.
    git(repos.app, "commit", "--quiet", "--allow-empty", "-m", "hooked")
    assert "reference-transaction" in marker.read_text()


def test_unreachable_remote(repos: Repos, tmp_path: Path) -> None:
    missing = tmp_path / "missing.git"
    git(repos.app, "remote", "set-url", "origin", str(missing))
    before = head(repos.app)

    with pytest.raises(GitError) as info:
        pull_if_clean(repos.app)

    message = str(info.value)
    assert message.startswith(f"git fetch origin failed in {repos.app}: ")
    assert f"'{missing}' does not appear to be a git repository" in message
    assert "\n" not in message
    assert head(repos.app) == before


def fake_ssh(bin_dir: Path, log: Path) -> Path:
    """An `ssh` that records its arguments and prompt-related env, then fails like a refused host."""
    bin_dir.mkdir(exist_ok=True)
    return write_script(
        bin_dir / "ssh",
        f'printf "%s\\n" "$*" "prompt=$GIT_TERMINAL_PROMPT" "askpass=[${{GIT_ASKPASS-unset}}]" >> "{log}"\n'
        'echo "ssh: connect to host example.invalid port 22: Connection refused" >&2\n'
        "exit 255\n",
    )


@pytest.mark.parametrize("who", ["bgr default", "user env", "repo config"])
def test_ssh_runs_in_batch_mode_unless_the_user_chose_a_command(
    repos: Repos, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, who: str
) -> None:
    log = tmp_path / "ssh.log"
    ssh = fake_ssh(tmp_path / "bin", log)
    monkeypatch.setenv("PATH", f"{ssh.parent}{os.pathsep}{os.environ['PATH']}")
    if who == "user env":
        monkeypatch.setenv("GIT_SSH_COMMAND", "ssh -o User=someone")
    elif who == "repo config":
        git(repos.app, "config", "core.sshCommand", "ssh -o User=configured")
    git(repos.app, "remote", "set-url", "origin", "ssh://example.invalid/repo.git")

    with pytest.raises(GitError, match="Connection refused"):
        pull_if_clean(repos.app)

    recorded = log.read_text()
    assert "example.invalid" in recorded
    assert "prompt=0" in recorded
    assert "askpass=[]" in recorded
    assert ("BatchMode=yes" in recorded) is (who == "bgr default")
    if who != "bgr default":
        assert "User=" in recorded


def test_timeout_kills_git_and_its_children(
    repos: Repos, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pidfile = tmp_path / "ssh.pid"
    # git appends "$@" to the command; the trailing # turns it into a comment.
    monkeypatch.setenv("GIT_SSH_COMMAND", f'echo $$ > "{pidfile}"; exec sleep 30 #')
    monkeypatch.setenv("GIT_SSH_VARIANT", "ssh")
    git(repos.app, "remote", "set-url", "origin", "ssh://example.invalid/repo.git")
    before = head(repos.app)

    with pytest.raises(GitError, match=r"git fetch in .* did not finish within 0\.5 s"):
        pull_if_clean(repos.app, timeout=0.5)

    assert head(repos.app) == before
    hung = int(pidfile.read_text())

    def gone() -> bool:
        try:
            return psutil.Process(hung).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    wait_for(gone, 5, what=f"the hung ssh stand-in {hung} to be gone after the timeout")


def test_git_is_imported_lazily_and_a_missing_binary_is_a_clear_error(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "import bgr.git\n"
        "assert 'git' not in sys.modules, 'bgr.git imported GitPython at import time'\n"
        "from bgr.errors import GitError\n"
        "try:\n"
        "    bgr.git.pull_if_clean(Path(sys.argv[1]))\n"
        "except GitError as err:\n"
        "    print(err)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        env={**os.environ, "GIT_PYTHON_GIT_EXECUTABLE": str(tmp_path / "no-such-git")},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("git is not installed"), done.stdout


# --------------------------------------------------------------------------------------------
# bgr --fetch: a pull before the start


def test_fetch_pulls_before_starting(
    repos: Repos, capsys: pytest.CaptureFixture[str], bgr_home: Path
) -> None:
    repos.push("v2\n")  # the app clone is one commit behind
    app = repos.app
    command = f"cat {TRACKED}; exec sleep 60"
    code, out, err = main(capsys, "--name", "app", "--directory", str(app), "--fetch", "--command", command)
    assert code == 0, err
    assert out.startswith("git: pulled main: ") and "(1 commit)" in out
    wait_for(lambda: read(bgr_home / "app-out.txt"), what="output")
    assert read(bgr_home / "app-out.txt") == "v2\n"
    assert one(capsys, "app")["fetch"] is True


def test_fetch_with_a_dirty_tree_reports_and_resets_nothing(
    repos: Repos, capsys: pytest.CaptureFixture[str]
) -> None:
    repos.push("v2\n")  # the app clone is one commit behind
    app = repos.app
    (app / TRACKED).write_text("local edit\n")
    code, out, err = main(
        capsys, "--name", "app", "--directory", str(app), "--fetch", "--command", "sleep 60"
    )
    assert code == 8 and out == ""
    assert "uncommitted changes" in err and "Traceback" not in err
    assert (app / TRACKED).read_text() == "local edit\n"
    assert listing(capsys) == []
    assert managed("app") == []


def test_fetch_outside_a_git_repository_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    code, _, err = main(capsys, "--name", "p", "--directory", str(plain), "--fetch", "--command", "sleep 60")
    assert code == 8
    assert_one_error_line(err)
    assert "not a git repository" in err


def test_no_fetch_turns_a_remembered_fetch_off(
    repos: Repos, capsys: pytest.CaptureFixture[str], bgr_home: Path
) -> None:
    app = repos.app
    assert main(capsys, "--name", "app", "--directory", str(app), "--fetch", "--command", "sleep 60")[0] == 0
    (app / TRACKED).write_text("local edit\n")  # a pull would refuse now
    code, _, err = main(capsys, "app", "--restart", "--grace", "0.5")
    assert code == 8 and "use --no-fetch" in err
    code, out, err = main(capsys, "--name", "app", "--no-fetch", "--force", "--grace", "0.5")
    assert code == 0, err
    assert out.startswith("restarted app (pid ")
    assert one(capsys, "app")["fetch"] is False
    assert main(capsys, "app", "--restart", "--grace", "0.5")[0] == 0  # no pull any more
    code, _, err = main(capsys, "--name", "app", "--fetch", "--no-fetch")
    assert code == 2 and "contradict" in err
