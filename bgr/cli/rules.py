"""The parsed command line → exactly one command, or a UsageError saying what does not fit.

:func:`command` is the only reader of :class:`~bgr.cli.options.Args`. Each command record says
what to do and nothing about how it was spelled; ``None`` in a number means "the documented
default", which the code that runs the command fills in.
"""

from __future__ import annotations

import os

from bgr import paths
from bgr.cli.options import Args
from bgr.errors import UsageError
from bgr.models import StartRequest
from bgr.record import Record


class Help(Record):
    """``bgr --help``."""


class Version(Record):
    """``bgr --version``."""


class ListProcesses(Record):
    """``bgr``, ``bgr --json``, ``bgr --filter GROUP``."""

    db: str | None
    group: str | None
    as_json: bool
    show_env: bool


class ShowProcess(Record):
    """``bgr NAME``."""

    db: str | None
    name: str
    as_json: bool
    show_env: bool


class ShowLogs(Record):
    """``bgr NAME --logs``."""

    db: str | None
    name: str
    stream: str  # "both", "stdout" or "stderr"
    lines: int | None
    follow: bool


class Start(Record):
    """``bgr --name NAME ...``; ``logs`` when ``--logs`` asks for them afterwards."""

    db: str | None
    request: StartRequest
    wait: float | None
    grace: float | None
    as_json: bool
    logs: ShowLogs | None


class Restart(Record):
    """``bgr NAME --restart``."""

    db: str | None
    name: str
    wait: float | None
    grace: float | None
    force: bool
    as_json: bool


class Stop(Record):
    """``bgr NAME --stop`` (``delete``: ``--delete``)."""

    db: str | None
    name: str
    grace: float | None
    delete: bool
    as_json: bool


class Clean(Record):
    """``bgr --clean``."""

    db: str | None
    as_json: bool


class Nuke(Record):
    """``bgr --nuke``."""

    db: str | None
    grace: float | None
    as_json: bool


class Watch(Record):
    """``bgr NAME --watch``; ``logs`` is the stream to follow, if any."""

    db: str | None
    request: StartRequest
    grace: float | None
    debounce: float | None  # seconds
    ignore: tuple[str, ...]
    logs: str | None
    lines: int


Command = (
    Help | Version | ListProcesses | ShowProcess | ShowLogs | Start | Restart | Stop | Clean | Nuke | Watch
)

_CONTROLS = ("restart", "stop", "delete", "clean", "nuke")
# The options that change a stored definition (a --restart refuses them).
_DEFINITION = ("command", "directory", "config", "env", "group", "stdout", "stderr", "port", "fetch")


def command(args: Args) -> Command:
    """The one thing this command line asks for; UsageError when options do not fit together."""
    if args.help:
        return Help()
    if args.version:
        return Version()
    target = _target(args)
    controls = [c for c in _CONTROLS if getattr(args, c)]
    starting = args.name is not None or args.command is not None
    _check_actions(args, controls, starting, target)
    _check_companions(args, controls, starting, target)
    if controls:
        return _control(args, controls[0], target)
    if args.watch:
        return _watch(args, _require(target))
    if starting:
        return _start(args, _require(target))
    return _look(args, target)


def _target(args: Args) -> str | None:
    positional, named = args.target, args.name
    if positional is not None and named is not None and positional != named:
        raise UsageError(f"two names given ({positional!r} and {named!r}); give one")
    # `is not None`, not truthiness: an empty NAME must be refused, not mistaken for "list".
    target = positional if positional is not None else named
    if target is not None:
        paths.validate_name(target)
    return target


def _require(target: str | None) -> str:
    if target is None:
        raise UsageError("which process? give NAME (or --name NAME)")
    return target


def _flag(option: str) -> str:
    return f"--{option.replace('_', '-')}"


