"""bgr command line: docopt usage → one action → printed result. The only module that prints or exits."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence

from bgr import __version__, paths
from bgr.cli import output, streams
from bgr.core import queries
from bgr.errors import BgrError, UsageError
from bgr.models import StartRequest

TYPE_CHECKING = False  # typing costs 3 ms to import; mypy treats this name as True
if TYPE_CHECKING:
    from typing import Any, NoReturn

USAGE = """\
bgr - run commands as named background processes, and keep track of them.

Usage:
  bgr [options] [--env=KEY=VALUE]... [--ignore=PATTERN]... [NAME]
  bgr (-h | --help)
  bgr --version

Start:
  --name NAME           Start the process NAME (letters, digits, . _ -).
  -d DIR --directory=DIR  Working directory (default: the current one).
  -c CMD --command=CMD  Shell command to run, as /bin/sh -c CMD.
  --config=FILE         TOML file turned into env vars (default: DIR/.config.toml if present).
  --env=KEY=VALUE       Extra environment variable; repeat for more.
  --group=GROUP         Group for --filter (default: $BGR_GROUP).
  --stdout=PATH         stdout log (default: ~/.bgr/NAME-out.txt).
  --stderr=PATH         stderr log (default: ~/.bgr/NAME-err.txt).
  --force               Restart NAME if it runs, and stop your listeners on its ports.
  --fetch               git pull --ff-only in DIR before every start (remembered).
  --wait=SECONDS        Watch the new process this long; fail if it exits (default: 0.01).
  --watch               Stay in the foreground and restart NAME when files change.
  --debounce=MS         --watch: restart after MS quiet milliseconds (default: 300).
  --ignore=PATTERN      --watch: also ignore paths matching PATTERN; repeat for more.

Look:
  --json                Print JSON (the list, or one process with NAME).
  --show-env            Include environment values (they may hold secrets).
  --filter=GROUP        List only the processes of GROUP.
  --logs                Show NAME's logs: stdout, then stderr.
  --log-stdout          With --logs: only stdout.
  --log-stderr          With --logs: only stderr.
  --lines=N             With --logs: only the last N lines.
  --follow              With --logs: keep printing new output until Ctrl-C.

Control:
  --restart             Restart NAME (re-reads its config; keeps command and paths).
  --stop                Stop NAME's whole process tree; keep its definition.
  --delete              Stop NAME, forget it and remove its logs.
  --clean               Forget every process that is not running.
  --nuke                Stop and forget every process.
  --grace=SECONDS       Wait this long after SIGTERM before SIGKILL (default: 5).

Common:
  --db=PATH             Registry file (default: ~/.bgr/bgr.sqlite, or ~/.bgr/$DB_NAME.sqlite).
  -h --help             Show this help.
  --version             Show the version.

Examples:
  bgr --name web --directory ./app --command "python3 -m http.server 8080"
  bgr                      list processes        bgr web --logs --lines 50
  bgr web --restart        restart web           bgr --delete web
