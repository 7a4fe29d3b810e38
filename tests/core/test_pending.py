"""bgr.core.pending, and a full disk as bgr meets it: a small tmpfs, filled to the last block, in a
mount namespace of its own (``unshare -Urm``: an unprivileged user and mount namespace)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import managed, run_bgr


def can_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-Urm", "true"], capture_output=True, check=False)
    return probe.returncode == 0


needs_namespaces = pytest.mark.skipif(
    not can_unshare(), reason="no user and mount namespaces here (unshare -Urm)"
)

# Runs inside the namespace: mount a 2 MiB tmpfs on BGR_HOME, start a process, fill the disk, then
# run each command; prints one JSON line per step.
SCRIPT = """
import json, os, subprocess, sys
home = os.environ["BGR_HOME"]
os.makedirs(home, exist_ok=True)
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", home], check=True)
os.chmod(home, 0o700)
bgr = [sys.executable, "-m", "bgr"]
def step(label, *argv):
    done = subprocess.run([*bgr, *argv], capture_output=True, text=True)
    seen = {"step": label, "code": done.returncode, "out": done.stdout, "err": done.stderr}
    print(json.dumps(seen), flush=True)
step("start", "--name", "web", "--command", "exec sleep 300", "--wait", "0")
step("second", "--name", "other", "--command", "exec sleep 300", "--wait", "0")
fd = os.open(os.path.join(home, "filler"), os.O_WRONLY | os.O_CREAT, 0o600)
try:
    while True:
        os.write(fd, b"x" * 4096)
except OSError:
    pass
os.close(fd)
step("list")
step("json", "--json")
step("details", "web")
step("logs", "web", "--logs")
step("stop", "--stop", "web", "--grace", "0.5")
step("delete", "--delete", "other", "--grace", "0.5")
step("start-full", "--name", "third", "--command", "exec sleep 300", "--wait", "0")
os.unlink(os.path.join(home, "filler"))
step("after", "--json")
# The registry vanishes with this namespace's tmpfs, so the teardown could not find its cgroup
# folder afterwards: remove it while the registry is still there.
step("nuke", "--nuke")
"""


@needs_namespaces
def test_a_full_disk_still_lists_stops_and_deletes_and_records_it_later(
    tmp_path: Path, bgr_home: Path
) -> None:
    script = tmp_path / "full.py"
    script.write_text(SCRIPT)
    done = subprocess.run(
        ["unshare", "-Urm", sys.executable, str(script)],
        capture_output=True, text=True, timeout=120, check=False, env=dict(os.environ),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    steps = {s["step"]: s for s in map(json.loads, done.stdout.splitlines())}
    assert steps["start"]["code"] == 0 and steps["second"]["code"] == 0
    for label in ("list", "json", "details", "logs"):
        assert steps[label]["code"] == 0, steps[label]
        assert "disk I/O error" not in steps[label]["err"]
    assert "web" in steps["list"]["out"] and json.loads(steps["json"]["out"])[0]["status"] == "running"
    for label in ("stop", "delete"):
        stop = steps[label]
        assert stop["code"] == 7, stop
        assert "stopped" in stop["out"] or "deleted" in stop["out"]
        assert "no space left on device" in stop["err"] and "records it" in stop["err"]
        assert len(stop["err"].splitlines()) == 1
    assert steps["start-full"]["code"] == 7 and "no space left on device" in steps["start-full"]["err"]
    assert managed("web") == [] and managed("other") == [] and managed("third") == []
    # Once there is room, the next command records what the full disk kept back.
    after = {row["name"]: row for row in json.loads(steps["after"]["out"])}
    assert (
        set(after) == {"web"} and after["web"]["status"] == "stopped" and after["web"]["desired"] == "stopped"
    )
    assert steps["nuke"]["code"] == 0, steps["nuke"]


def test_a_file_size_limit_is_named_as_such(tmp_path: Path) -> None:
    start = run_bgr("--name", "a", "--command", "sleep 60", "--wait", "0", cwd=tmp_path)
    assert start.returncode == 0, start.stderr
    for _ in range(5):  # grow the registry past the limit below
        assert run_bgr("a", "--restart", "--wait", "0", "--grace", "0.5").returncode == 0
    restart = [sys.executable, "-m", "bgr", "a", "--restart", "--wait", "0"]
    # Not measured by coverage: its own data file could not be written under this limit either,
    # and its "disk I/O error" at exit would be read as bgr's.
    unmeasured = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    limited = subprocess.run(
        ["sh", "-c", 'ulimit -f 8; exec "$@"', "sh", *restart],
        capture_output=True, text=True, timeout=30, check=False, env=unmeasured,
    )  # fmt: skip
    assert limited.returncode == 7
    assert "file size limit exceeded (ulimit -f" in limited.stderr and "disk I/O" not in limited.stderr
    assert run_bgr("--delete", "a", "--grace", "0.5").returncode == 0
