"""bgr.cli.verbs: pm2-style verbs are the option forms, and every name stays reachable."""

from __future__ import annotations

from pathlib import Path

import pytest

from bgr.cli import options, verbs
from tests.support import listing, main, must, record_alive, run_bgr, start_cli, started_pid, wait_for

TABLE = options.TABLE


@pytest.mark.parametrize(
    ("argv", "expected", "literal"),
    [
        (["restart", "web"], ["--restart", "web"], []),
        (["--force", "restart", "worker"], ["--force", "--restart", "worker"], []),
        (["logs", "web", "--lines", "5"], ["--logs", "web", "--lines", "5"], []),
        (["stop", "web", "api"], ["--stop", "web", "api"], []),
        (["ls"], [], []),
        (["status", "web"], ["web"], []),
        (["help"], ["--help"], []),
        # an option's value is never a verb; only the first bare word can be one
        (["--name", "stop", "--command", "restart"], ["--name", "stop", "--command", "restart"], []),
        (["-c", "stop", "start", "x"], ["-c", "stop", "--start", "x"], []),
        (["web", "stop"], ["web", "stop"], []),
        (["--", "restart"], [], ["restart"]),
        (["--stop", "--", "all", "logs"], ["--stop"], ["all", "logs"]),
        (["--filter=stop", "stop"], ["--filter=stop", "--stop"], []),
    ],
)
def test_translation(argv: list[str], expected: list[str], literal: list[str]) -> None:
    line = verbs.translate(TABLE, argv)
    assert (list(line.argv), list(line.literal)) == (expected, literal)


def test_the_seeds_force_restart_works_as_written(tmp_path: Path) -> None:
    start_cli("worker", "sleep 60")
    old = must("worker").pid
    done = run_bgr("--force", "restart", "worker", "--grace", "0.5", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("restarted worker (pid ")
    assert started_pid(done.stdout) != old and record_alive(must("worker"))


def test_every_verb_does_what_its_option_does(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = main(capsys, "start", "web", "--command", "echo hello; exec sleep 60")
    assert code == 0, err
    assert out.startswith("started web (pid ")
    for verb in ("list", "ls", "status"):
        code, out, _ = main(capsys, verb)
        assert code == 0 and out.startswith("NAME ") and "\nweb " in out
    code, out, _ = main(capsys, "status", "web")
    assert code == 0 and out.startswith("name ") and "running" in out
    wait_for(lambda: "hello" in main(capsys, "logs", "web")[1], what="the log line")
    assert main(capsys, "restart", "web", "--grace", "0.5")[0] == 0
    code, out, _ = main(capsys, "stop", "web", "--grace", "0.5")
    assert (code, out) == (0, "stopped web\n")
    assert main(capsys, "start", "web")[0] == 0  # again, from the stored definition
    assert record_alive(must("web"))
    code, out, _ = main(capsys, "delete", "web", "--grace", "0.5")
    assert (code, out) == (0, "deleted web\n")
    assert listing(capsys) == []
    code, out, _ = main(capsys, "help")
    assert code == 0 and "bgr stop|restart|delete NAME..." in out and "Exit codes:" in out


def test_a_process_named_like_a_verb_stays_reachable(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = main(capsys, "--name", "restart", "--command", "sleep 60")
    assert code == 0, err
    code, out, _ = main(capsys, "--", "restart")
    assert code == 0 and out.startswith("name ") and "restart" in out.splitlines()[0]
    code, _, err = main(capsys, "restart")  # the verb, without a name: says how to reach it
    assert code == 2 and "bgr -- restart" in err
    code, out, _ = main(capsys, "--stop", "--name", "restart", "--grace", "0.5")
    assert (code, out) == (0, "stopped restart\n")
    code, out, _ = main(capsys, "delete", "--grace", "0.5", "--", "restart")
    assert (code, out) == (0, "deleted restart (it was not running)\n")


def test_a_verb_after_the_name_gets_a_hint(populated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = main(capsys, "known", "stop")
    assert code == 2 and out == ""
    assert "the verb comes first: bgr stop NAME..." in err
