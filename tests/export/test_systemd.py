"""bgr.export.systemd: units that systemd-analyze verify accepts, with the dependencies, the
readiness wait and the environment where they belong."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from bgr.core import exports
from bgr.errors import UsageError
from tests.support import example_stack

needs_systemd_analyze = pytest.mark.skipif(
    not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed (.ci/run installs systemd)"
)


def export(tmp_path: Path, *, show_env: bool = False) -> Path:
    stack = example_stack(tmp_path)
    out = tmp_path / "units"
    exported = exports.export("systemd", stack, out=str(out), image=None, show_env=show_env, source="")
    exports.write(exported, str(out))
    assert exported.notes == ("nightly: its cron schedule is not exported; write a .timer unit for it",)
    return out


def verify(tmp_path: Path, *units: Path) -> tuple[int, str]:
    """``systemd-analyze --user verify``: its exit code and its complaints (it only warns about
    unknown keys and bad values, so any output counts)."""
    runtime = tmp_path / "runtime"  # a user manager needs XDG_RUNTIME_DIR even to verify
    runtime.mkdir(mode=0o700, exist_ok=True)
    done = subprocess.run(
        ["systemd-analyze", "--user", "verify", *map(str, units)],
        capture_output=True,
        text=True,
        env={**os.environ, "XDG_RUNTIME_DIR": str(runtime), "SYSTEMD_LOG_COLOR": "0"},
        timeout=60,
        check=False,
    )
    return done.returncode, done.stderr.strip()


@needs_systemd_analyze
@pytest.mark.parametrize("show_env", [False, True], ids=["env-file", "show-env"])
def test_systemd_analyze_verify_accepts_every_unit(tmp_path: Path, show_env: bool) -> None:
    out = export(tmp_path, show_env=show_env)
    units = [*sorted(out.glob("*.service")), out / "shop.target"]
    assert [u.name for u in units] == [
        "shop-api.service", "shop-db.service", "shop-migrate.service", "shop-worker.service", "shop.target",
    ]  # fmt: skip
    assert verify(tmp_path, *units) == (0, "")


@needs_systemd_analyze
def test_the_check_can_fail(tmp_path: Path) -> None:
    out = export(tmp_path)
    api = out / "shop-api.service"
    api.write_text(api.read_text().replace("Restart=always", "Restart=sometimes"))
    code, complaints = verify(tmp_path, api, out / "shop-db.service", out / "shop-migrate.service")
    assert "restart specifier" in complaints
    (out / "shop-db.service").unlink()
    code, complaints = verify(tmp_path, api)
    assert code != 0 and "shop-db.service" in complaints


def test_dependencies_readiness_and_environment(tmp_path: Path) -> None:
    out = export(tmp_path)
    db = (out / "shop-db.service").read_text()
    assert "Type=exec" in db and "Restart=always" in db
    assert '-m bgr.health --within 30 "tcp:127.0.0.1:6390"' in db  # api waits for it to be healthy
    migrate = (out / "shop-migrate.service").read_text()
    assert "Type=oneshot\nRemainAfterExit=yes" in migrate and "Restart=" not in migrate
    assert "ExecStart=/bin/sh -c \"python3 -c 'print(1)' && echo 'costs $$5, 100%%'\"" in migrate
    api = (out / "shop-api.service").read_text()
    for dep in ("db", "migrate"):
        assert f"Requires=shop-{dep}.service\nAfter=shop-{dep}.service" in api
    assert f"EnvironmentFile={out}/shop-api.env" in api and "debug" not in api
    env_file = out / "shop-api.env"
    assert env_file.read_text() == "GREETING='hello world'\nLOG_LEVEL='debug'\n"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert f"WorkingDirectory={tmp_path}" in api and 'Environment="PATH=' in api
    target = (out / "shop.target").read_text()
    assert "Wants=shop-db.service shop-migrate.service shop-api.service shop-worker.service" in target
    assert not (out / "shop-nightly.service").exists()


def test_guard_limits_become_memory_max_and_runtime_max_sec(tmp_path: Path) -> None:
    out = export(tmp_path)
    api = (out / "shop-api.service").read_text()
    assert "MemoryMax=200M\n" in api and "RuntimeMaxSec" not in api
    worker = (out / "shop-worker.service").read_text()
    # RuntimeMaxSec= stops the unit after that long; Restart=always starts it again.
    assert "MemoryMax=52428801\nRuntimeMaxSec=1500ms\nRestart=always\n" in worker


def test_a_oneshot_unit_has_no_runtime_limit_and_says_so(tmp_path: Path) -> None:
    text = '[job]\ncommand = "true"\nrestart_every = "1h"\nmax_memory = "1G"\n'
    text += '[web]\ncommand = "sleep 60"\ndepends_on = { job = "completed" }\n'
    exported = exports.export(
        "systemd", example_stack(tmp_path, text), out=str(tmp_path), image=None, show_env=False, source=""
    )
    job = next(f.text for f in exported.files if f.name.endswith("-job.service"))
    assert "MemoryMax=1G" in job and "RuntimeMaxSec" not in job and "Type=oneshot" in job
    assert exported.notes == ("job: its restart_every is not exported (a Type=oneshot unit runs once)",)


@needs_systemd_analyze
def test_the_check_reads_the_limits(tmp_path: Path) -> None:
    out = export(tmp_path)
    worker = out / "shop-worker.service"
    worker.write_text(worker.read_text().replace("MemoryMax=52428801", "MemoryMax=lots"))
    _, complaints = verify(tmp_path, worker, out / "shop-api.service", out / "shop-db.service")
    assert "Invalid memory limit 'lots'" in complaints


def test_show_env_writes_environment_lines(tmp_path: Path) -> None:
    out = export(tmp_path, show_env=True)
    api = (out / "shop-api.service").read_text()
    assert 'Environment="GREETING=hello world"\nEnvironment="LOG_LEVEL=debug"' in api
    assert not (out / "shop-api.env").exists()


def test_quoting_of_odd_values(tmp_path: Path) -> None:
    from bgr.export import systemd

    assert systemd._exec_quote('a "b" \\ $X %h\nz') == '"a \\"b\\" \\\\ $$X %%h\\nz"'
    assert (
        systemd._env_file({"A": "it's $HOME `x`", "B": "plain"}) == "A=\"it's \\$HOME \\`x\\`\"\nB='plain'\n"
    )
    with pytest.raises(UsageError, match="line break"):
        systemd._path("/a\nb")


def test_systemd_needs_an_output_directory(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="give --out DIR"):
        exports.export("systemd", example_stack(tmp_path), out=None, image=None, show_env=False, source="")
