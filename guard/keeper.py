"""Apply the restart policy to one process: look, decide, restart, and keep the decision.

:meth:`Keeper.check` is the one place that acts on a name. It re-reads the row, asks the OS
whether the instance lives, feeds the policy (guard/policy.py), and either watches the instance,
restarts it (``guard_restart``, which re-checks under bgr's name lock so that a concurrent
``--stop``/``--delete``/``--restart`` wins), waits for a backoff, or gives up (fatal).

The policy state is stored in the row's ``guard`` JSON column (``PolicyState.to_dict`` on the boot
clock, plus ``"instance"``: the instance it describes), so a guard that is restarted resumes the
counters. A row whose state describes another instance was started outside the guard (``bgr
--restart`` also empties the column): that instance starts with a fresh state. ``"instance":
null`` marks a state the guard wrote before the new id was known (a restart for health); a
crash restart picks the new id first and writes the state with it, in the launch's own writes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from bgr import guard_api as bgr
from bgr.guard_api import (
    BgrError,
    Desired,
    ExitNote,
    LockHeld,
    ProcessRecord,
    Registry,
    is_alive,
    name_lock,
)
from guard import policy
from guard.connections import Connections
from guard.gate import NameGate
from guard.hooks import Hooks
from guard.options import GuardOptions
from guard.policy import Phase, PolicyState
from guard.watcher import ExitWatcher

log = logging.getLogger(__name__)

INSTANCE_KEY = "instance"
# An exit code is collected at most a few checks after it was reaped; older ones belong to
# instances that a full restart replaced.
CODE_TTL = 600.0
# While a `bgr` command holds a name's lock (a restart stopping the old instance), the exit we see
# is its doing: look again after this long instead of recording a crash and blocking on the lock.
BUSY_RETRY = 0.1
# The longest a periodic pass waits for the exit watcher between two names (a burst of restarts
# takes a few ms each): the pass goes on, slower, even if exits never stop coming.
MAKE_WAY_MAX = 1.0
# The longest a restart waits for the cgroup prepare() is making for it; past that, the launch
# makes it itself.
PREPARED_WAIT = 1.0


class Keeper:
    """Per-name checks and restarts for one guard; thread-safe through :attr:`gate`.

    ``schedule(name, delay)`` / ``cancel(name)`` arrange a check after a backoff delay (the
    scheduler's one-shot jobs); without them (``--once``) nothing waits.
    """

    def __init__(
        self,
        options: GuardOptions,
        *,
        watcher: ExitWatcher | None = None,
        schedule: Callable[[str, float], None] | None = None,
        cancel: Callable[[str], None] | None = None,
        clock: policy.Clock = policy.boot_clock,
        rng: random.Random | None = None,
        hooks: Hooks | None = None,
    ) -> None:
        self.options = options
        self.db = options.db
        self.cfg = options.policy
        self.watcher = watcher
        self._schedule = schedule
        self._cancel = cancel
        self.clock = clock
        self.rng = rng or random.Random()
        self.hooks = hooks
        self.boot_id = bgr.boot_id()
        self.layout = bgr.layout(options.db)
        self.gate = NameGate(self.check)
        self.connections = Connections(options.db)
        self._lock = threading.Lock()
        self._codes: dict[int, tuple[int, float]] = {}  # our children's exit codes and reap times
        self._guarded: set[str] = set()  # names announced ("guarded" event), not let go since
        self._let_go: set[str] = set()
        self._seen: dict[str, str | None] = {}  # the instance last seen running, per name
        self._stable_at: dict[str, float] = {}  # when a run with failures counted clears them
        self._run_began: dict[str, tuple[str | None, float]] = {}  # a --cron run: instance, monotonic
        self._untidy: set[str] = set()  # restarted names whose dead instances' cgroups may remain
        # Instance ids chosen ahead for a burst of exits, with their cgroups being made (prepare).
        self._made: dict[str, tuple[str, Future[str | None]]] = {}
        self._maker: ThreadPoolExecutor | None = None
        self._cgroups = bgr.cgroup_base() is not None
        self.restarted = 0  # restarts done by this guard (for --once and the logs)

    # -- children and their exit codes -------------------------------------------------------

    def reap(self) -> None:
        """Collect exited children (instances this guard started): no zombies, and their codes."""
        reaped = bgr.reap_spawned()
        if reaped:
            now = time.monotonic()
            with self._lock:
                self._codes.update((pid, (code, now)) for pid, code in reaped.items())

    def take_code(self, pid: int | None) -> int | None:
        """The exit code of our child ``pid``, if reaped, used up."""
        code = self.peek_code(pid)
        with self._lock:
            self._codes.pop(pid or 0, None)
        return code

    def peek_code(self, pid: int | None) -> int | None:
        with self._lock:
            return self._codes.get(pid or 0, (None, 0.0))[0]

    def prune_codes(self, older_than: float = CODE_TTL) -> None:
        """Forget exit codes nobody asked for (children replaced by a full restart)."""
        limit = time.monotonic() - older_than
        with self._lock:
            self._codes = {pid: entry for pid, entry in self._codes.items() if entry[1] >= limit}

    # -- state ---------------------------------------------------------------------------------

    def load_state(self, record: ProcessRecord, now: float) -> tuple[PolicyState, bool]:
        """The policy state for the row's instance, and whether it is fresh (not ours)."""
        data = record.guard
        owner = data.get(INSTANCE_KEY, "") if data else ""
        if owner is not None and owner != record.instance:
            return PolicyState(), True
        state = PolicyState.from_dict(data, boot_id=self.boot_id, now=now, cfg=self.cfg)
        return state, False

    def _dump(self, state: PolicyState, instance: str | None) -> dict[str, Any]:
        return {**state.to_dict(boot_id=self.boot_id), INSTANCE_KEY: instance}

    def _save(self, reg: Registry, record: ProcessRecord, state: PolicyState) -> None:
        data = self._dump(state, record.instance)
        if data != record.guard:
            reg.update(record.name, instance=record.instance, guard=data)

    def uptime(self, record: ProcessRecord) -> float | None:
        """How long the row's instance has run: boot clock if we track it, else wall clock."""
        state, fresh = self.load_state(record, self.clock())
        if not fresh and state.started_at is not None:
            return max(0.0, self.clock() - state.started_at)
        if record.started_at is None:
            return None
        return max(0.0, time.time() - record.started_at)

    def settled(self, name: str, instance: str | None) -> bool:
        """True when a check of ``name`` would find nothing to do: the row describes the instance
        last seen running, the exit watcher has it (its exit wakes us at once) and it still lives,
        and no failure count waits to be cleared. The interval check passes over these, so an
        idle pass costs a look at the watcher's table for each process (a stat of each where the
        watcher polls instead of holding pidfds) instead of a registry read and a full look."""
        watcher = self.watcher
        if watcher is None or instance is None or self._seen.get(name) != instance:
            return False
        members = watcher.members(name)
        if name not in self._guarded or not members:
            return False
        if not watcher.pinned(name) and not all(is_alive(pid, token) for pid, token in members):
            return False  # the watcher will say so too; a full check does no harm
        stable_at = self._stable_at.get(name)
        return stable_at is None or self.clock() < stable_at

    def make_way(self) -> None:
        """Wait while the exit watcher restarts what just died (a periodic pass calls this
        between names): both need the GIL, and a pass over 1000 names took the watcher's turn
        often enough to add a fifth to a burst's restart times."""
        if self.watcher is not None:
            self.watcher.wait_calm(MAKE_WAY_MAX)

    def _remember(self, name: str, instance: str | None, state: PolicyState) -> None:
        """The instance seen running, and when its failure count is due to be cleared."""
        self._seen[name] = instance
        if state.failures and state.started_at is not None:
            self._stable_at[name] = state.started_at + self.cfg.stable_after
        else:
            self._stable_at.pop(name, None)

    # -- the check -----------------------------------------------------------------------------

    def check(self, name: str) -> None:
        """Look at ``name`` and act. Call through ``gate.poke`` (or while holding the gate)."""
        try:
            self._check(name)
        except BgrError as exc:
            log.warning("%s: %s", name, exc)

    def _check(self, name: str) -> None:
        self.reap()
        with self.connections.use() as reg:
            record = reg.get(name)
            if record is not None and record.intent:
                record = self._settle_intent(name)
                if record is None:
                    return
            if record is None or record.desired is Desired.STOPPED:
                self._release(name, "deleted" if record is None else "stopped")
                return
            self._announce(reg, record)
            now = self.clock()
            state, fresh = self.load_state(record, now)
            if not bgr.leader_alive(record.identity):
                # A launcher that exited and left its daemon running: that daemon is the instance now.
                record = bgr.follow_in(reg, record) or record
            if record.schedule.get("cron"):
                self._job(reg, record)
                return
            if bgr.instance_alive(record.identity):
                self._running(reg, record, state, fresh, now)
                return
            if state.phase is Phase.OK:
                self._died(reg, record, state, now)
                return
        self._act(record, state, now)  # a backoff that is over, or fatal

    def _alert(self, event: str, record: ProcessRecord, state: PolicyState) -> None:
        if self.hooks is not None:
            code, reason = state.last_exit, state.reason
            self.hooks.fire(event, record.name, exit_code=code, reason=reason, on_failure=record.on_failure)

    def _job(self, reg: Registry, record: ProcessRecord) -> None:
        """A ``--cron`` job: watch a run while it goes and book its end; never restart it (its
        schedule starts the next run, see guard/cron.py)."""
        name = record.name
        if bgr.instance_alive(record.identity):
            self._seen[name] = record.instance
            self.watch(record)
            return
        self._idle(name)
        if bgr.unfinished_run(record.runs) is None:
            return  # no run, or its end is booked already
        code = self.take_code(record.pid)
        if code is None:
            code = record.exit_code
        began = self._run_began.pop(name, None)
        took = time.monotonic() - began[1] if began and began[0] == record.instance else None
        finished = bgr.finish_run(name, record.instance, code, db=self.db, took=took)
        if finished is None:
            return
        booked = bgr.last_run(finished.runs) or {}
        took = float(booked.get("took") or 0.0)
        what = f"{bgr.describe_exit(code)} after {took:.1f}s"
        reg.add_event(name, "run finished" if code == 0 else "run failed", what)
        log.log(logging.INFO if code == 0 else logging.WARNING, "%s: run finished: %s", name, what)
        if code != 0 and self.hooks is not None:
            reason = f"scheduled run: {what}"
            self.hooks.fire("crashed", name, exit_code=code, reason=reason, on_failure=record.on_failure)

    # -- health and schedules ------------------------------------------------------------------

    def unhealthy(self, record: ProcessRecord, reason: str) -> None:
        """Its probe failed ``--health-retries`` times in a row: a failure under the restart policy,
        as a crash is. Restarted fully (TERM, grace, KILL, start) when the policy says now; else
        stopped now and restarted after the backoff; fatal after too many quick failures in a row
        (stopped, like a process that keeps crashing). Called from a health-check thread."""
        name = record.name
        with self.gate.hold(name), self.connections.use() as reg:
            current = reg.get(name)
            if (
                current is None
                or current.instance != record.instance
                or current.desired is not Desired.RUNNING
                or current.intent
            ):
                return  # restarted, stopped or deleted meanwhile: this verdict is about the past
            now = self.clock()
            state, fresh = self.load_state(current, now)
            uptime = max(0.0, time.time() - current.started_at) if current.started_at else None
            if fresh or state.started_at is None:
                state = policy.on_started(PolicyState() if fresh else state, now=now, uptime=uptime or 0.0)
            state = policy.on_exit(
                state, self.cfg, now=now, exit_code=None, jitter=self.rng.uniform(-1, 1), uptime=uptime
            )
            # "exit code unknown after 8.0s (failure 1/10); ..." → "unhealthy after 8.0s (...)"
            state = replace(state, reason=state.reason.replace(bgr.describe_exit(None), "unhealthy", 1))
            now_too = state.phase is not Phase.FATAL and policy.due(state, now)
            kept = policy.on_started(state, now=now) if now_too else state
            self._idle(name)  # the stop below is ours: not an exit to act on
            try:
                replaced = bgr.guard_replace(
                    name,
                    current.instance,
                    db=self.db,
                    grace=self.options.grace,
                    guard_state=self._dump(kept, None if now_too else current.instance),
                    relaunch=now_too,
                )
            except BgrError as exc:
                self._launch_failed(current, kept, exc)
                return
            if replaced is None:
                self.gate.poke(name)  # a bgr command got in first: look again once we let go
                return
            if now_too:
                self.restarted += 1
                self._tidy_later(name)
                self._remember(name, replaced.instance, kept)
                self.watch(replaced)
                reg.update(name, instance=replaced.instance, guard=self._dump(kept, replaced.instance))
                log.info("%s: restarted (health) (pid %s)", name, replaced.pid)
            elif state.phase is Phase.FATAL:
                reg.add_event(name, "fatal", state.reason)
                log.error("%s: fatal: %s", name, state.reason)
                self._alert("fatal", current, state)
            else:
                delay = max(0.0, (state.next_attempt or now) - now)
                count = f"failure {state.failures} of {self.cfg.max_failures}"
                reg.add_event(name, "backoff", f"retry in {delay:.1f}s; {count}")
                log.warning("%s: stopped (unhealthy); %s", name, state.reason)
                if self._schedule is not None:
                    self._schedule(name, delay)

    def missed(self, name: str, kind: str, planned: float) -> None:
        """A calendar time the wall clock jumped over (guard/cron.py): recorded, not run late."""
        at = time.strftime("%Y-%m-%d %H:%M", time.localtime(planned))
        option = "--cron" if kind == "cron" else "--restart-at"
        with self.connections.use() as reg:
            reg.add_event(name, "schedule missed", f"{option} time {at}: the clock jumped past it")

    def scheduled(self, name: str, kind: str, planned: float) -> None:
        """A calendar time has come (guard/cron.py): run the ``--cron`` job, or restart a running
        ``--restart-at`` process (a stopped one stays stopped)."""
        with self.gate.hold(name):
            if kind == "cron":
                launched = bgr.run_job(name, planned, db=self.db)
                if launched is None:
                    log.info("%s: scheduled run skipped (still running, or no longer a job)", name)
                    return
                self._seen[name] = launched.instance
                self._run_began[name] = (launched.instance, time.monotonic())
                self.watch(launched)
                log.info("%s: scheduled run started (pid %s)", name, launched.pid)
                return
            if bgr.restart_on_schedule(name, db=self.db, grace=self.options.grace):
                self.restarted += 1
                with self.connections.use() as reg:
                    current = reg.get(name)
                if current is not None:
                    self._seen[name] = current.instance  # ours: not "started outside the guard"
                log.info("%s: restarted on schedule (--restart-at)", name)
            self.check(name)

    def _act(self, record: ProcessRecord, state: PolicyState, now: float) -> None:
        """After a death: restart now, wait out the backoff, or give up (fatal)."""
        if state.phase is Phase.FATAL:
            self._idle(record.name)
        elif policy.due(state, now):
            self._relaunch(record, state)
        else:
            self._idle(record.name)
            if self._schedule is not None:
                self._schedule(record.name, (state.next_attempt or now) - now)

    def _busy(self, name: str) -> bool:
        """True (and a look again soon) while a bgr holds the name's lock: the exit we saw is its
        doing (a --restart stopping the old instance), not a failure to count."""
        try:
            with name_lock(self.layout, name, timeout=0):
                return False
        except LockHeld:
            if self._schedule is not None:
                self._schedule(name, BUSY_RETRY)
            return True

    def _replaced(self, reg: Registry, record: ProcessRecord) -> bool:
        """True (and a look again) when the row describes another instance by now: a bgr command
        that held the name's lock when ours died has finished since we read the row (a --restart
        that stopped it), so the death is its doing, not a failure to count."""
        current = reg.get(record.name)
        if current is not None and current.instance == record.instance and not current.intent:
            return False
        self.gate.poke(record.name)
        return True

    def _settle_intent(self, name: str) -> ProcessRecord | None:
        """The row once an operation in flight is over: None while a bgr is still at it (look
        again soon), else what ``recover`` made of an intent its bgr or guard left unfinished."""
        try:
            return bgr.recover_name(name, db=self.db)
        except LockHeld:
            if self._schedule is not None:
                self._schedule(name, BUSY_RETRY)
            return None

    def _announce(self, reg: Registry, record: ProcessRecord) -> None:
        name = record.name
        self._let_go.discard(name)
        if name in self._guarded:
            return
        self._guarded.add(name)
        every = f"{self.options.interval:g}s"
        detail = f"bgr-guard pid {os.getpid()}, " + ("once" if self.options.once else f"every {every}")
        reg.add_event(name, "guarded", detail)
        log.info("%s: guarded (%s)", name, detail)

    def _release(self, name: str, why: str) -> None:
        """The row is gone or stopped by the user: watch nothing, retry nothing, say so once."""
        self._idle(name)
        self._guarded.discard(name)
        if name not in self._let_go:
            self._let_go.add(name)
            log.info("%s: %s by the user; leaving it alone", name, why)

    def _idle(self, name: str) -> None:
        if self.watcher is not None:
            self.watcher.forget(name)
        if self._cancel is not None:
            self._cancel(name)

    def _running(
        self, reg: Registry, record: ProcessRecord, state: PolicyState, fresh: bool, now: float
    ) -> None:
        if fresh or state.phase is not Phase.OK or state.started_at is None:
            seen = time.time() - record.started_at if record.started_at else 0.0
            base = PolicyState() if fresh or state.phase is Phase.FATAL else state
            state = policy.on_started(base, now=now, uptime=seen)
            if fresh and self._seen.get(record.name, record.instance) != record.instance:
                log.info("%s: new instance (pid %s) started outside the guard", record.name, record.pid)
        else:
            state = policy.settle(state, self.cfg, now=now)
        self._save(reg, record, state)
        if self._cancel is not None:
            self._cancel(record.name)
        self._remember(record.name, record.instance, state)
        self.watch(record)

    def _died(self, reg: Registry, record: ProcessRecord, state: PolicyState, now: float) -> None:
        """The instance that ran has died: count it, then restart it now (the exit is recorded by
        the restart's first write), or record the exit and wait out the backoff, or give up."""
        name = record.name
        code = self.peek_code(record.pid)
        if code is None:
            code = record.exit_code
        uptime = None
        if record.started_at is not None:
            end = record.stopped_at or time.time()
            uptime = max(0.0, end - record.started_at)
        state = policy.on_exit(
            state, self.cfg, now=now, exit_code=code, jitter=self.rng.uniform(-1, 1), uptime=uptime
        )
        what = bgr.describe_exit(code) + (f" after {uptime:.1f}s" if uptime is not None else "")
        ended = ExitNote(code, time.time(), what)
        if state.phase is not Phase.FATAL and policy.due(state, now):
            self._relaunch(record, state, ended)
            return
        if self._busy(name) or self._replaced(reg, record):
            return
        self.take_code(record.pid)
        # One write: the exit (what bgr.record_exit does), the event, and the policy state.
        changes: dict[str, Any] = {}
        if record.instance is not None:
            changes.update(exit_code=code, stopped_at=ended.at)
        if (data := self._dump(state, record.instance)) != record.guard:
            changes["guard"] = data
        reg.update(name, instance=record.instance, event=("exited", what), **changes)
        if state.phase is Phase.FATAL:
            reg.add_event(name, "fatal", state.reason)
            log.error("%s: fatal: %s", name, state.reason)
        else:
            delay = max(0.0, (state.next_attempt or now) - now)
            count = f"failure {state.failures} of {self.cfg.max_failures}"
            reg.add_event(name, "backoff", f"retry in {delay:.1f}s; {count}")
            log.warning("%s: %s", name, state.reason)
        self._act(record, state, now)
        self._alert("fatal" if state.phase is Phase.FATAL else "crashed", record, state)

    def _relaunch(self, record: ProcessRecord, state: PolicyState, ended: ExitNote | None = None) -> None:
        """Start the definition again now. ``ended``: the death just seen, which counts as a
        failure only once the restart shows it was nobody else's doing (a bgr command that holds
        the name or has changed the row by now), and which the restart's first write records."""
        name = record.name
        started = policy.on_started(state, now=self.clock())
        # The new id is chosen here (or was, by prepare), so the state written with the launch
        # names its instance at once: no second write once it runs (the crash -> running path).
        instance = self._prepared(name)
        try:
            with self.connections.use() as reg:
                launched = bgr.guard_restart(
                    name,
                    record.instance,
                    reg=reg,
                    guard_state=self._dump(started, instance),
                    instance=instance,
                    ended=ended,
                )
        except LockHeld:
            # A bgr command is at it (a --restart stopping the old instance): look again soon.
            if self._schedule is not None:
                self._schedule(name, BUSY_RETRY)
            return
        except BgrError as exc:
            self._counted(record, state, ended)
            self._launch_failed(record, started, exc)
        else:
            if launched is None:
                # The row changed under us (stopped, deleted, restarted by hand): look again.
                log.debug("%s: not restarted, the row changed", name)
                self.gate.poke(name)
                return
            self._counted(record, state, ended)
            self.restarted += 1
            self._remember(name, launched.instance, started)
            self.watch(launched)
            self._tidy_later(name)
            log.info("%s: restarted (pid %s, restart #%d)", name, launched.pid, launched.restarts)
        if ended is not None:  # after the restart: a hook never delays it
            self._alert("crashed", record, state)

    def _counted(self, record: ProcessRecord, state: PolicyState, ended: ExitNote | None) -> None:
        """A death that a restart now answers for: its exit code is used up, and it is logged."""
        if ended is not None:
            self.take_code(record.pid)
            log.warning("%s: %s", record.name, state.reason)

    def prepare(self, names: list[str]) -> None:
        """Make the cgroups that restarting ``names`` (exits one wake-up found) will need, ahead,
        in a thread of their own. Making a cgroup waits for the kernel's cgroup lock, which a new
        instance joining its own cgroup holds for an RCU grace period (5-20 ms without
        favordynmods): made one by one inside the restarts, a burst of 20 waited for it again and
        again. The first name is restarted at once, so it makes its own. Ids a restart does not
        use are forgotten at the next tidy, and their empty cgroups removed."""
        if not self._cgroups or len(names) < 2:
            return
        try:
            with self.connections.use() as reg:
                registry_id = reg.registry_id
        except BgrError:
            return
        if self._maker is None:
            self._maker = ThreadPoolExecutor(1, thread_name_prefix="bgr-guard-cgroups")
        with self._lock:
            for name in names[1:]:
                if name not in self._made:
                    instance = bgr.new_instance()
                    made = self._maker.submit(bgr.create_cgroup, registry_id, name, instance)
                    self._made[name] = (instance, made)

    def _prepared(self, name: str) -> str:
        """The instance id for restarting ``name`` now: one prepare chose (once its cgroup is
        made: the launch would otherwise wait on the kernel's lock itself), else a fresh one."""
        with self._lock:
            instance, made = self._made.pop(name, (None, None))
        if instance is None or made is None:
            return bgr.new_instance()
        with contextlib.suppress(TimeoutError):  # slow: the launch makes (or waits for) it itself
            made.result(timeout=PREPARED_WAIT)
        return instance

    def _tidy_later(self, name: str) -> None:
        with self._lock:
            self._untidy.add(name)
        if self.watcher is not None:
            self.watcher.when_quiet(self.tidy)

    def tidy(self) -> None:
        """Remove the cgroups the restarted names' dead instances left. A restart leaves them:
        rmdir, like the mkdir and the clone of the next restart, waits while a new instance joins
        its cgroup (the kernel's cgroup lock), so a burst of restarts would wait on it. The exit
        watcher runs this once it is quiet, the interval check too; a name that a bgr command
        holds waits for the next time."""
        self.make_way()  # from the interval check: not in the middle of a burst
        with self._lock:
            names, self._untidy = self._untidy, set()
            names.update(self._made)  # chosen for restarts that did not come: their cgroups go too
            self._made.clear()
        left = set()
        try:
            with self.connections.use() as reg:
                for name in sorted(names):
                    if not bgr.tidy_cgroups(name, reg=reg):
                        left.add(name)
        except BgrError:
            left = names
        if left:
            with self._lock:
                self._untidy |= left

    def _launch_failed(self, record: ProcessRecord, started: PolicyState, exc: BgrError) -> None:
        """A restart that could not even spawn counts as a quick failure, so it backs off too."""
        now = self.clock()
        state = policy.on_exit(
            started, self.cfg, now=now, exit_code=None, jitter=self.rng.uniform(-1, 1), uptime=0.0
        )
        log.error("%s: restart failed: %s", record.name, exc)
        with self.connections.use() as reg:
            self._save(reg, record, state)
            reg.add_event(record.name, "restart failed", str(exc))
            if state.phase is Phase.FATAL:
                reg.add_event(record.name, "fatal", state.reason)
        if state.phase is not Phase.FATAL and self._schedule is not None:
            self._schedule(record.name, max(0.0, (state.next_attempt or now) - now))

    def watch(self, record: ProcessRecord) -> None:
        """Have the exit watcher wake us when this instance ends.

        Usually that is the recorded pid (``/bin/sh -c`` exits when the program does). If only the
        shell died and the program lives on in the group, watch the program instead.
        """
        if self.watcher is None or record.pid is None:
            return
        if record.start_token and bgr.leader_alive(record.identity):
            members = [(record.pid, record.start_token)]
        else:
            members = []
            for pid in bgr.marked_in_group(record.identity):
                token = bgr.start_token(pid)
                if token:
                    members.append((pid, token))
        self.watcher.watch(record.name, members)

    # -- user-style restarts (limits, pulls) ---------------------------------------------------

    def full_restart(
        self,
        name: str,
        event: str,
        detail: str,
        *,
        instance: str | None = None,
        pull: bool = True,
    ) -> bool:
        """Stop the whole tree and start again, like ``bgr NAME --restart``; hold the gate first.

        Skipped if the row is gone or stopped, or (given ``instance``) describes another instance
        by now. ``pull=False``: no ``--fetch`` pull (the caller just pulled). True if done.
        """
        with self.connections.use() as reg:
            record = reg.get(name)
            if record is None or record.desired is Desired.STOPPED:
                return False
            if instance is not None and record.instance != instance:
                return False
            reg.add_event(name, event, detail)
        log.info("%s: %s; restarting", name, detail)
        try:
            bgr.restart(name, db=self.db, grace=self.options.grace, pull=pull)
        except BgrError as exc:
            log.error("%s: restart failed: %s", name, exc)
            with self.connections.use() as reg:
                reg.add_event(name, "restart failed", str(exc))
        self.restarted += 1
        self.check(name)
        return True
