"""Development mode: the foreground loop of ``bgr --watch`` and the events it reports.

``run`` starts the process (replacing a running instance), places the watches (``fswatch``),
gathers changes into bursts (``debounce``), restarts through ``bgr.core.launch`` after each burst,
notices crashes, optionally streams the logs (``logstream``), and yields all of it as events. It
never prints; the CLI does.

The loop is the parent of the instances it starts, so it reaps them (``spawn.reap_spawned``) and
knows their exit codes. A crashed process is not restarted until the next change (as nodemon).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bgr import paths
from bgr.core import definition, launch
from bgr.errors import BgrError, LockHeld, NoRegistry, NotFound, SpawnError, UsageError
from bgr.logfiles import reading
from bgr.models import Desired, ProcessRecord, StartRequest, StartResult
from bgr.proc import identity, spawn
from bgr.proc.locks import file_lock
from bgr.proc.stopper import DEFAULT_GRACE
from bgr.store import open_registry
from bgr.watch.debounce import Debouncer
from bgr.watch.inbox import Inbox
from bgr.watch.logstream import LogFollower
from bgr.watch.watcher import Watcher

DEFAULT_DEBOUNCE = 0.3
# How often the loop checks whether the process is still alive.
POLL_INTERVAL = 0.15
TAIL_LINES = 10


@dataclass(frozen=True, slots=True)
class Watching:
    """Watches are in place."""

    directory: str
    directories: int


@dataclass(frozen=True, slots=True)
class Started:
    """The process was started; ``changes`` (empty for the first start) triggered it."""

    result: StartResult
    changes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StartFailed:
    """A (re)start failed; the loop waits for the next change."""

    error: BgrError
    changes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Exited:
    """The process ended by itself (or was stopped with ``bgr --stop``); waiting for a change."""

    name: str
    exit_code: int | None  # None: unknown (an instance someone else started)
    stderr_tail: str = ""
    stopped: bool = False  # stopped on purpose by the user


@dataclass(frozen=True, slots=True)
class Output:
    """Text the process wrote (one or more lines of one stream)."""

    label: str
    text: str


@dataclass(frozen=True, slots=True)
class Gone:
    """The process was deleted from the registry; watching ends."""

    name: str


WatchEvent = Watching | Started | StartFailed | Exited | Output | Gone


def _plan(
    request: StartRequest, existing: ProcessRecord | None, layout: paths.Layout
) -> tuple[Path, Path, Path]:
    """Directory and log files the start will use (``definition.build`` decides the same way): the
    request's, else the stored definition's, else the defaults."""
    out_default, err_default = map(Path, layout.log_paths(request.name))

    def pick(given: str | None, stored: str | None, default: Path) -> Path:
        if given:
            return Path(paths.absolute(given))
        return Path(stored) if stored is not None else default

    return (
        pick(request.directory, existing.directory if existing else None, Path(paths.current_directory())),
        pick(request.stdout, existing.stdout if existing else None, out_default),
        pick(request.stderr, existing.stderr if existing else None, err_default),
    )


def _log_files(stream: str, stdout: Path, stderr: Path) -> list[tuple[str, Path]]:
    """The files ``stream`` ("both", "stdout" or "stderr") names; one file shared by both once."""
    chosen = [item for item in (("stdout", stdout), ("stderr", stderr)) if stream in ("both", item[0])]
    return chosen[:1] if stream == "both" and stderr == stdout else chosen


def _alive(record: ProcessRecord) -> bool:
    return identity.instance_alive(record.identity)


class _Session:
    """The loop's state: which instance we watch, exit codes we reaped."""

    def __init__(self, request: StartRequest, db: str | None, grace: float) -> None:
        self.request = request
        self.name = request.name
        self.db = db
        self.grace = grace
        self.tracked: ProcessRecord | None = None
        self.codes: dict[int, int] = {}
        self.over = False

    def _row(self) -> ProcessRecord | None:
        with open_registry(self.db) as reg:
            return reg.get(self.name)

    def _track_row(self) -> None:
        row = self._row()
        self.tracked = row if row is not None and _alive(row) else None

    def start(self, changes: tuple[str, ...]) -> Iterator[WatchEvent]:
        """Start (``changes`` empty) or restart the process; a first start that fails for good
        raises."""
        try:
            if changes:
                result = launch.restart(self.name, db=self.db, grace=self.grace)
            else:
                request = self.request._replace(force=True)
                result = launch.start(request, db=self.db, grace=self.grace)
        except NotFound:
            if not changes:
                raise
            self.over = True
            yield Gone(self.name)
            return
        except BgrError as exc:
            # The first start fails for good on a bad command line; a process that dies at once,
            # a broken config file or a refused git pull is something the next save may fix.
            if not changes and not isinstance(exc, SpawnError):
                raise
            self._track_row()
            yield StartFailed(exc, changes)
            return
        self.tracked = result.info.record
        yield Started(result, changes)

    def check(self) -> Iterator[WatchEvent]:
        """Reap our children; report the watched instance if it has ended."""
        self.codes.update(spawn.reap_spawned())
        record = self.tracked
        if record is None:
            self.codes.clear()
            # Nothing runs, but `bgr --delete` (which stops first, then forgets) still ends us.
            if self._row() is None:
                self.over = True
                yield Gone(self.name)
            return
        self.codes = {pid: code for pid, code in self.codes.items() if pid == record.pid}
        if _alive(record):
            return
        row = self._row()
        if row is None:
            self.over = True
            yield Gone(self.name)
            return
        if row.instance != record.instance:
            # Someone else restarted it (bgr --restart, bgr-guard): watch that instance instead.
            self._track_row()
            return
        self.tracked = None
        if row.desired is Desired.STOPPED:
            yield Exited(self.name, None, stopped=True)
            return
        code = self.codes.pop(record.pid, None) if record.pid else None
        if code is None and record.pid and spawn.is_our_child(record.pid):
            code = spawn.wait_exit(record.pid, 0)
        if record.instance:
            launch.record_exit(self.name, record.instance, code, db=self.db)
        tail = "".join(reading.tail(Path(row.stderr), TAIL_LINES))
        yield Exited(self.name, code, tail)


