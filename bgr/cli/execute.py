"""Carry out one command: call the core, hand what it returns to :mod:`bgr.cli.output`.

Looking imports only the read-only queries; the start, stop and watch machinery is imported
inside the functions that change something, so a listing never pays for it.
"""

from __future__ import annotations

import sys

from bgr import __version__, paths
from bgr.cli import output, rules
from bgr.cli.options import TABLE
from bgr.core import queries
from bgr.errors import BgrError, Interrupted, NoRegistry, RegistryError, StopError
from bgr.models import StartResult, Status, StopResult

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: see bgr/record.py
if TYPE_CHECKING:
    from collections.abc import Callable


def execute(command: rules.Command) -> int:
    """Do what ``command`` says; return the exit status."""
    handler: Callable[[rules.Command], int] = _HANDLERS[type(command)]
    return handler(command)


def _help(command: rules.Help) -> int:
    output.emit(TABLE.usage())
    return 0


def _version(command: rules.Version) -> int:
    output.emit(f"bgr {__version__}")
    return 0


def _list(command: rules.ListProcesses) -> int:
    try:
        infos = queries.list_processes(db=command.db, group=command.group, missing_ok=False)
    except NoRegistry as exc:
        output.emit("[]" if command.as_json else str(exc))
        return 0
    if command.as_json:
        output.emit(output.to_json([output.as_dict(i, show_env=command.show_env) for i in infos]))
    elif not infos and command.group is not None:
        output.emit(queries.empty_group(command.group, queries.groups(db=command.db)))
    else:
        output.emit(output.table(infos, colour=output.colour(), width=output.terminal_width()))
    return 0


def _show(command: rules.ShowProcess) -> int:
    try:
        info = queries.get(command.name, db=command.db)
    except NoRegistry as exc:
        output.emit(str(exc))
        return 0
    if command.as_json:
        output.emit(output.to_json(output.as_dict(info, show_env=command.show_env, details=True)))
    else:
        output.emit(output.details(info, show_env=command.show_env, colour=output.colour()))
    return 0


def _logs(command: rules.ShowLogs) -> int:
    from bgr.cli import logview
    from bgr.logfiles import reading

    selection = command.selection
    try:
        names = queries.select(
            selection.names, group=selection.group, everything=selection.everything, db=command.db
        )
        several = len(names) > 1
        files = [
            (f"{name} {label}" if several else label, path)
            for name in names
            for label, path in queries.log_paths(name, db=command.db, stream=command.stream)
        ]
    except NoRegistry as exc:
        output.emit(str(exc))
        return 0
    if not files:
        output.emit("no processes")
        return 0
    writer = logview.LogWriter(escape=not command.raw and logview.terminal())
    # Tail up to the size seen now and follow from exactly there: no line missed or shown twice.
    ends = {label: paths.file_size(path) for label, path in files}
    for label, path in files:
        if len(files) > 1 or not command.follow:
            writer.header(label, path)
        for chunk in reading.tail(path, command.lines, end=ends[label]):
            writer.write(label, chunk)
        sys.stdout.flush()
    if not command.follow:
        writer.finish()
        return 0
    import threading

    stop = threading.Event()
    writer.prefix = len(files) > 1
    try:
        for label, text in reading.follow(files, stop, start=ends):
            writer.write(label, text)
            sys.stdout.flush()
    except KeyboardInterrupt:
        stop.set()
    return 0


def _start(command: rules.Start) -> int:
    from bgr.core import launch

    result = launch.start(
        command.request,
        db=command.db,
        grace=_grace(command.grace),
        startup_window=_window(command.wait),
    )
    output.emit(output.to_json(output.as_dict(result.info)) if command.as_json else output.started(result))
    return 0 if command.logs is None else _logs(command.logs)


def _start_again(command: rules.StartAgain) -> int:
    from bgr.core import launch
    from bgr.models import StartRequest

    names = _selected(command.selection, command.db)
    if not command.force and (command.selection.group is not None or command.selection.everything):
        names, running = _not_running(names, command.db)
        for name in running:
            output.emit(f"{name} is already running")

    def start_one(name: str) -> StartResult:
        request = StartRequest(name=name, force=command.force)
        return launch.start(
            request, db=command.db, grace=_grace(command.grace), startup_window=_window(command.wait)
        )

    return _each(names, start_one, command.as_json, replaced=None)


def _restart(command: rules.Restart) -> int:
    from bgr.core import launch

    def restart_one(name: str) -> StartResult:
        return launch.restart(
            name,
            db=command.db,
            grace=_grace(command.grace),
            startup_window=_window(command.wait),
            force=command.force,
        )

    return _each(_selected(command.selection, command.db), restart_one, command.as_json, replaced=True)


