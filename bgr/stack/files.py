"""Stack files → typed records: ``bgr.toml`` (one table per process) and ``Procfile`` (+ ``.env``).

``bgr.toml`` uses the command line's option names (``--health-every`` is ``health_every``)::

    name = "shop"                       # optional: the stack's name (default: the directory's)

    [db]
    command = "redis-server --port 6390"
    health = "tcp:127.0.0.1:6390"

    [api]
    command = "python3 -m api"
    directory = "api"                   # relative to the file
    env = { LOG_LEVEL = "debug" }
    env_file = ".env"                   # .env format, under env (env wins)
    health = "http://127.0.0.1:8000/health"
    max_memory = "200M"                 # guard limits: bgr-guard restarts it past these
    restart_every = "24h"
    depends_on = { db = "healthy" }     # started, healthy or completed (exited 0)

Paths (directory, env_file, config, stdout, stderr) are relative to the file's directory. A
process's group is the stack's name unless it sets one. Every mistake (an unknown key, a wrong
type, an unknown or cyclic dependency) is one StackError naming the file, the process and the key,
raised before anything runs. A ``Procfile`` is read as honcho and foreman read it: ``name: command``
lines, the ``.env`` beside it for every process, and ``PORT`` = 5000 (or the ``.env``'s ``PORT``)
plus 100 for each process before it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping

from bgr import paths
from bgr.errors import StackError, UsageError
from bgr.models import StartRequest
from bgr.record import Record
from bgr.stack import dotenv

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: see bgr/record.py
if TYPE_CHECKING:
    from typing import Any

STACK_FILE, PROCFILE = "bgr.toml", "Procfile"
STARTED, HEALTHY, COMPLETED = "started", "healthy", "completed"
CONDITIONS = (STARTED, HEALTHY, COMPLETED)
_PROCFILE_LINE = re.compile(r"([A-Za-z0-9_-]+):\s*(.+)")
_PROCFILE_PORT = 5000


class Dependency(Record):
    """``depends_on = { name = condition }``: start only once ``name`` is started, healthy or completed."""

    name: str
    condition: str


class Service(Record):
    """One process of a stack: the complete definition (``request``) and what it waits for."""

    name: str
    request: StartRequest
    depends_on: tuple[Dependency, ...] = ()


class Stack(Record):
    """A stack file, read: its name (the group of its processes), where it is, its processes."""

    name: str
    path: str  # absolute
    services: tuple[Service, ...]

    @property
    def directory(self) -> str:
        return os.path.dirname(self.path)

    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.services)

    def get(self, name: str) -> Service | None:
        return next((s for s in self.services if s.name == name), None)


def find(explicit: str | None = None) -> str:
    """The stack file to read: ``explicit``, else ./bgr.toml, else ./Procfile (absolute)."""
    if explicit is not None:
        path = paths.absolute(explicit)
        if os.path.isdir(path):
            path = _find_in(path)
        if not os.path.isfile(path):
            raise StackError(f"stack file {path} not found")
        return path
    return _find_in(paths.current_directory())


def _find_in(directory: str) -> str:
    for candidate in (STACK_FILE, PROCFILE):
        path = os.path.join(directory, candidate)
        if os.path.isfile(path):
            return path
    raise StackError(f"no {STACK_FILE} or {PROCFILE} in {directory}; give --file FILE")


def load(path: str) -> Stack:
    """Read and check the stack file at ``path`` (a Procfile unless its name ends in ``.toml``)."""
    from bgr.stack import graph

    path = paths.absolute(path)
    stack = _load_toml(path) if path.endswith(".toml") else _load_procfile(path)
    graph.check(stack)
    return stack


def _read(path: str) -> str:
    try:
        with open(path, "rb") as fh:
            return fh.read().decode("utf-8-sig")
    except FileNotFoundError:
        raise StackError(f"stack file {path} not found") from None
    except OSError as exc:
        raise StackError(f"cannot read stack file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise StackError(f"stack file {path} is not valid UTF-8 (byte {exc.start})") from None


def stack_name(path: str, given: object = None) -> str:
    """The stack's name: ``name = "..."`` in the file, else its directory's name; a valid group."""
    if given is not None and not isinstance(given, str):
        raise StackError(f"{path}: name must be a string (the stack's name), not {_type(given)}")
    name = given if given is not None else os.path.basename(os.path.dirname(path))
    try:
        return paths.validate_name(name, "stack name")
    except UsageError as exc:
        hint = "" if given is not None else f' (the directory\'s name); set name = "..." at the top of {path}'
        raise StackError(f"{path}: {exc}{hint}") from None


# ------------------------------------------------------------------------------------------
# bgr.toml


def _load_toml(path: str) -> Stack:
    import tomli  # only for stack files and configs

    try:
        data = tomli.loads(_read(path))
    except tomli.TOMLDecodeError as exc:
        raise StackError(
            f"invalid TOML in {path} at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    name = stack_name(path, data.pop("name", None))
    stray = [key for key, value in data.items() if not isinstance(value, dict)]
    if stray:
        raise StackError(
            f"{path}: {stray[0]!r} is not a process table; each process is a [table] "
            "(the only other top-level key is name)"
        )
    if not data:
        raise StackError(f"{path} defines no process; add a [name] table with a command")
    services = tuple(_service(path, name, process, table) for process, table in data.items())
    return Stack(name, path, services)


class _Where(Record):
    """What an error names: the file, the process, the key."""

    path: str
    process: str
    key: str = ""

    def error(self, message: str) -> StackError:
        key = f", key {self.key}" if self.key else ""
        return StackError(f"{self.path}: process {self.process}{key}: {message}")


def _service(path: str, stack: str, process: str, table: Mapping[str, Any]) -> Service:
    where = _Where(path, process)
    try:
        paths.validate_name(process)
    except UsageError as exc:
        raise where.error(str(exc)) from None
    unknown = [key for key in table if key not in _KEYS]
    if unknown:
        near = _near(unknown[0])
        raise where._replace(key=unknown[0]).error(f"unknown key{near}; the keys are {', '.join(_KEYS)}")
    values = {key: _KEYS[key](table[key], where._replace(key=key)) for key in table}
    if "command" not in values:
        raise where.error('no command; add command = "what to run"')
    base = os.path.dirname(path)
    env = {}
    for env_file in values.get("env_file", ()):
        env.update(dotenv.load(os.path.join(base, env_file)))
    env.update(values.get("env", {}))
    return Service(
        process,
        StartRequest(
            name=process,
            command=values["command"],
            directory=os.path.normpath(os.path.join(base, values.get("directory", "."))),
            group=values.get("group", stack),
            env=env,
            config=_beside(base, values.get("config")),
            stdout=_beside(base, values.get("stdout")),
            stderr=_beside(base, values.get("stderr")),
            fetch=values.get("fetch", False),
            ports=values.get("ports", ()),
            health=_health(values, where),
            restart_at=values.get("restart_at", ""),
            cron=values.get("cron", ""),
            on_failure=values.get("on_failure", ""),
            # Absent: 0, so a limit the file no longer has is removed (the file is the definition).
            max_memory=values.get("max_memory", 0),
            restart_every=values.get("restart_every", 0.0),
        ),
        values.get("depends_on", ()),
    )


def _beside(base: str, path: str | None) -> str | None:
    return None if path is None else os.path.normpath(os.path.join(base, os.path.expanduser(path)))


def _near(key: str) -> str:
    import difflib  # only on this error path

    close = difflib.get_close_matches(key, list(_KEYS), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


_PROBE_KEYS = {"health_every": "every", "health_timeout": "timeout", "health_retries": "retries"}


def _health(values: Mapping[str, Any], where: _Where) -> dict[str, Any]:
    """The probe as the registry stores it ({}: none, so a removed probe is removed)."""
    options = [k for k in (*_PROBE_KEYS, "health_start") if k in values]
    if "health" not in values:
        if options:
            raise where._replace(key=options[0]).error("needs health = CHECK")
        return {}
    from bgr.health import probes

    probe = probes.from_dict({"check": values["health"]})
    assert probe is not None  # the check was parsed when it was read
    changes = {field: values[key] for key, field in _PROBE_KEYS.items() if key in values}
    if "health_start" in values:
        changes["start"] = values["health_start"]
    return probe._replace(**changes).to_dict()


# ------------------------------------------------------------------------------------------
# value checks, one per key: (value, where) → the value to use, or StackError


def _type(value: object) -> str:
    names = {str: "a string", bool: "a boolean", int: "an integer", float: "a number", dict: "a table"}
    return names.get(type(value), "an array" if isinstance(value, list) else type(value).__name__)


def _text(value: object, where: _Where) -> str:
    if not isinstance(value, str):
        raise where.error(f"must be a string, not {_type(value)}")
    if "\0" in value:
        raise where.error("contains a NUL character")
    return value


def _nonempty(value: object, where: _Where) -> str:
    text = _text(value, where)
    if not text.strip():
        raise where.error("must not be empty")
    return text


def _name(value: object, where: _Where) -> str:
    try:
        return paths.validate_name(_text(value, where), "group")
    except UsageError as exc:
        raise where.error(str(exc)) from None


def _flag(value: object, where: _Where) -> bool:
    if not isinstance(value, bool):
        raise where.error(f"must be true or false, not {_type(value)}")
    return value


def _env_value(value: object, where: _Where) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return _text(value, where)


def _env(value: object, where: _Where) -> dict[str, str]:
    if not isinstance(value, dict):
        raise where.error(f'must be a table of variables, e.g. {{ LOG_LEVEL = "debug" }}, not {_type(value)}')
    env = {}
    for key, item in value.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise where.error(f"{key!r} is not an environment variable name")
        env[key] = _env_value(item, where._replace(key=f"{where.key}.{key}"))
    return env


def _files(value: object, where: _Where) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    return tuple(_nonempty(item, where) for item in items)


def _ports(value: object, where: _Where) -> tuple[int, ...]:
    items = value if isinstance(value, list) else [value]
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int) or not 0 < item < 65536:
            raise where.error(f"takes port numbers from 1 to 65535, not {item!r}")
    return tuple(items)


def _seconds(value: object, where: _Where, *, zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise where.error(f'must be a duration such as 10, 0.5 or "10s", not {_type(value)}')
    if isinstance(value, str):
        from bgr import units

        try:
            return units.parse_duration(value, where.key)
        except UsageError as exc:
            raise where.error(str(exc)) from None
    if not float(value) > 0 and not (zero and value == 0):
        raise where.error(f"must be more than 0, not {value!r}")
    return float(value)


def _size(value: object, where: _Where) -> int:
    """Bytes: an integer, or a string such as "200M" (as bgr-guard's --max-memory reads it)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise where.error(f'must be a size such as "200M" or a number of bytes, not {_type(value)}')
    if isinstance(value, str):
        from bgr import units

        try:
            value = units.parse_size(value)
        except UsageError as exc:
            raise where.error(str(exc)) from None
    if value <= 0:
        raise where.error(f"must be more than 0 bytes, not {value!r}")
    return value


def _start(value: object, where: _Where) -> float:
    return _seconds(value, where, zero=True)


def _count(value: object, where: _Where) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise where.error(f"must be a whole number of at least 1, not {value!r}")
    return value


def _check(value: object, where: _Where) -> str:
    from bgr.health import probes

    text = _nonempty(value, where)
    try:
        probes.parse(text)
    except UsageError as exc:
        raise where.error(str(exc).replace("--health", "health")) from None
    return text.strip()


def _cron(value: object, where: _Where) -> str:
    text = _text(value, where)
    if text.strip().lower() in ("", "off"):
        return ""
    from bgr.health import schedule  # APScheduler: only for files that schedule something

    try:
        return schedule.validate(text, where.key)
    except UsageError as exc:
        raise where.error(str(exc)) from None


def _depends(value: object, where: _Where) -> tuple[Dependency, ...]:
    if isinstance(value, list):
        value = {_text(item, where): STARTED for item in value}
    if not isinstance(value, dict):
        raise where.error(f'must be a table such as {{ db = "healthy" }}, not {_type(value)}')
    found = []
    for name, condition in value.items():
        if condition not in CONDITIONS:
            raise where._replace(key=f"{where.key}.{name}").error(
                f"the condition is one of {', '.join(CONDITIONS)}, not {condition!r}"
            )
        found.append(Dependency(name, condition))
    return tuple(found)


_KEYS: dict[str, Callable[[object, _Where], Any]] = {
    "command": _nonempty,
    "directory": _nonempty,
    "env": _env,
    "env_file": _files,
    "config": _nonempty,
    "group": _name,
    "stdout": _nonempty,
    "stderr": _nonempty,
    "fetch": _flag,
    "ports": _ports,
    "health": _check,
    "health_every": _seconds,
    "health_timeout": _seconds,
    "health_retries": _count,
    "health_start": _start,
    "restart_at": _cron,
    "cron": _cron,
    "on_failure": _text,
    "max_memory": _size,
    "restart_every": _seconds,
    "depends_on": _depends,
}


# ------------------------------------------------------------------------------------------
# Procfile


def _load_procfile(path: str) -> Stack:
    name = stack_name(path)
    base = os.path.dirname(path)
    beside = os.path.join(base, ".env")
    env = dotenv.load(beside) if os.path.isfile(beside) else {}
    port = _base_port(env, beside)
    services: list[Service] = []
    for number, line in enumerate(_read(path).splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _PROCFILE_LINE.fullmatch(line.strip())
        if match is None:
            raise StackError(f"{path}, line {number}: expected 'name: command', not {line.strip()[:60]!r}")
        process, command = match[1], match[2].strip()
        try:
            paths.validate_name(process)
        except UsageError as exc:
            raise StackError(f"{path}, line {number}: {exc}") from None
        if any(s.name == process for s in services):
            raise StackError(f"{path}, line {number}: process {process} is defined twice")
        own = {**env, "PORT": str(port + 100 * len(services))}
        services.append(Service(process, _procfile_request(process, command, base, name, own)))
    if not services:
        raise StackError(f"{path} defines no process; add lines such as 'web: python3 -m http.server'")
    return Stack(name, path, tuple(services))


def _base_port(env: Mapping[str, str], where: str) -> int:
    text = env.get("PORT", str(_PROCFILE_PORT))
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise StackError(f"{where}: PORT must be a port number, not {text!r}")
    return int(text)


def _procfile_request(process: str, command: str, base: str, group: str, env: dict[str, str]) -> StartRequest:
    return StartRequest(
        name=process,
        command=command,
        directory=base,
        group=group,
        env=env,
        fetch=False,
        ports=(),
        health={},
        restart_at="",
        cron="",
        on_failure="",
        max_memory=0,
        restart_every=0.0,
    )
