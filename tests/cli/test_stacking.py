"""bgr --up / --down / --export on the command line: what is printed, exit codes, bad input."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tests.support import assert_one_error_line, main, must, record_alive, run_bgr

STACK = """
[db]
command = "sleep 60"
[job]
command = "echo ran > ran.txt"
depends_on = { db = "started" }
[api]
command = "sleep 61"
env = { TOKEN = "s3cret" }
depends_on = { job = "completed" }
"""


@pytest.fixture
def stack_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "bgr.toml").write_text(textwrap.dedent(STACK))
    monkeypatch.chdir(folder)
    return folder


def test_up_twice_then_down(stack_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = main(capsys, "--up", "--dry-run")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "bgr.toml (stack shop), bgr --up would:",
        "  start    db   new",
        "  start    job  new; after db is started",
        "  start    api  new; after job is completed",
    ]
    assert not (stack_dir.parent / "bgr-home" / "bgr.sqlite").exists()  # a dry run does nothing
    code, out, err = main(capsys, "--up", "--grace", "0.5")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith("started db (pid ") and lines[-1] == (
        "stack shop (bgr.toml): 3 started, 0 restarted, 0 unchanged, 0 failed"
    )
    assert any(line.startswith("job ran and finished at once (exit code 0)") for line in lines)
    assert (stack_dir / "ran.txt").read_text() == "ran\n" and must("api").group == "shop"
    code, out, err = main(capsys, "--up")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"db is unchanged, running (pid {must('db').pid}): left as it is",
        "job is unchanged, finished with exit code 0: left as it is",
        f"api is unchanged, running (pid {must('api').pid}): left as it is",
        "stack shop (bgr.toml): 0 started, 0 restarted, 3 unchanged, 0 failed",
    ]
    code, out, err = main(capsys, "--down", "--grace", "0.5")
    assert (code, err) == (0, "")
    assert out.splitlines() == ["stopped api", "job was not running", "stopped db"]
    assert not record_alive(must("db"))


def test_up_json_and_names(stack_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = main(capsys, "--up", "job", "--json")
    assert code == 0
    data = json.loads(out)
    assert [(d["name"], d["action"]) for d in data] == [("db", "start"), ("job", "start")]
    assert data[1]["process"]["status"] == "exited" and "s3cret" not in out
    code, out, _ = main(capsys, "--up", "--dry-run", "--json")
    assert json.loads(out)[2] == {
        "name": "api",
        "action": "start",
        "reason": "new",
        "depends_on": {"job": "completed"},
    }


def test_a_failed_dependency_is_one_line_per_process_and_the_exit_code(
    stack_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (stack_dir / "bgr.toml").write_text(textwrap.dedent(STACK).replace("echo ran > ran.txt", "exit 4"))
    code, out, err = main(capsys, "--up", "--grace", "0.5")
    assert code == 6
    assert err.splitlines()[0].startswith("bgr: job: job exited right after starting: exit code 4")
    assert "bgr: api: api was not started: its dependency job did not become completed: " in err
    assert out.splitlines()[-1] == "stack shop (bgr.toml): 1 started, 0 restarted, 0 unchanged, 2 failed"


def test_a_broken_stack_file_starts_nothing(stack_dir: Path) -> None:
    (stack_dir / "bgr.toml").write_text(
        textwrap.dedent(STACK) + '\n[web]\ncommand = "x"\ndepends_on = ["nope"]\n'
    )
    done = run_bgr("--up", cwd=stack_dir)
    assert done.returncode == 5
    assert_one_error_line(done.stderr)
    assert "process web, key depends_on.nope: no process nope in the file" in done.stderr
    assert not (Path(str(stack_dir)).parent / "bgr-home" / "bgr.sqlite").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--up", "--down"], "--up and --down are two actions"),
        (["--up", "--stop"], "--up works from the stack file; it does not take --stop"),
        (["--up", "--command", "x"], "it does not take --command"),
        (["--up", "--out", "d"], "--out does not go with --up"),
        (["--down", "web"], "--down stops the whole stack and takes no NAME"),
        (["--down", "--dry-run"], "--dry-run does not go with --down"),
        (["--export", "helm"], "--export takes systemd, compose, kubernetes, not 'helm'"),
        (["--export", "systemd"], "give --out DIR"),
        (
            ["--export", "systemd", "--out", "d", "--image", "x"],
            "--image goes with --export compose or kubernetes",
        ),
        (["--export", "compose", "--wait", "1"], "--wait does not go with --export"),
        (["--export", "compose", "--file", "bgr.toml", "--all"], "takes NAMEs of the file's processes"),
        (["--dry-run"], "--dry-run goes with --up, --down or --export"),
        (["--up", "--filter", "g"], "--filter does not go with --up"),
        (["--up", "nope"], "no process nope in"),
        (["--up", "--file", "missing.toml"], "stack file"),
    ],
)
def test_bad_command_lines_are_one_clear_line(
    stack_dir: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = main(capsys, *argv)
    assert code != 0 and out == ""
    assert_one_error_line(err)
    assert message in err


def test_export_to_stdout_and_into_a_directory(stack_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = main(capsys, "--export", "kubernetes")
    assert code == 0
    assert err.splitlines() == [
        "bgr: note: job: does not wait for db in Kubernetes (it has no port to wait for); see bgr/depends-on",
        "bgr: note: api: does not wait for job in Kubernetes (it becomes a Job); see bgr/depends-on",
    ]
    assert out.startswith("# Written by bgr --export kubernetes from ") and "s3cret" not in out
    code, out, err = main(capsys, "--export", "compose")
    assert code == 2
    assert "api has environment values: give --out DIR" in err
    code, out, err = main(capsys, "--export", "compose", "--out", "deploy")
    assert (code, err) == (0, "")
    assert out.splitlines() == [f"wrote {stack_dir}/deploy/compose.yaml", f"wrote {stack_dir}/deploy/api.env"]
    code, out, _ = main(capsys, "--export", "compose", "--show-env", "--file", "bgr.toml", "api")
    assert code == 0 and 'TOKEN: "s3cret"' in out and "db:" in out  # api and what it needs


def test_export_from_the_registry(stack_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(capsys, "--up", "--grace", "0.5")[0] == 0
    code, out, err = main(capsys, "--export", "compose", "--filter", "shop", "--show-env")
    assert (code, err) == (0, "")
    assert "# Written by bgr --export compose from the registry (stack shop)." in out
    assert '"service_completed_successfully"' in out and 'TOKEN: "s3cret"' in out
    code, out, _ = main(capsys, "--export", "kubernetes", "api")
    assert code == 0 and "bgr/depends-on" not in out  # its dependency is not exported with it


def test_export_from_the_registry_carries_the_limits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ("--name", "w", "--command", "sleep 60", "--wait", "0", "--directory", str(tmp_path))
    assert main(capsys, *argv, "--max-memory", "64M", "--restart-every", "1h")[0] == 0
    code, out, err = main(capsys, "--export", "compose", "w")
    assert code == 0 and 'mem_limit: "64m"' in out
    assert err == "bgr: note: w: Compose cannot restart after a time; its restart_every is not exported\n"
    code, out, err = main(capsys, "--export", "systemd", "w", "--out", str(tmp_path / "units"))
    assert (code, err) == (0, "")
    unit = (tmp_path / "units" / "bgr-w.service").read_text()
    assert "MemoryMax=64M\nRuntimeMaxSec=3600s\n" in unit
