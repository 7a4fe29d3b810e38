"""Fixtures for every test folder; their logic is in ``tests/support.py``.

Isolation for every test: a private state directory, and no process left behind. Every process a
test starts (through bgr or directly) inherits ``BGR_HOME=<this test's tmp dir>``; that is how the
teardown finds exactly this test's processes, including grandchildren that called setsid, without
touching anything else on the machine.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bgr import store
from bgr.models import ProcessRecord
from tests.support import Guard, Repos, Watch, isolate, kill_leftovers, make_repos, set_git_identity


@pytest.fixture(autouse=True)
def bgr_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point BGR_HOME (and HOME) at a fresh directory; afterwards kill and report leftovers."""
    home = isolate(tmp_path, monkeypatch)
    yield home
    survivors = kill_leftovers(home)
    assert not survivors, f"processes survived SIGKILL at teardown: {survivors}"


@pytest.fixture
def populated(bgr_home: Path, tmp_path: Path) -> Path:
    """A registry with one (not running) definition; returns its path."""
    with store.open_registry(create=True) as reg:
        reg.put(
            ProcessRecord(
                name="known", directory=str(tmp_path), command="sleep 60",
                stdout=str(bgr_home / "known-out.txt"), stderr=str(bgr_home / "known-err.txt"),
            )
        )  # fmt: skip
    return bgr_home / "bgr.sqlite"


@pytest.fixture
def git_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Commits work on a bare machine, and no system/global git config leaks in."""
    set_git_identity(monkeypatch)


@pytest.fixture
def repos(tmp_path: Path, git_identity: None) -> Repos:
    """A bare remote and two clones of it, both at its one commit: ``app`` (the process
    directory bgr pulls) and ``other`` (a second developer who pushes)."""
    return make_repos(tmp_path)


@pytest.fixture
def other_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A directory on a filesystem other than tmp_path's (tmpfs /dev/shm), removed afterwards."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second filesystem available")
    directory = shm / f"bgr-test-{uuid.uuid4().hex}"
    directory.mkdir(mode=0o700)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def watching() -> Iterator[Callable[..., Watch]]:
    """Start ``bgr ... --watch`` runs; each is killed (its whole session) at the end of the test."""
    started: list[Watch] = []

    def start(*args: str, cwd: Path, prefix: tuple[str, ...] = ()) -> Watch:
        w = Watch(list(args), cwd, prefix)
        started.append(w)
        return w

    yield start
    for w in started:
        w.kill()


@pytest.fixture
def guard(tmp_path: Path) -> Iterator[Callable[..., Guard]]:
    """Start guards; each is terminated (and waited for) at the end of the test."""
    started: list[Guard] = []

    def launch(*args: str, env: dict[str, str] | None = None) -> Guard:
        g = Guard(list(args), tmp_path / f"guard-{len(started)}.log", env)
        started.append(g)
        return g

    try:
        yield launch
    finally:
        for g in started:
            g.stop()


@pytest.fixture(params=["cgroup", "no cgroup"])
def tracking(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """How instances are tracked: the test runs with a cgroup per instance, and without."""
    from bgr.proc import cgroups

    if request.param == "no cgroup":
        monkeypatch.setenv("BGR_CGROUP", "off")
    elif cgroups.base() is None:
        pytest.skip("bgr makes no cgroups here (BGR_CGROUP=off, or no writable cgroup v2 tree)")
    yield str(request.param)
