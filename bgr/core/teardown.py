"""Use cases that take processes down: stop, delete, clean, nuke.

A stop first records desired=stopped (so the guard leaves the name alone), then stops every live
instance at once, one grace period for all, and books the result only where the row still
describes the instance it stopped: a start that got in meanwhile keeps its own row and logs.
``delete``, ``clean`` and ``nuke`` also forget the rows and remove the logs bgr kept in the state
directory. ``stop_records`` is also how a start replaces a running instance.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable

from bgr import paths
from bgr.core.definition import with_event
from bgr.core.queries import is_running
from bgr.models import Desired, ProcessRecord, StopResult
from bgr.proc import identity, stopper
from bgr.proc.locks import name_lock
from bgr.proc.stopper import DEFAULT_GRACE
from bgr.store import Registry, open_registry


def stop_records(records: list[ProcessRecord], grace: float) -> list[StopResult]:
    """Stop every live instance in ``records`` at once: one grace period for all of them."""
    marked = identity.marked_pids(r.instance for r in records if r.instance)
    targets = [stopper.collect_targets(r.identity, marked) for r in records]
    live = [i for i, t in enumerate(targets) if t.members]
    killed, leftover = stopper.stop_targets([targets[i] for i in live], grace)
    results = []
    for index, record in enumerate(records):
        if index not in live:
            results.append(StopResult(record.name, was_running=False))
            continue
        position = live.index(index)
        results.append(
            StopResult(
                record.name,
                was_running=True,
                killed=position in killed,
                leftover=tuple(leftover.get(position, ())),
            )
        )
    return results


def stop(name: str, *, db: str | None = None, grace: float = DEFAULT_GRACE) -> StopResult:
    """Stop the whole process tree (TERM, grace, KILL) and keep the definition."""
    return stop_many([name], db=db, grace=grace)[0]


def stop_many(
    names: Iterable[str], *, db: str | None = None, grace: float = DEFAULT_GRACE
) -> list[StopResult]:
    """Stop several processes in parallel; the guard will not restart them."""
    wanted = [paths.validate_name(n) for n in names]  # before the registry (and state dir) exist
    with open_registry(db) as reg:
        records, results = _stop_named(reg, wanted, grace)
        now = time.time()
        for record, result in zip(records, results, strict=True):
            if result.was_running:
                # instance=: a start that got in after our stop keeps its own row.
                reg.update(
                    record.name,
                    instance=record.instance,
                    stopped_at=now,
                    events=with_event(record, "stopped"),
                )
        return results


def _stop_named(
    reg: Registry, names: list[str], grace: float
) -> tuple[list[ProcessRecord], list[StopResult]]:
    """Check every name first (an unknown one changes nothing), mark them stopped, stop them all."""
    for name in names:
        reg.require(name)
    records = _mark_stopped(reg, names)
    return records, stop_records(records, grace)


def _mark_stopped(reg: Registry, names: list[str]) -> list[ProcessRecord]:
    """Say desired=stopped under each name's lock and return the fresh rows.

    The lock is what every (re)start holds around check → spawn → record, so a restart already in
    flight (the guard's) finishes and records its instance before we write, and none can start
    after: guard_restart re-reads ``desired`` under the same lock.
    """
    records = []
    for name in names:
        with name_lock(name):
            record = reg.update(name, desired=Desired.STOPPED)
        if record is not None:
            records.append(record)
    return records


def delete(name: str, *, db: str | None = None, grace: float = DEFAULT_GRACE) -> StopResult:
    """Stop the process tree, forget the definition and remove its logs in the state directory."""
    return delete_many([name], db=db, grace=grace)[0]


def delete_many(
    names: Iterable[str], *, db: str | None = None, grace: float = DEFAULT_GRACE
) -> list[StopResult]:
    """Stop several processes in parallel and forget them (and their logs in the state directory)."""
    wanted = [paths.validate_name(n) for n in names]  # before the registry (and state dir) exist
    with open_registry(db) as reg:
        records, results = _stop_named(reg, wanted, grace)
        for record in records:
            with name_lock(record.name):
                current = reg.get(record.name)
                # A start that got in after our stop owns the row (and the log paths) now.
                if current is None or current.instance != record.instance:
                    continue
                reg.delete(record.name)
                _remove_logs(record)
        return results


def _remove_logs(record: ProcessRecord) -> None:
    # Logs the user placed elsewhere (--stdout/--stderr) are theirs to keep; ours go.
    state = paths.state_dir()
    for path in {record.stdout, record.stderr}:
        if os.path.dirname(path) == state:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def clean(*, db: str | None = None) -> list[str]:
    """Forget every process that is not running (and remove its logs); return their names."""
    with open_registry(db) as reg:
        dead = [r.name for r in reg.all() if not is_running(r)]
    removed = []
    with open_registry(db) as reg:
        for name in dead:
            with name_lock(name):
                record = reg.get(name)
                if record is None or is_running(record):
                    continue
                reg.delete(name)
                _remove_logs(record)
                removed.append(name)
    return removed


def nuke(*, db: str | None = None, grace: float = DEFAULT_GRACE) -> list[StopResult]:
    """Stop every process (in parallel) and forget all of them."""
    with open_registry(db) as reg:
        names = [r.name for r in reg.all()]
    return delete_many(names, db=db, grace=grace) if names else []
