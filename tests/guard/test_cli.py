"""guard.cli: the bgr-guard command line, its options and its errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bgr.store import open_registry
from guard import cli
from guard.options import GuardOptions, Target, TargetKind
from tests.support import Guard, record_alive, run_bgr


def options(*argv: str) -> GuardOptions:
    return cli.options_from(cli.parse(argv))


def test_options_from_the_command_line() -> None:
    got = options("web", "0.5", "--max-failures", "3", "--backoff-base", "100ms",
                  "--backoff-max", "2s", "--max-memory", "200M", "--restart-every", "1h",
                  "--max-log-size", "64K", "--keep", "0", "--pull-every", "1m", "--grace", "2")  # fmt: skip
    assert got.target == Target(TargetKind.NAME, "web")
    assert got.interval == 0.5
    assert (got.policy.max_failures, got.policy.base_delay, got.policy.max_delay) == (3, 0.1, 2.0)
    assert got.max_memory == 200 * 1024**2
    assert got.restart_every == 3600.0
    assert (got.max_log_size, got.keep, got.pull_every, got.grace) == (65536, 0, 60.0, 2.0)
    assert got.rotation_interval == 0.5
    defaults = options("--all")
    assert defaults.target.kind is TargetKind.ALL
    assert (defaults.interval, defaults.max_log_size, defaults.keep) == (30.0, 10 * 1024**2, 10)
    assert (defaults.pull_every, defaults.policy.max_failures, defaults.max_memory) == (300.0, 10, None)
    assert options("--group=api", "5m").target == Target(TargetKind.GROUP, "api")
    assert options("web", "--backoff-base", "2m").policy.max_delay == 120.0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "what to guard?"),
        (["--once"], "what to guard?"),
        (["web", "0"], "INTERVAL must be more than 0"),
        (["web", "soon"], "INTERVAL takes a duration"),
        (["web", "1", "2"], "unexpected argument '2'"),
        (["--all", "--group", "x"], "exclude each other"),
        (["--all", "web", "5"], "exclude each other"),
        (["--al"], "did you mean --all?"),
        (["web", "--max-mem", "1M"], "did you mean --max-memory?"),
        (["web", "--max-memory", "lots"], "--max-memory: invalid size"),
        (["web", "--keep", "-1"], "--keep must be at least 0"),
        (["web", "--max-failures", "x"], "--max-failures takes a whole number"),
        (["web", "--backoff-base", "5s", "--backoff-max", "1s"], "must not exceed"),
        (["../etc"], "invalid process name"),
        (["--group", "a/b"], "invalid group"),
        (["nosuch"], "no process named 'nosuch'"),
    ],
)
def test_command_line_errors_are_one_clean_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code != 0
    assert message in err
    assert err.startswith("bgr-guard: ") and err.count("\n") == 1, err
    assert "Traceback" not in err


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    assert "bgr-guard [options] NAME [INTERVAL]" in capsys.readouterr().out
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("bgr-guard ")


def test_python_dash_m_guard_runs_the_cli() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "guard", "nosuch"], check=False, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 3
    assert done.stderr.strip().startswith("bgr-guard: no process named 'nosuch'")


def test_db_option_selects_the_registry(guard: Callable[..., Guard], tmp_path: Path) -> None:
    db = str(tmp_path / "other.sqlite")
    run_bgr("--db", db, "--name", "web", "--command", "sleep 300", check=True)
    assert guard("web", "--once").proc.wait(15) == 3  # not in the default registry
    with open_registry(db) as reg:
        record = reg.require("web")
    assert record.pgid
    time.sleep(0.2)
    os.killpg(record.pgid, signal.SIGKILL)
    assert guard("web", "--once", "--db", db, "--stable-after", "0.1").proc.wait(15) == 0
    with open_registry(db) as reg:
        again = reg.require("web")
    assert again.pid != record.pid and again.restarts == 1
    assert record_alive(again)
