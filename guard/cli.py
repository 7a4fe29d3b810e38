"""bgr-guard command line: docopt usage → GuardOptions → run. Configures logging (only here)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from typing import Any, ClassVar

from bgr import __version__, paths
from bgr.cli import docopt_parse as cliargs
from bgr.cli import streams
from bgr.errors import BgrError, UsageError
from guard import options as opts
from guard.policy import PolicyConfig

USAGE = """\
bgr-guard - keep bgr processes running: restart them, rotate their logs, pull their code.

Usage:
  bgr-guard [options] NAME [INTERVAL]
  bgr-guard [options] --all [INTERVAL]
  bgr-guard [options] --group=GROUP [INTERVAL]
  bgr-guard (-h | --help)
  bgr-guard --version

  NAME                  Guard the bgr process NAME.
  --all                 Guard every process that should be running (new ones too).
  --group=GROUP         Guard the processes of GROUP (new ones too).
  INTERVAL              Seconds between checks (default: 30). Exits are noticed at
                        once anyway; the checks are the safety net.

Options:
  --once                Check once (restart what is due, rotate, pull) and exit; for cron.
  --max-failures=N      Quick failures in a row before giving up: fatal (default: 10).
  --backoff-base=DUR    Wait after the first quick failure, doubled each time (default: 1s).
  --backoff-max=DUR     Longest wait between restarts (default: 60s).
  --stable-after=DUR    A run this long is not a quick failure; resets the count (default: 10s).
  --max-memory=SIZE     Restart a process whose process group uses more resident memory (e.g. 200M).
  --restart-every=DUR   Restart each process once it has run this long (e.g. 24h).
  --max-log-size=SIZE   Rotate a log into ~/.bgr/backup when it grows beyond SIZE (default: 10M).
  --keep=N              Rotated backups kept per log (default: 10).
  --rotate-every=DUR    How often logs are measured (default: INTERVAL).
  --pull-every=DUR      git pull --ff-only for --fetch processes this often (default: 5m).
  --grace=DUR           Wait after SIGTERM before SIGKILL in full restarts (default: 5s).
  --db=PATH             Registry file (default: ~/.bgr/bgr.sqlite, or ~/.bgr/$DB_NAME.sqlite).
  -v --verbose          Also log routine events (pulls with nothing new, lost races).
  -h --help             Show this help.
  --version             Show the version.

DUR is seconds or a number with ms, s, m, h or d: 30, 0.5, 90s, 5m, 1h. SIZE: 512K, 10M, 1G.

Examples:
  bgr-guard web 30          keep web running, check every 30 s
  bgr-guard --all           keep everything running (systemd: contrib/systemd/bgr-guard.service)
  bgr-guard --all --once    one pass, from cron
"""

_LONG_OPTIONS = frozenset(
    {
        "--all", "--group", "--once", "--max-failures", "--backoff-base", "--backoff-max",
        "--stable-after", "--max-memory", "--restart-every", "--max-log-size", "--keep",
        "--rotate-every", "--pull-every", "--grace", "--db", "--verbose", "--help", "--version",
    }
)  # fmt: skip


def parse(argv: Sequence[str]) -> dict[str, Any]:
    """argv → docopt's dict, with clean one-line errors instead of docopt's."""
    cliargs.check_spelling(argv, _LONG_OPTIONS, "bgr-guard")
    if not any(a == "--all" or a.startswith("--group") or not a.startswith("-") for a in argv):
        raise UsageError("what to guard? give NAME, --all or --group GROUP; see bgr-guard --help")
    return cliargs.parse(USAGE, argv, _LONG_OPTIONS, "bgr-guard", explain_unmatched=_explain_unmatched)


def _explain_unmatched(reason: str) -> str:
    # docopt's "found unmatched (duplicate?) arguments [Argument(None, 'x'), Option(...)]"
    if "Option(" in reason:
        return "NAME, --all and --group exclude each other: give one of them"
    extra = cliargs.unmatched_names(reason)
    return f"unexpected argument {' '.join(extra)!r} (one NAME, then one INTERVAL)" if extra else reason


def _duration(value: str | None, option: str) -> float | None:
    return None if value is None else opts.parse_duration(value, option)


def _count(value: str | None, option: str, *, minimum: int) -> int | None:
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise UsageError(f"{option} takes a whole number, not {value!r}") from None
    if number < minimum:
        raise UsageError(f"{option} must be at least {minimum}, not {number}")
    return number


def _size(value: str | None, option: str) -> int | None:
    if value is None:
        return None
    from bgr.logfiles.reading import parse_size

    try:
        size = parse_size(value)
    except UsageError as exc:
        raise UsageError(f"{option}: {exc}") from None
    if size <= 0:
        raise UsageError(f"{option} must be more than 0")
    return size


def options_from(args: dict[str, Any]) -> opts.GuardOptions:
    """docopt's dict → validated :class:`GuardOptions`."""
    if args["--all"]:
        target = opts.Target(opts.TargetKind.ALL)
    elif args["--group"] is not None:
        target = opts.Target(opts.TargetKind.GROUP, paths.validate_name(args["--group"], "group"))
    else:
        target = opts.Target(opts.TargetKind.NAME, paths.validate_name(args["NAME"]))
    interval = _duration(args["INTERVAL"], "INTERVAL") or opts.DEFAULT_INTERVAL
    defaults = PolicyConfig()
    base = _duration(args["--backoff-base"], "--backoff-base") or defaults.base_delay
    top = _duration(args["--backoff-max"], "--backoff-max") or max(defaults.max_delay, base)
    if base > top:
        raise UsageError(f"--backoff-base ({base:g}s) must not exceed --backoff-max ({top:g}s)")
    policy = PolicyConfig(
        base_delay=base,
        max_delay=top,
        stable_after=_duration(args["--stable-after"], "--stable-after") or defaults.stable_after,
        max_failures=_count(args["--max-failures"], "--max-failures", minimum=1) or defaults.max_failures,
    )
    keep = _count(args["--keep"], "--keep", minimum=0)
    return opts.GuardOptions(
        target=target,
        interval=interval,
        once=bool(args["--once"]),
        db=args["--db"],
        policy=policy,
        max_memory=_size(args["--max-memory"], "--max-memory"),
        restart_every=_duration(args["--restart-every"], "--restart-every"),
        max_log_size=_size(args["--max-log-size"], "--max-log-size") or opts.DEFAULT_MAX_LOG_SIZE,
        keep=opts.DEFAULT_KEEP if keep is None else keep,
        rotate_every=_duration(args["--rotate-every"], "--rotate-every"),
        pull_every=_duration(args["--pull-every"], "--pull-every") or opts.DEFAULT_PULL_EVERY,
        grace=_duration(args["--grace"], "--grace") or opts.DEFAULT_GRACE,
    )


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
    if any(a in ("-h", "--help") for a in argv):
        sys.stdout.write(USAGE)
        return 0
    if "--version" in argv:
        sys.stdout.write(f"bgr-guard {__version__}\n")
        return 0
    args = parse(argv)
    options = options_from(args)
    configure_logging(bool(args["--verbose"]))
    if not options.once:
        _skip_tls()
    from guard import scheduler

    return scheduler.run(options)


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point: run, map BgrError to one stderr line and its exit code."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    streams.reopen_closed()
    try:
        return run(arguments)
    except BgrError as exc:
        sys.stderr.write(f"bgr-guard: {exc}\n")
        if exc.details:
            sys.stderr.write(exc.details.rstrip("\n") + "\n")
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
