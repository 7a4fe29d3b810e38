"""Every shape bgr prints: the table, details, JSON, start and stop lines, --watch lines.

Text for people (an aligned table, colour only on a terminal) and JSON for scripts. The JSON shape
is a public interface documented in the README; add fields, never rename them. ``emit`` is the
one place that writes a result to stdout.
"""

from __future__ import annotations

import os
import sys
import time

from bgr import jsontext
from bgr.errors import BgrError
from bgr.models import FreedPort, ProcessInfo, ProcessRecord, StartResult, Status, StopResult
from bgr.units import format_size

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: see bgr/record.py
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

_COLOURS = {
    Status.RUNNING: "32",  # green
    Status.STOPPED: "90",  # grey
    Status.EXITED: "90",
    Status.STARTING: "33",
    Status.CRASHED: "31",  # red
    Status.BACKOFF: "33",  # yellow
    Status.FATAL: "1;31",  # bold red
    Status.SCHEDULED: "36",  # cyan
}
EMPTY_HINT = 'no processes yet; start one with: bgr --name NAME --command "CMD"'


def emit(text: str) -> None:
    """Write one result to stdout, ending it with a newline."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def colour() -> bool:
    """Whether stdout takes colour: a terminal, and neither NO_COLOR nor TERM=dumb."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def terminal_width() -> int:
    """Like shutil.get_terminal_size (COLUMNS first, then the terminal), without importing shutil."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        return os.get_terminal_size(sys.stdout.fileno()).columns
    except (OSError, ValueError):
        return 120


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
        "declared_ports": list(record.ports),
        "seen_ports": list(record.seen_ports),
        "members": [pid for pid, _ in record.members],
        "cgroup": record.cgroup,
        "intent": dict(record.intent),
        "health": health_dict(record),
        "schedule": _schedule_dict(record),
        "on_failure": record.on_failure,
        "limits": dict(record.limits),
    }
    if show_env:
        data["env"] = env
    if details:
        data["cpu_percent"] = info.cpu_percent
        data["ports"] = list(info.ports)
        data["events"] = [dict(event) for event in record.events]
        data["runs"] = [_run_dict(run) for run in record.runs]
    return data


def health_dict(record: ProcessRecord) -> dict[str, Any] | None:
    """The probe and what it found (None: no probe); times as ISO 8601."""
    if not record.health:
        return None
    found = dict(record.health_state)
    return {
        **dict(record.health),
        "state": found.get("state", "starting"),
        "last_check": iso_time(found.get("last_check")),
        "last_error": found.get("last_error") or None,
        "failures": found.get("failures", 0),
    }


def _schedule_dict(record: ProcessRecord) -> dict[str, Any]:
    schedule = dict(record.schedule)
    if "next_run" in schedule:
        schedule["next_run"] = iso_time(schedule["next_run"])
    return schedule


def _run_dict(run: Any) -> dict[str, Any]:
    data = dict(run)
    data["started"] = iso_time(data.get("started"))
    return data


def health_text(record: ProcessRecord) -> str:
    """The HEALTH cell: healthy, unhealthy, starting, or - without a probe."""
    if not record.health:
        return "-"
    return str(record.health_state.get("state") or "starting")


def next_run_text(record: ProcessRecord) -> str:
    """The NEXT cell: when bgr-guard runs or restarts it next (local time), - when nothing is due."""
    upcoming = record.schedule.get("next_run")
    if not isinstance(upcoming, int | float):
        return "-"
    return time.strftime("%m-%d %H:%M", time.localtime(upcoming))


def to_json(payload: Any) -> str:
    return jsontext.dumps_indented(payload)


def _paint(text: str, status: Status, colour: bool) -> str:
    return f"\033[{_COLOURS[status]}m{text}\033[0m" if colour else text


def table(infos: list[ProcessInfo], *, colour: bool, width: int = 120) -> str:
    """The ``bgr`` listing: one aligned row per process; the command is cut to fit ``width``."""
    if not infos:
        return EMPTY_HINT
    fancy = _encodable("↺…")
    # HEALTH and NEXT only where some process has a probe or a schedule: no empty columns.
    probed = any(info.record.health for info in infos)
    timed = any(info.record.schedule.get("next_run") for info in infos)
    header = (
        "NAME",
        "GROUP",
        "STATUS",
        *(("HEALTH",) if probed else ()),
        "PID",
        "UPTIME",
        "↺" if fancy else "RESTARTS",
        "MEMORY",
        *(("NEXT",) if timed else ()),
        "COMMAND",
    )
    rows = [
        (
            info.name,
            info.record.group or "-",
            info.status.value,
            *((health_text(info.record),) if probed else ()),
            str(info.pid) if info.pid else "-",
            duration(uptime(info)),
            str(info.record.restarts),
            format_size(info.memory_rss),
            *((next_run_text(info.record),) if timed else ()),
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
            command = command[: room - 1] + "…" if fancy else command[: room - 3] + "..."
        return "  ".join([*parts, command]).rstrip()

    out = [line(header, None)]
    out.extend(line(row, info.status) for row, info in zip(rows, infos, strict=True))
    return "\n".join(out)


def _encodable(text: str) -> bool:
    """Whether stdout's encoding can show ``text`` (not so under LANG=C, or a latin-1 terminal)."""
    try:
        text.encode(sys.stdout.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


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
        ("exit code", _exit_code(info)),
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
        facts.append(("memory", format_size(info.memory_rss)))
        if info.cpu_percent is not None:
            facts.append(("cpu", f"{info.cpu_percent:.1f}% (average since start)"))
        facts.append(("ports", ", ".join(map(str, info.ports)) or "-"))
        facts.append(("tracked by", tracking(record)))
    if record.ports or record.seen_ports:
        facts.append(("its ports", _its_ports(record)))
    if record.intent:
        facts.append(
            (
                "interrupted",
                f"a {record.intent.get('op', 'start')} of instance {record.intent.get('instance')} did not "
                "finish; the next bgr command on this name (or bgr-guard) adopts or clears it",
            )
        )
    facts.extend(_health_loop_facts(record))
    guard = record.guard
    if guard:
        facts.append(("guard", ", ".join(f"{k}={v}" for k, v in sorted(guard.items()))))
    if show_env:
        facts.extend((f"env {k}", v) for k, v in sorted(env.items()))
    else:
        facts.append(("env keys", ", ".join(sorted(env)) or "-"))
    label_width = max(len(k) for k, _ in facts)
    lines = [f"{k.ljust(label_width)}  {v}" for k, v in facts]
    lines.extend(_runs(record))
    if record.events:
        lines.append("events:")
        for event in record.events[-10:]:
            when = iso_time(event.get("at")) or "?"
            detail = f" ({event['detail']})" if event.get("detail") else ""
            lines.append(f"  {when}  {event.get('event', '?')}{detail}")
    return "\n".join(lines)


def _exit_code(info: ProcessInfo) -> str:
    if info.exit_code is not None:
        return str(info.exit_code)
    if info.status in (Status.EXITED, Status.BACKOFF, Status.FATAL):
        return "unknown (no bgr was its parent when it ended; bgr-guard's children report theirs)"
    return "-"


def _health_loop_facts(record: ProcessRecord) -> list[tuple[str, str]]:
    facts = []
    health = health_dict(record)
    if health is not None:
        probe = f"{health['check']} every {health['every']:g}s (timeout {health['timeout']:g}s, "
        probe += f"unhealthy after {health['retries']} failures, grace {health['start']:g}s)"
        facts.append(("health check", probe))
        state = str(health["state"])
        if health["last_check"]:
            state += f" (last checked {health['last_check']})"
        if health["last_error"]:
            state += f"; last failure: {health['last_error']}"
        facts.append(("health", state))
    schedule = record.schedule
    if schedule.get("restart_at"):
        facts.append(("restart at", f"{schedule['restart_at']} (cron, local time)"))
    if schedule.get("cron"):
        facts.append(("runs at", f"{schedule['cron']} (cron, local time)"))
    if schedule.get("next_run"):
        facts.append(("next", f"{iso_time(schedule['next_run'])} (while bgr-guard runs)"))
    if record.on_failure:
        facts.append(("on failure", record.on_failure))
    limits = _limits_text(record)
    if limits:
        facts.append(("guard limits", limits))
    return facts


def _limits_text(record: ProcessRecord) -> str:
    """``max memory 200.0M, restart every 86400s`` ("" when it has no limits of its own)."""
    parts = []
    if record.limits.get("max_memory"):
        parts.append(f"max memory {format_size(record.limits['max_memory'])}")
    if record.limits.get("restart_every"):
        parts.append(f"restart every {float(record.limits['restart_every']):g}s")
    return ", ".join(parts)


def _runs(record: ProcessRecord) -> list[str]:
    """A --cron job's last runs: when, how long, how it ended."""
    lines = ["runs:"] if record.runs else []
    for run in record.runs[-10:]:
        took = run.get("took")
        lasted = "still running" if took is None else f"took {duration(took)}"
        ended = "" if took is None else f", {_run_end(run.get('exit_code'))}"
        lines.append(f"  {iso_time(run.get('started')) or '?'}  {lasted}{ended}")
    return lines


def _run_end(code: object) -> str:
    from bgr.proc.exits import describe_exit

    return describe_exit(code if isinstance(code, int) else None)


def tracking(record: ProcessRecord) -> str:
    """How bgr finds every process of the instance, and what that cannot see."""
    if record.cgroup:
        return f"its cgroup {record.cgroup} (nothing it starts can leave it)"
    parts = [f"process group {record.pgid}"]
    if record.members:
        parts.append(f"pids {', '.join(str(pid) for pid, _ in record.members)} (left the group)")
    parts.append("its environment marker")
    return (
        ", ".join(parts) + "; no cgroup here, so a process that leaves the group and overwrites its "
        "environment after the start window is not seen (see README: daemons)"
    )


def _its_ports(record: ProcessRecord) -> str:
    declared = ", ".join(map(str, record.ports))
    seen = ", ".join(str(p) for p in record.seen_ports if p not in record.ports)
    return "; ".join(
        filter(None, (f"{declared} (--port)" if declared else "", f"{seen} (seen)" if seen else ""))
    )


def started(result: StartResult, *, replaced: bool | None = None) -> str:
    """``started web (pid 4242); logs: ...``, after what a --fetch pull and --force did."""
    info = result.info
    verb = "restarted" if (result.replaced if replaced is None else replaced) else "started"
    lines = []
    if result.pulled:
        lines.append(f"git: {result.pulled}")
    lines.extend(_freed(f) for f in result.freed)
    name = info.name
    if result.how == "finished":
        lines.append(f"{name} ran and finished at once (exit code 0); it is not running: bgr {name} --logs")
    elif result.how == "scheduled":
        cron = info.record.schedule.get("cron")
        upcoming = next_run_text(info.record)
        lines.append(
            f"scheduled {name}: cron {cron!r}, next run {upcoming} (local time); bgr-guard runs it, "
            f"bgr start {name} runs it now"
        )
    elif result.how == "healthy":
        pid = info.record.pid
        lines.append(f"{verb} {name} (pid {pid}), healthy after {result.after:.2f}s; logs: bgr {name} --logs")
    elif result.how == "daemonized":
        lines.append(
            f"{verb} {name} (pid {info.record.pid}, daemonized: its launcher exited); logs: bgr {name} --logs"
        )
    else:
        lines.append(f"{verb} {name} (pid {info.record.pid}); logs: bgr {name} --logs")
    return "\n".join(lines)


def _freed(freed: FreedPort) -> str:
    return f"freed port {freed.port}: stopped pid {freed.pid} ({freed.command})"


def stop_results(results: Sequence[StopResult], verb: str, *, as_json: bool) -> str:
    """What a --stop, --delete or --nuke did: a line per process, or a JSON array."""
    if as_json:
        return to_json(
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
    if not results:
        return "no processes"
    return "\n".join(_stopped_line(r, verb) for r in results)


def _stopped_line(result: StopResult, verb: str) -> str:
    """``stopped web``, ``web was not running``, ``deleted web (killed after the grace period)``."""
    name = result.name
    if result.leftover:
        pids = ", ".join(map(str, result.leftover))
        return f"{verb} {name}, but pids {pids} still run (another user's?)"
    if not result.was_running:
        return f"{name} was not running" if verb == "stopped" else f"{verb} {name} (it was not running)"
    return f"{verb} {name} (killed after the grace period)" if result.killed else f"{verb} {name}"


def outcome_dict(name: str, outcome: StartResult | BgrError) -> dict[str, Any]:
    """One name of a bulk (re)start in JSON: the process, or what went wrong."""
    if isinstance(outcome, BgrError):
        return {"name": name, "error": outcome.message, "exit_code": outcome.exit_code}
    return as_dict(outcome.info)


def cleaned(removed: Sequence[str], *, as_json: bool) -> str:
    """What --clean forgot."""
    if as_json:
        return to_json(list(removed))
    return f"forgot {len(removed)}: {', '.join(removed)}" if removed else "nothing to clean"


def ended(code: int | None) -> str:
    """How a process ended, as the end of a sentence about it: ``crashed with exit code 3``."""
    from bgr.proc.exits import describe_exit, signal_of

    if code is None:
        return f"stopped running ({describe_exit(code)})"
    if signal_of(code):
        return f"was {describe_exit(code)}"
    return f"{'exited' if code == 0 else 'crashed'} with {describe_exit(code)}"


# --- bgr --watch -----------------------------------------------------------------------------


def describe_changes(paths: Sequence[str], shown: int = 2) -> str:
    """``a.py``, ``a.py and b.py``, ``a.py, b.py and c.py``, ``a.py, b.py and 3 more``."""
    if not paths:
        return "nothing"
    if len(paths) <= shown + 1:
        return paths[0] if len(paths) == 1 else f"{', '.join(paths[:-1])} and {paths[-1]}"
    return f"{', '.join(paths[:shown])} and {len(paths) - shown} more"


def watching(directory: str, directories: int) -> str:
    plural = "directory" if directories == 1 else "directories"
    return f"watching {directory} ({directories} {plural}); Ctrl-C stops watching"


def watch_restarted(result: StartResult, changes: Sequence[str]) -> str:
    """``restarted web (pid 4242): a.py and b.py changed``, after a --fetch pull's summary."""
    line = f"restarted {result.info.name} (pid {result.info.record.pid}): {describe_changes(changes)} changed"
    return f"git: {result.pulled}\n{line}" if result.pulled else line


def watch_exited(name: str, code: int | None, *, stopped: bool) -> str:
    if stopped:
        return f"{name} was stopped (bgr --stop); the next change starts it again"
    return f"{name} {ended(code)}; waiting for a change to restart it"


def indented(text: str) -> str:
    """Text shown under a line it belongs to (a crash's stderr tail)."""
    return "".join(f"  {line}" for line in text.splitlines(keepends=True))


def labelled(label: str, text: str) -> str:
    """Log lines with a ``[stdout]``/``[stderr]`` prefix, when both streams are shown."""
    return "".join(f"[{label}] {line}" for line in text.splitlines(keepends=True))


def watch_summary(name: str, info: ProcessInfo | None) -> str:
    """The last line of a watch: whether the process outlives it."""
    if info is None:
        return "stopped watching"
    if info.status is Status.RUNNING:
        hint = f"stop it with `bgr --stop {name}`"
        return f"stopped watching; {name} keeps running (pid {info.pid}): {hint}"
    return f"stopped watching; {name} is not running ({info.status})"
