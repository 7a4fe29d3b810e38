"""The definition a start stores: a request merged into the stored row, validated before anything runs.

Every check that can fail is made here, before a running instance is stopped: a ``--force`` start
must never kill the old instance and then fail to launch the new one. Also the bounded event
history each row keeps (``with_event``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from bgr import paths
from bgr.errors import UsageError
from bgr.models import ProcessRecord, StartRequest
from bgr.store import append_event

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: see bgr/record.py
if TYPE_CHECKING:
    from typing import Any

# An environment variable name a shell can use: an ASCII letter or '_', then also digits. Sets, not
# a regular expression: ``re`` is the costliest import of a start.
_ENV_KEY_START = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_ENV_KEY_CHARS = _ENV_KEY_START | frozenset("0123456789")


def is_env_key(key: str) -> bool:
    """Whether ``key`` is a valid environment variable name (``[A-Za-z_][A-Za-z0-9_]*``)."""
    return bool(key) and key[0] in _ENV_KEY_START and _ENV_KEY_CHARS.issuperset(key)


def with_event(record: ProcessRecord | None, kind: str, detail: str = "") -> tuple[Mapping[str, Any], ...]:
    """The record's event history with one more entry, trimmed (``store.append_event``)."""
    return append_event(record.events if record else (), kind, detail)


def _check_directory(directory: str) -> None:
    if not os.path.isdir(directory):
        raise UsageError(f"directory {directory} does not exist; create it or pass --directory")


def _check_env(env: Mapping[str, str]) -> None:
    for key in env:
        if not is_env_key(key):
            raise UsageError(f"invalid environment variable name {key!r} in --env")


def _load_config(directory: str, explicit: str | None) -> tuple[str | None, dict[str, str]]:
    from bgr import config

    path = config.resolve_config(directory, explicit)
    if path is None:
        return None, {}
    return (str(path) if explicit else None), config.load_env(path)


def _with_health_loop(record: ProcessRecord, req: StartRequest) -> ProcessRecord:
    """The probe, schedules and hook the request sets (None: keep; empty: remove)."""
    schedule = {k: v for k, v in record.schedule.items() if k in ("restart_at", "cron")}
    for key, value in (("restart_at", req.restart_at), ("cron", req.cron)):
        if value == "":
            schedule.pop(key, None)
        elif value is not None:
            schedule[key] = value
    if schedule != {k: v for k, v in record.schedule.items() if k in ("restart_at", "cron")}:
        record = record._replace(schedule=schedule)  # the guard works out the next runs again
    if req.health is not None:
        merged = {**record.health, **req.health} if req.health else {}
        if merged and "check" not in merged:
            raise UsageError(
                "--health-every, --health-timeout, --health-retries and --health-start need --health"
            )
        if merged:
            from bgr.health import probes  # only when a probe is given

            probe = probes.from_dict(merged)
            merged = {} if probe is None else probe.to_dict()  # the defaults filled in
        record = record._replace(health=merged)
    if req.on_failure is not None:
        record = record._replace(on_failure=req.on_failure or None)
    return record


def _with_limits(record: ProcessRecord, req: StartRequest) -> ProcessRecord:
    """The guard limits the request sets (None: keep the stored one; 0: remove it)."""
    limits = dict(record.limits)
    for key, value in (("max_memory", req.max_memory), ("restart_every", req.restart_every)):
        if value is None:
            continue
        if value < 0:  # the parsers never give one; a library caller might
            raise UsageError(f"{key} must not be negative (0 removes it)")
        if value:
            limits[key] = value
        else:
            limits.pop(key, None)
    return record._replace(limits=limits) if limits != record.limits else record


# The request fields that change a definition (None or empty: "keep the stored value").
_CHANGES = (
    "command", "directory", "group", "env", "config", "stdout", "stderr", "fetch", "ports", "health",
    "restart_at", "cron", "on_failure", "max_memory", "restart_every",
)  # fmt: skip


