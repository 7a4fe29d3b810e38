"""Use cases for stack files: ``bgr --up`` (reconcile, dependencies first) and ``bgr --down``.

``up`` carries out a :mod:`bgr.stack.plan`: every process whose dependencies hold is started at once
(independent ones in parallel, each with ``launch.start``), and a process is released to its
dependents only once it meets the strongest condition they ask of it: *started* (its start window
passed), *healthy* (its probe passed: ``launch.start`` waits for that already) or *completed* (it
exited 0). Every wait is bounded by ``wait`` (``--wait``; 30 s by default). A process whose
dependency failed is not started, and its error names the dependency and why it failed (the
probe's last answer). ``down`` stops the file's processes dependents first, wave by wave, with
``teardown.stop_many`` (each wave in parallel).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from bgr.core import launch, queries, ready, teardown
from bgr.errors import BgrError, NoRegistry, SpawnError
from bgr.health import probes
from bgr.models import ProcessInfo, ProcessRecord, StartResult, StopResult
from bgr.proc import identity, spawn
from bgr.record import Record
from bgr.stack import graph, plan
from bgr.stack.files import COMPLETED, HEALTHY, STARTED, Service, Stack

READY_WINDOW = ready.READY_WINDOW
_STRENGTH = {STARTED: 0, HEALTHY: 1, COMPLETED: 2}
_MAX_PARALLEL = 16


class Outcome(Record):
    """What ``up`` did with one step: the plan's step, and the start's result or the error."""

    step: plan.Step
    result: StartResult | None = None
    error: BgrError | None = None
    # How the process ended, for a dependency that had to complete: its exit code.
    finished: int | None = None
    stopped: StopResult | None = None  # a process --prune stopped


def snapshot(db: str | None) -> dict[str, ProcessInfo]:
    """Every registered process as it is now (none without a registry): one pass, for the plan
    and for the processes it keeps."""
    try:
        return {i.name: i for i in queries.list_processes(db=db, missing_ok=False)}
    except NoRegistry:
        return {}


def current(infos: dict[str, ProcessInfo]) -> dict[str, plan.Current]:
    """The registry's view of every name, for a plan."""
    return {
        name: plan.Current(name, i.status.value, i.pid, i.exit_code, dict(i.record.stack))
        for name, i in infos.items()
    }


def make_plan(
    stack: Stack,
    *,
    names: Sequence[str] = (),
    prune: bool = False,
    db: str | None = None,
    infos: dict[str, ProcessInfo] | None = None,
) -> plan.Plan:
    """What ``up`` would do now (``--dry-run`` prints this); ``infos`` from :func:`snapshot`."""
    for name in names:
        if stack.get(name) is None:
            raise BgrError(f"no process {name} in {stack.path} (it has {', '.join(stack.names())})")
    return plan.make(stack, current(snapshot(db) if infos is None else infos), names=names, prune=prune)


def up(
    the_plan: plan.Plan,
    *,
    db: str | None = None,
    grace: float,
    wait_for: float | None = None,
    report: Callable[[Outcome], None] = lambda outcome: None,
    infos: dict[str, ProcessInfo] | None = None,
) -> list[Outcome]:
    """Carry out ``the_plan`` (see the module docstring); ``report`` hears of each step as it ends.
    ``infos``: the snapshot the plan was made from, so kept processes are not looked up again."""
    run = _Run(the_plan, db, grace, wait_for, report)
    run.known = infos or {}
    outcomes = run.start_all()
    for step in the_plan.steps:
        if step.action in (plan.REMOVED, plan.PRUNE):
            outcomes.append(run.removed(step))
    return outcomes


