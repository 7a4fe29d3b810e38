"""bgr-guard command line: argv → :class:`Args` → :class:`GuardOptions` → run; configures logging."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from typing import ClassVar

from bgr import guard_api as bgr
from bgr.guard_api import (
    Record,
    Table,
    UsageError,
    count_from,
    flag,
    parse_duration,
    positional,
    size_option,
    value,
)
from guard import options as opts
from guard.policy import PolicyConfig


class Args(Record):
    """What the command line said; a field per option, in ``--help`` order."""

    name: str | None = positional("NAME", "Guard the bgr process NAME.", heading="")
    all: bool = flag("--all", "Guard every process that should be running (new ones too).")
    group: str | None = value("--group", "GROUP", "Guard the processes of GROUP (new ones too).")
    interval: float | None = positional(
        "INTERVAL",
        "Seconds between checks (default: 30). Exits are noticed at\n"
        "once anyway; the checks are the safety net.",
        convert=parse_duration,
    )
    once: bool = flag(
        "--once", "Check once (restart what is due, rotate, pull) and exit; for cron.", heading="Options"
    )
    max_failures: int | None = value(
        "--max-failures",
        "N",
        "Quick failures in a row before giving up: fatal (default: 10).",
        convert=count_from(1),
    )
    backoff_base: float | None = value(
        "--backoff-base",
        "DUR",
        "Wait after the first quick failure, doubled each time (default: 1s).",
        convert=parse_duration,
    )
    backoff_max: float | None = value(
        "--backoff-max", "DUR", "Longest wait between restarts (default: 60s).", convert=parse_duration
    )
    stable_after: float | None = value(
        "--stable-after",
        "DUR",
        "A run this long is not a quick failure; resets the count (default: 10s).",
        convert=parse_duration,
    )
    max_memory: int | None = value(
        "--max-memory",
        "SIZE",
        "Restart a process whose process group uses more resident\n"
        "memory (e.g. 200M); a process's own bgr --max-memory wins.",
        convert=size_option,
    )
    restart_every: float | None = value(
        "--restart-every",
        "DUR",
        "Restart each process once it has run this long (e.g. 24h);\n"
        "a process's own bgr --restart-every wins.",
        convert=parse_duration,
    )
    max_log_size: int | None = value(
        "--max-log-size",
        "SIZE",
        "Rotate a log into ~/.bgr/backup when it grows beyond SIZE (default: 10M).",
        convert=size_option,
    )
    keep: int | None = value(
        "--keep", "N", "Rotated backups kept per log (default: 10).", convert=count_from(0)
    )
    rotate_every: float | None = value(
        "--rotate-every", "DUR", "How often logs are measured (default: INTERVAL).", convert=parse_duration
    )
    pull_every: float | None = value(
        "--pull-every",
        "DUR",
        "git pull --ff-only for --fetch processes this often (default: 5m).",
        convert=parse_duration,
    )
    grace: float | None = value(
        "--grace",
        "DUR",
        "Wait after SIGTERM before SIGKILL in full restarts (default: 5s).",
        convert=parse_duration,
    )
    on_event: str | None = value(
        "--on-event",
        "CMD",
        "Run CMD (sh -c) when a process crashes, goes fatal or turns unhealthy;\n"
        "BGR_EVENT, BGR_NAME, BGR_EXIT_CODE and BGR_REASON tell it what happened.",
    )
    db: str | None = value(
        "--db", "PATH", "Registry file (default: ~/.bgr/bgr.sqlite, or ~/.bgr/$DB_NAME.sqlite)."
    )
    verbose: bool = flag(
        "--verbose", "Also log routine events (pulls with nothing new, lost races).", short="-v"
    )
    help: bool = flag("--help", "Show this help.", short="-h")
    version: bool = flag("--version", "Show the version.")


TABLE = Table(
    Args,
    program="bgr-guard",
    summary="bgr-guard - keep bgr processes running: restart them, rotate their logs, pull their code.",
    usage=(
        "[options] NAME [INTERVAL]",
        "[options] --all [INTERVAL]",
        "[options] --group=GROUP [INTERVAL]",
        "(-h | --help)",
        "--version",
    ),
    epilog="""\
DUR is seconds or a number with ms, s, m, h or d: 30, 0.5, 90s, 5m, 1h. SIZE: 512K, 10M, 1G.

Examples:
  bgr-guard web 30          keep web running, check every 30 s
  bgr-guard --all           keep everything running (systemd: contrib/systemd/bgr-guard.service)
  bgr-guard --all --once    one pass, from cron
  bgr-guard --all --on-event 'curl -fsS -d "$BGR_NAME $BGR_EVENT: $BGR_REASON" https://ntfy.sh/ops'
""",
)


def parse(argv: Sequence[str]) -> Args:
    """argv → :class:`Args`, with clean one-line errors instead of docopt's."""
    bgr.check_spelling(argv, TABLE.known, TABLE.program)
    if not any(a == "--all" or a.startswith("--group") or not a.startswith("-") for a in argv) and not any(
        a in ("-h", "--help", "--version") for a in argv
    ):
        raise UsageError("what to guard? give NAME, --all or --group GROUP; see bgr-guard --help")
    # The fast path does not know which usage pattern a word belongs to (NAME or INTERVAL).
    args = bgr.parse(TABLE, argv, explain_unmatched=_explain_unmatched, use_fast=False)
    assert isinstance(args, Args)
    return args


