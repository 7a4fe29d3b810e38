"""Text for people (an aligned table, colour only on a terminal) and JSON for scripts.

The JSON shape is a public interface documented in the README; add fields, never rename them.
"""

from __future__ import annotations

import json
import os
import time

from bgr.models import FreedPort, ProcessInfo, Status, StopResult

TYPE_CHECKING = False  # typing costs 3 ms to import; mypy treats this name as True
if TYPE_CHECKING:
    from typing import Any

_COLOURS = {
    Status.RUNNING: "32",  # green
    Status.STOPPED: "90",  # grey
    Status.EXITED: "90",
    Status.CRASHED: "31",  # red
    Status.BACKOFF: "33",  # yellow
    Status.FATAL: "1;31",  # bold red
}
EMPTY_HINT = 'no processes yet; start one with: bgr --name NAME --command "…"'


def iso_time(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def duration(seconds: float | None) -> str:
    """``42s``, ``3m12s``, ``5h03m``, ``2d04h``."""
    if seconds is None:
        return "-"
    total = max(0, int(seconds))
    if total < 60:
        return f"{total}s"
    if total < 3600:
        return f"{total // 60}m{total % 60:02d}s"
    if total < 86400:
        return f"{total // 3600}h{total % 3600 // 60:02d}m"
    return f"{total // 86400}d{total % 86400 // 3600:02d}h"


def size(num_bytes: int | None) -> str:
    if num_bytes is None:
        return "-"
    value = float(num_bytes)
    for unit in ("B", "K", "M", "G"):
        if value < 1024 or unit == "G":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    return f"{value:.1f}T"


def uptime(info: ProcessInfo) -> float | None:
    started = info.record.started_at
    if info.status is not Status.RUNNING or started is None:
        return None
    return max(0.0, time.time() - started)


def as_dict(info: ProcessInfo, *, show_env: bool = False, details: bool = False) -> dict[str, Any]:
    """One process as a JSON-safe dict (the README documents every key)."""
    record = info.record
    env = record.child_env()
    data: dict[str, Any] = {
        "name": record.name,
        "status": info.status.value,
        "pid": info.pid,
        "pgid": record.pgid if info.status is Status.RUNNING else None,
        "group": record.group,
        "directory": record.directory,
        "command": record.command,
        "started_at": iso_time(record.started_at),
        "uptime": uptime(info),
        "stopped_at": iso_time(record.stopped_at),
        "exit_code": info.exit_code,
        "restarts": record.restarts,
        "desired": record.desired.value,
        "memory": info.memory_rss,
        "stdout": record.stdout,
        "stderr": record.stderr,
        "config": record.config_path,
        "fetch": record.fetch,
        "env_keys": sorted(env),
        "guard": dict(record.guard),
    }
    if show_env:
        data["env"] = env
    if details:
        data["cpu_percent"] = info.cpu_percent
        data["ports"] = list(info.ports)
        data["events"] = [dict(event) for event in record.events]
    return data


def to_json(payload: Any) -> str:
    return json.dumps(payload, indent=2, ensure_ascii=False)


def _paint(text: str, status: Status, colour: bool) -> str:
    return f"\033[{_COLOURS[status]}m{text}\033[0m" if colour else text


def table(infos: list[ProcessInfo], *, colour: bool, width: int = 120) -> str:
    """The ``bgr`` listing: one aligned row per process; the command is cut to fit ``width``."""
    if not infos:
        return EMPTY_HINT
    header = ("NAME", "GROUP", "STATUS", "PID", "UPTIME", "↺", "MEMORY", "COMMAND")
    rows = [
        (
            info.name,
            info.record.group or "-",
            info.status.value,
            str(info.pid) if info.pid else "-",
            duration(uptime(info)),
            str(info.record.restarts),
            size(info.memory_rss),
            info.record.command.replace("\n", " "),
        )
        for info in infos
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    lead = sum(widths) + 2 * len(widths)
    room = max(20, width - lead)

    def line(cells: tuple[str, ...], status: Status | None) -> str:
        parts = []
        for i, cell in enumerate(cells[:-1]):
            padded = cell.ljust(widths[i])
            parts.append(_paint(padded, status, colour) if i == 2 and status else padded)
        command = cells[-1]
        if len(command) > room:
            command = command[: room - 1] + "…"
        return "  ".join([*parts, command]).rstrip()

    out = [line(header, None)]
    out.extend(line(row, info.status) for row, info in zip(rows, infos, strict=True))
    return "\n".join(out)


def details(info: ProcessInfo, *, show_env: bool, colour: bool) -> str:
    """``bgr NAME``: everything known about one process, one fact per line."""
    record = info.record
    env = record.child_env()
    facts: list[tuple[str, str]] = [
        ("name", record.name),
        ("status", _paint(info.status.value, info.status, colour)),
        ("pid", str(info.pid) if info.pid else "-"),
        ("group", record.group or "-"),
        ("started", iso_time(record.started_at) or "-"),
        ("uptime", duration(uptime(info))),
        ("stopped", iso_time(record.stopped_at) or "-"),
        ("exit code", "-" if info.exit_code is None else str(info.exit_code)),
        ("restarts", str(record.restarts)),
        ("directory", record.directory),
        ("command", record.command),
        (
            "config",
            record.config_path or f"{os.path.join(record.directory, '.config.toml')} (default, if present)",
        ),
        ("stdout", record.stdout),
        ("stderr", record.stderr),
        ("fetch", "yes" if record.fetch else "no"),
    ]
    if info.status is Status.RUNNING:
        facts.append(("memory", size(info.memory_rss)))
        if info.cpu_percent is not None:
            facts.append(("cpu", f"{info.cpu_percent:.1f}% (average since start)"))
        facts.append(("ports", ", ".join(map(str, info.ports)) or "-"))
    guard = record.guard
    if guard:
        facts.append(("guard", ", ".join(f"{k}={v}" for k, v in sorted(guard.items()))))
    if show_env:
        facts.extend((f"env {k}", v) for k, v in sorted(env.items()))
    else:
        facts.append(("env keys", ", ".join(sorted(env)) or "-"))
    label_width = max(len(k) for k, _ in facts)
    lines = [f"{k.ljust(label_width)}  {v}" for k, v in facts]
    if record.events:
        lines.append("events:")
        for event in record.events[-10:]:
            when = iso_time(event.get("at")) or "?"
            detail = f" ({event['detail']})" if event.get("detail") else ""
            lines.append(f"  {when}  {event.get('event', '?')}{detail}")
    return "\n".join(lines)


def started_line(
    info: ProcessInfo, *, replaced: bool, pulled: str | None, freed: tuple[FreedPort, ...]
) -> str:
    verb = "restarted" if replaced else "started"
    lines = []
    if pulled:
        lines.append(f"git: {pulled}")
    lines.extend(f"freed port {f.port}: stopped pid {f.pid} ({f.command})" for f in freed)
    lines.append(f"{verb} {info.name} (pid {info.record.pid}); logs: bgr {info.name} --logs")
    return "\n".join(lines)


def stopped_line(result: StopResult, verb: str) -> str:
    if not result.was_running:
        state = "was not running"
    elif result.leftover:
        state = f"could not stop pids {', '.join(map(str, result.leftover))}"
    elif result.killed:
        state = "killed after the grace period"
    else:
        state = "stopped"
    return f"{verb} {result.name}: {state}"
