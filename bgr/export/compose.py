"""A Compose file: one service per process, in ``--image`` (default ``python:3-slim``).

- ``command`` is ``["/bin/sh", "-c", COMMAND]`` and ``working_dir`` the process's directory, which
  must exist in the image (copy it in, or mount it: the file says so). ``network_mode: host``
  keeps the addresses the processes use under bgr (``127.0.0.1:PORT``) meaning the same.
- ``healthcheck`` comes from the probe (http and tcp checks run ``python3`` in the container,
  which the default image has; ``cmd:`` checks run as written); ``restart: always``, as bgr-guard.
- ``max_memory`` is ``mem_limit`` (a hard cap: over it the container is killed and restarted);
  Compose cannot restart a service after a time, so ``restart_every`` is left out (a note says so).
- ``depends_on`` keeps its conditions: ``service_started``, ``service_healthy`` and
  ``service_completed_successfully``; a process others need completed gets ``restart: "no"``.
- Environment values are written into the file only with ``--show-env``. Otherwise, with ``--out
  DIR``, they go into ``DIR/NAME.env`` (mode 0600), named by ``env_file:``; to stdout without
  ``--show-env``, a stack with environment values is refused rather than printed.

Compose substitutes ``$VAR`` in the whole file, so every ``$`` of a value is written ``$$``.
"""

from __future__ import annotations

from bgr.errors import UsageError
from bgr.export import checks, emit, model
from bgr.stack.files import COMPLETED, Service, Stack

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: see bgr/record.py
if TYPE_CHECKING:
    from typing import Any

FILE_NAME = "compose.yaml"
_CONDITIONS = {
    "started": "service_started",
    "healthy": "service_healthy",
    "completed": "service_completed_successfully",
}


def render(stack: Stack, options: model.Options) -> model.Exported:
    """The Compose file (and env files) for ``stack``."""
    needed = model.needed(stack)
    services: dict[str, Any] = {}
    files: list[model.Output] = []
    notes: list[str] = []
    for service in stack.services:
        services[service.name], env_file = _service(service, needed.get(service.name), options)
        if env_file is not None:
            files.append(env_file)
        if service.request.cron or service.request.restart_at:
            notes.append(f"{service.name}: Compose has no schedules; its cron schedule is not exported")
        if service.request.restart_every:
            notes.append(
                f"{service.name}: Compose cannot restart after a time; its restart_every is not exported"
            )
    comments = [
        *model.header("compose", options, stack),
        f"Every service runs in {options.image}; its working_dir must exist in that image (COPY it",
        "in, or mount it with volumes:). network_mode: host keeps 127.0.0.1:PORT as under bgr.",
    ]
    text = emit.document({"services": services}, comments)
    return model.Exported((model.Output(FILE_NAME, text), *files), tuple(notes))


def _service(
    service: Service, needed: str | None, options: model.Options
) -> tuple[dict[str, Any], model.Output | None]:
    request = service.request
    data: dict[str, Any] = {
        "image": options.image,
        "command": ["/bin/sh", "-c", _dollars(request.command or "")],
        "working_dir": _dollars(request.directory or "/"),
        "network_mode": "host",
        "restart": "no" if needed == COMPLETED else "always",
    }
    if request.max_memory:
        limit = model.memory(request.max_memory, ("k", "m", "g"))
        data["mem_limit"] = int(limit) if limit.isdigit() else limit  # bytes: a number, not a string
    env_file = _environment(service, data, options)
    probe = model.probe_of(service)
    if probe is not None:
        data["healthcheck"] = {
            "test": ["CMD", *map(_dollars, checks.argv(probe))],
            "interval": model.go_duration(probe.every),
            "timeout": model.go_duration(probe.timeout),
            "retries": probe.retries,
            "start_period": model.go_duration(probe.start),
        }
    if service.depends_on:
        data["depends_on"] = {d.name: {"condition": _CONDITIONS[d.condition]} for d in service.depends_on}
    return data, env_file


def _environment(service: Service, data: dict[str, Any], options: model.Options) -> model.Output | None:
    env = model.env_of(service)
    if not env:
        return None
    if options.show_env:
        data["environment"] = {k: _dollars(v) for k, v in sorted(env.items())}
        return None
    if options.out is None:
        raise UsageError(
            f"{service.name} has environment values: give --out DIR (they go into DIR/{service.name}.env, "
            "mode 0600) or --show-env to print them"
        )
    name = f"{service.name}.env"
    data["env_file"] = [name]
    return model.Output(name, _env_file(env, service.name), private=True)


def _env_file(env: dict[str, str] | Any, name: str) -> str:
    """Compose's env_file: ``KEY=VALUE`` lines. Compose v1 takes a value as it is, v2 reads quotes,
    ``$VAR`` and `` #`` comments in it, so only values both read the same are written this way."""
    lines = []
    for key, value in sorted(env.items()):
        if any(c in value for c in "\n\r$\"'#\\") or value != value.strip():
            raise UsageError(
                f"{name}: the value of {key} holds a quote, $, #, a backslash, a line break or outer "
                "spaces, which Compose's env_file versions read differently; use --show-env to write it "
                "into the Compose file instead"
            )
        lines.append(f"{key}={value}")
    return "\n".join(lines) + "\n"


def _dollars(text: str) -> str:
    return text.replace("$", "$$")
