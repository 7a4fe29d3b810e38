"""bgr.cli.output: the table, colour, the JSON shape, and how --watch words a burst of changes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from bgr import store
from bgr.cli import output
from tests.support import PY, listing, main, on_a_terminal, run_bgr


def test_empty_registry_prints_a_short_hint(capsys: pytest.CaptureFixture[str]) -> None:
    store.open_registry(create=True).close()
    code, out, _ = main(capsys)
    assert code == 0
    assert out.startswith("no processes yet") and len(out.splitlines()) == 1
    assert listing(capsys) == []


def test_table_is_aligned_and_plain_when_not_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(capsys, "--name", "a", "--directory", str(tmp_path), "--command", "sleep 60")
    main(capsys, "--name", "much-longer-name", "--group", "api", "--command", "sleep 61")
    code, out, _ = main(capsys)
    assert code == 0
    assert "\033[" not in out
    header, *rows = out.splitlines()
    assert header.split() == ["NAME", "GROUP", "STATUS", "PID", "UPTIME", "↺", "MEMORY", "COMMAND"]
    assert len(rows) == 2
    for column in ("GROUP", "STATUS", "PID", "COMMAND"):
        start = header.index(column)
        for row in rows:
            assert row[start - 2 : start] == "  " and row[start] != " ", (column, row)
    assert rows[0].split()[:3] == ["a", "-", "running"]
    assert rows[1].split()[:3] == ["much-longer-name", "api", "running"]
    assert rows[1].endswith("sleep 61")


def test_colour_only_on_a_terminal_and_never_with_no_color(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(capsys, "--name", "a", "--directory", str(tmp_path), "--command", "sleep 60")
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env["TERM"] = "xterm"
    assert "\033[32mrunning" in on_a_terminal([], env)
    assert "\033[" not in on_a_terminal([], {**env, "NO_COLOR": "1"})
    assert "\033[" not in run_bgr(env=env).stdout  # a pipe is not a terminal


JSON_KEYS = {
    "name", "status", "pid", "group", "directory", "command", "started_at", "exit_code",
    "restarts", "stdout", "stderr", "config", "env_keys",
}  # fmt: skip


def test_json_list_fields_env_values_only_on_request_and_a_jq_style_filter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(capsys, "--name", "up", "--directory", str(tmp_path), "--command", "sleep 60",
         "--env", "API_KEY=s3cret")  # fmt: skip
    main(capsys, "--name", "down", "--command", "sleep 60")
    main(capsys, "--stop", "down", "--grace", "0.5")
    data = listing(capsys)
    assert [d["name"] for d in data] == ["down", "up"]
    for entry in data:
        assert entry.keys() >= JSON_KEYS
        assert "env" not in entry
    down, up = data
    assert down["pid"] is None and down["status"] == "stopped"
    assert isinstance(up["pid"], int) and up["status"] == "running"
    assert up["env_keys"] == ["API_KEY"] and "s3cret" not in json.dumps(data)
    assert up["started_at"].endswith("Z") and up["restarts"] == 0 and up["exit_code"] is None
    assert listing(capsys, "--show-env")[1]["env"] == {"API_KEY": "s3cret"}
    # bgr --json | jq '.[] | select(.status == "running") | .name'
    assert [d["name"] for d in data if d["status"] == "running"] == ["up"]
    if shutil.which("jq"):
        piped = subprocess.run(
            f"{PY} -m bgr --json | jq -r '.[] | select(.status == \"running\") | .name'",
            shell=True, capture_output=True, text=True, check=True, timeout=30,
        )  # fmt: skip
        assert piped.stdout == "up\n"


@pytest.mark.parametrize(
    ("paths", "text"),
    [
        ([], "nothing"),
        (["a.py"], "a.py"),
        (["a.py", "b.py"], "a.py and b.py"),
        (["a.py", "b.py", "c.py"], "a.py, b.py and c.py"),
        (["a.py", "b.py", "c", "d", "e"], "a.py, b.py and 3 more"),
    ],
)
def test_describe_changes(paths: list[str], text: str) -> None:
    assert output.describe_changes(paths) == text


def test_an_unknown_exit_is_neutral_and_a_finished_job_is_not_a_failure(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import signal

    from tests.support import must, wait_for

    assert main(capsys, "--name", "gone", "--command", "sleep 60")[0] == 0
    os.kill(must("gone").pid or 0, signal.SIGKILL)  # no bgr is its parent now: code unknown
    gone = wait_for(lambda: next((p for p in listing(capsys) if p["status"] != "running"), None))
    assert (gone["status"], gone["exit_code"]) == ("exited", None)
    code, out, _ = main(capsys, "gone")
    assert code == 0 and "unknown (no bgr was its parent" in out
    code, out, err = main(capsys, "--name", "job", "--command", "true")
    assert code == 0, err
    assert out.startswith("job ran and finished at once (exit code 0)")
    job = next(p for p in listing(capsys) if p["name"] == "job")
    assert (job["status"], job["exit_code"]) == ("exited", 0)


def test_the_table_falls_back_to_ascii(capsys: pytest.CaptureFixture[str]) -> None:
    long = "sleep 60 # " + "x" * 200
    assert main(capsys, "--name", "w", "--command", long, "--wait", "0")[0] == 0
    done = run_bgr(env={**os.environ, "PYTHONIOENCODING": "ascii", "COLUMNS": "80"})
    assert done.returncode == 0
    header = done.stdout.splitlines()[0].split()
    assert header == ["NAME", "GROUP", "STATUS", "PID", "UPTIME", "RESTARTS", "MEMORY", "COMMAND"]
    assert done.stdout.splitlines()[1].endswith("...") and "\\u" not in done.stdout
    utf8 = run_bgr(env={**os.environ, "PYTHONIOENCODING": "utf-8", "COLUMNS": "80"})
    assert "↺" in utf8.stdout.splitlines()[0] and utf8.stdout.splitlines()[1].endswith("…")
