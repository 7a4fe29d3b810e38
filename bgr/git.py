"""``--fetch``: fast-forward a process directory's git checkout to its upstream, or say why not.

GitPython is imported inside ``pull_if_clean`` only: it is slow to import and fails without a git
binary, and neither may affect ``bgr`` listing or a plain start. Every git command runs without
prompts, without hooks, without auto-gc and under one overall timeout, so a pull started by the guard
can neither hang nor run code from the repository nor leave a git process behind.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bgr.errors import GitError

if TYPE_CHECKING:
    import git

log = logging.getLogger(__name__)

# -c options put before every command. Hooks: a pull must not run code that arrived with the
# repository (post-merge, reference-transaction, ...). Auto maintenance/gc: `git gc --auto`
# daemonizes, which would leave a git process running after bgr (or in the guard's cgroup).
# merge.autoStash: never stash the user's work behind their back.
_CONFIG = (
    "core.hooksPath=/dev/null",
    "maintenance.auto=false",
    "gc.auto=0",
    "merge.autoStash=false",
)
_SSH_COMMAND = "ssh -o BatchMode=yes"


@dataclass(frozen=True, slots=True)
class PullResult:
    """What ``pull_if_clean`` did: ``moved`` is True only when HEAD changed."""

    moved: bool
    old_head: str
    new_head: str
    branch: str
    summary: str


def _first_error_line(stderr: str) -> str:
    """The most telling line of git's stderr: the first that is not a hint or warning."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        if not line.startswith(("hint:", "warning:")):
            return line
    return lines[-1] if lines else "(no error output)"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


