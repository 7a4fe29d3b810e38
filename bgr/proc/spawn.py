"""Detached start: a new session, stdin from /dev/null, log files the child writes itself.

The command runs as ``/bin/sh -c COMMAND`` after a ``cd`` done by a first ``/bin/sh`` that then
``exec``s it, so the pid we record stays the same and nothing is ever spliced into the command string:
directory and command travel as separate argv entries. We use ``os.posix_spawn`` rather than
``subprocess.Popen`` because it is faster, needs no fork of a threaded guard, and leaves no Popen object
whose finaliser warns about a child that is meant to outlive us.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Mapping

from bgr import paths
from bgr.errors import SpawnError
from bgr.models import Identity
from bgr.proc import host
from bgr.proc.exits import exit_status
from bgr.record import Record

# $0 names the instance in `ps`; $1 is the directory, $2 the user's command, run exactly as sh -c.
_LAUNCHER = 'cd -- "$1" || exit 126; exec /bin/sh -c "$2"'
# Python ignores SIGPIPE and SIGXFSZ; children must not inherit that (`yes | head` would misbehave).
_DEFAULT_SIGNALS = (
    signal.SIGPIPE,
    signal.SIGXFSZ,
    signal.SIGHUP,
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGTERM,
)
_LOG_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT
MARKER_KEYS = ("BGR_NAME", "BGR_INSTANCE")

# Children this process spawned and has not reaped yet (only matters in long-lived callers).
_spawned: set[int] = set()


class Spawned(Record):
    """A freshly started instance: who it is, and when (wall clock) it started."""

    identity: Identity
    started_at: float

    @property
    def pid(self) -> int:
        return self.identity.pid or 0


def child_environment(
    name: str, instance: str, overlay: Mapping[str, str], search_path: str | None, group: str | None
) -> dict[str, str]:
    """The inherited environment, minus bgr markers from a parent instance, plus ours."""
    env = {k: v for k, v in os.environ.items() if k not in MARKER_KEYS}
    # A bgr started from inside a managed process would otherwise carry that process's marker, and
    # stopping the parent would then also kill this unrelated instance.
    env.update(overlay)
    path = child_path(overlay, search_path)
    if path is not None:
        env["PATH"] = path
    if group:
        env["BGR_GROUP"] = group
    else:
        env.pop("BGR_GROUP", None)
    env["BGR_NAME"] = name
    env["BGR_INSTANCE"] = instance
    return env


def child_path(overlay: Mapping[str, str], search_path: str | None) -> str | None:
    """The PATH the child's shell searches: the overlay's (config, --env), else the starter's PATH
    stored with the definition, else ours."""
    if "PATH" in overlay:
        return overlay["PATH"]
    return search_path or os.environ.get("PATH")


# A first word the shell looks up in PATH: no quoting, expansion, assignment or redirection.
_PLAIN_WORD = re.compile(r"[A-Za-z0-9_./+,:@%-]+")
# Reserved words and builtins of dash and bash (either may be /bin/sh): never looked up in PATH.
_SHELL_WORDS = frozenset(
    """case do done elif else esac fi for function if in select then time until while . : alias bg
    bind break builtin caller cd command compgen complete continue declare dirs disown echo enable
    eval exec exit export false fc fg getopts hash help history jobs kill let local logout mapfile
    popd printf pushd pwd read readarray readonly return set shift shopt source suspend test times
    trap true type typeset ulimit umask unalias unset wait""".split()  # noqa: SIM905 (a word list)
)


def cannot_exec(command: str, directory: str, path: str | None) -> bool:
    """True when ``/bin/sh -c command`` will surely fail to run its first word: not found (exit
    127), or not an executable file (126).

    A start uses this to wait for that exit, however loaded the machine, instead of hoping it
    lands inside the startup window. Only a plain first word is judged; False means "cannot
    tell", not "it will run".
    """
    words = command.split(None, 1)
    if not words or words[0] in _SHELL_WORDS or not _PLAIN_WORD.fullmatch(words[0]):
        return False
    word = words[0]
    if "/" in word:
        candidates = [os.path.join(directory, word)]
    elif path is None:
        return False  # the shell's built-in default PATH; not ours to guess
    else:
        # The shell runs in ``directory``: relative and empty PATH entries are relative to it.
        candidates = [os.path.join(directory, entry, word) for entry in path.split(":")]
    return not any(os.path.isfile(c) and os.access(c, os.X_OK) for c in candidates)


def _open_log(path: str) -> int:
    try:
        if os.path.dirname(path) == paths.state_dir():
            return paths.open_private(path, _LOG_FLAGS)
        return os.open(path, _LOG_FLAGS | os.O_CLOEXEC, paths.FILE_MODE)
    except OSError as exc:
        raise SpawnError(f"cannot open log file {path}: {exc.strerror}") from exc


def spawn(
    *,
    name: str,
    command: str,
    directory: os.PathLike[str] | str,
    stdout: os.PathLike[str] | str,
    stderr: os.PathLike[str] | str,
    overlay: Mapping[str, str],
    search_path: str | None = None,
    group: str | None = None,
) -> Spawned:
    """Start ``command`` detached from us and return its pinned identity. Does not wait."""
    directory, stdout, stderr = os.fspath(directory), os.fspath(stdout), os.fspath(stderr)
    instance = os.urandom(16).hex()  # as unique as uuid4, without importing uuid
    env = child_environment(name, instance, overlay, search_path, group)
    out_fd = _open_log(stdout)
    err_fd = out_fd if stderr == stdout else _open_log(stderr)
    try:
        pid = os.posix_spawn(
            "/bin/sh",
            ["/bin/sh", "-c", _LAUNCHER, f"bgr:{name}", directory, command],
            env,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, out_fd, 1),
                (os.POSIX_SPAWN_DUP2, err_fd, 2),
            ],
            setsid=True,
            setsigdef=_DEFAULT_SIGNALS,
            setsigmask=(),
        )
    except OSError as exc:
        raise SpawnError(f"cannot start /bin/sh for {name}: {exc.strerror}") from exc
    finally:
        os.close(out_fd)
        if err_fd != out_fd:
            os.close(err_fd)
    _spawned.add(pid)
    started_at = time.time()
    # The child is ours and unreaped, so its /proc entry exists even if it already exited.
    token = host.start_token(pid) or f"unknown:{instance}"
    return Spawned(Identity(pid=pid, pgid=pid, token=token, instance=instance), started_at)


def wait_exit(pid: int, timeout: float) -> int | None:
    """Wait up to ``timeout`` for a child we spawned; its exit status, or None if still running."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        try:
            reaped, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            _spawned.discard(pid)
            return None
        if reaped:
            _spawned.discard(pid)
            return exit_status(status)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, 0.01)


def reap_spawned() -> dict[int, int]:
    """Reap children we spawned that have exited; ``{pid: exit status}``. Long-lived callers call this.

    Only our own spawned pids are waited for, never ``waitpid(-1)``, so other subprocess users in the
    same process (GitPython) keep their exit codes.
    """
    reaped: dict[int, int] = {}
    for pid in list(_spawned):
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            _spawned.discard(pid)
            continue
        if done:
            _spawned.discard(pid)
            reaped[pid] = exit_status(status)
    return reaped


def is_our_child(pid: int) -> bool:
    """True while ``pid`` is a child this process spawned and has not reaped."""
    return pid in _spawned
