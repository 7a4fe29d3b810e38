"""Notice the moment a guarded process exits, although the guard is usually not its parent.

Linux: one pidfd (``os.pidfd_open``) per watched process; a pidfd becomes readable when its
process exits, whoever its parent is. One thread polls all of them plus a self-pipe, which other
threads (and the signal handler) write to when the set changes or the guard must stop. Where
pidfds are unavailable (not Linux, an old kernel) or the guard is out of file descriptors, a
process is checked every ``poll_interval`` instead.

The pid a pidfd is opened on is checked against its start token *after* opening: the pidfd pins
the process, so a pid reused in between is detected and reported as an exit at once.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import resource
import select
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bgr.guard_api import is_alive

log = logging.getLogger(__name__)

# Descriptors kept free for the registry, lock files, logs, git: pidfds never take the last ones.
FD_RESERVE = 64


@dataclass(frozen=True, slots=True)
class _Entry:
    name: str
    pid: int
    token: str
    fd: int  # -1: checked every poll_interval instead


class ExitWatcher:
    """Calls ``on_exit(name)`` (in the watcher thread) when a process watched for ``name`` exits.

    ``watch(name, members)`` replaces the set watched for a name; a member already dead fires at
    once. After firing, a name is no longer watched until ``watch`` is called again. ``wake()``
    only writes a byte to a pipe, so a signal handler may call it; each wake-up calls ``on_wake``.
    """

    def __init__(
        self,
        on_exit: Callable[[str], None],
        *,
        on_wake: Callable[[], None] | None = None,
        poll_interval: float = 0.05,
    ) -> None:
        self._on_exit = on_exit
        self._on_wake = on_wake
        self._poll_ms = max(1, round(poll_interval * 1000))
        self._lock = threading.Lock()
        self._entries: dict[str, list[_Entry]] = {}
        self._fired: set[str] = set()
        # Other threads never close a pidfd the poller may hold: the number could be reused by the
        # time poll() reports on it. The watcher thread closes retired fds between polls.
        self._retired: list[int] = []
        self._pidfds = hasattr(os, "pidfd_open")
        self._open_fds = 0
        self._warned = False
        self._stopping = False
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)
        self._thread: threading.Thread | None = None

    # -- called from any thread --------------------------------------------------------------

    def watch(self, name: str, members: Iterable[tuple[int, str]]) -> None:
        """Watch these ``(pid, start token)`` processes for ``name`` instead of the previous set."""
        wanted = list(members)
        with self._lock:
            current = [(e.pid, e.token) for e in self._entries.get(name, [])]
        if current and sorted(current) == sorted(wanted):
            return  # already watched (each interval check confirms what we have)
        entries = []
        dead = False
        for pid, token in wanted:
            fd = self._open(pid)
            if not is_alive(pid, token):
                if fd >= 0:
                    self._close(fd)
                dead = True
                continue
            entries.append(_Entry(name, pid, token, fd))
        with self._lock:
            self._retire(self._entries.pop(name, []))
            if entries:
                self._entries[name] = entries
            if dead or not entries:
                self._fired.add(name)
        self.wake()

    def forget(self, name: str) -> None:
        """Stop watching ``name``."""
        with self._lock:
            self._retire(self._entries.pop(name, []))
            self._fired.discard(name)
        self.wake()

    def watched(self) -> dict[str, list[int]]:
        """``{name: [pid, ...]}`` as watched right now."""
        with self._lock:
            return {name: [e.pid for e in entries] for name, entries in self._entries.items()}

    def wake(self) -> None:
        """Interrupt the poll (async-signal-safe: one ``write`` to a non-blocking pipe)."""
        with contextlib.suppress(BlockingIOError, BrokenPipeError, OSError):
            os.write(self._write_fd, b"w")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="bgr-guard-exits", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the thread and close every descriptor."""
        self._stopping = True
        self.wake()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            for entries in self._entries.values():
                self._retire(entries)
            self._entries.clear()
            for fd in self._retired:
                os.close(fd)
            self._retired.clear()
            self._open_fds = 0
        os.close(self._read_fd)
        os.close(self._write_fd)

    # -- descriptors ---------------------------------------------------------------------------

    def _open(self, pid: int) -> int:
        """A pidfd for ``pid``, or -1 (gone, unsupported, or out of descriptors: poll it)."""
        if not self._pidfds:
            return -1
        with self._lock:
            room = _ensure_fd_room(self._open_fds + FD_RESERVE)
            if room:
                self._open_fds += 1
        if not room:
            self._warn_no_fds("the open-file limit is reached")
            return -1
        try:
            return os.pidfd_open(pid)
        except ProcessLookupError:
            pass
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE):
                self._warn_no_fds(exc.strerror or "too many open files")
            else:  # ENOSYS (kernel < 5.3), EPERM under some sandboxes: poll everything
                log.warning("pidfd_open is unavailable (%s); checking processes by polling", exc)
                self._pidfds = False
        with self._lock:
            self._open_fds -= 1
        return -1

    def _close(self, fd: int) -> None:
        os.close(fd)
        with self._lock:
            self._open_fds -= 1

    def _retire(self, entries: list[_Entry]) -> None:
        # Caller holds the lock.
        self._retired.extend(e.fd for e in entries if e.fd >= 0)

    def _warn_no_fds(self, why: str) -> None:
        if not self._warned:
            self._warned = True
            log.warning(
                "%s: some processes are checked every %d ms instead of at once; raise the hard "
                "limit (ulimit -Hn, LimitNOFILE=) to watch them all",
                why,
                self._poll_ms,
            )

    # -- the watcher thread --------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping:
            by_fd, polled, exited = self._take_state()
            woke = False
            if not exited:
                woke, exited = self._wait(by_fd, polled)
            if self._stopping:
                break
            if woke and self._on_wake is not None:
                self._call(self._on_wake)
            if exited:
                with self._lock:
                    for name in exited:
                        self._retire(self._entries.pop(name, []))
                for name in sorted(exited):
                    self._call(self._on_exit, name)

    def _take_state(self) -> tuple[dict[int, _Entry], list[_Entry], set[str]]:
        """Close retired descriptors; what to poll, what to check by pid, what already fired."""
        with self._lock:
            for fd in self._retired:
                os.close(fd)
                self._open_fds -= 1
            self._retired.clear()
            by_fd = {e.fd: e for es in self._entries.values() for e in es if e.fd >= 0}
            polled = [e for es in self._entries.values() for e in es if e.fd < 0]
            exited = self._fired
            self._fired = set()
        return by_fd, polled, exited

    def _wait(self, by_fd: dict[int, _Entry], polled: list[_Entry]) -> tuple[bool, set[str]]:
        """Block until a pidfd or the wake pipe is readable (or the next poll); (woken, exited)."""
        poller = select.poll()
        poller.register(self._read_fd, select.POLLIN)
        for fd in by_fd:
            poller.register(fd, select.POLLIN)
        woke, exited = False, set()
        for fd, _ in poller.poll(self._poll_ms if polled else None):
            if fd == self._read_fd:
                woke = True
                with contextlib.suppress(BlockingIOError):
                    while os.read(self._read_fd, 4096):
                        pass
            else:
                exited.add(by_fd[fd].name)
        exited.update(e.name for e in polled if not is_alive(e.pid, e.token))
        return woke, exited

    def _call(self, func: Callable[..., None], *args: str) -> None:
        try:
            func(*args)
        except Exception:
            # The thread must survive a bug in a handler: it is what notices exits.
            log.exception("exit watcher callback failed")


def _ensure_fd_room(needed: int) -> bool:
    """True if ``needed`` descriptors fit under the soft limit, raising it towards the hard one.

    The limit is raised only when needed: processes the guard restarts inherit it, and some
    programs behave differently with a huge one (they loop over every possible descriptor).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or needed < soft:
        return True
    target = max(needed + FD_RESERVE, soft * 2)
    if hard != resource.RLIM_INFINITY:
        target = min(target, hard)
    if target <= soft:
        return False
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        return False
    log.info("raised the open-file limit from %d to %d to watch more processes", soft, target)
    return needed < target
