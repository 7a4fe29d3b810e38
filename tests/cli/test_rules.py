"""bgr.cli.rules: a command line that does not make one command is one line, changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import assert_one_error_line, main, registry_snapshot, run_bgr

BAD_INPUT = {
    "unknown flag": ["--bogus"],
    "unknown short flag": ["-x"],
    "prefix of a destructive flag": ["--nu"],
    "prefix of delete": ["--del", "known"],
    "two actions": ["--stop", "--delete", "known"],
    "two names": ["known", "--name", "other", "--command", "true"],
    "unknown name": ["--stop", "nobody"],
    "unknown name details": ["nobody"],
    "unknown name logs": ["nobody", "--logs"],
    "missing directory": ["--name", "n", "--directory", "/nonexistent/dir", "--command", "true"],
    "empty command": ["--name", "n", "--command", ""],
    "blank command": ["--name", "n", "--command", "  "],
    "bad name": ["--name", "../x", "--command", "true"],
    "empty name": ["--name", "", "--command", "true"],
    "empty positional name": [""],
    "missing explicit config": ["--name", "n", "--config", "/nonexistent.toml", "--command", "true"],
    "bad env": ["--name", "n", "--env", "NOEQUALS", "--command", "true"],
    "bad grace": ["--stop", "known", "--grace", "nan"],
    "negative lines": ["known", "--logs", "--lines", "-1"],
    "lines without logs": ["known", "--lines", "3"],
    "nuke with a name": ["--nuke", "known"],
    "stop without a name": ["--stop"],
    "filter with a name": ["known", "--filter", "g"],
    "bad group": ["--name", "n", "--group", "a/b", "--command", "true"],
    "missing log directory": ["--name", "n", "--stdout", "/nonexistent/dir/n.log", "--command", "true"],
    "restart with new values": ["known", "--restart", "--command", "sleep 1"],
    "restart with a new env": ["--restart", "known", "--env", "A=1"],
    "command not UTF-8": ["--name", "n", "--command", "echo \udcff"],
    "log path not UTF-8": ["--name", "n", "--stdout", "/tmp/\udcff.log", "--command", "true"],
    "bad health": ["--name", "n", "--command", "true", "--health", "localhost:80"],
    "bad health interval": [
        "--name",
        "n",
        "--command",
        "true",
        "--health",
        "cmd:true",
        "--health-every",
        "0",
    ],
    "zero retries": ["--name", "n", "--command", "true", "--health", "cmd:true", "--health-retries", "0"],
    "health option without a probe": ["--name", "n", "--command", "true", "--health-every", "5s"],
    "no-health with a probe": ["--name", "n", "--command", "true", "--health", "cmd:true", "--no-health"],
    "bad cron": ["--name", "n", "--command", "true", "--cron", "61 * * * *"],
    "short cron": ["--name", "n", "--command", "true", "--restart-at", "0 4 * *"],
    "restart with a new probe": ["known", "--restart", "--health", "cmd:true"],
    "bad max memory": ["--name", "n", "--command", "true", "--max-memory", "lots"],
    "zero max memory": ["--name", "n", "--command", "true", "--max-memory", "0"],
    "bad restart every": ["--name", "n", "--command", "true", "--restart-every", "daily"],
    "zero restart every": ["--name", "n", "--command", "true", "--restart-every", "0"],
    "restart with a new limit": ["known", "--restart", "--max-memory", "off"],
}


@pytest.mark.parametrize("argv", list(BAD_INPUT.values()), ids=list(BAD_INPUT))
def test_bad_input_is_one_line_and_changes_nothing(
    argv: list[str], populated: Path, capsys: pytest.CaptureFixture[str], bgr_home: Path
) -> None:
    before = registry_snapshot(populated)
    files = _files(bgr_home.parent)
    code, out, err = main(capsys, *argv)
    assert code != 0
    assert out == ""
    assert_one_error_line(err)
    assert registry_snapshot(populated) == before
    assert _files(bgr_home.parent) == files


def _files(root: Path) -> list[Path]:
    """Every path under ``root`` except per-name lock files (kept forever by design)."""
    return sorted(p.relative_to(root) for p in root.rglob("*") if "locks" not in p.parts)


def test_bad_input_through_the_real_cli_has_no_traceback(tmp_path: Path) -> None:
    for argv in (
        ["--bogus"],
        ["--stop", "nobody"],
        ["--name", "../x", "--command", "true"],
        ["--name", "n", "--command", "echo \udcff"],  # the byte 0xff: not UTF-8
    ):
        done = run_bgr(*argv, cwd=tmp_path)
        assert done.returncode != 0 and done.stdout == ""
        assert_one_error_line(done.stderr)


def test_command_line_mistakes(tmp_path: Path) -> None:
    result = run_bgr("--name", "x", "-c", "true", "--debounce", "10")
    assert result.returncode == 2
    assert "--debounce and --ignore go with --watch" in result.stderr
    unknown = run_bgr("nosuch", "--watch")
    assert unknown.returncode == 2
    assert "no process named 'nosuch'; give --command" in unknown.stderr
    assert unknown.stdout == ""  # refused before watching anything
    missing = run_bgr("--name", "x", "-c", "true", "-d", str(tmp_path / "nope"), "--watch")
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr
