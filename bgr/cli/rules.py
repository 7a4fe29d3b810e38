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


class Selection(Record):
    """Which processes an action is for: these names, a group's (``--filter``), or every one."""

    names: tuple[str, ...] = ()
    group: str | None = None
    everything: bool = False


class ShowLogs(Record):
    """``bgr NAME... --logs`` (or ``--filter GROUP``, ``--all``)."""

    db: str | None
    selection: Selection
    stream: str  # "both", "stdout" or "stderr"
    lines: int | None
    follow: bool
    raw: bool = False


class Start(Record):
    """``bgr --name NAME ...``: a definition to start; ``logs`` when ``--logs`` asks for them afterwards."""

    db: str | None
    request: StartRequest
    wait: float | None
    grace: float | None
    as_json: bool
    logs: ShowLogs | None


class StartAgain(Record):
    """``bgr start NAME...``: start stored definitions again (``force``: restart running ones)."""

    db: str | None
    selection: Selection
    wait: float | None
    grace: float | None
    force: bool
    as_json: bool


class Restart(Record):
    """``bgr restart NAME...``."""

    db: str | None
    selection: Selection
    wait: float | None
    grace: float | None
    force: bool
    as_json: bool


class Stop(Record):
    """``bgr stop NAME...`` (``delete``: ``bgr delete NAME...``)."""

    db: str | None
    selection: Selection
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


class StackUp(Record):
    """``bgr --up [--file FILE] [NAME...]`` (``dry_run``: only print the plan)."""

    db: str | None
    file: str | None
    names: tuple[str, ...]
    prune: bool
    dry_run: bool
    wait: float | None
    grace: float | None
    as_json: bool


class StackDown(Record):
    """``bgr --down [--file FILE]``."""

    db: str | None
    file: str | None
    prune: bool
    grace: float | None
    as_json: bool


class Export(Record):
    """``bgr --export FORMAT``: of a stack file (``file``; NAMEs pick some of its processes), or of
    registered processes (``selection``: NAMEs, ``--filter GROUP`` or ``--all``)."""

    db: str | None
    format: str
    file: str | None
    selection: Selection
    from_registry: bool
    out: str | None
    image: str | None
    show_env: bool


Command = (
    Help
    | Version
    | ListProcesses
    | ShowProcess
    | ShowLogs
    | Start
    | StartAgain
    | Restart
    | Stop
    | Clean
    | Nuke
    | Watch
    | StackUp
    | StackDown
    | Export
)

_CONTROLS = ("start", "restart", "stop", "delete", "clean", "nuke")
# The options that change a stored definition (a --restart refuses them).
_DEFINITION = (
    "command",
    "directory",
    "config",
    "env",
    "group",
    "stdout",
    "stderr",
    "port",
    "fetch",
    "no_fetch",
    "health",
    "health_every",
    "health_timeout",
    "health_retries",
    "health_start",
    "no_health",
    "restart_at",
    "cron",
    "on_failure",
    "max_memory",
    "restart_every",
)


class _Line(Record):
    """What rules need to know beyond Args: the names after ``--`` and the verb used, if any."""

    literal: tuple[str, ...] = ()
    verb: str | None = None


def command(args: Args, *, literal: tuple[str, ...] = (), verb: str | None = None) -> Command:
    """The one thing this command line asks for; UsageError when options do not fit together.

    ``literal`` are the names given after ``--``; ``verb`` the pm2-style verb the line began with
    (see :mod:`bgr.cli.verbs`), for the wording of errors only."""
    line = _Line(literal, verb)
    early = _early(args, line)
    if early is not None:
        return early
    controls = [c for c in _CONTROLS if getattr(args, c)]
    defining = args.command is not None or bool(_changes(args))
    acting = bool(controls) or args.logs
    selection = _selection(args, line, acting and not (defining or args.watch))
    _check_actions(args, controls, defining)
    _check_companions(args, controls, defining)
    if controls and controls[0] in ("clean", "nuke"):
        if selection != Selection():
            raise UsageError(f"{_flag(controls[0])} acts on every process and takes no NAME")
        return _control(args, controls[0], selection)
    if (controls == ["start"] and defining) or (not controls and (defining or args.name is not None)):
        if args.watch:
            return _watch(args, _one(selection, line, "--watch"))
        return _start(args, _one(selection, line, "starting a process"))
    if args.watch:
        return _watch(args, _one(selection, line, "--watch"))
    if controls:
        return _control(args, controls[0], _some(selection, line))
    if args.logs:
        return _logs(args, _some(selection, line))
    return _look(args, selection)


