"""bgr.proc.cgroups: where bgr may make cgroups, and what an instance cgroup holds and lets go."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from bgr.proc import cgroups
from tests.support import alive, wait_for

needs_cgroups = pytest.mark.skipif(
    cgroups.base() is None, reason="bgr makes no cgroups here (BGR_CGROUP=off, or no writable cgroup v2 tree)"
)


def test_bgr_cgroup_off_turns_them_off_and_a_path_that_is_no_cgroup_gives_none(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for off in ("off", "0", "no", "OFF"):
        monkeypatch.setenv("BGR_CGROUP", off)
        assert cgroups.base() is None
        assert cgroups.create("reg", "web", "abc") is None
    monkeypatch.setenv("BGR_CGROUP", str(tmp_path))  # an ordinary directory
    assert cgroups.base() is None
    assert cgroups.of_name("reg", "web") == [] and cgroups.procs(None) == [] and not cgroups.populated(None)


@needs_cgroups
def test_an_instance_cgroup_holds_what_joins_it_and_everything_it_forks() -> None:
    path = cgroups.create("test-registry", "web", "0123")
    assert path is not None and path.endswith("/test-registry/web/0123")
    assert cgroups.of_name("test-registry", "web") == [path]
    assert cgroups.of_name("test-registry", "we") == []
    try:
        script = f'echo 0 > "{path}/cgroup.procs"; sleep 60 & setsid sleep 60 & wait'
        with subprocess.Popen(["sh", "-c", script], start_new_session=True) as shell:
            wait_for(lambda: len(cgroups.procs(path)) == 3, what="the shell and both sleeps")
            assert cgroups.populated(path)
            assert all(cgroups.contains(path, pid) for pid in cgroups.procs(path))
            assert not cgroups.contains(path, os.getpid())
            members = cgroups.procs(path)
            cgroups.signal_all(path, signal.SIGTERM)
            shell.wait(timeout=5)
            wait_for(lambda: not cgroups.populated(path), what="all gone")
            assert not any(alive(pid) for pid in members)
    finally:
        cgroups.kill(path)
        wait_for(lambda: not cgroups.populated(path), what="empty")
        cgroups.remove_name("test-registry", "web")
        cgroups.remove(cgroups.registry_dir("test-registry"))
    assert not os.path.exists(os.path.dirname(path))


@needs_cgroups
def test_kill_empties_a_cgroup_at_once_and_remove_keeps_a_populated_one() -> None:
    path = cgroups.create("test-registry", "stubborn", "4567")
    assert path is not None
    try:
        ignore = "trap '' TERM; while :; do sleep 1; done"
        script = f'echo 0 > "{path}/cgroup.procs"; exec sh -c "{ignore}"'
        with subprocess.Popen(["sh", "-c", script], start_new_session=True) as shell:
            wait_for(lambda: cgroups.populated(path), what="joined")
            cgroups.remove(path)  # populated: it stays
            assert os.path.isdir(path)
            cgroups.kill(path)
            assert shell.wait(timeout=5) == -signal.SIGKILL
            wait_for(lambda: not cgroups.populated(path), what="empty")
    finally:
        cgroups.kill(path)
        wait_for(lambda: not cgroups.populated(path), what="empty")
        cgroups.remove_name("test-registry", "stubborn")
        cgroups.remove(cgroups.registry_dir("test-registry"))


def test_slow_joins_follows_the_cgroup2_mount_options() -> None:
    plain = "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate 0 0\n"
    favoured = "cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime,favordynmods 0 0\n"
    other = "proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0\n"
    assert cgroups.parse_mounts([other, plain]) == (
        "/sys/fs/cgroup",
        ("rw", "nosuid", "nodev", "noexec", "relatime", "nsdelegate"),
    )
    assert cgroups.parse_mounts([favoured])[1][-1] == "favordynmods"  # type: ignore[index]
    assert cgroups.parse_mounts([other]) is None


def test_slow_joins_is_said_only_for_a_cgroup2_mount_without_favordynmods(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for options, slow in ((("rw", "relatime"), True), (("rw", "favordynmods"), False)):
        monkeypatch.setattr(cgroups, "_mount", lambda options=options: ("/sys/fs/cgroup", options))
        assert cgroups.slow_joins() is slow
    monkeypatch.setattr(cgroups, "_mount", lambda: None)
    assert cgroups.slow_joins() is False


@needs_cgroups
def test_remove_empty_keeps_the_instance_just_started_whose_launcher_has_not_joined_yet() -> None:
    dead = cgroups.create("test-registry", "web", "dead0")
    fresh = cgroups.create("test-registry", "web", "fresh1")
    assert dead is not None and fresh is not None
    try:
        cgroups.remove_empty("test-registry", "web", keep="fresh1")
        assert cgroups.of_name("test-registry", "web") == [fresh]
        cgroups.remove_empty("test-registry", "web")
        assert cgroups.of_name("test-registry", "web") == []
    finally:
        cgroups.remove_name("test-registry", "web")
        cgroups.remove(cgroups.registry_dir("test-registry"))
