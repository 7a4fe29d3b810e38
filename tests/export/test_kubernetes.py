"""bgr.export.kubernetes: manifests that kubernetes-validate accepts (offline schemas, strict),
with probes, init-container waits and the environment kept out of the pod specs."""

from __future__ import annotations

import base64
import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bgr.core import exports
from bgr.errors import UsageError
from tests.support import example_stack

yaml = pytest.importorskip("yaml")  # PyYAML comes with kubernetes-validate (the dev extras)
needs_validator = pytest.mark.skipif(
    importlib.util.find_spec("kubernetes_validate") is None,
    reason="kubernetes-validate is not installed (pip install -e '.[dev]')",
)


def export(
    tmp_path: Path, *, show_env: bool = False
) -> tuple[Path, dict[tuple[str, str], Any], tuple[str, ...]]:
    stack = example_stack(tmp_path)
    exported = exports.export("kubernetes", stack, out=None, image=None, show_env=show_env, source="")
    file = tmp_path / "kubernetes.yaml"
    file.write_text(exported.files[0].text)
    docs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(file.read_text())}
    return file, docs, exported.notes


def validate(file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", str(file)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@needs_validator
@pytest.mark.parametrize("show_env", [False, True], ids=["secret", "configmap"])
def test_kubernetes_validate_accepts_every_manifest(tmp_path: Path, show_env: bool) -> None:
    file, docs, _ = export(tmp_path, show_env=show_env)
    done = validate(file)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(" passed for resource ") == len(docs) == 8


@needs_validator
def test_the_check_can_fail(tmp_path: Path) -> None:
    file, _, _ = export(tmp_path)
    file.write_text(file.read_text().replace("failureThreshold", "failureLimit", 1))
    done = validate(file)
    assert done.returncode != 0 and "failureLimit" in done.stdout + done.stderr


def test_kinds_probes_and_waits(tmp_path: Path) -> None:
    _, docs, notes = export(tmp_path)
    assert sorted(docs) == [
        ("CronJob", "shop-nightly"), ("Deployment", "shop-api"), ("Deployment", "shop-db"),
        ("Deployment", "shop-worker"), ("Job", "shop-migrate"), ("Secret", "shop-api-env"),
        ("Service", "shop-api"), ("Service", "shop-db"),
    ]  # fmt: skip
    api = docs[("Deployment", "shop-api")]
    pod = api["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["command"] == ["/bin/sh", "-c", "python3 -m http.server 8000 --bind 127.0.0.1"]
    assert container["workingDir"] == str(tmp_path)
    assert container["envFrom"] == [{"secretRef": {"name": "shop-api-env"}}] and "env" not in container
    probe = container["readinessProbe"]
    assert probe["httpGet"] == {"path": "/health", "port": 8000, "scheme": "HTTP"}
    assert (probe["failureThreshold"], probe["initialDelaySeconds"]) == (2, 2)
    assert container["livenessProbe"] == probe
    assert container["resources"] == {"limits": {"memory": "200Mi"}}
    waits = pod["initContainers"]
    assert [w["name"] for w in waits] == ["wait-for-db"]
    assert "shop-db 6390 1.5" in waits[0]["command"][2]
    assert api["metadata"]["annotations"] == {"bgr/depends-on": "db=healthy,migrate=completed"}
    db = docs[("Deployment", "shop-db")]["spec"]["template"]["spec"]["containers"][0]
    assert db["readinessProbe"]["tcpSocket"] == {"port": 6390} and db["readinessProbe"]["timeoutSeconds"] == 2
    worker = docs[("Deployment", "shop-worker")]["spec"]["template"]["spec"]
    assert worker["containers"][0]["livenessProbe"]["exec"] == {"command": ["/bin/sh", "-c", "test -d /"]}
    assert "shop-api 8000" in worker["initContainers"][0]["command"][2]  # started: its port accepts
    assert worker["containers"][0]["resources"] == {"limits": {"memory": "52428801"}}
    assert "resources" not in db
    job = docs[("Job", "shop-migrate")]["spec"]["template"]["spec"]
    assert job["restartPolicy"] == "OnFailure" and "readinessProbe" not in job["containers"][0]
    assert docs[("CronJob", "shop-nightly")]["spec"]["schedule"] == "0 3 * * *"
    assert docs[("Service", "shop-db")]["spec"]["ports"] == [
        {"name": "port-6390", "port": 6390, "targetPort": 6390}
    ]
    secret = docs[("Secret", "shop-api-env")]
    assert {k: base64.b64decode(v).decode() for k, v in secret["data"].items()} == {
        "GREETING": "hello world", "LOG_LEVEL": "debug",
    }  # fmt: skip
    assert "hello world" not in (tmp_path / "kubernetes.yaml").read_text()
    assert notes == (
        "api: does not wait for migrate in Kubernetes (it becomes a Job); see bgr/depends-on",
        "worker: Kubernetes cannot restart a pod after a time; its restart_every is not exported",
    )


def test_show_env_puts_the_values_in_a_config_map(tmp_path: Path) -> None:
    _, docs, _ = export(tmp_path, show_env=True)
    assert docs[("ConfigMap", "shop-api-env")]["data"] == {"GREETING": "hello world", "LOG_LEVEL": "debug"}
    container = docs[("Deployment", "shop-api")]["spec"]["template"]["spec"]["containers"][0]
    assert container["envFrom"] == [{"configMapRef": {"name": "shop-api-env"}}]


def test_names_become_dns_labels_and_clashes_are_refused(tmp_path: Path) -> None:
    stack = example_stack(tmp_path, 'name = "Shop"\n[Api_V2]\ncommand = "x"\n')
    text = exports.export("kubernetes", stack, out=None, image=None, show_env=False, source="").files[0].text
    assert '"shop-api-v2"' in text
    clash = example_stack(tmp_path, '[a_b]\ncommand = "x"\n[a-b]\ncommand = "y"\n')
    with pytest.raises(UsageError, match="a_b and a-b would both be named"):
        exports.export("kubernetes", clash, out=None, image=None, show_env=False, source="")
