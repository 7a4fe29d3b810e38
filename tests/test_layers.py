"""Which module may import what, checked two ways.

At run time: what ``bgr --json`` and a plain start load (scripts poll the first; both have a
budget of milliseconds), and what the guard loads for its passes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support import run_bgr

# Cheap to use, costly to import (-X importtime here): typing ~3 ms, pathlib ~3.5 ms (urllib.parse,
# ipaddress), the sqlite3 package's datetime adapters ~2 ms, string 0.5 ms.
SLOW_STDLIB = ("typing", "pathlib", "datetime", "sqlite3", "string", "urllib", "ipaddress")


def imported_by_bgr(code: str) -> tuple[str, list[str]]:
    """Run ``code`` in a fresh interpreter: its stdout, and the modules it loaded beyond a bare
    interpreter's. Without site (-S), importing bgr from this checkout: an editable install's path
    hook would otherwise load pathlib before bgr does. The list and start paths need no
    third-party package, and this proves that too."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    report = "\nprint(' '.join(sorted(sys.modules)), file=sys.stderr)\n"

    def run(source: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-S", "-c", "import sys\n" + source + report]
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30, check=False)

    bare, done = run(""), run(code)
    assert done.returncode == 0, done.stderr
    return done.stdout, sorted(set(done.stderr.split()) - set(bare.stderr.split()))


# Modules only starting, stopping, ports, rotation, config, git or watching need; and dataclasses,
# whose import of inspect cost ~10 ms of a listing before bgr.models became NamedTuples.
LIST_FORBIDDEN = (
    "dataclasses",
    "bgr.core.launch", "bgr.core.teardown", "bgr.core.definition",
    "bgr.proc.spawn", "bgr.proc.locks", "bgr.proc.stopper", "bgr.proc.ports",
    "bgr.logfiles.reading", "bgr.logfiles.backups", "bgr.logfiles.rotation", "bgr.config", "bgr.git",
    "bgr.watch.loop", "bgr.watch.watcher", "bgr.watch.inotify", "bgr.watch.tree",
    "bgr.watch.ignore", "bgr.watch.debounce", "bgr.watch.inbox", "bgr.watch.logstream",
    "docopt", "tomli", "git", "apscheduler", "watchdog",
) + SLOW_STDLIB + (("psutil",) if sys.platform.startswith("linux") else ())  # fmt: skip
# What a plain start must not import either: each one was milliseconds of a 50 ms budget.
START_FORBIDDEN = (
    "dataclasses", "docopt", "tomli", "git", "apscheduler", "watchdog", "bgr.logfiles.reading",
    "bgr.logfiles.backups", "bgr.git", "bgr.watch.loop",
) + SLOW_STDLIB + (("psutil",) if sys.platform.startswith("linux") else ())  # fmt: skip


def test_the_list_path_imports_nothing_that_only_changes_need(tmp_path: Path) -> None:
    """Scripts poll `bgr --json`: a top-level import of the start/stop machinery must not creep back."""
    done = run_bgr("--name", "web", "--command", "sleep 60", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out, loaded = imported_by_bgr("import bgr.cli\nassert bgr.cli.main(['--json']) == 0")
    assert json.loads(out)[0]["status"] == "running"
    assert "bgr.core.queries" in loaded
    assert [m for m in loaded if any(m == f or m.startswith(f + ".") for f in LIST_FORBIDDEN)] == []


def test_a_plain_start_imports_only_what_it_needs(tmp_path: Path) -> None:
    argv = ["--name", "web", "--command", "sleep 60", "-d", str(tmp_path)]
    out, loaded = imported_by_bgr(f"import bgr.cli\nassert bgr.cli.main({argv!r}) == 0")
    assert out.startswith("started web")
    assert "bgr.proc.spawn" in loaded
    assert [m for m in loaded if any(m == f or m.startswith(f + ".") for f in START_FORBIDDEN)] == []


def test_heavy_modules_are_imported_only_when_needed(tmp_path: Path) -> None:
    """A check and a rotation pass need neither GitPython, psutil (Linux) nor bgr.logfiles.backups; the
    long-running guard keeps OpenSSL out; a pull imports GitPython."""
    code = f"""
import sys, threading
from guard import cli
cli._skip_tls()
from bgr.core import launch, teardown
from bgr.models import StartRequest
from guard.jobs import Jobs
from guard.keeper import Keeper
from guard.options import GuardOptions, Target, TargetKind
from guard.scheduler import GuardService
launch.start(StartRequest(name="web", command="sleep 30", directory={str(tmp_path)!r}))
options = GuardOptions(target=Target(TargetKind.ALL))
jobs = Jobs(Keeper(options), threading.Event())
jobs.check(); jobs.rotate(); jobs.pull()
GuardService(options)
heavy = ("git", "psutil", "bgr.logfiles.reading", "bgr.logfiles.backups", "bgr.logfiles.rotation")
heavy += ("ssl", "_ssl")
heavy = [m for m in heavy if sys.modules.get(m)]
assert heavy == (["psutil"] if sys.platform != "linux" else []), heavy
from bgr.store import open_registry
with open_registry() as reg:
    reg.update("web", fetch=True)
jobs.pull()  # not a git checkout: the pull fails (logged), but it did need GitPython
assert "git" in sys.modules
teardown.delete("web")
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
