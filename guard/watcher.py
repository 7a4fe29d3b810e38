"""Notice the moment a guarded process exits, although the guard is usually not its parent.

Linux: one pidfd (``os.pidfd_open``) per watched process; a pidfd becomes readable when its
process exits, whoever its parent is. One thread polls all of them plus a self-pipe, which other
threads (and the signal handler) write to when the set changes or the guard must stop. Where
pidfds are unavailable (not Linux, an old kernel) or the guard is out of file descriptors, a
process is checked every ``poll_interval`` instead.

The pid a pidfd is opened on is checked against its start token *after* opening: the pidfd pins
the process, so a pid reused in between is detected and reported as an exit at once.

The same thread keeps the guard's backoff retries (``after(name, delay)``, guard/deadlines.py):
its ``poll(2)`` timeout is relative and counted on the monotonic clock, so a retry keeps its
spacing whatever the wall clock does, and the watcher never waits on the scheduler to arrange one.
The pidfds stay registered with one ``poll`` object between wake-ups (only what changed is
registered or removed), so a wake-up costs the same with 1000 processes watched as with one.
Housekeeping that must not delay a burst of restarts (removing dead instances' cgroups) waits for
a quiet moment: ``when_quiet(callback)`` runs it once a poll has found nothing for ``QUIET``;
the periodic passes, in other threads, wait while it handles exits (``wait_calm``); and when one
wake-up finds several exits, ``on_burst`` hears of all of them first, so that what their restarts
will need can be made ahead (guard/keeper.py: their cgroups).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import resource
import select
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bgr.guard_api import is_alive
from guard import policy
from guard.deadlines import Deadlines

log = logging.getLogger(__name__)

# Descriptors kept free for the registry, lock files, logs, git: pidfds never take the last ones.
FD_RESERVE = 64
# How long nothing must happen before a when_quiet callback runs: longer than the gaps between
# the exits of one burst (a group killed at once, a host under load), short enough that a crash
# loop's cgroups are gone before its next restart.
QUIET = 0.05


@dataclass(frozen=True, slots=True)
class _Entry:
    name: str
    pid: int
    token: str
    fd: int  # -1: checked every poll_interval instead


class ExitWatcher:
    """Calls ``on_exit(name)`` (in the watcher thread) when a process watched for ``name`` exits;
    when one wake-up finds several, ``on_burst(names)`` first, with all of them.

    ``watch(name, members)`` replaces the set watched for a name; a member already dead fires at
    once. After firing, a name is no longer watched until ``watch`` is called again. ``wake()``
    only writes a byte to a pipe, so a signal handler may call it; each wake-up calls ``on_wake``.
    ``after(name, delay)`` calls ``on_due(name)`` (in the watcher thread) once ``delay`` seconds
    have passed on ``clock``, unless ``cancel(name)`` or a later ``after`` replaced it.
    """

    def __init__(
        self,
        on_exit: Callable[[str], None],
        *,
        on_wake: Callable[[], None] | None = None,
        on_due: Callable[[str], None] | None = None,
        on_burst: Callable[[list[str]], None] | None = None,
        poll_interval: float = 0.05,
        clock: policy.Clock = policy.boot_clock,
    ) -> None:
        self._on_exit = on_exit
        self._on_wake = on_wake
        self._on_due = on_due
        self._on_burst = on_burst
        self._deadlines = Deadlines(clock)
        self._poll_ms = max(1, round(poll_interval * 1000))
        self._lock = threading.Lock()
        self._entries: dict[str, list[_Entry]] = {}
        self._fired: set[str] = set()
        # Entries with a pidfd that the watcher thread has yet to register with its poll object;
        # only that thread touches the poll object and ``_by_fd``.
        self._added: list[_Entry] = []
        self._by_fd: dict[int, _Entry] = {}
        # Other threads never close a pidfd the poller may hold: the number could be reused by the
        # time poll() reports on it. The watcher thread closes retired fds between polls.
        self._retired: list[int] = []
        self._quiet: Callable[[], None] | None = None
        # Set while the thread waits in poll(2), clear while it handles exits and retries: the
        # periodic passes wait for it (wait_calm), so that a burst of restarts has the GIL.
        self._calm = threading.Event()
        self._calm.set()
        self._pidfds = hasattr(os, "pidfd_open")
        self._open_fds = 0
        self._warned = False
        self._stopping = False
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)
        self._poller = select.poll()
        self._poller.register(self._read_fd, select.POLLIN)
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
                self._added.extend(e for e in entries if e.fd >= 0)
            if dead or not entries:
                self._fired.add(name)
        self.wake()

    def forget(self, name: str) -> None:
        """Stop watching ``name``."""
        with self._lock:
            self._retire(self._entries.pop(name, []))
            self._fired.discard(name)
        self.wake()

    def members(self, name: str) -> list[tuple[int, str]]:
        """The ``(pid, start token)`` processes watched for ``name`` (none: not watched)."""
        with self._lock:
            return [(e.pid, e.token) for e in self._entries.get(name, [])]

    def pinned(self, name: str) -> bool:
        """True when the kernel tells this watcher of any exit among ``name``'s members: each has a
        pidfd (readable once its process is gone, even if the pid is reused), and the thread that
        polls them runs. Nobody else needs to look whether they live."""
        thread = self._thread
        if thread is None or not thread.is_alive() or self._stopping:
            return False
        with self._lock:
            entries = self._entries.get(name, [])
            return bool(entries) and name not in self._fired and all(e.fd >= 0 for e in entries)

    def watched(self) -> dict[str, list[int]]:
        """``{name: [pid, ...]}`` as watched right now."""
        with self._lock:
            return {name: [e.pid for e in entries] for name, entries in self._entries.items()}

    def after(self, name: str, delay: float) -> None:
        """Call ``on_due(name)`` in ``delay`` seconds (replacing an earlier ``after`` for it)."""
        self._deadlines.after(name, delay)
        self.wake()

    def when_quiet(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (in the watcher thread) once nothing has happened for ``QUIET``
        seconds; a second call before then replaces the first."""
        with self._lock:
            first, self._quiet = self._quiet is None, callback
        if first:  # a poll already waiting for quiet has the right timeout: no need to wake it
            self.wake()

    def wait_calm(self, timeout: float) -> None:
        """Return once the watcher thread is not handling exits or retries (at most ``timeout``
        seconds): what a periodic pass calls between two names, to let a burst of restarts go
        first. Costs one attribute read when the watcher is calm."""
        if not self._calm.is_set():
            self._calm.wait(timeout)

    def cancel(self, name: str) -> None:
        """Forget the pending ``after`` of ``name``, if any (its wake-up, if near, finds nothing)."""
        self._deadlines.cancel(name)

    def pending(self) -> dict[str, float]:
        """``{name: seconds until its on_due}`` for the pending ``after`` calls."""
        return self._deadlines.pending()

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
            self._added.clear()
            self._by_fd.clear()
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
            polled, exited = self._take_state()
            woke = idle = False
            if not exited:
                woke, exited, idle = self._wait(polled)
            if self._stopping:
                break
            if woke and self._on_wake is not None:
                self._call(self._on_wake)
            self._calm.clear()
            try:
                if exited:
                    with self._lock:
                        for name in exited:
                            self._retire(self._entries.pop(name, []))
                    names = sorted(exited)
                    if len(names) > 1 and self._on_burst is not None:
                        self._call(self._on_burst, names)
                    for name in names:
                        self._call(self._on_exit, name)
                ran_due = self._run_due()
            finally:
                self._calm.set()
            if not ran_due and idle:
                self._run_quiet()

    def _run_due(self) -> bool:
        """Call on_due for the deadlines that have come; True if there were any."""
        if self._on_due is None:
            return False
        due = self._deadlines.pop_due()
        for name in due:
            self._call(self._on_due, name)
        return bool(due)

    def _run_quiet(self) -> None:
        with self._lock:
            quiet, self._quiet = self._quiet, None
        if quiet is not None:
            self._call(quiet)

    def _take_state(self) -> tuple[list[_Entry], set[str]]:
        """Bring the poll object up to date (register new pidfds, drop and close retired ones);
        what to check by pid, and what already fired."""
        with self._lock:
            for entry in self._added:
                self._poller.register(entry.fd, select.POLLIN)
                self._by_fd[entry.fd] = entry
            self._added.clear()
            for fd in self._retired:
                if self._by_fd.pop(fd, None) is not None:
                    self._poller.unregister(fd)
                os.close(fd)
                self._open_fds -= 1
            self._retired.clear()
            polled = [e for es in self._entries.values() for e in es if e.fd < 0]
            exited = self._fired
            self._fired = set()
        return polled, exited

    def _timeout_ms(self, polled: list[_Entry]) -> float | None:
        """How long poll(2) may block: until the next pid check or the nearest deadline."""
        waits = [self._poll_ms] if polled else []
        if self._quiet is not None:
            waits.append(round(QUIET * 1000))
        due = self._deadlines.timeout()
        if due is not None:
            waits.append(math.ceil(due * 1000))  # rounded up: never wake just before it is due
        return min(waits) if waits else None

    def _wait(self, polled: list[_Entry]) -> tuple[bool, set[str], bool]:
        """Block until a pidfd or the wake pipe is readable (or the next poll); (woken, exited,
        idle: the poll timed out with nothing ready)."""
        woke, exited = False, set[str]()
        fired: list[_Entry] = []
        ready = self._poller.poll(self._timeout_ms(polled))
        for fd, _ in ready:
            if fd == self._read_fd:
                woke = True
                with contextlib.suppress(BlockingIOError):
                    while os.read(self._read_fd, 4096):
                        pass
            elif fd in self._by_fd:
                fired.append(self._by_fd[fd])
        fired.extend(e for e in polled if not is_alive(e.pid, e.token))
        # A watch replaced or forgotten while we polled: its old processes are no longer the name's.
        with self._lock:
            exited.update(e.name for e in fired if any(e is x for x in self._entries.get(e.name, ())))
        return woke, exited, not ready and not fired

    def _call(self, func: Callable[..., None], *args: str | list[str]) -> None:
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
