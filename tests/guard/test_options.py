"""guard.options: what one guard run was asked to do (pure)."""

from __future__ import annotations

from pathlib import Path

from guard.options import Target, TargetKind


def test_lock_files_differ_per_target_and_registry(tmp_path: Path) -> None:
    a, b = tmp_path / "a.sqlite", tmp_path / "b.sqlite"
    names = {
        Target(TargetKind.NAME, "all").lock_name(a),
        Target(TargetKind.ALL).lock_name(a),
        Target(TargetKind.GROUP, "all").lock_name(a),
        Target(TargetKind.NAME, "all").lock_name(b),
    }
    assert len(names) == 4
    # "@" cannot start a process name, so a guard lock never is some process's name lock.
    assert all(n.startswith("@guard-") and n.endswith(".lock") for n in names)