class _Run:
    """One ``up``: which steps wait for which, and the pool that runs the ready ones."""

    def __init__(
        self,
        the_plan: plan.Plan,
        db: str | None,
        grace: float,
        wait_for: float | None,
        report: Callable[[Outcome], None],
    ) -> None:
        self.plan, self.db, self.grace, self.report = the_plan, db, grace, report
        self.window = READY_WINDOW if wait_for is None else wait_for
        self.wait_for = wait_for
        stack = the_plan.stack
        self.steps = {s.name: s for s in the_plan.acting()}
        self.services = {name: stack.get(name) for name in self.steps}
        self.needed = _needed(stack, list(self.steps))
        self.known: dict[str, ProcessInfo] = {}

    def deps(self, name: str) -> list[tuple[str, str]]:
        service = self.services[name]
        assert service is not None
        return [(d.name, d.condition) for d in service.depends_on if d.name in self.steps]

    def start_all(self) -> list[Outcome]:
        done: dict[str, Outcome] = {}
        waiting = list(self.steps)
        running: dict[Future[Outcome], str] = {}
        with ThreadPoolExecutor(max_workers=min(_MAX_PARALLEL, max(1, len(waiting)))) as pool:
            while waiting or running:
                for name in list(waiting):
                    deps = self.deps(name)
                    failed = next((d for d, _ in deps if d in done and done[d].error is not None), None)
                    if failed is not None:
                        waiting.remove(name)
                        done[name] = self._skipped(name, failed, done[failed])
                        self.report(done[name])
                    elif all(d in done for d, _ in deps):
                        waiting.remove(name)
                        running[pool.submit(self.bring_up, name)] = name
                assert running or not waiting, "every waiting step depends only on steps of the plan"
                if not running:
                    continue
                finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for future in finished:
                    outcome = future.result()
                    done[running.pop(future)] = outcome
                    self.report(outcome)
        return [done[name] for name in self.steps]

    def _skipped(self, name: str, dependency: str, failure: Outcome) -> Outcome:
        condition = dict(self.deps(name))[dependency]
        assert failure.error is not None
        error = SpawnError(
            f"{name} was not started: its dependency {dependency} did not become {condition}: "
            f"{failure.error}",
            details=failure.error.details,
        )
        error.exit_code = failure.error.exit_code
        return Outcome(self.steps[name], error=error)

    def bring_up(self, name: str) -> Outcome:
        """Start (or keep) one process and wait until it meets what its dependents need."""
        step = self.steps[name]
        service = self.services[name]
        assert service is not None
        try:
            result, record = self._act(step, service)
            finished = self._until(self.needed.get(name, STARTED), record, result)
        except BgrError as exc:
            return Outcome(step, error=exc)
        return Outcome(step, result=result, finished=finished)

    def _act(self, step: plan.Step, service: Service) -> tuple[StartResult | None, ProcessRecord]:
        if step.action == plan.KEEP:
            known = self.known.get(step.name)
            record = (
                known.record
                if known is not None
                else queries.get(step.name, db=self.db, details=False).record
            )
            return None, record
        request = service.request._replace(
            force=step.action == plan.RESTART, stack=plan.membership(self.plan.stack, service)
        )
        result = launch.start(request, db=self.db, grace=self.grace, startup_window=self.wait_for)
        return result, result.info.record

    def _until(self, condition: str, record: ProcessRecord, result: StartResult | None) -> int | None:
        deadline = time.monotonic() + self.window
        if condition == HEALTHY and record.health_state.get("state") != "healthy":
            await_healthy(record, deadline, self.window)
        elif condition == COMPLETED:
            if result is not None and result.how == "finished":
                return 0
            return await_completed(record, deadline, self.window, db=self.db)
        return None

    def removed(self, step: plan.Step) -> Outcome:
        stopped = None
        if step.action == plan.PRUNE:
            stopped = teardown.stop_many([step.name], db=self.db, grace=self.grace)[0]
        outcome = Outcome(step, stopped=stopped)
        self.report(outcome)
        return outcome


def _needed(stack: Stack, names: list[str]) -> dict[str, str]:
    """For each process, the strongest condition a process in ``names`` puts on it."""
    needed: dict[str, str] = {}
    for name in names:
        service = stack.get(name)
        assert service is not None
        for dep in service.depends_on:
            if _STRENGTH[dep.condition] > _STRENGTH[needed.get(dep.name, STARTED)]:
                needed[dep.name] = dep.condition
    return needed


def await_healthy(record: ProcessRecord, deadline: float, window: float) -> None:
    """Check ``record``'s probe until it passes, or SpawnError with its last answer at ``deadline``."""
    probe = ready.probe_of(record)
    if probe is None:
        return
    env = ready.probe_environment(record)
    delay = 0.05
    while True:
        left = deadline - time.monotonic()
        result = probes.check(
            probe._replace(timeout=max(0.05, min(probe.timeout, left))), directory=record.directory, env=env
        )
        if result.ok:
            return
        if time.monotonic() >= deadline:
            raise SpawnError(
                f"{record.name} did not pass its health check within {window:g}s (last: {result.detail})"
            )
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 1.5, 0.5)


def await_completed(record: ProcessRecord, deadline: float, window: float, *, db: str | None) -> int:
    """Wait for ``record``'s instance to exit; its exit code, which must be 0 (else SpawnError).

    This bgr spawned it, so it reaps it and learns the code; an instance it cannot reap (one that
    daemonized) is watched until it is gone, and its code is what the registry knows."""
    code = _exit_code(record, deadline, db)
    if code is None and time.monotonic() >= deadline:
        raise SpawnError(f"{record.name} did not finish within {window:g}s; it keeps running")
    if code != 0:
        from bgr.proc.exits import describe_exit

        raise SpawnError(f"{record.name} finished with {describe_exit(code)}")
    return code


def _exit_code(record: ProcessRecord, deadline: float, db: str | None) -> int | None:
    pid = record.pid
    while time.monotonic() < deadline:
        if pid is not None and spawn.is_our_child(pid):
            code = spawn.wait_exit(pid, min(0.05, max(0.0, deadline - time.monotonic())))
            if code is not None:
                if record.instance is not None:
                    launch.record_exit(record.name, record.instance, code, db=db)
                return code
        elif not identity.instance_alive(record.identity):
            return queries.get(record.name, db=db, details=False).exit_code
        else:
            time.sleep(0.05)
    return None


def down(
    stack: Stack, *, db: str | None = None, grace: float, prune: bool = False
) -> tuple[list[StopResult], list[str]]:
    """Stop the file's processes, dependents first (a wave at a time, each in parallel); also
    the ones from this file it no longer lists with ``prune``. Returns the stop results and the
    names of processes from this file that it no longer lists (not stopped without ``prune``)."""
    rows = current(snapshot(db))
    removed = sorted(
        n for n, row in rows.items() if row.stack.get("file") == stack.path and stack.get(n) is None
    )
    present = [s for s in stack.services if s.name in rows]
    waves = [wave for wave in reversed(graph.waves(present))]
    if prune and removed:
        waves.insert(0, removed)
    results: list[StopResult] = []
    for wave in waves:
        results += teardown.stop_many(wave, db=db, grace=grace)
    return results, removed
