"""Use cases that take processes down: stop, delete, clean, nuke.

A stop first records desired=stopped (so the guard leaves the name alone), then stops every process
of each name at once, one grace period for all: the instance the row describes (leader, group,
daemons, cgroup), and whatever else carries the name's marker or sits in one of its cgroups (an
older instance a crash left behind). It books the result only where the row still describes the
instance it stopped: a start that got in meanwhile keeps its own row and logs. ``delete``,
``clean`` and ``nuke`` also forget the rows and remove what bgr kept for those names: the logs in
the registry's folder, their backups and their lock files. ``stop_records`` is also how a start
replaces a running instance.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable

from bgr import crashpoints, paths
from bgr.core import pending
from bgr.core.queries import is_running
from bgr.errors import LockHeld, RegistryFull
from bgr.models import Desired, ProcessRecord, StopResult
from bgr.proc import cgroups, identity, stopper
from bgr.proc.locks import name_lock
from bgr.proc.stopper import DEFAULT_GRACE
from bgr.store import Registry, open_registry


def stop_records(records: list[ProcessRecord], grace: float, registry_id: str = "") -> list[StopResult]:
    """Stop every process of each record's name at once: one grace period, one /proc pass."""
    owners = {r.name: identity.owner(registry_id, r.name) for r in records} if registry_id else {}
    pending = [str(r.intent.get("instance")) for r in records if r.intent.get("instance")]
    seen = identity.scan([*(r.instance for r in records if r.instance), *pending], owners.values())
    targets = []
    for record in records:
        also = [
            *seen.marked.get(owners.get(record.name, ""), []),
            *seen.marked.get(str(record.intent.get("instance", "")), []),
        ]
        target = stopper.collect_targets(record.identity, seen, also=also)
        of_name = cgroups.of_name(registry_id, record.name)
        targets.append(target._replace(cgroups=tuple(dict.fromkeys([*target.cgroups, *of_name]))))
    live = [i for i, t in enumerate(targets) if t.members or any(cgroups.populated(c) for c in t.cgroups)]
    killed, leftover = stopper.stop_targets([targets[i] for i in live], grace)
    for i, target in enumerate(targets):
        if i not in live:
            for path in target.cgroups:
                cgroups.remove(path)
    position = {index: n for n, index in enumerate(live)}
    results = []
    for index, record in enumerate(records):
        n = position.get(index)
        if n is None:
            results.append(StopResult(record.name, was_running=False))
        else:
            results.append(
                StopResult(
                    record.name, was_running=True, killed=n in killed, leftover=tuple(leftover.get(n, ()))
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
    wanted = [paths.validate_name(n) for n in names]  # before the registry is opened
    with open_registry(db) as reg:
        pending.replay(reg)
        records, results = _stop_named(reg, wanted, grace)
        now = time.time()
        for index, (record, result) in enumerate(zip(records, results, strict=True)):
            try:
                if result.was_running:
                    # instance=: a start that got in after our stop keeps its own row.
                    reg.update(
                        record.name,
                        instance=record.instance,
                        stopped_at=now,
                        event=("stopped", ""),
                    )
                elif result.unrecorded:
                    raise RegistryFull(result.unrecorded)
            except RegistryFull as exc:
                results[index] = _later(reg, "stop", record, result, exc)
        return results


def _later(
    reg: Registry, op: str, record: ProcessRecord, result: StopResult, exc: RegistryFull
) -> StopResult:
    """Keep what the full disk kept us from recording for the next command (``bgr.core.pending``)."""
    kept = pending.note(reg.layout, op, record.name, record.instance)
    why = exc.reason + ("" if kept else "; no room was left to keep it for later either")
    return result._replace(unrecorded=why)


def _stop_named(
    reg: Registry, names: list[str], grace: float
) -> tuple[list[ProcessRecord], list[StopResult]]:
    """Check every name first (an unknown one changes nothing), mark them stopped, stop them all."""
    for name in names:
        reg.require(name)
    full: set[str] = set()
    records = _mark_stopped(reg, names, full)
    crashpoints.reached("stop:marked")
    results = stop_records(records, grace, reg.registry_id)
    why = reg.full.reason if reg.full is not None else "the registry could not be written"
    return records, [r._replace(unrecorded=why) if r.name in full else r for r in results]


def _mark_stopped(reg: Registry, names: list[str], full: set[str]) -> list[ProcessRecord]:
    """Say desired=stopped under each name's lock and return the fresh rows.

    The lock is what every (re)start holds around check → spawn → record, so a restart already in
    flight (the guard's) finishes and records its instance before we write, and none can start
    after: guard_restart re-reads ``desired`` under the same lock. An instance that a crashed start
    left unrecorded is adopted first, so it is stopped like any other.
    """
    from bgr.core.launch import recover

    records = []
    for name in names:
        with name_lock(reg.layout, name):
            current = reg.get(name)
            try:
                current = recover(reg, current)
                record = None if current is None else reg.update(name, desired=Desired.STOPPED)
            except RegistryFull:
                # The disk is full: stop it all the same; the caller keeps the record for later.
                record = None if current is None else current._replace(desired=Desired.STOPPED)
                full.add(name)
        if record is not None:
            records.append(record)
    return records


def delete(name: str, *, db: str | None = None, grace: float = DEFAULT_GRACE) -> StopResult:
    """Stop the process tree, forget the definition, remove its logs, backups and lock file."""
    return delete_many([name], db=db, grace=grace)[0]


def delete_many(
    names: Iterable[str], *, db: str | None = None, grace: float = DEFAULT_GRACE
) -> list[StopResult]:
    """Stop several processes in parallel and forget them (see ``delete``)."""
    wanted = [paths.validate_name(n) for n in names]  # before the registry is opened
    with open_registry(db) as reg:
        pending.replay(reg)
        records, results = _stop_named(reg, wanted, grace)
        for index, record in enumerate(records):
            with name_lock(reg.layout, record.name) as held:
                current = reg.get(record.name)
                # A start that got in after our stop owns the row (and the log paths) now.
                if current is None or current.instance != record.instance:
                    continue
                try:
                    reg.delete(record.name)
                except RegistryFull as exc:
                    results[index] = _later(reg, "delete", record, results[index], exc)
                    continue
                forget_files(reg, record)
                held.forget()
        return results


def forget_files(reg: Registry, record: ProcessRecord) -> None:
    """Remove what bgr kept for a forgotten name: its logs in the registry's folder, their
    backups, its cgroup folder. Logs the user placed elsewhere (--stdout/--stderr) are theirs to keep."""
    layout = reg.layout
    cgroups.remove_name(reg.registry_id, record.name)
    for path in {record.stdout, record.stderr}:
        if layout.owns(path):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    from bgr.logfiles import backups  # pathlib: not for every start (a start imports this module)

    for stream in ("out", "err"):
        backups.prune_backups(record.name, stream, 0, directory=os.path.join(layout.home, "backup"))


def clean(*, db: str | None = None) -> list[str]:
    """Forget every process that is not running (and remove its files); return their names."""
    with open_registry(db) as reg:
        dead = [r.name for r in reg.all() if not is_running(r)]
        removed = []
        for name in dead:
            with name_lock(reg.layout, name) as held:
                record = reg.get(name)
                if record is None or is_running(record) or record.intent:
                    continue
                reg.delete(name)
                forget_files(reg, record)
                held.forget()
                removed.append(name)
        sweep_locks(reg)
    return removed


def nuke(*, db: str | None = None, grace: float = DEFAULT_GRACE) -> list[StopResult]:
    """Stop every process (in parallel) and forget all of them."""
    with open_registry(db) as reg:
        names = reg.names()
    results = delete_many(names, db=db, grace=grace) if names else []
    with open_registry(db) as reg:
        sweep_locks(reg)
        cgroups.remove(cgroups.registry_dir(reg.registry_id))  # stays if a start got in meanwhile
    return results


def sweep_locks(reg: Registry) -> None:
    """Remove the lock files of names the registry does not know (a start that failed before it
    recorded anything leaves one), each under its own lock so a start in progress keeps its own."""
    directory = os.path.join(reg.layout.home, "locks")
    try:
        entries = os.listdir(directory)
    except OSError:
        return
    known = set(reg.names())
    for entry in entries:
        name = entry.removesuffix(".lock")
        if not entry.endswith(".lock") or not paths.is_valid_name(name) or name in known:
            continue
        with contextlib.suppress(LockHeld, OSError), name_lock(reg.layout, name, timeout=0) as held:
            if reg.get(name) is None:
                held.forget()