"""

_LONG_OPTIONS = frozenset(
    {
        "--name", "--directory", "--command", "--config", "--env", "--group", "--stdout",
        "--stderr", "--force", "--fetch", "--watch", "--debounce", "--ignore", "--json",
        "--show-env", "--filter", "--logs", "--log-stdout", "--log-stderr", "--lines",
        "--follow", "--restart", "--stop", "--delete", "--clean", "--nuke", "--grace", "--db",
        "--help", "--version", "--wait",
    }
)  # fmt: skip
# Every key docopt returns for USAGE, with its empty value; flags are False, lists [], values None.
_FLAGS = (
    "--force", "--fetch", "--watch", "--json", "--show-env", "--logs", "--log-stdout",
    "--log-stderr", "--follow", "--restart", "--stop", "--delete", "--clean", "--nuke", "--help",
    "--version",
)  # fmt: skip
_LISTS = ("--env", "--ignore")
_EMPTY: dict[str, Any] = {
    **{o: None for o in _LONG_OPTIONS if o not in _FLAGS and o not in _LISTS},
    **{o: False for o in _FLAGS},
    "NAME": None,
}
_VALUES = frozenset(o for o in _LONG_OPTIONS if o not in _FLAGS and o not in _LISTS)
_SHORT = {"-c": "--command", "-d": "--directory"}
_CONTROL = ("--restart", "--stop", "--delete", "--clean", "--nuke")
_DEFINITION = (
    "--command", "--directory", "--config", "--env", "--group", "--stdout", "--stderr", "--fetch",
)  # fmt: skip


def _plain_parse(argv: Sequence[str]) -> dict[str, Any] | None:
    """docopt's dict for argv made only of full options and at most one NAME, else None.

    docopt re-parses USAGE on every call: ~3 ms to import and ~5 ms to parse, a quarter of a
    listing or a start here. This covers what people and scripts type (``bgr --json``, ``bgr
    --name web --command "..."``, ``bgr web --logs --lines 20``); anything else (short options but
    ``-c``/``-d``, ``-cCMD``, ``--``, a repeated option, a value that is empty or starts with ``-``,
    --help) goes through docopt, which also words the errors. A test checks that both give the same
    dict.
    """
    found: dict[str, Any] = {key: [] for key in _LISTS}
    tokens = iter(argv)
    for token in tokens:
        if not token.startswith("-"):
            if "NAME" in found:
                return None
            found["NAME"] = token
            continue
        option, equals, value = token.partition("=")
        if token in _SHORT:
            option = _SHORT[token]
        if option in _FLAGS:
            if equals or option in found or option in ("--help", "--version"):
                return None
            found[option] = True
            continue
        if option not in _VALUES and option not in _LISTS:
            return None
        if not equals:
            value = next(tokens, "")
        if not value or value.startswith("-"):
            return None
        if option in _LISTS:
            found[option].append(value)
        elif option in found:
            return None
        else:
            found[option] = value
    return {**_EMPTY, **found}


def parse(argv: Sequence[str]) -> dict[str, Any]:
    """argv → docopt's dict, with clean one-line errors instead of docopt's."""
    fast = _plain_parse(argv)
    if fast is not None:
        return fast
    from bgr.cli import docopt_parse as cliargs

    return cliargs.parse(USAGE, argv, _LONG_OPTIONS, "bgr")


def _number(value: str | None, option: str, *, integer: bool = False) -> float | None:
    if value is None:
        return None
    try:
        number = int(value) if integer else float(value)
    except ValueError:
        raise UsageError(f"{option} takes a number, not {value!r}") from None
    # nan would make every deadline comparison false: a stop would wait forever.
    if not math.isfinite(number):
        raise UsageError(f"{option} takes a finite number, not {value!r}")
    if number < 0:
        raise UsageError(f"{option} must not be negative")
    return number


def _env_pairs(values: list[str]) -> dict[str, str]:
    env = {}
    for pair in values:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--env takes KEY=VALUE, not {pair!r}")
        env[key] = value
    return env


def _out(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _colour() -> bool:
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def run(argv: Sequence[str]) -> int:
    """Parse ``argv`` and do one thing. Raises BgrError for anything the user must fix."""
    if any(a in ("-h", "--help") for a in argv):
        _out(USAGE)
        return 0
    if "--version" in argv:
        _out(f"bgr {__version__}")
        return 0
    args = parse(argv)
    db: str | None = args["--db"]
    grace = _number(args["--grace"], "--grace")
    lines = _number(args["--lines"], "--lines", integer=True)
    wait = _number(args["--wait"], "--wait")
    positional, named = args["NAME"], args["--name"]
    if positional is not None and named is not None and positional != named:
        raise UsageError(f"two names given ({positional!r} and {named!r}); give one")
    # `is not None`, not truthiness: an empty NAME must be refused, not mistaken for "list".
    target: str | None = positional if positional is not None else named
    if target is not None:
        paths.validate_name(target)
    controls = [c for c in _CONTROL if args[c]]
    starting = named is not None or args["--command"] is not None
    if len(controls) > 1:
        raise UsageError(f"{' and '.join(controls)} are two actions; give one at a time")
    if controls and ((starting and controls[0] != "--restart") or args["--watch"]):
        raise UsageError(f"{controls[0]} cannot be combined with starting a process")
    changes = [o for o in _DEFINITION if args[o] not in (None, False, [])]
    if controls == ["--restart"] and changes:
        # A restart re-uses the stored definition; silently dropping new values would surprise.
        raise UsageError(
            f"--restart keeps the stored definition and ignores {', '.join(changes)}; to change it, "
            "start again with --force: bgr --name NAME ... --force"
        )
    if controls and controls[0] in ("--clean", "--nuke"):
        if target is not None:
            raise UsageError(f"{controls[0]} acts on every process and takes no NAME")
    elif (controls or args["--logs"] or args["--watch"] or starting) and target is None:
        raise UsageError("which process? give NAME (or --name NAME)")
    if (args["--log-stdout"] or args["--log-stderr"] or lines is not None or args["--follow"]) and not args[
        "--logs"
    ]:
        raise UsageError("--log-stdout, --log-stderr, --lines and --follow go with --logs")
    if (args["--debounce"] is not None or args["--ignore"]) and not args["--watch"]:
        raise UsageError("--debounce and --ignore go with --watch")
    if args["--wait"] is not None and not (starting or controls == ["--restart"]):
        raise UsageError("--wait goes with starting a process or --restart")
    if args["--force"] and not (starting or args["--watch"] or controls == ["--restart"]):
        raise UsageError("--force goes with starting a process or --restart")
    if args["--filter"] and (target is not None or controls):
        raise UsageError("--filter only applies to the list (bgr --filter GROUP)")
    as_json: bool = args["--json"]
    if not (controls or args["--watch"] or starting):
        return _look(args, target, db=db, lines=lines)

    # Imported only to change something: listing must not pay for spawn, locks and the stopper.
    from bgr.core import launch, teardown

    grace = teardown.DEFAULT_GRACE if grace is None else grace
    wait = launch.STARTUP_WINDOW if wait is None else wait
    if controls:
        return _control(
            controls[0], target, db=db, grace=grace, as_json=as_json, force=args["--force"], wait=wait
        )
    if args["--watch"]:
        return _watch(args, target, db=db, grace=grace)
    assert target is not None
    request = _start_request(args, target)
    result = launch.start(request, db=db, grace=grace, startup_window=wait)
    if as_json:
        _out(output.to_json(output.as_dict(result.info)))
    else:
        _out(
            output.started_line(
                result.info, replaced=result.replaced, pulled=result.pulled, freed=result.freed
            )
        )
    if args["--logs"]:
        return _logs(args, target, db=db, lines=lines)
    return 0


def _look(args: dict[str, Any], target: str | None, *, db: str | None, lines: float | None) -> int:
    """The read-only answers: a process's logs, one process, or the list."""
    as_json: bool = args["--json"]
    if args["--logs"]:
        assert target is not None
        return _logs(args, target, db=db, lines=lines)
    if target is not None:
        info = queries.get(target, db=db)
        if as_json:
            _out(output.to_json(output.as_dict(info, show_env=args["--show-env"], details=True)))
        else:
            _out(output.details(info, show_env=args["--show-env"], colour=_colour()))
        return 0
    infos = queries.list_processes(db=db, group=args["--filter"])
    if as_json:
        _out(output.to_json([output.as_dict(i, show_env=args["--show-env"]) for i in infos]))
    else:
        width = _terminal_width()
        _out(output.table(infos, colour=_colour(), width=width))
    return 0