def _early(args: Args, line: _Line) -> Command | None:
    """``--help``, ``--version`` and the stack actions, which take none of the other options."""
    if args.help:
        return Help()
    if args.version:
        return Version()
    if args.up or args.down or args.export is not None:
        return _stack(args, line)
    _check_stack_companions(args)
    return None


def _selection(args: Args, line: _Line, bulk: bool) -> Selection:
    """NAMEs (bare words, ``--name``, words after ``--``), ``--filter`` and ``--all`` as one
    Selection. The bare word ``all`` means every process where a bulk action is asked for."""
    bare = list(args.targets)
    everything = args.all
    if bulk and "all" in bare:
        if len(bare) > 1:
            raise UsageError("all means every process; give names or all, not both")
        bare, everything = [], True
    names = [*bare, *([args.name] if args.name is not None else []), *line.literal]
    for name in names:
        paths.validate_name(name)
    unique = tuple(dict.fromkeys(names))
    given = [
        what
        for what, present in (("names", unique), ("--filter", args.filter), ("--all", everything))
        if present
    ]
    if len(given) > 1:
        raise UsageError(f"give NAMEs, --filter GROUP or --all; not {' and '.join(given)}")
    if args.filter is not None:
        paths.validate_name(args.filter, "group")
    return Selection(unique, args.filter, everything)


def _one(selection: Selection, line: _Line, what: str) -> str:
    """The one name ``what`` needs."""
    if selection.group is not None or selection.everything:
        raise UsageError(f"{what} takes one NAME, not --filter or --all")
    if len(selection.names) > 1:
        raise UsageError(f"{what} takes one NAME, not {len(selection.names)} ({', '.join(selection.names)})")
    if not selection.names:
        raise UsageError("which process? give NAME (or --name NAME)" + _verb_hint(line))
    return selection.names[0]


def _some(selection: Selection, line: _Line) -> Selection:
    if selection == Selection():
        raise UsageError("which processes? give NAME..., --filter GROUP or --all" + _verb_hint(line))
    return selection


def _verb_hint(line: _Line) -> str:
    if line.verb is None:
        return ""
    return f"; for a process named {line.verb}: bgr -- {line.verb}"


def _flag(option: str) -> str:
    return f"--{option.replace('_', '-')}"


def _changes(args: Args) -> list[str]:
    return [_flag(o) for o in _DEFINITION if _given(getattr(args, o))]


def _given(value: object) -> bool:
    # Not ``value not in (None, False, ())``: 0 (--max-memory off) is given, though 0 == False.
    return value is not None and value is not False and value != ()


def _check_actions(args: Args, controls: list[str], defining: bool) -> None:
    """One action at a time, and only with what it can use."""
    if len(controls) > 1:
        raise UsageError(f"{' and '.join(map(_flag, controls))} are two actions; give one at a time")
    if controls and ((defining and controls[0] not in ("start", "restart")) or args.watch):
        raise UsageError(f"{_flag(controls[0])} cannot be combined with starting a process")
    if controls == ["restart"] and defining:
        # A restart re-uses the stored definition; silently dropping new values would surprise.
        raise UsageError(
            f"--restart keeps the stored definition and ignores {', '.join(_changes(args))}; to change "
            "it, start again with --force: bgr --name NAME ... --force"
        )
    if args.fetch and args.no_fetch:
        raise UsageError("--fetch and --no-fetch contradict each other; give one")


