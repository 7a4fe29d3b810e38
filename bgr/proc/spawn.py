"""Detached start: a new session, stdin from /dev/null, log files the child writes itself.

A first ``/bin/sh`` (the launcher) changes directory, joins the instance's cgroup, then becomes
the program (a simple command) or ``/bin/sh -c COMMAND``, so the pid we record stays the same and
nothing is ever spliced into the command string: directory, cgroup and command travel as separate
argv entries. We use ``os.posix_spawn`` rather than
``subprocess.Popen`` because it is faster, needs no fork of a threaded guard, and leaves no Popen object
whose finaliser warns about a child that is meant to outlive us.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

from bgr import paths, signals
from bgr.errors import SpawnError
from bgr.models import Identity, ProcessRecord
from bgr.proc import command, host
from bgr.proc.exits import exit_status
from bgr.record import Record

# $0 names the instance in `ps`; $1 is the directory; $2 the instance's cgroup (empty: none), which
# the launcher joins itself (writing 0 moves the writer) before anything else runs; the rest is the
# program's argv: the command's own words (see bgr.proc.command) or /bin/sh -c COMMAND.
_LAUNCHER = (
    'cd -- "$1" || exit 126; '
    'if [ -n "$2" ]; then echo 0 > "$2/cgroup.procs" || exit 125; fi; '
    'shift 2; exec "$@"'
)
# Python ignores SIGPIPE and SIGXFSZ; children must not inherit that (`yes | head` would misbehave).
_DEFAULT_SIGNALS = (
    signals.SIGPIPE,
    signals.SIGXFSZ,
    signals.SIGHUP,
    signals.SIGINT,
    signals.SIGQUIT,
    signals.SIGTERM,
)
_LOG_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT
# bgr markers (and its test hook) are never inherited from a parent instance.
MARKER_KEYS = ("BGR_NAME", "BGR_INSTANCE", "BGR_OWNER", "BGR_CRASH_AT")

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
    name: str,
    instance: str,
    overlay: Mapping[str, str],
    search_path: str | None,
    group: str | None,
    *,
    registry_id: str = "",
) -> dict[str, str]:
    """The inherited environment, minus bgr markers from a parent instance, plus ours.

    ``BGR_INSTANCE`` marks one instance, ``BGR_OWNER`` (registry id and name) every instance of a
    name: a stop finds, by them, what left the process group, of this instance or an older one.
    """
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
    # Python block-buffers a stdout that is a file, so print() would reach the log only in 8 KiB
    # lumps (or never, if it is killed): unbuffered unless the caller, --env or the config said.
    env.setdefault("PYTHONUNBUFFERED", "1")
    env["BGR_NAME"] = name
    env["BGR_INSTANCE"] = instance
    if registry_id:
        env["BGR_OWNER"] = f"{registry_id}:{name}"
    return env


def child_path(overlay: Mapping[str, str], search_path: str | None) -> str | None:
    """The PATH the child's shell searches: the overlay's (config, --env), else the starter's PATH
    stored with the definition, else ours."""
    if "PATH" in overlay:
        return overlay["PATH"]
    return search_path or os.environ.get("PATH")


def _open_log(path: str, layout: paths.Layout) -> int:
    try:
        if layout.owns(path):
            return paths.open_private(path, _LOG_FLAGS)
        # The user's own path (--stdout): created 0600 if new, its mode otherwise left alone.
        return os.open(path, _LOG_FLAGS | os.O_CLOEXEC, paths.FILE_MODE)
    except OSError as exc:
        raise SpawnError(f"cannot open log file {path}: {exc.strerror}") from exc


def new_instance() -> str:
    """A fresh instance id: as unique as uuid4, without importing uuid."""
    return os.urandom(16).hex()


def spawn(
    record: ProcessRecord,
    *,
    layout: paths.Layout,
    instance: str,
    registry_id: str = "",
    cgroup: str | None = None,
) -> Spawned:
    """Start ``record``'s command detached from us and return its pinned identity. Does not wait."""
    env = child_environment(
        record.name, instance, record.child_env(), record.search_path, record.group, registry_id=registry_id
    )
    program = command.plain_argv(record.command) or ["/bin/sh", "-c", record.command]
    out_fd = _open_log(record.stdout, layout)
    err_fd = out_fd if record.stderr == record.stdout else _open_log(record.stderr, layout)
    try:
        pid = os.posix_spawn(
            "/bin/sh",
            ["/bin/sh", "-c", _LAUNCHER, f"bgr:{record.name}", record.directory, cgroup or "", *program],
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
        raise SpawnError(f"cannot start /bin/sh for {record.name}: {exc.strerror}") from exc
    finally:
        os.close(out_fd)
        if err_fd != out_fd:
            os.close(err_fd)
    _spawned.add(pid)
    started_at = time.time()
    # The child is ours and unreaped, so its /proc entry exists even if it already exited.
    token = host.start_token(pid) or f"unknown:{instance}"
    return Spawned(Identity(pid=pid, pgid=pid, token=token, instance=instance, cgroup=cgroup), started_at)


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


def adopt(pid: int) -> None:
    """Reap ``pid`` with the children we spawned: an orphan this process inherited as a subreaper."""
    _spawned.add(pid)


def reap_spawned() -> dict[int, int]:
    """Reap children we spawned that have exited; ``{pid: exit status}``. Long-lived callers call this.

    Only our own spawned pids (and orphans inherited as a subreaper) are waited for, never
    ``waitpid(-1)``, so other subprocess users in the same process (GitPython) keep their exit codes.
    """
    reaped: dict[int, int] = {}
    # A guard calls this at every look at a process, with up to thousands of children: ask the
    # kernel which child has exited (without reaping it) and reap just that one while it is ours;
    # the sweep over every pid (and, as a subreaper, over /proc) only for anyone else's.
    while (pid := _exited_child()) in _spawned:
        assert pid is not None
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # another thread was quicker
            _spawned.discard(pid)
            continue
        if not done:
            break  # not what waitid said: let the sweep below decide
        _spawned.discard(pid)
        reaped[pid] = exit_status(status)
    if pid is None:
        return reaped  # no other child has exited
    for pid in [*_spawned, *host.inherited_zombies()]:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            _spawned.discard(pid)
            continue
        if done:
            _spawned.discard(pid)
            reaped[pid] = exit_status(status)
    return reaped


def _exited_child() -> int | None:
    """The pid of a child of ours that has exited, left unreaped; None when none has; 0 when the
    system cannot say (no ``waitid``: macOS)."""
    if not hasattr(os, "waitid"):  # pragma: no cover (Linux runs the tests)
        return 0
    try:
        info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return None  # no children at all
    return None if info is None else info.si_pid


def is_our_child(pid: int) -> bool:
    """True while ``pid`` is a child this process spawned and has not reaped."""
    return pid in _spawned
