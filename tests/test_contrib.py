"""The service files in contrib/: systemd user units and launchd agents parse and say what we need."""

from __future__ import annotations

import os
import plistlib
import shutil
import subprocess
from pathlib import Path

import pytest

CONTRIB = Path(__file__).resolve().parent.parent / "contrib"
TEMPLATE_UNIT = CONTRIB / "systemd" / "bgr-guard@.service"
ALL_UNIT = CONTRIB / "systemd" / "bgr-guard.service"
ALL_PLIST = CONTRIB / "launchd" / "com.bgr.guard.plist"
NAME_PLIST = CONTRIB / "launchd" / "com.bgr.guard.NAME.plist"

Unit = dict[str, dict[str, list[str]]]


def parse_unit(text: str) -> Unit:
    """systemd's unit syntax, enough for our files: sections, comments, repeated keys,
    backslash continuation lines. Keys outside a section are an error, as they are for systemd."""
    sections: Unit = {}
    current: dict[str, list[str]] | None = None
    pending = ""
    for raw in text.splitlines():
        line = (pending + " " + raw.strip()) if pending else raw.strip()
        pending = ""
        if not line or line.startswith(("#", ";")):
            continue
        if line.endswith("\\"):
            pending = line[:-1].rstrip()
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, sep, value = line.partition("=")
        assert sep and current is not None, f"not a key=value line inside a section: {raw!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    assert not pending, "file ends inside a continuation line"
    return sections


def test_parse_unit_handles_repeats_comments_and_continuations() -> None:
    unit = parse_unit("# c\n[A]\nK=1\n; c\nK=2\nL=x \\\n  y\n[B]\nM=\n")
    assert unit == {"A": {"K": ["1", "2"], "L": ["x y"]}, "B": {"M": [""]}}
    with pytest.raises(AssertionError):
        parse_unit("K=1\n")


def only(unit: Unit, section: str, key: str) -> str:
    """The effective value of a single-valued key (systemd: the last assignment wins)."""
    values = unit.get(section, {}).get(key)
    assert values, f"[{section}] {key}= is missing"
    return values[-1]


@pytest.mark.parametrize("path", [TEMPLATE_UNIT, ALL_UNIT], ids=["template", "all"])
def test_unit_keeps_the_guard_alive_without_killing_its_processes(path: Path) -> None:
    unit = parse_unit(path.read_text(encoding="utf-8"))
    assert set(unit) == {"Unit", "Service", "Install"}
    exec_start = only(unit, "Service", "ExecStart")
    assert exec_start.split()[0] == "%h/.local/bin/bgr-guard"
    assert only(unit, "Service", "Restart") == "always"
    assert only(unit, "Service", "RestartSec") == "2"
    assert only(unit, "Service", "KillMode") == "process"
    assert only(unit, "Install", "WantedBy") == "default.target"
    assert only(unit, "Unit", "StartLimitIntervalSec") == "0"
    text = path.read_text(encoding="utf-8")
    assert "loginctl enable-linger" in text
    assert "control-group" in text  # the comment explaining KillMode=process


def test_template_unit_guards_the_instance_name() -> None:
    unit = parse_unit(TEMPLATE_UNIT.read_text(encoding="utf-8"))
    assert only(unit, "Service", "ExecStart").split()[1:] == ["%i", "30"]
    assert "%I" not in only(unit, "Service", "ExecStart")  # %I would turn my-app into my/app


def test_all_unit_guards_everything() -> None:
    unit = parse_unit(ALL_UNIT.read_text(encoding="utf-8"))
    assert only(unit, "Service", "ExecStart").split()[1:] == ["--all", "30"]


def fake_guard_home(home: Path) -> Path:
    """An executable at %h/.local/bin/bgr-guard, because systemd-analyze checks ExecStart."""
    binary = home / ".local" / "bin" / "bgr-guard"
    binary.parent.mkdir(parents=True, exist_ok=True)
    binary.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    binary.chmod(0o755)
    return binary


def verify(unit_file: Path, tmp_path: Path) -> tuple[int, list[str]]:
    """Run ``systemd-analyze --user verify``; return its exit code and the lines naming the unit.

    verify exits 0 even for unknown keys or unparsable values (it only warns), so any stderr line
    naming the unit counts as a complaint.
    """
    runtime = tmp_path / "runtime"  # a user manager needs XDG_RUNTIME_DIR even to verify
    runtime.mkdir(mode=0o700, exist_ok=True)
    result = subprocess.run(
        ["systemd-analyze", "--user", "verify", str(unit_file)],
        capture_output=True,
        text=True,
        env={**os.environ, "XDG_RUNTIME_DIR": str(runtime), "SYSTEMD_LOG_COLOR": "0"},
        timeout=30,
        check=False,
    )
    return result.returncode, [line for line in result.stderr.splitlines() if unit_file.name in line]