def _with_stack(record: ProcessRecord, req: StartRequest) -> ProcessRecord:
    """The stack the definition comes from. A change made outside the stack file (``bgr --name
    api ... --force``) keeps the membership but drops the hash, so the next ``bgr --up`` puts the
    file's definition back instead of taking the changed one for it."""
    if req.stack is not None:
        return record._replace(stack=dict(req.stack))
    if record.stack.get("hash") and any(getattr(req, f) not in (None, {}) for f in _CHANGES):
        return record._replace(stack={k: v for k, v in record.stack.items() if k != "hash"})
    return record


def build(existing: ProcessRecord | None, req: StartRequest, layout: paths.Layout) -> ProcessRecord:
    """Merge a request into the stored definition (new values win) and validate everything; new
    default log paths go in ``layout``'s folder."""
    name = paths.validate_name(req.name)
    group = req.group
    if group is not None:
        group = paths.validate_name(group, "group")
    _check_env(req.env)
    if existing is None:
        command = req.command
        if command is None:
            raise UsageError(f"no process named {name!r}; give --command to start a new one")
        directory = paths.absolute(req.directory) if req.directory else paths.current_directory()
        out_default, err_default = layout.log_paths(name)
        record = ProcessRecord(
            name=name,
            directory=directory,
            command=command,
            stdout=paths.absolute(req.stdout) if req.stdout else out_default,
            stderr=paths.absolute(req.stderr) if req.stderr else err_default,
            group=group,
            env=dict(req.env),
            fetch=bool(req.fetch),
            search_path=os.environ.get("PATH"),
            ports=tuple(req.ports or ()),
        )
    else:
        # A stack file's request is the whole definition: what it leaves out goes back to the default.
        whole = req.stack is not None
        out_default, err_default = layout.log_paths(name) if whole else (existing.stdout, existing.stderr)
        record = existing._replace(
            command=req.command if req.command is not None else existing.command,
            directory=paths.absolute(req.directory) if req.directory else existing.directory,
            stdout=paths.absolute(req.stdout) if req.stdout else out_default,
            stderr=paths.absolute(req.stderr) if req.stderr else err_default,
            group=group if group is not None else existing.group,
            env=dict(req.env) if whole else {**existing.env, **req.env},
            config_path=None if whole else existing.config_path,
            fetch=existing.fetch if req.fetch is None else req.fetch,
            search_path=os.environ.get("PATH") or existing.search_path,
            ports=existing.ports if req.ports is None else tuple(req.ports),
        )
    record = _with_stack(_with_limits(_with_health_loop(record, req), req), req)
    if not record.command.strip():
        raise UsageError('the command is empty; pass --command "what to run"')
    _check_text(record)
    _check_directory(record.directory)
    # Checked here, before anything is stopped: a --force start must not kill the running instance
    # and then fail to launch the new one.
    check_log_directories(record)
    # The request's own spelling: a relative one that is missing gets a hint about --directory.
    explicit = req.config or record.config_path
    config_path, config_env = _load_config(record.directory, explicit)
    return record._replace(config_path=config_path, config_env=config_env)


def _check_text(record: ProcessRecord) -> None:
    """Refuse bytes that are not UTF-8 (they reach us as surrogate escapes): the registry stores
    text, and writing the row would otherwise fail only after the process was spawned."""
    fields = {
        "command": record.command,
        "directory": record.directory,
        "stdout path": record.stdout,
        "stderr path": record.stderr,
        "PATH": record.search_path or "",
    }
    for what, value in fields.items():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise UsageError(f"the {what} {value!r} is not valid UTF-8; bgr stores it as text") from None


def check_log_directories(record: ProcessRecord) -> None:
    """Refuse log paths whose directory does not exist (the child could not open them)."""
    for path in {record.stdout, record.stderr}:
        parent = os.path.dirname(path)
        if not os.path.isdir(parent):
            raise UsageError(f"log directory {parent} does not exist; create it first")