def _grouped(lines: Iterable[tuple[str, str]]) -> Iterator[Output]:
    """Consecutive lines of one stream as one event (printing line by line is slow)."""
    for label, group in itertools.groupby(lines, key=lambda item: item[0]):
        yield Output(label, "".join(text for _, text in group))


def run(
    request: StartRequest,
    *,
    stop: threading.Event,
    debounce: float = DEFAULT_DEBOUNCE,
    ignore: Sequence[str] = (),
    logs: str | None = None,
    lines: int = 0,
    db: str | None = None,
    grace: float = DEFAULT_GRACE,
    backend: str = "auto",
    clock: Callable[[], float] = time.monotonic,
) -> Generator[WatchEvent, None, None]:
    """Start ``request`` (replacing a running instance), then restart it after each burst of
    changes in its directory, until ``stop`` is set. Yields what happens; never prints.

    ``logs`` ("both", "stdout" or "stderr") also streams the process's output, across restarts,
    after the last ``lines`` lines of the current log files. The process keeps running when the
    loop ends: it is a normal managed process.
    """
    name = paths.validate_name(request.name)
    try:
        with open_registry(db, create=request.command is not None) as reg:
            existing, layout = reg.get(name), reg.layout
    except NoRegistry:
        existing, layout = None, paths.layout(db)
    if existing is None and request.command is None:
        raise UsageError(f"no process named {name!r}; give --command to start a new one")
    # Every check a start makes, before anything is printed or watched (a bad --config is one
    # line, not "watching ..." and then the error).
    definition.build(existing, request._replace(name=name), layout)
    request = request._replace(name=name)
    directory, stdout, stderr = _plan(request, existing, layout)
    with _one_watch(layout, name):
        inbox = Inbox(clock)
        watcher = Watcher(
            directory,
            ignore=ignore,
            ignore_paths=(Path(paths.state_dir()), Path(layout.home), stdout, stderr),
            inbox=inbox,
            backend=backend,
        )
        count = watcher.start()
        follower: LogFollower | None = None
        try:
            yield Watching(watcher.tree.root, count)
            if logs is not None:
                follower = LogFollower(_log_files(logs, stdout, stderr), inbox, lines)
                yield from _grouped(follower.tail)
            session = _Session(request, db, grace)
            yield from session.start(())
            yield from _loop(session, inbox, Debouncer(debounce), stop, clock)
        finally:
            inbox.close()  # first: it releases a follower waiting for room in the inbox
            if follower is not None:
                follower.stop()
            watcher.close()
            spawn.reap_spawned()


@contextlib.contextmanager
def _one_watch(layout: paths.Layout, name: str) -> Iterator[None]:
    """One ``--watch`` per name: two would both restart it on every change and report each
    other's restarts as crashes. The lock file names the holder for the refusal."""
    path = os.path.join(layout.subdir("locks"), f"{name}.watch")
    try:
        with file_lock(path, timeout=0, held_by=f"bgr --watch of {name}") as held:
            with open(path, "w", encoding="ascii") as fh:
                fh.write(f"{os.getpid()}\n")
            try:
                yield
            finally:
                held.forget()
    except LockHeld:
        raise LockHeld(
            f"another bgr --watch{_holder(path)} already watches {name}; stop it first (one watch per name)"
        ) from None


def _holder(path: str) -> str:
    with contextlib.suppress(OSError, ValueError), open(path, encoding="ascii") as fh:
        return f" (pid {int(fh.read().strip())})"
    return ""


def _loop(
    session: _Session,
    inbox: Inbox,
    debouncer: Debouncer,
    stop: threading.Event,
    clock: Callable[[], float],
) -> Iterator[WatchEvent]:
    next_check = clock()
    while not stop.is_set() and not session.over:
        now = clock()
        wait = min(POLL_INTERVAL, max(0.0, next_check - now))
        pending = debouncer.remaining(now)
        if pending is not None:
            wait = min(wait, pending)
        batch = inbox.take(wait)
        if batch.error is not None:
            raise batch.error
        yield from _grouped(batch.output)
        for path, when in batch.changes.items():
            debouncer.add(path, when)
        now = clock()
        if debouncer.due(now) and not stop.is_set():
            yield from session.start(debouncer.take())
            next_check = clock()
        elif now >= next_check:
            yield from session.check()
            next_check = now + POLL_INTERVAL
