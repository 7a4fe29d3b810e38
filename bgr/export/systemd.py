"""systemd user units: one ``STACK-NAME.service`` per process and a ``STACK.target`` that wants them.

- ``ExecStart=/bin/sh -c "COMMAND"`` in ``WorkingDirectory=``, as bgr runs it; ``Restart=always``,
  since bgr-guard restarts clean exits too.
- ``depends_on`` becomes ``Requires=`` and ``After=``. systemd starts a unit's dependents once it is
  *started*, so a process another one needs *healthy* gets ``ExecStartPost=`` waiting for its probe
  (``python -m bgr.health``, this machine's bgr): the unit counts as started only once that passes.
  A process another one needs *completed* is ``Type=oneshot`` with ``RemainAfterExit=yes``: its
  dependents start after it exited 0, and not at all when it failed.
- Environment values go into ``STACK-NAME.env`` (mode 0600) beside the unit, read with
  ``EnvironmentFile=``; only ``--show-env`` writes them into the unit as ``Environment=`` lines.
- Guard limits: ``max_memory`` is ``MemoryMax=`` (the kernel enforces it on the unit's cgroup:
  over it, the process is killed, and ``Restart=always`` starts it again); ``restart_every`` is
  ``RuntimeMaxSec=`` (systemd stops the unit after that long, and restarts it), except for a
  ``Type=oneshot`` unit, where it means nothing (a note says so).
- ``--cron`` jobs and ``--restart-at`` schedules are not carried over (a note says so): write a
  ``.timer`` for them.

Quoting follows systemd.service(5): in ``ExecStart=`` a ``$`` is written ``$$`` and ``%`` is
``%%``; quoted strings take C escapes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from bgr.errors import UsageError
from bgr.export import model
from bgr.stack.files import COMPLETED, HEALTHY, Service, Stack

# How long a unit others need healthy waits for its probe to pass (bgr --up's default --wait).
READY_WAIT = 30.0


def render(stack: Stack, options: model.Options) -> model.Exported:
    """The units (and env files) for ``stack``."""
    if options.out is None:
        raise UsageError("--export systemd writes several files: give --out DIR")
    needed = model.needed(stack)
    units = model.unique_names(stack, lambda name: f"{stack.name}-{name}")
    files: list[model.Output] = []
    notes: list[str] = []
    for service in stack.services:
        if service.request.cron or service.request.restart_at:
            notes.append(f"{service.name}: its cron schedule is not exported; write a .timer unit for it")
            if service.request.cron:
                continue
        if service.request.restart_every and needed.get(service.name) == COMPLETED:
            notes.append(f"{service.name}: its restart_every is not exported (a Type=oneshot unit runs once)")
        files += _unit(stack, service, units, needed.get(service.name), options)
    wanted = " ".join(f"{units[s.name]}.service" for s in stack.services if not s.request.cron)
    target = [
        *_comments(stack, options),
        "[Unit]",
        f"Description=bgr stack {stack.name}",
        f"Wants={wanted}",
        "",
        "[Install]",
        "WantedBy=default.target",
    ]
    files.append(model.Output(f"{stack.name}.target", "\n".join(target) + "\n"))
    return model.Exported(tuple(files), tuple(notes))


def _comments(stack: Stack, options: model.Options) -> list[str]:
    lines = model.header("systemd", options, stack)
    lines.append(
        f"Install: copy into ~/.config/systemd/user, then systemctl --user enable --now {stack.name}.target"
    )
    return [f"# {line}" for line in lines]


def _unit(
    stack: Stack, service: Service, units: Mapping[str, str], needed: str | None, options: model.Options
) -> list[model.Output]:
    unit = units[service.name]
    lines = [*_comments(stack, options), "[Unit]", f"Description={stack.name}: {service.name} (bgr stack)"]
    lines.append(f"PartOf={stack.name}.target")
    for dep in service.depends_on:
        target = stack.get(dep.name)
        if target is not None and not target.request.cron:
            lines += [f"Requires={units[dep.name]}.service", f"After={units[dep.name]}.service"]
    service_lines, files = _service(service, unit, needed, options)
    lines += ["", "[Service]", *service_lines, "", "[Install]", f"WantedBy={stack.name}.target"]
    return [model.Output(f"{unit}.service", "\n".join(lines) + "\n"), *files]


def _service(
    service: Service, unit: str, needed: str | None, options: model.Options
) -> tuple[list[str], list[model.Output]]:
    """The ``[Service]`` section, and the env file it reads (if any)."""
    request = service.request
    oneshot = needed == COMPLETED
    lines = ["Type=oneshot", "RemainAfterExit=yes"] if oneshot else ["Type=exec"]
    lines.append(f"WorkingDirectory={_path(request.directory or '/')}")
    lines.append(f"ExecStart=/bin/sh -c {_exec_quote(request.command or '')}")
    probe = model.probe_of(service)
    if needed == HEALTHY and probe is not None:
        wait = f"-m bgr.health --within {READY_WAIT:g} {_exec_quote(probe.spec())}"
        lines += [
            f"ExecStartPost={_exec_quote(options.python)} {wait}",
            f"TimeoutStartSec={READY_WAIT * 2:g}",
        ]
    if options.search_path:
        # Not a secret, and what bgr does too: the user manager's own PATH is a bare default.
        lines.append(f"Environment={_env_quote('PATH', options.search_path)}")
    files = []
    env = model.env_of(service)
    if env and options.show_env:
        lines += [f"Environment={_env_quote(k, v)}" for k, v in sorted(env.items())]
    elif env:
        env_file = f"{unit}.env"
        lines.append(f"EnvironmentFile={_path(os.path.join(options.out or '', env_file))}")
        files.append(model.Output(env_file, _env_file(env), private=True))
    for stream, key in (("stdout", "StandardOutput"), ("stderr", "StandardError")):
        if getattr(request, stream):
            lines.append(f"{key}=append:{_path(getattr(request, stream))}")
    if request.max_memory:
        lines.append(f"MemoryMax={model.memory(request.max_memory, ('K', 'M', 'G'))}")
    if not oneshot:
        if request.restart_every:
            lines.append(f"RuntimeMaxSec={model.go_duration(request.restart_every)}")
        lines += ["Restart=always", "RestartSec=1"]
    return lines, files


def _path(path: str) -> str:
    if "\n" in path:
        raise UsageError(f"a path with a line break cannot go into a systemd unit: {path!r}")
    return path.replace("%", "%%")


def _c_escape(text: str) -> str:
    out = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return out.replace("%", "%%")


def _exec_quote(text: str) -> str:
    """One ``ExecStart=`` argument: double-quoted, C-escaped, ``$`` and ``%`` doubled."""
    return '"' + _c_escape(text).replace("$", "$$") + '"'


def _env_quote(key: str, value: str) -> str:
    """``Environment="KEY=VALUE"`` (specifiers are expanded there, variables are not)."""
    return '"' + _c_escape(f"{key}={value}") + '"'


def _env_file(env: Mapping[str, str]) -> str:
    """An ``EnvironmentFile=``: single quotes keep a value as it is; one with a ``'`` is
    double-quoted, where backslash escapes ``\\``, ``"``, ``$`` and `````."""
    lines = []
    for key, value in sorted(env.items()):
        if "'" not in value:
            lines.append(f"{key}='{value}'")
        else:
            escaped = "".join("\\" + c if c in '\\"$`' else c for c in value)
            lines.append(f'{key}="{escaped}"')
    return "\n".join(lines) + "\n"
