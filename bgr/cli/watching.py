"""``bgr NAME --watch`` in the foreground: signals, and each event of the loop as a printed line.

The loop (:mod:`bgr.watch.loop`) yields events and never prints; this module prints them. Ctrl-C
ends the watch between two steps, never half-way through a restart; the process keeps running.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from types import FrameType

from bgr.cli import output
from bgr.cli.rules import Watch
from bgr.core import queries
from bgr.errors import BgrError
from bgr.watch import loop


def watch(command: Watch, *, grace: float) -> int:
    """Run the watch loop until Ctrl-C (or the process is deleted); return the exit status."""
    name = command.request.name
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        # Only note it: the loop ends between two steps, never half-way through a restart.
        # A second Ctrl-C interrupts at once.
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    started = False
    try:
        events = loop.run(
            command.request,
            stop=stop,
            debounce=loop.DEFAULT_DEBOUNCE if command.debounce is None else command.debounce,
            ignore=command.ignore,
            logs=command.logs,
            lines=command.lines,
            db=command.db,
            grace=grace,
        )
        with contextlib.closing(events):
            for event in events:
                started = started or isinstance(event, loop.Started | loop.StartFailed)
                _show(event, name, command.logs)
                if isinstance(event, loop.Gone):
                    return 0
    except BgrError as exc:
        if started:  # the process outlives the watcher: say so under the error
            exc.details = "\n".join(filter(None, (exc.details.rstrip("\n"), _summary(name, command.db))))
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    output.emit(_summary(name, command.db))
    return 0


def _show(event: loop.WatchEvent, name: str, stream: str | None) -> None:
    if isinstance(event, loop.Output):
        sys.stdout.write(output.labelled(event.label, event.text) if stream == "both" else event.text)
    elif isinstance(event, loop.Watching):
        output.emit(output.watching(event.directory, event.directories))
    elif isinstance(event, loop.Started):
        started = output.watch_restarted(event.result, event.changes) if event.changes else None
        output.emit(started or output.started(event.result))
    elif isinstance(event, loop.StartFailed):
        sys.stdout.flush()
        details = f"\n{event.error.details.rstrip()}" if event.error.details else ""
        sys.stderr.write(f"bgr: {event.error}{details}\n")
        sys.stderr.flush()
        output.emit(f"waiting for a change to start {name} again")
    elif isinstance(event, loop.Exited):
        output.emit(output.watch_exited(event.name, event.exit_code, stopped=event.stopped))
        if event.stderr_tail.strip() and stream not in ("both", "stderr"):
            output.emit(output.indented(event.stderr_tail))
    elif isinstance(event, loop.Gone):
        output.emit(f"{event.name} was deleted; stopped watching")
    sys.stdout.flush()


def _summary(name: str, db: str | None) -> str:
    try:
        info = queries.get(name, db=db, details=False)
    except BgrError:
        info = None
    return output.watch_summary(name, info)