def _check_actions(args: Args, controls: list[str], starting: bool, target: str | None) -> None:
    """One action at a time, and only with what it can use."""
    if len(controls) > 1:
        raise UsageError(f"{' and '.join(map(_flag, controls))} are two actions; give one at a time")
    if controls and ((starting and controls[0] != "restart") or args.watch):
        raise UsageError(f"{_flag(controls[0])} cannot be combined with starting a process")
    changes = [_flag(o) for o in _DEFINITION if getattr(args, o) not in (None, False, ())]
    if controls == ["restart"] and changes:
        # A restart re-uses the stored definition; silently dropping new values would surprise.
        raise UsageError(
            f"--restart keeps the stored definition and ignores {', '.join(changes)}; to change it, "
            "start again with --force: bgr --name NAME ... --force"
        )
    if controls and controls[0] in ("clean", "nuke"):
        if target is not None:
            raise UsageError(f"{_flag(controls[0])} acts on every process and takes no NAME")
    elif (controls or args.logs or args.watch or starting) and target is None:
        _require(target)


def _check_companions(args: Args, controls: list[str], starting: bool, target: str | None) -> None:
    """Options that only mean something next to another one."""
    if (args.log_stdout or args.log_stderr or args.lines is not None or args.follow) and not args.logs:
        raise UsageError("--log-stdout, --log-stderr, --lines and --follow go with --logs")
    if (args.debounce is not None or args.ignore) and not args.watch:
        raise UsageError("--debounce and --ignore go with --watch")
    restarting = controls == ["restart"]
    if args.wait is not None and not (starting or restarting):
        raise UsageError("--wait goes with starting a process or --restart")
    if args.force and not (starting or args.watch or restarting):
        raise UsageError("--force goes with starting a process or --restart")
    if args.filter and (target is not None or controls):
        raise UsageError("--filter only applies to the list (bgr --filter GROUP)")
    if args.watch and args.json:
        raise UsageError("--json does not go with --watch")


def _stream(args: Args) -> str:
    if args.log_stdout and not args.log_stderr:
        return "stdout"
    if args.log_stderr and not args.log_stdout:
        return "stderr"
    return "both"


def _logs(args: Args, name: str) -> ShowLogs:
    return ShowLogs(db=args.db, name=name, stream=_stream(args), lines=args.lines, follow=args.follow)


def _look(args: Args, target: str | None) -> Command:
    if args.logs and target is not None:
        return _logs(args, target)
    if target is not None:
        return ShowProcess(db=args.db, name=target, as_json=args.json, show_env=args.show_env)
    return ListProcesses(db=args.db, group=args.filter, as_json=args.json, show_env=args.show_env)


def _control(args: Args, control: str, target: str | None) -> Command:
    if control == "clean":
        return Clean(db=args.db, as_json=args.json)
    if control == "nuke":
        return Nuke(db=args.db, grace=args.grace, as_json=args.json)
    name = _require(target)
    if control == "restart":
        return Restart(
            db=args.db, name=name, wait=args.wait, grace=args.grace, force=args.force, as_json=args.json
        )
    return Stop(db=args.db, name=name, grace=args.grace, delete=control == "delete", as_json=args.json)


def _start(args: Args, name: str) -> Start:
    return Start(
        db=args.db,
        request=_request(args, name),
        wait=args.wait,
        grace=args.grace,
        as_json=args.json,
        logs=_logs(args, name) if args.logs else None,
    )


def _watch(args: Args, name: str) -> Watch:
    return Watch(
        db=args.db,
        request=_request(args, name),
        grace=args.grace,
        debounce=None if args.debounce is None else args.debounce / 1000,
        ignore=args.ignore,
        logs=_stream(args) if args.logs else None,
        lines=args.lines or 0,
    )


def _request(args: Args, name: str) -> StartRequest:
    return StartRequest(
        name=name,
        command=args.command,
        directory=args.directory,
        group=args.group or os.environ.get("BGR_GROUP") or None,
        env=_env_pairs(args.env),
        config=args.config,
        stdout=args.stdout,
        stderr=args.stderr,
        fetch=True if args.fetch else None,
        force=args.force,
        ports=args.port or None,
    )


def _env_pairs(values: tuple[str, ...]) -> dict[str, str]:
    env = {}
    for pair in values:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--env takes KEY=VALUE, not {pair!r}")
        env[key] = value
    return env
