"""The guard's periodic passes over the registry: check, rotate logs, pull.

- :meth:`Jobs.check` (every INTERVAL): reap children, check every guarded name (the safety net
  under the exit watcher; also how ``--all`` picks up new names), then the limits: a process's
  own (``bgr --max-memory``, ``--restart-every``, stored in its row) where it has them, else the
  guard-wide options.
- :meth:`Jobs.rotate`: ``rotate_live`` on each log bigger than ``--max-log-size``.
- :meth:`Jobs.pull`: ``git pull --ff-only`` for rows with ``fetch``; a full restart only when HEAD
  moved; a failing pull waits twice as long each time (up to an hour) for that name.

Every pass stops early once ``stopping`` is set (the guard is shutting down).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bgr import guard_api as bgr
from bgr.guard_api import (
    BgrError,
    Desired,
    GitError,
    NoRegistry,
    ProcessRecord,
    file_size,
    format_size,
)
from guard import policy
from guard.keeper import Keeper
from guard.options import MAX_PULL_WAIT, TargetKind

log = logging.getLogger(__name__)

# What the check needs of every row: whether it should run, which instance, an operation in flight,
# whether it has a probe or a schedule, and limits of its own (JSON text; "{}" when it has none).
_HEAD = ("name", "desired", "instance", "intent", "health", "schedule", "limits")
_NONE = (None, "", "{}", "null")


class Jobs:
    """The passes for one guard; each is safe to run in its own scheduler thread."""

    def __init__(
        self,
        keeper: Keeper,
        stopping: threading.Event,
        clock: policy.Clock = policy.boot_clock,
        *,
        on_rows: Callable[[list[ProcessRecord]], None] | None = None,
    ) -> None:
        self.keeper = keeper
        self.on_rows = on_rows  # given the rows with a probe or a schedule, on every check pass
        self.options = keeper.options
        self.stopping = stopping
        self.clock = clock
        self.known: set[str] = set()
        self._next_pull: dict[str, float] = {}
        self._pull_wait: dict[str, float] = {}

    def rows(self) -> list[ProcessRecord]:
        """The rows this guard is responsible for (NAME: that row, even when stopped)."""
        target = self.options.target
        try:
            with self.keeper.connections.use() as reg:
                if target.kind is TargetKind.NAME:
                    record = reg.get(target.value)
                    return [record] if record is not None else []
                return reg.all(target.value if target.kind is TargetKind.GROUP else None)
        except NoRegistry:
            return []  # not yet: the first start creates it

    def summaries(self, columns: tuple[str, ...]) -> list[tuple[Any, ...]]:
        """``columns`` of the rows this guard is responsible for, undecoded (see ``rows``): what
        the periodic passes read, without decoding every row's events and environment."""
        target = self.options.target
        name = target.value if target.kind is TargetKind.NAME else None
        group = target.value if target.kind is TargetKind.GROUP else None
        try:
            with self.keeper.connections.use() as reg:
                return reg.summaries(columns, group=group, name=name)
        except NoRegistry:
            return []

    # -- check -----------------------------------------------------------------------------

    def check(self) -> None:
        """One pass: every guarded name is checked (and restarted when due), then the limits."""
        self.keeper.reap()
        summaries = self.summaries(_HEAD)
        heads = {row[0]: (row[1], row[2], row[3]) for row in summaries}
        if self.on_rows is not None:
            wanted_rows = [row[0] for row in summaries if row[4] not in _NONE or row[5] not in _NONE]
            self.on_rows(self._full(wanted_rows))
        if self.options.target.kind is TargetKind.NAME:
            wanted = [self.options.target.value]
        else:
            wanted = [name for name, (desired, _, _) in heads.items() if desired == Desired.RUNNING]
        # Names that left the target (deleted, stopped, moved to another group): one last look
        # lets the keeper drop their watch and retry.
        for name in sorted(self.known - set(wanted)):
            self.keeper.gate.poke(name)
        self.known = set(wanted)
        for name in wanted:
            if self.stopping.is_set():
                return
            self.keeper.make_way()
            _, instance, intent = heads.get(name, (None, None, None))
            # A row with an operation in flight, or one the watcher does not have: a full look.
            if intent in (None, "{}") and self.keeper.settled(name, instance):
                continue
            self.keeper.gate.poke(name)
        # Whole rows only when a limit can apply: with no guard-wide one, only the rows that have
        # limits of their own (usually none), so an idle pass decodes nothing.
        if self.options.max_memory is not None or self.options.restart_every is not None:
            limited = self.rows()
        else:
            limited = self._full([row[0] for row in summaries if row[6] not in _NONE])
        self._limits([r for r in limited if r.desired is Desired.RUNNING])
        self.keeper.prune_codes()
        self.keeper.tidy()

    def _full(self, names: list[str]) -> list[ProcessRecord]:
        """The whole rows of ``names`` (those with a probe, a schedule or limits of their own:
        usually few)."""
        if not names:
            return []
        with self.keeper.connections.use() as reg:
            return [r for r in map(reg.get, names) if r is not None]

    def _limits(self, records: list[ProcessRecord]) -> None:
        """Full restarts for the instances over a memory limit or past their restart-every; a
        process's own limit wins over the guard-wide one."""
        alive = [r for r in records if bgr.instance_alive(r.identity)]
        capped = [r for r in alive if self._limit(r, "max_memory") is not None]
        usage = self._memory(capped) if capped else {}
        for record in alive:
            if self.stopping.is_set():
                return
            event = detail = ""
            rss = usage.get(record.name)
            limit, whose = self._limit(record, "max_memory") or (None, "")
            every, whose_every = self._limit(record, "restart_every") or (None, "")
            if limit is not None and rss is not None and rss > limit:
                event = "memory limit"
                detail = (
                    f"resident memory {format_size(rss)} is over {whose}--max-memory {format_size(limit)}"
                )
            elif every is not None and (uptime := self.keeper.uptime(record)) is not None and uptime >= every:
                event = "restart-every"
                detail = f"up {uptime:.1f}s, {whose_every}--restart-every {every:g}s"
            if event:
                with self.keeper.gate.hold(record.name):
                    self.keeper.full_restart(record.name, event, detail, instance=record.instance)

    def _limit(self, record: ProcessRecord, key: str) -> tuple[float, str] | None:
        """(the limit ``key`` that applies to ``record``, "its " when it is the process's own), or
        None when neither the process nor the guard sets one."""
        own = record.limits.get(key)
        if own:
            return float(own), "its "
        wide: float | None = getattr(self.options, key)
        return None if wide is None else (wide, "")

    @staticmethod
    def _memory(records: list[ProcessRecord]) -> dict[str, int | None]:
        """Resident bytes of each instance's process group (one pass over the process table)."""
        by_group = bgr.group_usage(r.pgid for r in records if r.pgid)
        return {r.name: by_group.get(r.pgid or 0, (None, 0.0))[0] for r in records}

    # -- rotate ----------------------------------------------------------------------------

    def rotate(self) -> None:
        """Rotate every guarded log that grew beyond ``--max-log-size``."""
        for name, desired, stdout, stderr in self.summaries(("name", "desired", "stdout", "stderr")):
            if desired != Desired.RUNNING:
                continue
            # Plain str until a log must be rotated: a Path interns its parts (sys.intern), and
            # interning fresh strings on every pass slowly fills the interpreter's table of
            # interned strings until it is rebuilt, which costs ~1 MiB of resident memory.
            paths = [("out", str(stdout))]
            if stderr != stdout:
                paths.append(("err", str(stderr)))
            for stream, path in paths:
                if self.stopping.is_set():
                    return
                self.keeper.make_way()
                if file_size(path) <= self.options.max_log_size:
                    continue  # the common case, without importing the rotation code (ctypes: ~2 MiB)
                try:
                    result = bgr.rotate_live(
                        Path(path),
                        name,
                        stream,
                        self.options.max_log_size,
                        self.options.keep,
                        directory=self.keeper.layout.backup_dir(),
                    )
                except BgrError as exc:
                    log.warning("%s: %s", name, exc)
                    self._event(name, "rotation failed", str(exc))
                    continue
                if result is None:
                    continue
                label = "stdout" if stream == "out" else "stderr"
                detail = f"{label}: {format_size(result.bytes_moved)} to {result.backup.name}"
                log.info("%s: rotated %s (%s)", name, detail, result.method)
                self._event(name, "rotated", detail)

    # -- pull ------------------------------------------------------------------------------

    def pull(self) -> None:
        """Pull every guarded ``--fetch`` checkout whose turn it is; restart where HEAD moved."""
        for name, desired, fetch in self.summaries(("name", "desired", "fetch")):
            if not fetch or desired != Desired.RUNNING:
                continue
            if self.stopping.is_set():
                return
            if self.clock() < self._next_pull.get(name, 0.0):
                continue
            self._pull(name)

    def _pull(self, name: str) -> None:
        with self.keeper.connections.use() as reg:
            record = reg.get(name)
        if record is None or not record.fetch or record.desired is not Desired.RUNNING:
            return
        try:
            result = bgr.pull_if_clean(Path(record.directory))
        except GitError as exc:
            wait = min(self._pull_wait.get(name, self.options.pull_every) * 2, MAX_PULL_WAIT)
            wait = max(wait, self.options.pull_every)
            self._pull_wait[name] = wait
            self._next_pull[name] = self.clock() + wait
            log.warning("%s: not pulled: %s; next try in %gs", name, exc, round(wait, 1))
            self._event(name, "pull failed", f"{exc} (next try in {wait:g}s)")
            return
        self._pull_wait.pop(name, None)
        self._next_pull.pop(name, None)
        if not result.moved:
            log.debug("%s: %s", name, result.summary)
            return
        # The pull ran without the name's gate (it may take a while; exits must still be handled
        # at once); only the restart needs it.
        with self.keeper.gate.hold(name):
            self.keeper.full_restart(name, "pulled", result.summary, pull=False)

    def _event(self, name: str, kind: str, detail: str) -> None:
        with self.keeper.connections.use() as reg:
            reg.add_event(name, kind, detail)
