"""bgr's options: one field each, with its spelling, help and type (see :mod:`bgr.cli.table`).

``Args`` is what the parser returns and what :mod:`bgr.cli.rules` reads; ``TABLE`` derives the
usage text (``bgr --help``) and the fast parse path from it.
"""

from __future__ import annotations

from bgr import units
from bgr.cli.table import Table, flag, many, positionals, value
from bgr.record import Record
from bgr.units import seconds, whole_number


class Args(Record):
    """What the command line said; a field per option, in ``--help`` order."""

    name: str | None = value(
        "--name", "NAME", "Start the process NAME (letters, digits, . _ -).", heading="Start"
    )
    directory: str | None = value(
        "--directory", "DIR", "Working directory (default: the current one).", short="-d"
    )
    command: str | None = value("--command", "CMD", "Shell command to run, as /bin/sh -c CMD.", short="-c")
    config: str | None = value(
        "--config", "FILE", "TOML file turned into env vars (default: DIR/.config.toml if present)."
    )
    env: tuple[str, ...] = many("--env", "KEY=VALUE", "Extra environment variable; repeat for more.")
    group: str | None = value("--group", "GROUP", "Group for --filter (default: $BGR_GROUP).")
    stdout: str | None = value("--stdout", "PATH", "stdout log (default: ~/.bgr/NAME-out.txt).")
    stderr: str | None = value("--stderr", "PATH", "stderr log (default: ~/.bgr/NAME-err.txt).")
    port: tuple[int, ...] = many(
        "--port", "N", "A port it listens on (--force frees it); repeat for more.", convert=units.port
    )
    force: bool = flag("--force", "Restart NAME if it runs, and stop your listeners on its ports.")
    fetch: bool = flag("--fetch", "git pull --ff-only in DIR before every start (remembered).")
    no_fetch: bool = flag("--no-fetch", "Stop pulling before starts (undoes a remembered --fetch).")
    wait: float | None = value(
        "--wait",
        "SECONDS",
        "Watch the new process until it settles, at most this long; fail\n"
        "if it exits (default: 1; 0: return at once).",
        convert=seconds,
    )
    watch: bool = flag("--watch", "Stay in the foreground and restart NAME when files change.")
    debounce: int | None = value(
        "--debounce",
        "MS",
        "--watch: restart after MS quiet milliseconds (default: 300).",
        convert=whole_number,
    )
    ignore: tuple[str, ...] = many(
        "--ignore", "PATTERN", "--watch: also ignore paths matching PATTERN; repeat for more."
    )

    health: str | None = value(
        "--health",
        "CHECK",
        "Probe: http://HOST:PORT/PATH, tcp:HOST:PORT or 'cmd:COMMAND'.\n"
        "A start waits until it passes; bgr-guard restarts it when it fails.",
        heading="Health and schedules",
    )
    health_every: float | None = value(
        "--health-every", "DUR", "Check this often under bgr-guard (default: 10s).", convert=units.duration
    )
    health_timeout: float | None = value(
        "--health-timeout", "DUR", "A check that takes longer fails (default: 2s).", convert=units.duration
    )
    health_retries: int | None = value(
        "--health-retries", "N", "Failures in a row that make it unhealthy (default: 3).", convert=units.count
    )
    health_start: float | None = value(
        "--health-start",
        "DUR",
        "After each start, failures count only after this (default: 0).",
        convert=units.duration,
    )
    no_health: bool = flag("--no-health", "Remove the probe.")
    restart_at: str | None = value(
        "--restart-at", "CRON", "bgr-guard restarts it on this schedule, e.g. '0 4 * * *' (off: none)."
    )
    cron: str | None = value(
        "--cron", "CRON", "A scheduled job: bgr-guard runs it at these times (off: none)."
    )
    on_failure: str | None = value(
        "--on-failure", "CMD", "Run CMD when it crashes, goes fatal or turns unhealthy (off: none)."
    )
    max_memory: int | None = value(
        "--max-memory",
        "SIZE",
        "bgr-guard restarts it when its process group uses more resident\n"
        "memory, e.g. 200M (off: none; wins over bgr-guard --max-memory).",
        convert=units.size_or_off,
    )
    restart_every: float | None = value(
        "--restart-every",
        "DUR",
        "bgr-guard restarts it once it has run this long, e.g. 24h\n"
        "(off: none; wins over bgr-guard --restart-every).",
        convert=units.duration_or_off,
    )

    json: bool = flag("--json", "Print JSON (the list, or one process with NAME).", heading="Look")
    show_env: bool = flag("--show-env", "Include environment values (they may hold secrets).")
    filter: str | None = value("--filter", "GROUP", "Only GROUP's processes (the list, or an action).")
    logs: bool = flag("--logs", "Show the logs of NAME...: stdout, then stderr.")
    log_stdout: bool = flag("--log-stdout", "With --logs: only stdout.")
    log_stderr: bool = flag("--log-stderr", "With --logs: only stderr.")
    lines: int | None = value("--lines", "N", "With --logs: only the last N lines.", convert=whole_number)
    follow: bool = flag("--follow", "With --logs: keep printing new output until Ctrl-C.")
    raw: bool = flag("--raw", "With --logs: pass control characters to the terminal as they are.")

    start: bool = flag(
        "--start",
        "Start again from the stored definition.",
        heading="Control (each takes NAME..., --filter GROUP or --all)",
    )
    restart: bool = flag("--restart", "Restart (re-reads the config; keeps command and paths).")
    stop: bool = flag("--stop", "Stop it and all it started; keep the definition.")
    delete: bool = flag("--delete", "Stop, forget, and remove the logs.")
    all: bool = flag("--all", "Every process (also: the word all, as in bgr stop all).")
    clean: bool = flag("--clean", "Forget every process that is not running.")
    nuke: bool = flag("--nuke", "Stop and forget every process.")
    grace: float | None = value(
        "--grace", "SECONDS", "Wait this long after SIGTERM before SIGKILL (default: 5).", convert=seconds
    )

    up: bool = flag(
        "--up",
        "Start the stack file's processes (or NAME... and what they\n"
        "depend on), dependencies first; restart what changed.",
        heading="Stacks (bgr.toml or Procfile) and export",
    )
    down: bool = flag("--down", "Stop the stack file's processes, dependents first.")
    file: str | None = value("--file", "FILE", "The stack file (default: ./bgr.toml, else ./Procfile).")
    dry_run: bool = flag("--dry-run", "With --up: print what it would do, and do nothing.")
    prune: bool = flag("--prune", "With --up or --down: also stop the ones the file no longer has.")
    export: str | None = value(
        "--export",
        "FORMAT",
        "Write the stack file (or NAME..., --filter GROUP) as systemd\n"
        "user units, a Compose file or Kubernetes manifests:\n"
        "systemd, compose or kubernetes.",
    )
    out: str | None = value(
        "--out", "DIR", "With --export: write into DIR (default: stdout; systemd needs DIR)."
    )
    image: str | None = value(
        "--image", "IMAGE", "With --export compose|kubernetes: the image (default: python:3-slim)."
    )

    db: str | None = value(
        "--db",
        "PATH",
        "Registry file (default: ~/.bgr/bgr.sqlite, or ~/.bgr/$DB_NAME.sqlite).",
        heading="Common",
    )
    help: bool = flag("--help", "Show this help.", short="-h")
    version: bool = flag("--version", "Show the version.")

    targets: tuple[str, ...] = positionals("NAME")


TABLE = Table(
    Args,
    program="bgr",
    summary="bgr - run commands as named background processes, and keep track of them.",
    usage=(
        "[options] {repeatable} [NAME]...",
        "(-h | --help)",
        "--version",
    ),
    epilog="""\
Commands (pm2 style; each is the option form on the right):
  bgr                          list processes      (also: bgr list, bgr ls, bgr status)
  bgr NAME                     details of NAME     (also: bgr status NAME)
  bgr start NAME...            --start NAME...     (bgr start NAME --command CMD: a new one)
  bgr stop|restart|delete NAME...   --stop, --restart, --delete; or --filter GROUP, --all, all
  bgr logs NAME...             --logs NAME...
  A name that is a verb: bgr --name restart, or bgr -- restart (words after -- are names).

Examples:
  bgr --name web --directory ./app --command "python3 -m http.server 8000 --bind 127.0.0.1"
  bgr web --logs --lines 50    bgr restart web      bgr stop --filter dev      bgr delete all

Exit codes: 0 done, 1 error, 2 usage, 3 unknown name, 4 already running, 5 config, 6 start
failed, 7 registry or state directory, 8 git, 9 watch, 10 busy (a lock), 11 could not stop,
130 interrupted (Ctrl-C).
""",
)
