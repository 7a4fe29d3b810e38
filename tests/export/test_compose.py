"""bgr.export.compose: a Compose file that docker-compose config accepts, with healthchecks and
conditions carried over and environment values only where asked."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from bgr.core import exports
from bgr.errors import UsageError
from tests.support import example_stack

yaml = pytest.importorskip("yaml")  # PyYAML comes with kubernetes-validate (the dev extras)


def compose_command() -> list[str] | None:
    """docker-compose (the Debian package), else a docker whose compose plugin answers."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    docker = shutil.which("docker")
    if docker:
        done = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30, check=False)
        if done.returncode == 0:
            return [docker, "compose"]
    return None


COMPOSE = compose_command()
needs_compose = pytest.mark.skipif(
    COMPOSE is None,
    reason="neither docker-compose nor docker compose is installed (.ci/run installs docker-compose)",
)


def export(tmp_path: Path, *, out: Path | None, show_env: bool = False, image: str | None = None) -> Path:
    stack = example_stack(tmp_path)
    exported = exports.export(
        "compose", stack, out=str(out) if out else None, image=image, show_env=show_env, source=""
    )
    assert exported.notes == (
        "worker: Compose cannot restart after a time; its restart_every is not exported",
        "nightly: Compose has no schedules; its cron schedule is not exported",
    )
    target = out or tmp_path / "printed"
    exports.write(exported, str(target))
    return target / "compose.yaml"


def config(file: Path) -> tuple[int, str]:
    assert COMPOSE is not None
    done = subprocess.run(
        [*COMPOSE, "--project-directory", str(file.parent), "-f", str(file), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


@needs_compose
@pytest.mark.parametrize("show_env", [False, True], ids=["env-file", "show-env"])
def test_docker_compose_config_accepts_it(tmp_path: Path, show_env: bool) -> None:
    file = export(tmp_path, out=tmp_path / "out", show_env=show_env)
    code, text = config(file)
    assert code == 0, text
    resolved = yaml.safe_load(text)
    assert resolved["services"]["api"]["environment"] == {"GREETING": "hello world", "LOG_LEVEL": "debug"}
    assert (resolved["services"]["api"]["mem_limit"], resolved["services"]["worker"]["mem_limit"]) == (
        "200m",
        52428801,
    )


@needs_compose
def test_the_check_can_fail(tmp_path: Path) -> None:
    file = export(tmp_path, out=tmp_path / "out")
    file.write_text(file.read_text().replace("service_healthy", "service_ready"))
    code, text = config(file)
    assert code != 0 and "service_ready" in text


def test_services_conditions_healthchecks_and_dollars(tmp_path: Path) -> None:
    file = export(tmp_path, out=tmp_path / "out", image="python:3.12-slim")
    data = yaml.safe_load(file.read_text())
    services = data["services"]
    assert list(services) == ["db", "migrate", "api", "worker", "nightly"]
    api = services["api"]
    assert api["image"] == "python:3.12-slim" and api["working_dir"] == str(tmp_path)
    assert api["command"] == ["/bin/sh", "-c", "python3 -m http.server 8000 --bind 127.0.0.1"]
    assert api["depends_on"] == {
        "db": {"condition": "service_healthy"}, "migrate": {"condition": "service_completed_successfully"},
    }  # fmt: skip
    assert (
        api["healthcheck"]["test"][:2] == ["CMD", "python3"]
        and "http://127.0.0.1:8000/health" in api["healthcheck"]["test"]
    )
    assert (api["healthcheck"]["retries"], api["healthcheck"]["start_period"]) == (2, "2s")
    assert services["db"]["healthcheck"]["timeout"] == "1500ms"
    assert services["worker"]["healthcheck"]["test"] == ["CMD", "/bin/sh", "-c", "test -d /"]
    assert services["migrate"]["restart"] == "no" and api["restart"] == "always"
    assert (api["mem_limit"], services["worker"]["mem_limit"]) == ("200m", 52428801)
    assert "mem_limit" not in services["db"]
    assert services["migrate"]["command"][2] == "python3 -c 'print(1)' && echo 'costs $$5, 100%'"
    assert api["env_file"] == ["api.env"] and "environment" not in api
    env_file = file.parent / "api.env"
    assert env_file.read_text() == "GREETING=hello world\nLOG_LEVEL=debug\n"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600


def test_environment_values_are_printed_only_with_show_env(tmp_path: Path) -> None:
    stack = example_stack(tmp_path)
    with pytest.raises(UsageError, match="api has environment values: give --out DIR"):
        exports.export("compose", stack, out=None, image=None, show_env=False, source="")
    shown = exports.export("compose", stack, out=None, image=None, show_env=True, source="")
    assert yaml.safe_load(shown.files[0].text)["services"]["api"]["environment"]["GREETING"] == "hello world"


def test_a_value_env_files_read_differently_is_refused(tmp_path: Path) -> None:
    stack = example_stack(tmp_path, '[a]\ncommand = "x"\nenv = { PASSWORD = "pa$$word" }\n')
    with pytest.raises(UsageError, match="a: the value of PASSWORD holds a quote, \\$"):
        exports.export("compose", stack, out=str(tmp_path), image=None, show_env=False, source="")