def _check_companions(args: Args, controls: list[str], defining: bool) -> None:
    """Options that only mean something next to another one."""
    if (
        args.log_stdout or args.log_stderr or args.lines is not None or args.follow or args.raw
    ) and not args.logs:
        raise UsageError("--log-stdout, --log-stderr, --lines, --follow and --raw go with --logs")
    if (args.debounce is not None or args.ignore) and not args.watch:
        raise UsageError("--debounce and --ignore go with --watch")
    starting = defining or args.name is not None or controls in (["start"], ["restart"])
    if args.wait is not None and not starting:
        raise UsageError("--wait goes with starting a process or --restart")
    if args.force and not (starting or args.watch):
        raise UsageError("--force goes with starting a process or --restart")
    if args.watch and args.json:
        raise UsageError("--json does not go with --watch")
    if args.all and not (controls or args.logs):
        raise UsageError("--all goes with an action: bgr stop --all, bgr restart --all, bgr logs --all")


def _stream(args: Args) -> str:
    if args.log_stdout and not args.log_stderr:
        return "stdout"
    if args.log_stderr and not args.log_stdout:
        return "stderr"
    return "both"


def _logs(args: Args, selection: Selection) -> ShowLogs:
    return ShowLogs(
        db=args.db,
        selection=selection,
        stream=_stream(args),
        lines=args.lines,
        follow=args.follow,
        raw=args.raw,
    )


def _look(args: Args, selection: Selection) -> Command:
    if len(selection.names) > 1:
        verbs = [n for n in selection.names[1:] if n in ("start", "stop", "restart", "delete", "logs")]
        hint = f"; to act on them the verb comes first: bgr {verbs[0]} NAME..." if verbs else ""
        raise UsageError(
            f"bgr NAME shows one process, not {len(selection.names)}; the list is bgr (or bgr --filter GROUP)"
            + hint
        )
    if selection.names:
        return ShowProcess(db=args.db, name=selection.names[0], as_json=args.json, show_env=args.show_env)
    return ListProcesses(db=args.db, group=args.filter, as_json=args.json, show_env=args.show_env)


def _control(args: Args, control: str, selection: Selection) -> Command:
    if control == "clean":
        return Clean(db=args.db, as_json=args.json)
    if control == "nuke":
        return Nuke(db=args.db, grace=args.grace, as_json=args.json)
    if control in ("start", "restart"):
        again = StartAgain if control == "start" else Restart
        return again(
            db=args.db,
            selection=selection,
            wait=args.wait,
            grace=args.grace,
            force=args.force,
            as_json=args.json,
        )
    return Stop(
        db=args.db, selection=selection, grace=args.grace, delete=control == "delete", as_json=args.json
    )


def _start(args: Args, name: str) -> Start:
    return Start(
        db=args.db,
        request=_request(args, name),
        wait=args.wait,
        grace=args.grace,
        as_json=args.json,
        logs=_logs(args, Selection((name,))) if args.logs else None,
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
        fetch=True if args.fetch else (False if args.no_fetch else None),
        force=args.force,
        ports=args.port or None,
        health=_health(args),
        restart_at=_schedule(args.restart_at, "--restart-at"),
        cron=_schedule(args.cron, "--cron"),
        on_failure=_off(args.on_failure),
        max_memory=args.max_memory,
        restart_every=args.restart_every,
    )


_PROBE_OPTIONS = (
    ("every", "health_every"),
    ("timeout", "health_timeout"),
    ("retries", "health_retries"),
    ("start", "health_start"),
)


def _health(args: Args) -> dict[str, object] | None:
    """The probe options given, for the stored definition to merge (None: none given; {}: remove)."""
    if args.no_health:
        if args.health is not None or any(getattr(args, o) is not None for _, o in _PROBE_OPTIONS):
            raise UsageError("--no-health removes the probe; give it without --health options")
        return {}
    given: dict[str, object] = {
        k: getattr(args, o) for k, o in _PROBE_OPTIONS if getattr(args, o) is not None
    }
    if args.health is not None:
        from bgr.health import probes

        probes.parse(args.health)  # one clear line now, not at the first check
        given["check"] = args.health.strip()
    return given or None


def _off(value: str | None) -> str | None:
    """``off`` (or an empty value) removes a stored value: ""."""
    if value is None:
        return None
    return "" if value.strip().lower() in ("", "off") else value


def _schedule(value: str | None, option: str) -> str | None:
    text = _off(value)
    if not text:
        return text
    from bgr.health import schedule

    return schedule.validate(text, option)


def _env_pairs(values: tuple[str, ...]) -> dict[str, str]:
    env = {}
    for pair in values:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--env takes KEY=VALUE, not {pair!r}")
        env[key] = value
    return env