def _terminal_width() -> int:
    """Like shutil.get_terminal_size (COLUMNS first, then the terminal), without importing shutil."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        return os.get_terminal_size(sys.stdout.fileno()).columns
    except (OSError, ValueError):
        return 120


def _start_request(args: dict[str, Any], name: str) -> StartRequest:
    group = args["--group"] or os.environ.get("BGR_GROUP") or None
    return StartRequest(
        name=name,
        command=args["--command"],
        directory=args["--directory"],
        group=group,
        env=_env_pairs(args["--env"]),
        config=args["--config"],
        stdout=args["--stdout"],
        stderr=args["--stderr"],
        fetch=True if args["--fetch"] else None,
        force=args["--force"],
    )


def _control(
    action: str,
    target: str | None,
    *,
    db: str | None,
    grace: float,
    wait: float,
    as_json: bool,
    force: bool = False,
) -> int:
    from bgr.core import launch, teardown

    if action == "--restart":
        assert target is not None
        result = launch.restart(target, db=db, grace=grace, startup_window=wait, force=force)
        _out(
            output.to_json(output.as_dict(result.info))
            if as_json
            else output.started_line(result.info, replaced=True, pulled=result.pulled, freed=result.freed)
        )
        return 0
    if action == "--clean":
        removed = teardown.clean(db=db)
        _out(
            output.to_json(removed)
            if as_json
            else (f"forgot {len(removed)}: {', '.join(removed)}" if removed else "nothing to clean")
        )
        return 0
    if action == "--nuke":
        results = teardown.nuke(db=db, grace=grace)
    elif action == "--stop":
        assert target is not None
        results = [teardown.stop(target, db=db, grace=grace)]
    else:
        assert target is not None
        results = [teardown.delete(target, db=db, grace=grace)]
    verb = {"--stop": "stopped", "--delete": "deleted", "--nuke": "deleted"}[action]
    if as_json:
        _out(
            output.to_json(
                [
                    {
                        "name": r.name,
                        "was_running": r.was_running,
                        "killed": r.killed,
                        "leftover": list(r.leftover),
                    }
                    for r in results
                ]
            )
        )
    elif not results:
        _out("no processes")
    else:
        _out("\n".join(output.stopped_line(r, verb) for r in results))
    return 1 if any(r.leftover for r in results) else 0


def _stream_choice(args: dict[str, Any]) -> str:
    if args["--log-stdout"] and not args["--log-stderr"]:
        return "stdout"
    if args["--log-stderr"] and not args["--log-stdout"]:
        return "stderr"
    return "both"


def _logs(args: dict[str, Any], name: str, *, db: str | None, lines: float | None) -> int:
    from bgr.logfiles import reading

    paths = queries.log_paths(name, db=db, stream=_stream_choice(args))
    count = None if lines is None else int(lines)
    # Tail up to the size seen now and follow from exactly there: no line missed or shown twice.
    ends = {label: _size(path) for label, path in paths}
    for label, path in paths:
        if len(paths) > 1 or not args["--follow"]:
            _out(f"==> {label}: {path} <==")
        for chunk in reading.tail(path, count, end=ends[label]):
            sys.stdout.write(chunk)
        sys.stdout.flush()
    if args["--follow"]:
        import threading

        stop = threading.Event()
        prefix = len(paths) > 1
        try:
            for label, text in reading.follow(paths, stop, start=ends):
                sys.stdout.write(f"[{label}] {text}" if prefix else text)
                sys.stdout.flush()
        except KeyboardInterrupt:
            stop.set()
    return 0


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _watch(args: dict[str, Any], target: str | None, *, db: str | None, grace: float) -> int:
    import contextlib
    import signal
    import threading

    from bgr.core import launch
    from bgr.watch import loop

    assert target is not None
    if args["--json"]:
        raise UsageError("--json does not go with --watch")
    debounce = _number(args["--debounce"], "--debounce", integer=True)
    lines = _number(args["--lines"], "--lines", integer=True)
    wait = _number(args["--wait"], "--wait")
    wait = launch.STARTUP_WINDOW if wait is None else wait
    stream = _stream_choice(args) if args["--logs"] else None
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        # Only note it: the loop ends between two steps, never half-way through a restart.
        # A second Ctrl-C interrupts at once.
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    started = False
    try:
        events = loop.run(
            _start_request(args, target),
            stop=stop,
            debounce=loop.DEFAULT_DEBOUNCE if debounce is None else debounce / 1000,
            ignore=tuple(args["--ignore"]),
            logs=stream,
            lines=int(lines or 0),
            db=db,
            grace=grace,
        )
        with contextlib.closing(events):
            for event in events:
                started = started or isinstance(event, (loop.Started, loop.StartFailed))
                _watch_event(event, target, stream)
                if isinstance(event, loop.Gone):
                    return 0
    except BgrError as exc:
        if started:  # the process outlives the watcher: say so under the error
            exc.details = "\n".join(filter(None, (exc.details.rstrip("\n"), _watch_summary(target, db))))
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    _out(_watch_summary(target, db))
    return 0


def _watch_event(event: object, name: str, stream: str | None) -> None:
    from bgr.watch import loop

    if isinstance(event, loop.Output):
        text = event.text
        if stream == "both":
            text = "".join(f"[{event.label}] {line}" for line in text.splitlines(keepends=True))
        sys.stdout.write(text)
    elif isinstance(event, loop.Watching):
        plural = "directory" if event.directories == 1 else "directories"
        _out(f"watching {event.directory} ({event.directories} {plural}); Ctrl-C stops watching")
    elif isinstance(event, loop.Started):
        result = event.result
        if event.changes:
            if result.pulled:
                _out(f"git: {result.pulled}")
            changed = loop.describe_changes(event.changes)
            _out(f"restarted {name} (pid {result.info.record.pid}): {changed} changed")
        else:
            _out(
                output.started_line(
                    result.info, replaced=result.replaced, pulled=result.pulled, freed=result.freed
                )
            )
    elif isinstance(event, loop.StartFailed):
        sys.stdout.flush()
        details = f"\n{event.error.details.rstrip()}" if event.error.details else ""
        sys.stderr.write(f"bgr: {event.error}{details}\n")
        sys.stderr.flush()
        _out(f"waiting for a change to start {name} again")
    elif isinstance(event, loop.Exited):
        _out(_exit_line(event))
        if event.stderr_tail.strip() and stream not in ("both", "stderr"):
            _out("".join(f"  {line}" for line in event.stderr_tail.splitlines(keepends=True)))
    elif isinstance(event, loop.Gone):
        _out(f"{name} was deleted; stopped watching")
    sys.stdout.flush()


def _exit_line(event: Any) -> str:
    code = event.exit_code
    if event.stopped:
        return f"{event.name} was stopped (bgr --stop); the next change starts it again"
    if code is None:
        what = "stopped running (exit code unknown)"
    elif code > 128:
        what = f"was killed by signal {code - 128}"
    else:
        what = f"exited with code {code}" if code == 0 else f"crashed with exit code {code}"
    return f"{event.name} {what}; waiting for a change to restart it"


def _watch_summary(name: str, db: str | None) -> str:
    from bgr.models import Status

    try:
        info = queries.get(name, db=db, details=False)
    except BgrError:
        return "stopped watching"
    if info.status is Status.RUNNING:
        hint = f"stop it with `bgr --stop {name}`"
        return f"stopped watching; {name} keeps running (pid {info.pid}): {hint}"
    return f"stopped watching; {name} is not running ({info.status})"


def _json_escape(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeEncodeError):
        raise error
    # JSON's own \uXXXX escapes (surrogate pairs beyond the BMP): the JSON output stays valid and
    # lossless, and the table stays readable. Non-ASCII text only ever occurs inside JSON strings.
    import json

    text = error.object[error.start : error.end]
    return "".join(json.dumps(char)[1:-1] for char in text), error.end


def _tolerant_stdout() -> None:
    """On a non-UTF-8 stdout (PYTHONIOENCODING=ascii, a latin-1 locale) print escapes, not a traceback."""
    import io

    encoding = (getattr(sys.stdout, "encoding", None) or "").lower().replace("-", "").replace("_", "")
    if encoding != "utf8" and isinstance(sys.stdout, io.TextIOWrapper):
        import codecs

        codecs.register_error("bgr-json-escape", _json_escape)
        sys.stdout.reconfigure(errors="bgr-json-escape")


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point: run, map BgrError to one stderr line and its exit code."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    streams.reopen_closed()
    _tolerant_stdout()
    try:
        code = run(arguments)
        # Flush now, not at interpreter exit, so a reader that left (`bgr --json | head -c 10`)
        # is handled below instead of "Exception ignored ... BrokenPipeError" and exit 120.
        sys.stdout.flush()
        return code
    except BgrError as exc:
        sys.stderr.write(f"bgr: {exc}\n")
        if exc.details:
            sys.stderr.write(exc.details.rstrip("\n") + "\n")
        return exc.exit_code
    except BrokenPipeError:
        # `bgr | head`: the reader left. Point stdout at /dev/null so the exit flush stays quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 130


def entry() -> NoReturn:
    """The ``bgr`` program (console script and ``python -m bgr``): ``main()``, then ``leave``."""
    leave(main())


def leave(code: int) -> NoReturn:
    """Exit with ``code`` without Python's finalisation, when nothing can depend on it.

    Finalisation frees every module and object one by one: ~5 ms of a ~30 ms ``bgr --json``
    here. A one-shot bgr needs none of it: the registry and every file it opened are closed by
    then, and the processes it started live in sessions of their own. Output is flushed here.
    It still runs when an ``atexit`` handler is registered or another thread is alive, since
    then finalisation is where their work ends.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # a reader that left (main handles stdout's), a closed stream
            pass
    import atexit

    threading = sys.modules.get("threading")
    if atexit._ncallbacks() == 0 and (threading is None or threading.active_count() == 1):
        os._exit(code)
    sys.exit(code)