needs_systemd_analyze = pytest.mark.skipif(
    not shutil.which("systemd-analyze"), reason="systemd-analyze not installed"
)


@needs_systemd_analyze
@pytest.mark.parametrize(
    ("source", "unit_name"),
    [(TEMPLATE_UNIT, "bgr-guard@my-app.service"), (ALL_UNIT, "bgr-guard.service")],
    ids=["template", "all"],
)
def test_systemd_analyze_verify_is_clean(source: Path, unit_name: str, tmp_path: Path) -> None:
    fake_guard_home(Path(os.environ["HOME"]))  # a per-test directory (conftest)
    (tmp_path / "units").mkdir()
    unit_file = Path(shutil.copy(source, tmp_path / "units" / unit_name))
    assert verify(unit_file, tmp_path) == (0, [])


@needs_systemd_analyze
def test_systemd_analyze_verify_catches_broken_units(tmp_path: Path) -> None:
    """The check above can fail: a bad KillMode warns, a missing bgr-guard binary is an error."""
    broken = tmp_path / "bgr-guard.service"
    broken.write_text(
        ALL_UNIT.read_text(encoding="utf-8").replace("KillMode=process", "KillMode=bogus"),
        encoding="utf-8",
    )
    code, complaints = verify(broken, tmp_path)
    assert code != 0  # $HOME/.local/bin/bgr-guard does not exist yet
    assert any("not executable" in line for line in complaints), complaints
    fake_guard_home(Path(os.environ["HOME"]))
    code, complaints = verify(broken, tmp_path)
    assert any("kill mode" in line.lower() for line in complaints), complaints


def load_plist(path: Path, **placeholders: str) -> dict[str, object]:
    text = path.read_text(encoding="utf-8")
    for key, value in placeholders.items():
        text = text.replace(f"__{key}__", value)
    data = plistlib.loads(text.encode())
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize("path", [ALL_PLIST, NAME_PLIST], ids=["all", "name"])
def test_plist_keeps_the_guard_alive_and_abandons_its_process_group(path: Path) -> None:
    data = load_plist(path)
    assert data["KeepAlive"] is True
    assert data["RunAtLoad"] is True
    assert data["AbandonProcessGroup"] is True
    assert isinstance(data["Label"], str)
    assert data["Label"].startswith("com.bgr.guard")
    for key in ("StandardErrorPath", "StandardOutPath"):
        value = data[key]
        assert isinstance(value, str)
        assert value.startswith("__HOME__/.bgr/")  # launchd does not expand ~
        assert value.endswith(".log")  # never one of bgr's own <name>-out/-err.txt files
    assert "~" not in str(data)
    assert "AbandonProcessGroup" in path.read_text(encoding="utf-8")


def test_all_plist_after_filling_in_home(tmp_path: Path) -> None:
    data = load_plist(ALL_PLIST, HOME=str(tmp_path))
    assert data["Label"] == "com.bgr.guard"
    assert data["ProgramArguments"] == [f"{tmp_path}/.local/bin/bgr-guard", "--all", "30"]
    assert data["StandardErrorPath"] == f"{tmp_path}/.bgr/bgr-guard.log"
    assert "__" not in str(data)


def test_name_plist_after_filling_in_home_and_name(tmp_path: Path) -> None:
    data = load_plist(NAME_PLIST, HOME=str(tmp_path), NAME="my-app")
    assert data["Label"] == "com.bgr.guard.my-app"
    assert data["ProgramArguments"] == [f"{tmp_path}/.local/bin/bgr-guard", "my-app", "30"]
    assert data["StandardErrorPath"] == f"{tmp_path}/.bgr/bgr-guard.my-app.log"
    assert "__" not in str(data)


def test_readme_gives_the_install_commands() -> None:
    text = (CONTRIB / "README.md").read_text(encoding="utf-8")
    for needle in (
        "~/.config/systemd/user",
        "systemctl --user daemon-reload",
        "systemctl --user enable --now bgr-guard@myapp",
        "loginctl enable-linger",
        "launchctl bootstrap gui/$(id -u)",
        "KillMode=process",
        "AbandonProcessGroup",
    ):
        assert needle in text, needle