class _Git:
    """Runs git commands in one repository with a shared deadline and a no-prompt environment."""

    def __init__(self, repo: git.Repo, directory: Path, timeout: float) -> None:
        self.repo = repo
        self.directory = directory
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.env = {
            "GIT_TERMINAL_PROMPT": "0",
            # Empty (not unset) so git neither runs SSH_ASKPASS nor prompts: it fails cleanly.
            "GIT_ASKPASS": "",
            "GCM_INTERACTIVE": "never",
        }

    def run(self, *args: str) -> tuple[int, str, str]:
        """Run ``git <args>``; return (status, stdout, stderr). Raises GitError on timeout."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise self._timed_out(args[0])
        executable = str(self.repo.git.GIT_PYTHON_GIT_EXECUTABLE or "git")
        command = [executable, *(f for opt in _CONFIG for f in ("-c", opt)), *args]
        log.debug("running %s in %s", command, self.directory)
        status, out, err = self.repo.git.execute(
            command,
            with_extended_output=True,
            with_exceptions=False,
            kill_after_timeout=remaining,
            env=self.env,
        )
        if status == -signal.SIGKILL and time.monotonic() >= self.deadline:
            raise self._timed_out(args[0])
        return status, out, err

    def check(self, *args: str, what: str) -> str:
        """Run ``git <args>``; return stdout, or raise GitError naming ``what`` failed."""
        status, out, err = self.run(*args)
        if status != 0:
            raise GitError(
                f"{what} failed in {self.directory}: {_first_error_line(err)}", details=err.strip()
            )
        return out

    def _timed_out(self, command: str) -> GitError:
        return GitError(
            f"git {command} in {self.directory} did not finish within {self.timeout:g} s; "
            "check the remote is reachable"
        )


def pull_if_clean(directory: os.PathLike[str] | str, timeout: float = 60.0) -> PullResult:
    """Fetch the current branch's upstream and fast-forward to it, if the working tree is clean.

    Untracked files do not count as changes. Raises GitError when ``directory`` is not a git
    checkout, has a detached HEAD or no upstream, has uncommitted changes to tracked files, has
    diverged from its upstream, or the fetch fails or exceeds ``timeout`` seconds (all commands
    together). Nothing is ever reset, stashed or merged with a merge commit.
    """
    directory = Path(directory)
    try:
        import git
    except ImportError as exc:
        # GitPython refuses to import when it cannot run a git binary.
        raise GitError("git is not installed or not usable; install git or use --no-fetch") from exc
    try:
        repo = git.Repo(directory, search_parent_directories=False)
    except git.exc.NoSuchPathError as exc:
        raise GitError(f"directory {directory} does not exist") from exc
    except git.exc.InvalidGitRepositoryError as exc:
        raise GitError(f"{directory} is not a git repository; run git init or use --no-fetch") from exc
    # The context manager reaps GitPython's persistent `git cat-file` helpers, should any start.
    with repo:
        try:
            return _pull(_Git(repo, directory, timeout))
        except git.exc.GitCommandNotFound as exc:
            raise GitError("git is not installed (the git command was not found)") from exc


def _pull(g: _Git) -> PullResult:
    repo, directory = g.repo, g.directory
    if repo.bare:
        raise GitError(f"{directory} is a bare repository; --fetch needs a working tree")
    if repo.head.is_detached:
        raise GitError(
            f"{directory} has a detached HEAD (no branch checked out); check out a branch or use --no-fetch"
        )
    branch = repo.active_branch.name

    status, out, _ = g.run("rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    if status != 0:
        raise GitError(f"branch {branch} in {directory} has no commits yet; nothing to pull into")
    old_head = out.strip()

    status, out, _ = g.run("config", "--get", f"branch.{branch}.remote")
    remote = out.strip()
    merge_status, _, _ = g.run("config", "--get", f"branch.{branch}.merge")
    if status != 0 or not remote or merge_status != 0:
        raise GitError(
            f"branch {branch} in {directory} has no upstream tracking branch; set one with "
            f"`git branch --set-upstream-to=origin/{branch}` or use --no-fetch"
        )

    changed = g.check(
        "--no-optional-locks",
        "status",
        "--porcelain",
        "--untracked-files=no",
        "--ignore-submodules=untracked",
        what="git status",
    )
    if changed.strip():
        count = len(changed.strip().splitlines())
        raise GitError(
            f"{directory} has uncommitted changes ({_plural(count, 'file')}); not pulling "
            "(commit or stash them, or use --no-fetch)"
        )

    if remote != ".":  # "." means the upstream is a local branch: nothing to fetch.
        ssh_configured = g.run("config", "--get", "core.sshCommand")[0] == 0
        if not (ssh_configured or os.environ.get("GIT_SSH_COMMAND") or os.environ.get("GIT_SSH")):
            g.env["GIT_SSH_COMMAND"] = _SSH_COMMAND
        g.check("fetch", "--quiet", remote, what=f"git fetch {remote}")

    upstream = g.check(
        "rev-parse", "--verify", "--quiet", "@{upstream}^{commit}", what="finding the upstream"
    ).strip()
    counts = g.check(
        "rev-list", "--left-right", "--count", f"{old_head}...{upstream}", what="git rev-list"
    ).split()
    ahead, behind = int(counts[0]), int(counts[1])

    if behind == 0:
        note = f"; {_plural(ahead, 'local commit')} not pushed" if ahead else ""
        return PullResult(
            moved=False,
            old_head=old_head,
            new_head=old_head,
            branch=branch,
            summary=f"already up to date ({old_head[:7]}{note})",
        )
    if ahead:
        raise GitError(
            f"{branch} in {directory} has diverged from its upstream ({ahead} local, "
            f"{behind} upstream commits); not pulling (merge or rebase by hand)"
        )

    g.check("merge", "--ff-only", "--quiet", upstream, what="git merge --ff-only")
    new_head = g.check("rev-parse", "--verify", "HEAD^{commit}", what="git rev-parse").strip()
    moved = new_head != old_head
    summary = (
        f"pulled {branch}: {old_head[:7]} → {new_head[:7]} ({_plural(behind, 'commit')})"
        if moved
        else f"already up to date ({old_head[:7]})"
    )
    return PullResult(moved=moved, old_head=old_head, new_head=new_head, branch=branch, summary=summary)
