"""Reproducible performance figures for bgr, side by side with supervisord and pm2.

Run from anywhere, with the project venv's own interpreter (not a pyenv shim: a shim adds ~80 ms to
every interpreter start, and the bgr console scripts are found next to this interpreter)::

    sh bench/setup-peers.sh                 # once: supervisor and pm2 into bench/.peers/ (optional)
    .venv/bin/python bench/run.py           # full run, ~5 min on 2 cores
    .venv/bin/python bench/run.py --quick   # smoke run
    .venv/bin/python bench/run.py --only list,start --managers bgr --markdown

Every figure is a median over repeated runs after a warm-up, with min and max. Nothing here passes or
fails: goals are printed next to bgr's figures and marked met or missed. Each manager runs with its
own state in a temporary directory, and everything started is stopped at the end, on Ctrl-C too.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

sys.path.insert(0, str(Path(__file__).resolve().parent))

from figures import FIGURES, ROWS, Context, Results, run_figure
from harness import FULL, QUICK, BenchError, Cell, Sandbox, interpreter, load, machine, skipped
from managers import MANAGERS, Manager, Tools

HOW = [
    ("list", "`bgr` / `supervisorctl status` / `pm2 ls`; as JSON: `bgr --json` / — / `pm2 jlist`"),
    (
        "start",
        '`bgr --name N --command "sh child.sh" --wait 0` (new name) / `supervisorctl start N` of a program '
        "defined beforehand (startsecs=0; the default 1 s would add a second) / "
        "`pm2 start /bin/sh --name N -- child.sh`",
    ),
    ("stop 20, one call", "`bgr --nuke` (also forgets them) / `supervisorctl stop all` / `pm2 delete all`"),
    ("stop 20, each", "`bgr --stop N` / `supervisorctl stop N` / `pm2 stop N`, 20 calls"),
    ("restart", "`bgr N --restart --wait 0` / `supervisorctl restart N` / `pm2 restart N`"),
    (
        "startup",
        "bgr only: its default start watches the new process until it settles (50 ms without CPU "
        "use) or 1 s pass, to catch a crash at start; a Python http.server until it accepts a "
        "connection, a Python sleeper, and the same with `--wait 0`; a restart with `--wait 0` "
        "alone and with `bgr-guard --all` running",
    ),
    (
        "crash",
        "SIGKILL to a process that has run > 10 s (bgr: its process group, since dash forks the "
        "command); latency = the new instance's first `date +%s%N` minus the kill time, so it "
        "includes starting sh and date (~1-2 ms). Supervisor: `bgr-guard --all` / "
        "autorestart=true / pm2's default autorestart",
    ),
    (
        "memory, idle CPU",
        "RSS of bgr-guard / supervisord / pm2's God Daemon; CPU time from 2 s after it took over the "
        "20 processes until the crash round (~9 s; pm2's 30 s housekeeping may fall outside)",
    ),
    (
        "logs",
        "a Python writer sends 200 MB in 64 KiB writes to its stdout: the log file bgr opened for it "
        "(O_APPEND) / a pipe to supervisord / a pipe to pm2; the same writer straight to a file",
    ),
]


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run.py",
        description="Measure bgr (and supervisord, pm2 where installed) and print a table.",
    )
    parser.add_argument("--quick", action="store_true", help="few repetitions: a smoke run")
    parser.add_argument(
        "--only", metavar="NAME,...", help=f"figures to run, from: {', '.join(FIGURES)} (default: all)"
    )
    parser.add_argument(
        "--managers",
        metavar="NAME,...",
        default=",".join(m.key for m in MANAGERS),
        help="managers to measure (default: %(default)s)",
    )
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--json", metavar="FILE", help="also write every sample to FILE")
    args = parser.parse_args(argv)
    args.figures = _choose(parser, args.only, list(FIGURES), "figure")
    args.chosen = _choose(parser, args.managers, [m.key for m in MANAGERS], "manager")
    return args


def _choose(parser: argparse.ArgumentParser, text: str | None, known: list[str], what: str) -> list[str]:
    if not text:
        return known
    wanted = [w.strip() for w in text.split(",") if w.strip()]
    unknown = [w for w in wanted if w not in known]
    if unknown:
        parser.error(f"unknown {what} {', '.join(unknown)}; choose from {', '.join(known)}")
    return [k for k in known if k in wanted]


def _progress(text: str) -> None:
    sys.stderr.write(f"[bench] {text}\n")
    sys.stderr.flush()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def measure(args: argparse.Namespace, sandbox: Sandbox, tools: Tools) -> tuple[Results, dict[str, str], bool]:
    """Run the chosen figures for each chosen manager, one manager at a time."""
    reps = QUICK if args.quick else FULL
    results = Results()
    ctx = Context(reps=reps, sandbox=sandbox, results=results)
    versions: dict[str, str] = {}
    managers: list[Manager] = [cls(sandbox, tools) for cls in MANAGERS if cls.key in args.chosen]
    interrupted = False
    try:
        for m in managers:
            reason = _open(m, versions)
            if reason is not None:
                _skip(m, reason, args.figures, results)
                continue
            try:
                for figure in args.figures:
                    _progress(f"{m.title}: {figure}")
                    started = time.monotonic()
                    run_figure(figure, m, ctx)
                    _progress(f"{m.title}: {figure} done in {time.monotonic() - started:.1f} s")
            finally:
                m.close()
    except KeyboardInterrupt:
        interrupted = True
        _progress("interrupted: stopping everything")
        for m in managers:
            try:
                m.close()
            except Exception as exc:
                _progress(f"{m.title}: close failed: {exc}")
    return results, versions, interrupted


def _open(m: Manager, versions: dict[str, str]) -> str | None:
    """Start a manager; the reason it is skipped, or None."""
    reason = m.missing()
    if reason is not None:
        return reason
    try:
        _progress(f"{m.title}: starting")
        m.open()
        versions[m.key] = m.version()
    except BenchError as exc:
        return f"could not start: {exc}"
    return None


def _skip(m: Manager, reason: str, figures: list[str], results: Results) -> None:
    _progress(f"{m.title}: skipped ({reason})")
    results.notes.append(f"{m.title} skipped: {reason}")
    short = reason if len(reason) <= 60 else "could not start (see the notes)"
    for figure in figures:
        for row in ROWS[figure]:
            results.put(row.key, m.key, skipped(short))


def _table(results: Results, chosen: list[str], figures: list[str]) -> tuple[list[str], list[list[str]]]:
    titles = {m.key: m.title for m in MANAGERS}
    peers = [k for k in chosen if k != "bgr"]
    header = ["figure", "bgr", "goal", "", *(titles[k] for k in peers)]
    if "bgr" not in chosen:
        header = ["figure", *(titles[k] for k in peers)]
    rows = []
    for figure in figures:
        for row in ROWS[figure]:
            cells = [row.label]
            if "bgr" in chosen:
                cell = results.get(row.key, "bgr") or Cell(text="-")
                verdict = row.goal.test(results) if row.goal else None
                mark = "" if verdict is None else ("met" if verdict else "**missed**")
                cells += [cell.render(), row.goal.text if row.goal else "", mark]
            for key in peers:
                cells.append((results.get(row.key, key) or Cell(text="-")).render())
            rows.append(cells)
    return header, rows


def _render(header: list[str], rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
        return "\n".join(lines)
    plain = [[c.replace("**", "").replace("`", "") for c in r] for r in rows]
    widths = [max(len(r[i]) for r in [header, *plain]) for i in range(len(header))]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in plain]
    return "\n".join(out)


def report(
    args: argparse.Namespace,
    results: Results,
    facts: list[tuple[str, str]],
    versions: dict[str, str],
    extra: list[str],
) -> str:
    md = args.markdown
    parts = []
    facts = [*facts, *((f"{k} version", v) for k, v in versions.items())]
    if md:
        parts.append("\n".join(f"- **{k}**: {v}" for k, v in facts))
    else:
        width = max(len(k) for k, _ in facts)
        parts.append("\n".join(f"{k.ljust(width)}  {v}" for k, v in facts))
    header, rows = _table(results, args.chosen, args.figures)
    parts.append(_render(header, rows, md))
    if results.imports_top:
        top = [
            [name, f"{self_t * 1e3:.1f} ms", f"{cumulative * 1e3:.1f} ms"]
            for name, self_t, cumulative in results.imports_top
        ]
        title = "Top 10 modules by own import time on the list path (median run):"
        parts.append(title + "\n\n" + _render(["module", "self", "cumulative"], top, md))
    notes = [*results.notes, *extra]
    bullet = "- " if md else "  * "
    how = [f"{bullet}{what}: {text}" for what, text in HOW]
    parts.append("How each figure is taken (bgr / supervisord / pm2):\n" + "\n".join(how))
    if notes:
        parts.append("Notes:\n" + "\n".join(f"{bullet}{n}" for n in notes))
    return "\n\n".join(parts) + "\n"


def _dump(path: str, results: Results, facts: list[tuple[str, str]], versions: dict[str, str]) -> None:
    cells = {
        f"{row}/{manager}": {
            "samples": list(cell.stats.samples) if cell.stats else None,
            "unit": cell.unit,
            "value": cell.value,
            "text": cell.text,
        }
        for (row, manager), cell in results.cells.items()
    }
    payload = {"machine": dict(facts), "versions": versions, "cells": cells, "notes": results.notes}
    Path(path).write_text(json.dumps(payload, indent=2) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    python = interpreter()
    tools = Tools.find(python)
    if not tools.bgr.is_file():
        sys.stderr.write(
            f"bench: no bgr console script next to {python}; run this with the project venv's python\n"
        )
        return 2
    signal.signal(signal.SIGTERM, _interrupt)
    began = time.monotonic()
    sandbox = Sandbox.create()
    extra: list[str] = []
    try:
        facts = machine(python, sandbox.root)
        results, versions, interrupted = measure(args, sandbox, tools)
    finally:
        leftovers = sandbox.sweep()
        sandbox.remove()
    extra.extend(sandbox.notes)
    extra.append(f"load average at the end: {load()} (at the start: see above)")
    if leftovers:
        extra.append(f"cleanup found {len(leftovers)} leftover process(es) and killed them: {leftovers}")
    else:
        extra.append("cleanup: no process of this run was left behind")
    extra.append(
        f"the whole run took {time.monotonic() - began:.0f} s ({'--quick' if args.quick else 'full'})"
    )
    if interrupted:
        extra.append("INTERRUPTED: the table is incomplete")
    sys.stdout.write(report(args, results, facts, versions, extra))
    if args.json:
        _dump(args.json, results, facts, versions)
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
