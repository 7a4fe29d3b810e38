"""bgr command line: docopt usage → one action → printed result. The only module that prints or exits."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from typing import Any

from bgr import __version__, actions, render
from bgr.errors import BgrError, UsageError
from bgr.models import StartRequest

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
  --watch               Stay in the foreground and restart NAME when files change.
  --debounce=MS         --watch: wait for MS quiet milliseconds before restarting.
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
        "--help", "--version",
    }
)  # fmt: skip
_CONTROL = ("--restart", "--stop", "--delete", "--clean", "--nuke")


def _check_spelling(argv: Sequence[str]) -> None:
    """docopt expands unique prefixes (--nu → --nuke); we accept long options only in full."""
    for token in argv:
        if token == "--":
            break
        if token.startswith("--"):
            option = token.split("=", 1)[0]
            if option not in _LONG_OPTIONS:
                near = sorted(o for o in _LONG_OPTIONS if o.startswith(option))
                hint = f" (did you mean {' or '.join(near)}? options must be typed in full)" if near else ""
                raise UsageError(f"unknown option {option}{hint}; see bgr --help")


def parse(argv: Sequence[str]) -> dict[str, Any]:
    """argv → docopt's dict, with clean one-line errors instead of docopt's."""
    from docopt import DocoptExit, docopt

    _check_spelling(argv)
    try:
        parsed: dict[str, Any] = dict(docopt(USAGE, argv=list(argv), default_help=False))
    except DocoptExit as exc:
        text = str(exc).strip().splitlines()
        reason = text[0] if text and not text[0].startswith("Usage") else "invalid arguments"
        raise UsageError(f"{reason}; see bgr --help") from None
    return parsed


def _number(value: str | None, option: str, *, integer: bool = False) -> float | None:
    if value is None:
        return None
    try:
        number = int(value) if integer else float(value)
    except ValueError:
        raise UsageError(f"{option} takes a number, not {value!r}") from None
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
    grace = actions.DEFAULT_GRACE if grace is None else grace
    lines = _number(args["--lines"], "--lines", integer=True)
    positional, named = args["NAME"], args["--name"]
    if positional and named and positional != named:
        raise UsageError(f"two names given ({positional!r} and {named!r}); give one")
    target: str | None = positional or named
    controls = [c for c in _CONTROL if args[c]]
    starting = bool(named or args["--command"])
    if len(controls) > 1:
        raise UsageError(f"{' and '.join(controls)} are two actions; give one at a time")
    if controls and ((starting and controls[0] != "--restart") or args["--watch"]):
        raise UsageError(f"{controls[0]} cannot be combined with starting a process")
    if controls and controls[0] in ("--clean", "--nuke"):
        if target:
            raise UsageError(f"{controls[0]} acts on every process and takes no NAME")
    elif (controls or args["--logs"] or args["--watch"] or starting) and not target:
        raise UsageError("which process? give NAME (or --name NAME)")
    if (args["--log-stdout"] or args["--log-stderr"] or lines is not None or args["--follow"]) and not args[
        "--logs"
    ]:
        raise UsageError("--log-stdout, --log-stderr, --lines and --follow go with --logs")
    if args["--filter"] and (target or controls):
        raise UsageError("--filter only applies to the list (bgr --filter GROUP)")
    as_json: bool = args["--json"]

    if controls:
        return _control(controls[0], target, db=db, grace=grace, as_json=as_json)
    if args["--watch"]:
        return _watch(args, target, db=db, grace=grace)
    if starting:
        assert target is not None
        request = _start_request(args, target)
        result = actions.start(request, db=db, grace=grace)
        if as_json:
            _out(render.to_json(render.as_dict(result.info)))
        else:
            _out(
                render.started_line(
                    result.info, replaced=result.replaced, pulled=result.pulled, freed=result.freed
                )
            )
        if args["--logs"]:
            return _logs(args, target, db=db, lines=lines)
        return 0
    if args["--logs"]:
        assert target is not None
        return _logs(args, target, db=db, lines=lines)
    if target:
        info = actions.get(target, db=db)
        if as_json:
            _out(render.to_json(render.as_dict(info, show_env=args["--show-env"], details=True)))
        else:
            _out(render.details(info, show_env=args["--show-env"], colour=_colour()))
        return 0
    infos = actions.list_processes(db=db, group=args["--filter"])
    if as_json:
        _out(render.to_json([render.as_dict(i, show_env=args["--show-env"]) for i in infos]))
    else:
        width = shutil.get_terminal_size((120, 24)).columns
        _out(render.table(infos, colour=_colour(), width=width))
    return 0


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


def _control(action: str, target: str | None, *, db: str | None, grace: float, as_json: bool) -> int:
    if action == "--restart":
        assert target is not None
        result = actions.restart(target, db=db, grace=grace)
        _out(
            render.to_json(render.as_dict(result.info))
            if as_json
            else render.started_line(result.info, replaced=True, pulled=result.pulled, freed=())
        )
        return 0
    if action == "--clean":
        removed = actions.clean(db=db)
        _out(
            render.to_json(removed)
            if as_json
            else (f"forgot {len(removed)}: {', '.join(removed)}" if removed else "nothing to clean")
        )
        return 0
    if action == "--nuke":
        results = actions.nuke(db=db, grace=grace)
    elif action == "--stop":
        assert target is not None
        results = [actions.stop(target, db=db, grace=grace)]
    else:
        assert target is not None
        results = [actions.delete(target, db=db, grace=grace)]
    verb = {"--stop": "stopped", "--delete": "deleted", "--nuke": "deleted"}[action]
    if as_json:
        _out(
            render.to_json(
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
        _out("\n".join(render.stopped_line(r, verb) for r in results))
    return 1 if any(r.leftover for r in results) else 0


def _stream_choice(args: dict[str, Any]) -> str:
    if args["--log-stdout"] and not args["--log-stderr"]:
        return "stdout"
    if args["--log-stderr"] and not args["--log-stdout"]:
        return "stderr"
    return "both"


def _logs(args: dict[str, Any], name: str, *, db: str | None, lines: float | None) -> int:
    from bgr import logfiles

    paths = actions.log_paths(name, db=db, stream=_stream_choice(args))
    count = None if lines is None else int(lines)
    for label, path in paths:
        if len(paths) > 1 or not args["--follow"]:
            _out(f"==> {label}: {path} <==")
        for chunk in logfiles.tail(path, count):
            sys.stdout.write(chunk)
        sys.stdout.flush()
    if args["--follow"]:
        import threading

        stop = threading.Event()
        prefix = len(paths) > 1
        try:
            for label, text in logfiles.follow(paths, stop):
                sys.stdout.write(f"[{label}] {text}" if prefix else text)
                sys.stdout.flush()
        except KeyboardInterrupt:
            stop.set()
    return 0


def _watch(args: dict[str, Any], target: str | None, *, db: str | None, grace: float) -> int:
    raise UsageError("--watch is not available in this build yet")


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point: run, map BgrError to one stderr line and its exit code."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    try:
        return run(arguments)
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
