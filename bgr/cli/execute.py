"""Carry out one command: call the core, hand what it returns to :mod:`bgr.cli.output`.

Looking imports only the read-only queries; the start, stop and watch machinery is imported
inside the functions that change something, so a listing never pays for it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from bgr import __version__, paths
from bgr.cli import output, rules
from bgr.cli.options import TABLE
from bgr.core import queries
from bgr.errors import NoRegistry, RegistryError
from bgr.models import StopResult


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
    from bgr.logfiles import reading

    try:
        files = queries.log_paths(command.name, db=command.db, stream=command.stream)
    except NoRegistry as exc:
        output.emit(str(exc))
        return 0
    # Tail up to the size seen now and follow from exactly there: no line missed or shown twice.
    ends = {label: paths.file_size(path) for label, path in files}
    for label, path in files:
        if len(files) > 1 or not command.follow:
            output.emit(f"==> {label}: {path} <==")
        for chunk in reading.tail(path, command.lines, end=ends[label]):
            sys.stdout.write(chunk)
        sys.stdout.flush()
    if command.follow:
        import threading

        stop = threading.Event()
        prefix = len(files) > 1
        try:
            for label, text in reading.follow(files, stop, start=ends):
                sys.stdout.write(output.labelled(label, text) if prefix else text)
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
        startup_window=launch.STARTUP_WINDOW if command.wait is None else command.wait,
    )
    output.emit(output.to_json(output.as_dict(result.info)) if command.as_json else output.started(result))
    return 0 if command.logs is None else _logs(command.logs)


def _restart(command: rules.Restart) -> int:
    from bgr.core import launch

    result = launch.restart(
        command.name,
        db=command.db,
        grace=_grace(command.grace),
        startup_window=launch.STARTUP_WINDOW if command.wait is None else command.wait,
        force=command.force,
    )
    output.emit(
        output.to_json(output.as_dict(result.info))
        if command.as_json
        else output.started(result, replaced=True)
    )
    return 0


def _stop(command: rules.Stop) -> int:
    from bgr.core import teardown

    act = teardown.delete if command.delete else teardown.stop
    result = act(command.name, db=command.db, grace=_grace(command.grace))
    verb = "deleted" if command.delete else "stopped"
    output.emit(output.stop_results([result], verb, as_json=command.as_json))
    return _stopped([result])


def _stopped(results: list[StopResult]) -> int:
    """The exit status of a stop: 11 when something survived, 7 when it could not be recorded."""
    unrecorded = [r for r in results if r.unrecorded]
    if unrecorded:
        names = ", ".join(r.name for r in unrecorded)
        raise RegistryError(
            f"{names}: stopped, but the registry could not record it ({unrecorded[0].unrecorded}); "
            "the next bgr command records it once it can"
        )
    return 1 if any(r.leftover for r in results) else 0


def _clean(command: rules.Clean) -> int:
    from bgr.core import teardown

    output.emit(output.cleaned(teardown.clean(db=command.db), as_json=command.as_json))
    return 0


def _nuke(command: rules.Nuke) -> int:
    from bgr.core import teardown

    results = teardown.nuke(db=command.db, grace=_grace(command.grace))
    output.emit(output.stop_results(results, "deleted", as_json=command.as_json))
    return _stopped(results)


def _watch(command: rules.Watch) -> int:
    from bgr.cli import watching

    return watching.watch(command, grace=_grace(command.grace))


def _grace(grace: float | None) -> float:
    from bgr.proc.stopper import DEFAULT_GRACE

    return DEFAULT_GRACE if grace is None else grace


_HANDLERS: dict[type, Callable[..., int]] = {
    rules.Help: _help,
    rules.Version: _version,
    rules.ListProcesses: _list,
    rules.ShowProcess: _show,
    rules.ShowLogs: _logs,
    rules.Start: _start,
    rules.Restart: _restart,
    rules.Stop: _stop,
    rules.Clean: _clean,
    rules.Nuke: _nuke,
    rules.Watch: _watch,
}