def _each(
    names: list[str], act: Callable[[str], StartResult], as_json: bool, *, replaced: bool | None
) -> int:
    """(Re)start each name, in parallel (each waits out its own start window), and say how each
    went: the ones that worked on stdout, the failures on stderr. One name fails as always: its
    error is the command's. Several: the exit status is the first failure's."""
    if len(names) == 1:
        result = act(names[0])
        output.emit(
            output.to_json(output.as_dict(result.info))
            if as_json
            else output.started(result, replaced=replaced)
        )
        return 0
    if not names:
        output.emit("[]" if as_json else "no processes")
        return 0
    from concurrent.futures import ThreadPoolExecutor

    outcomes: list[StartResult | BgrError] = []
    with ThreadPoolExecutor(max_workers=min(8, len(names))) as pool:
        for future in [pool.submit(act, name) for name in names]:
            try:
                outcomes.append(future.result())
            except BgrError as exc:
                outcomes.append(exc)
    failures = [(name, o) for name, o in zip(names, outcomes, strict=True) if isinstance(o, BgrError)]
    if as_json:
        output.emit(
            output.to_json([output.outcome_dict(name, o) for name, o in zip(names, outcomes, strict=True)])
        )
    else:
        done = [output.started(o, replaced=replaced) for o in outcomes if not isinstance(o, BgrError)]
        if done:
            output.emit("\n".join(done))
    sys.stdout.flush()
    for name, error in failures:
        details = f"\n{error.details.rstrip()}" if error.details else ""
        sys.stderr.write(f"bgr: {name}: {error}{details}\n")
    return failures[0][1].exit_code if failures else 0


def _not_running(names: list[str], db: str | None) -> tuple[list[str], list[str]]:
    infos = {i.name: i for i in queries.list_processes(db=db)}
    running = [n for n in names if n in infos and infos[n].status is Status.RUNNING]
    return [n for n in names if n not in running], running


def _selected(selection: rules.Selection, db: str | None) -> list[str]:
    return queries.select(selection.names, group=selection.group, everything=selection.everything, db=db)


def _window(wait: float | None) -> float:
    from bgr.core.startup import STARTUP_WINDOW

    return STARTUP_WINDOW if wait is None else wait


def _stop(command: rules.Stop) -> int:
    from bgr.core import teardown

    names = _selected(command.selection, command.db)
    if not names:
        output.emit("[]" if command.as_json else "no processes")
        return 0
    act = teardown.delete_many if command.delete else teardown.stop_many
    try:
        results = act(names, db=command.db, grace=_grace(command.grace))
    except KeyboardInterrupt:
        raise Interrupted(_left_after_interrupt(names, command.db)) from None
    verb = "deleted" if command.delete else "stopped"
    output.emit(output.stop_results(results, verb, as_json=command.as_json))
    return _stopped(results)


def _left_after_interrupt(names: list[str] | None, db: str | None) -> str:
    """What a Ctrl-C during a stop's grace period left: the rows say stopped (the guard leaves
    them alone); the processes that got SIGTERM may still be on their way out."""
    try:
        infos = queries.list_processes(db=db)
        alive = [i.name for i in infos if (names is None or i.name in names) and i.status is Status.RUNNING]
    except BgrError:
        alive = []
    if not alive:
        return "interrupted, but everything was already stopped"
    listed = " ".join(alive)
    return (
        f"interrupted: {', '.join(alive)} got SIGTERM and still run (marked stopped: the guard leaves "
        f"them alone); to finish: bgr stop {listed}, or bgr stop {listed} --grace 0 to kill now"
    )


def _stopped(results: list[StopResult]) -> int:
    """The exit status of a stop: 11 when something survived, 7 when it could not be recorded."""
    unrecorded = [r for r in results if r.unrecorded]
    if unrecorded:
        names = ", ".join(r.name for r in unrecorded)
        raise RegistryError(
            f"{names}: stopped, but the registry could not record it ({unrecorded[0].unrecorded}); "
            "the next bgr command records it once it can"
        )
    return StopError.exit_code if any(r.leftover for r in results) else 0


def _clean(command: rules.Clean) -> int:
    from bgr.core import teardown

    output.emit(output.cleaned(teardown.clean(db=command.db), as_json=command.as_json))
    return 0


def _nuke(command: rules.Nuke) -> int:
    from bgr.core import teardown

    try:
        results = teardown.nuke(db=command.db, grace=_grace(command.grace))
    except KeyboardInterrupt:
        raise Interrupted(_left_after_interrupt(None, command.db)) from None
    output.emit(output.stop_results(results, "deleted", as_json=command.as_json))
    return _stopped(results)


def _watch(command: rules.Watch) -> int:
    from bgr.cli import watching

    return watching.watch(command, grace=_grace(command.grace))


def _grace(grace: float | None) -> float:
    from bgr.proc.stopper import DEFAULT_GRACE

    return DEFAULT_GRACE if grace is None else grace


def _stack_up(command: rules.StackUp) -> int:
    from bgr.cli import stacking

    return stacking.up(command)


def _stack_down(command: rules.StackDown) -> int:
    from bgr.cli import stacking

    return stacking.down(command)


def _export(command: rules.Export) -> int:
    from bgr.cli import stacking

    return stacking.export(command)


_HANDLERS: dict[type, Callable[..., int]] = {
    rules.Help: _help,
    rules.Version: _version,
    rules.ListProcesses: _list,
    rules.ShowProcess: _show,
    rules.ShowLogs: _logs,
    rules.Start: _start,
    rules.StartAgain: _start_again,
    rules.Restart: _restart,
    rules.Stop: _stop,
    rules.Clean: _clean,
    rules.Nuke: _nuke,
    rules.Watch: _watch,
    rules.StackUp: _stack_up,
    rules.StackDown: _stack_down,
    rules.Export: _export,
}