# --------------------------------------------------------------------------------------------
# stacks: --up, --down, --export

EXPORT_FORMATS = ("systemd", "compose", "kubernetes")
# What goes with a stack action, besides --db, --json and the companions checked below.
_STACK_ACTIONS = ("up", "down", "export")


def _stack(args: Args, line: _Line) -> Command:
    """``--up``, ``--down`` or ``--export``, with only the options that go with it."""
    actions = [f"--{a}" for a in _STACK_ACTIONS if getattr(args, a) not in (False, None)]
    if len(actions) > 1:
        raise UsageError(f"{' and '.join(actions)} are two actions; give one at a time")
    others = [_flag(c) for c in (*_CONTROLS, "logs", "watch") if getattr(args, c)] + _changes(args)
    if others or args.name is not None:
        spelled = others[0] if others else "--name"
        raise UsageError(f"{actions[0]} works from the stack file; it does not take {spelled}")
    _check_only(args, actions[0])
    if args.file is not None and not args.file.strip():
        raise UsageError("--file takes a path to bgr.toml or a Procfile")
    if args.up:
        return StackUp(
            db=args.db,
            file=args.file,
            names=_stack_names(args, line),
            prune=args.prune,
            dry_run=args.dry_run,
            wait=args.wait,
            grace=args.grace,
            as_json=args.json,
        )
    if args.down:
        if args.targets or line.literal:
            raise UsageError("--down stops the whole stack and takes no NAME (bgr stop NAME... stops some)")
        return StackDown(db=args.db, file=args.file, prune=args.prune, grace=args.grace, as_json=args.json)
    return _export(args, line)


def _check_only(args: Args, action: str) -> None:
    """The stack options that do not go with ``action``."""
    allowed = {
        "--up": ("file", "dry_run", "prune", "wait", "grace", "json"),
        "--down": ("file", "prune", "grace", "json"),
        "--export": ("file", "out", "image", "show_env", "filter", "all"),
    }[action]
    given = [
        o
        for o in (
            "file",
            "dry_run",
            "prune",
            "out",
            "image",
            "wait",
            "grace",
            "json",
            "show_env",
            "filter",
            "all",
        )
        if getattr(args, o) not in (None, False) and o not in allowed
    ]
    if given:
        raise UsageError(f"{_flag(given[0])} does not go with {action}")


def _check_stack_companions(args: Args) -> None:
    """Options that only mean something next to --up, --down or --export."""
    for option in ("file", "dry_run", "prune", "out", "image"):
        if getattr(args, option) not in (None, False):
            raise UsageError(f"{_flag(option)} goes with --up, --down or --export")


def _stack_names(args: Args, line: _Line) -> tuple[str, ...]:
    if args.filter is not None or args.all:
        raise UsageError("--up takes the NAMEs of processes in the stack file, not --filter or --all")
    names = [*args.targets, *line.literal]
    for name in names:
        paths.validate_name(name)
    return tuple(dict.fromkeys(names))


def _export(args: Args, line: _Line) -> Export:
    fmt = (args.export or "").strip().lower()
    if fmt not in EXPORT_FORMATS:
        raise UsageError(f"--export takes {', '.join(EXPORT_FORMATS)}, not {args.export!r}")
    if args.image is not None and fmt == "systemd":
        raise UsageError("--image goes with --export compose or kubernetes (systemd runs on this machine)")
    if args.image is not None and not args.image.strip():
        raise UsageError("--image takes an image name, e.g. python:3.12-slim")
    if fmt == "systemd" and args.out is None:
        raise UsageError(
            "--export systemd writes one unit per process: give --out DIR (e.g. ~/.config/systemd/user)"
        )
    selection = _selection(args, line, True)
    from_registry = args.file is None and selection != Selection()
    if args.file is not None and (selection.group is not None or selection.everything):
        raise UsageError("--export with --file takes NAMEs of the file's processes, not --filter or --all")
    return Export(
        db=args.db,
        format=fmt,
        file=args.file,
        selection=selection,
        from_registry=from_registry,
        out=args.out,
        image=args.image,
        show_env=args.show_env,
    )
