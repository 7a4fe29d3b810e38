"""What every export takes and gives: options, output files, and the facts of a stack they share
(which processes others wait for, and for what; a probe's parts; durations)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from bgr.errors import UsageError
from bgr.health import probes
from bgr.record import Record
from bgr.stack.files import COMPLETED, HEALTHY, STARTED, Service, Stack

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: see bgr/record.py
if TYPE_CHECKING:
    from typing import Any

DEFAULT_IMAGE = "python:3-slim"
_STRENGTH = {STARTED: 0, HEALTHY: 1, COMPLETED: 2}


class Options(Record):
    """How to export: ``out`` is the absolute output directory (None: stdout)."""

    out: str | None = None
    image: str = DEFAULT_IMAGE
    show_env: bool = False
    source: str = ""  # what it was exported from, for the header comment
    python: str = "python3"  # this machine's interpreter with bgr (systemd's readiness wait)
    search_path: str = ""  # the PATH to run with (systemd), as bgr keeps the starter's PATH


class Output(Record):
    """One file to write (``private``: mode 0600, for environment values)."""

    name: str
    text: str
    private: bool = False


class Exported(Record):
    """The files of one export, and notes on what could not be carried over."""

    files: tuple[Output, ...]
    notes: tuple[str, ...] = ()


def needed(stack: Stack) -> dict[str, str]:
    """For each process, the strongest condition another process of the stack puts on it."""
    found: dict[str, str] = {}
    for service in stack.services:
        for dep in service.depends_on:
            if _STRENGTH[dep.condition] > _STRENGTH.get(found.get(dep.name, ""), -1):
                found[dep.name] = dep.condition
    return found


def probe_of(service: Service) -> probes.Probe | None:
    health = service.request.health
    return probes.from_dict(health) if health else None


def env_of(service: Service) -> Mapping[str, str]:
    return service.request.env


class HttpTarget(Record):
    scheme: str
    host: str
    port: int
    path: str


def http_target(probe: probes.Probe) -> HttpTarget:
    parts = urlsplit(probe.target)
    secure = parts.scheme == "https"
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return HttpTarget(
        "HTTPS" if secure else "HTTP", parts.hostname or "", parts.port or (443 if secure else 80), path
    )


def tcp_target(probe: probes.Probe) -> tuple[str, int]:
    host, _, port = probe.target.rpartition(":")
    return host.strip("[]"), int(port)


def probe_port(probe: probes.Probe | None) -> int | None:
    if probe is None or probe.kind == probes.CMD:
        return None
    return http_target(probe).port if probe.kind == probes.HTTP else tcp_target(probe)[1]


def go_duration(seconds: float) -> str:
    """``10s``, ``1500ms``: durations as Compose writes them."""
    if float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{round(seconds * 1000)}ms"


def memory(size: int, units: tuple[str, str, str]) -> str:
    """``size`` bytes in the largest of K, M, G (powers of 1024, spelled ``units`` by the
    engine) that holds it whole, else in bytes: ``200M``, ``200m``, ``200Mi``."""
    for power, unit in ((3, units[2]), (2, units[1]), (1, units[0])):
        if size % 1024**power == 0:
            return f"{size // 1024**power}{unit}"
    return str(size)


def whole_seconds(seconds: float, minimum: int = 1) -> int:
    """Kubernetes takes whole seconds: rounded up, at least ``minimum``."""
    whole = int(seconds) + (0 if float(seconds).is_integer() else 1)
    return max(minimum, whole)


_DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


def dns_name(*parts: str) -> str:
    """``shop``, ``Api_v2`` → ``shop-api-v2``: a DNS-1123 label, as Kubernetes names must be."""
    text = "-".join(parts).lower()
    text = re.sub(r"[^a-z0-9-]+", "-", text).strip("-")
    text = re.sub(r"-{2,}", "-", text)[:63].rstrip("-")
    if not _DNS_LABEL.fullmatch(text):
        raise UsageError(f"cannot make a Kubernetes name out of {'-'.join(parts)!r}")
    return text


def unique_names(stack: Stack, make: Any) -> dict[str, str]:
    """``make(name)`` for every process, refusing two processes that end up with one name."""
    names: dict[str, str] = {}
    for service in stack.services:
        made = make(service.name)
        clash = next((n for n, m in names.items() if m == made), None)
        if clash is not None:
            raise UsageError(f"{clash} and {service.name} would both be named {made}; rename one")
        names[service.name] = made
    return names


def header(fmt: str, options: Options, stack: Stack) -> list[str]:
    return [f"Written by bgr --export {fmt} from {options.source or stack.path} (stack {stack.name})."]
