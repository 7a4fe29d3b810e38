"""Use case: ``bgr --export``: gather the stack to export, complete, and hand it to a format.

From a stack file, each process's environment is what bgr would give it: its config file (the
``config`` key, else ``DIR/.config.toml``) read in, then ``env_file`` and ``env``. From the
registry (NAMEs, a group, all), each process is its stored definition, with the ``depends_on`` it
was brought up with (dependencies outside the selection are left out). The output directory is
written last, so bad input writes nothing.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from bgr import config, paths
from bgr.errors import UsageError
from bgr.export import model
from bgr.models import ProcessRecord, StartRequest
from bgr.stack import graph
from bgr.stack.files import Dependency, Service, Stack, find, load
from bgr.store import open_registry

FORMATS = ("systemd", "compose", "kubernetes")


def from_file(path: str | None, names: Sequence[str] = ()) -> Stack:
    """The stack file's processes (``names`` and what they depend on), environments complete."""
    stack = load(find(path))
    for name in names:
        if stack.get(name) is None:
            raise UsageError(f"no process {name} in {stack.path} (it has {', '.join(stack.names())})")
    chosen = set(graph.closure(stack, names)) if names else set(stack.names())
    services = tuple(_with_config(s) for s in stack.services if s.name in chosen)
    return stack._replace(services=services)


def _with_config(service: Service) -> Service:
    request = service.request
    directory = request.directory or paths.current_directory()
    found = config.resolve_config(directory, request.config)
    if found is None:
        return service
    return service._replace(request=request._replace(env={**config.load_env(found), **request.env}))


def from_registry(
    names: Sequence[str] = (), *, group: str | None = None, everything: bool = False, db: str | None = None
) -> Stack:
    """Registered processes as a stack named after their group (``bgr`` when they have several)."""
    from bgr.core import queries

    chosen = queries.select(names, group=group, everything=everything, db=db)
    if not chosen:
        raise UsageError("no processes to export")
    with open_registry(db) as reg:
        records = [reg.require(name) for name in chosen]
    groups = {r.group or "" for r in records}
    name = group or (groups.pop() if len(groups) == 1 else "") or "bgr"
    services = tuple(_service(r, set(chosen)) for r in records)
    return Stack(name, paths.db_path(db), services)


def _service(record: ProcessRecord, chosen: set[str]) -> Service:
    request = StartRequest(
        name=record.name,
        command=record.command,
        directory=record.directory,
        group=record.group,
        env=record.child_env(),
        stdout=None,
        stderr=None,
        ports=record.ports,
        health=dict(record.health),
        restart_at=str(record.schedule.get("restart_at") or ""),
        cron=str(record.schedule.get("cron") or ""),
        max_memory=int(record.limits.get("max_memory") or 0),
        restart_every=float(record.limits.get("restart_every") or 0.0),
    )
    depends = dict(record.stack.get("depends_on") or {})
    return Service(
        record.name, request, tuple(Dependency(n, str(c)) for n, c in depends.items() if n in chosen)
    )


def export(
    fmt: str, stack: Stack, *, out: str | None, image: str | None, show_env: bool, source: str
) -> model.Exported:
    """Render ``stack`` as ``fmt`` (nothing is written here)."""
    from importlib import import_module

    if fmt not in FORMATS:
        raise UsageError(f"--export takes {', '.join(FORMATS)}, not {fmt!r}")
    options = model.Options(
        out=None if out is None else paths.absolute(out),
        image=image or model.DEFAULT_IMAGE,
        show_env=show_env,
        source=source,
        python=sys.executable or "python3",
        search_path=os.environ.get("PATH", ""),
    )
    renderer = import_module(f"bgr.export.{fmt}")
    exported: model.Exported = renderer.render(stack, options)
    return exported


def write(exported: model.Exported, out: str) -> list[str]:
    """Write the files into ``out`` (created if missing); env files 0600. Returns the paths."""
    directory = paths.absolute(out)
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create --out directory {directory}: {exc.strerror or exc}") from None
    written = []
    for item in exported.files:
        path = os.path.join(directory, item.name)
        mode = 0o600 if item.private else 0o644
        tmp = f"{path}.tmp-{os.getpid()}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(item.text)
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        except OSError as exc:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
        written.append(path)
    return written