def _explain_unmatched(reason: str) -> str:
    # docopt's "found unmatched (duplicate?) arguments [Argument(None, 'x'), Option(...)]"
    if "Option(" in reason:
        return "NAME, --all and --group exclude each other: give one of them"
    extra = bgr.unmatched_names(reason)
    return f"unexpected argument {' '.join(extra)!r} (one NAME, then one INTERVAL)" if extra else reason


def options_from(args: Args) -> opts.GuardOptions:
    """The command line → validated :class:`GuardOptions`, the documented defaults filled in."""
    if args.all:
        target = opts.Target(opts.TargetKind.ALL)
    elif args.group is not None:
        target = opts.Target(opts.TargetKind.GROUP, bgr.validate_name(args.group, "group"))
    else:
        assert args.name is not None  # docopt's patterns: NAME, --all or --group
        target = opts.Target(opts.TargetKind.NAME, bgr.validate_name(args.name))
    defaults = PolicyConfig()
    base = args.backoff_base or defaults.base_delay
    top = args.backoff_max or max(defaults.max_delay, base)
    if base > top:
        raise UsageError(f"--backoff-base ({base:g}s) must not exceed --backoff-max ({top:g}s)")
    policy = PolicyConfig(
        base_delay=base,
        max_delay=top,
        stable_after=args.stable_after or defaults.stable_after,
        max_failures=args.max_failures or defaults.max_failures,
    )
    return opts.GuardOptions(
        target=target,
        interval=args.interval or opts.DEFAULT_INTERVAL,
        once=args.once,
        db=args.db,
        policy=policy,
        max_memory=args.max_memory,
        restart_every=args.restart_every,
        max_log_size=args.max_log_size or opts.DEFAULT_MAX_LOG_SIZE,
        keep=opts.DEFAULT_KEEP if args.keep is None else args.keep,
        rotate_every=args.rotate_every,
        pull_every=args.pull_every or opts.DEFAULT_PULL_EVERY,
        grace=args.grace or bgr.DEFAULT_GRACE,
        on_event=_hook_command(args.on_event),
    )


def _hook_command(command: str | None) -> str | None:
    if command is not None and not command.strip():
        raise UsageError("--on-event needs a command, e.g. --on-event 'notify-send \"$BGR_NAME $BGR_EVENT\"'")
    return command


class _Formatter(logging.Formatter):
    """One line per event. Under journald (stderr is its stream) a ``<N>`` priority prefix and
    no timestamp (journald adds its own); elsewhere a local timestamp and the level."""

    _PRIORITY: ClassVar[dict[int, int]] = {
        logging.DEBUG: 7,
        logging.INFO: 6,
        logging.WARNING: 4,
        logging.ERROR: 3,
    }

    def __init__(self, journald: bool) -> None:
        super().__init__("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
        self.journald = journald

    def format(self, record: logging.LogRecord) -> str:
        if not self.journald:
            return super().format(record)
        priority = self._PRIORITY.get(record.levelno, 2 if record.levelno > logging.ERROR else 6)
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return "\n".join(f"<{priority}>{line}" for line in text.splitlines())


def _journald_stderr() -> bool:
    """True when stderr is the journal stream systemd handed us ($JOURNAL_STREAM = dev:inode)."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    try:
        info = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return stream == f"{info.st_dev}:{info.st_ino}"


def configure_logging(verbose: bool) -> None:
    """Log to stderr, one line per event; quiet APScheduler's per-run chatter."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(_journald_stderr()))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("git").setLevel(logging.WARNING)


def _skip_tls() -> None:
    """Keep OpenSSL out of the long-running guard: ~4 MiB of its resident memory (a third of what
    it adds to the interpreter). APScheduler imports asyncio (for ``iscoroutinefunction`` only),
    and asyncio imports ``ssl`` unless it is missing, which it supports (Pythons built without
    OpenSSL). Nothing in the guard speaks TLS: git runs as a child process. ``None`` in
    ``sys.modules`` makes ``import ssl`` raise ImportError."""
    sys.modules.setdefault("ssl", None)  # type: ignore[arg-type]


def run(argv: Sequence[str]) -> int:
    """Parse ``argv`` and guard. Raises BgrError for anything the user must fix."""
    args = parse(argv)
    if args.help:
        sys.stdout.write(TABLE.usage())
        return 0
    if args.version:
        sys.stdout.write(f"bgr-guard {bgr.__version__}\n")
        return 0
    options = options_from(args)
    configure_logging(args.verbose)
    if not options.once:
        _skip_tls()
    from guard import scheduler

    return scheduler.run(options)


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point: run, map BgrError to one stderr line and its exit code."""
    return bgr.run_program("bgr-guard", run, argv)


if __name__ == "__main__":
    sys.exit(main())
