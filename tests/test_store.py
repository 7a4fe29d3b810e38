"""bgr.store: the SQLite registry on its own, and what the CLI does with one it cannot use."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from bgr import paths, store
from bgr.errors import NotFound, RegistryError
from bgr.models import Desired, ProcessRecord
from tests.support import assert_one_error_line, main, managed, registry_snapshot, run_bgr


def record(name: str = "web", **changes: object) -> ProcessRecord:
    base = ProcessRecord(
        name=name,
        directory="/srv/web",
        command="python3 -m http.server 8000",
        stdout=f"/tmp/{name}-out.txt",
        stderr=f"/tmp/{name}-err.txt",
    )
    return base._replace(**changes)  # type: ignore[arg-type]


def test_round_trip_keeps_every_field_and_env_values_losslessly() -> None:
    tricky = {"A": "x,y=z \"double\" 'single' \\ back", "B": "line1\nline2", "C": "ünï €", "D": ""}
    original = record(
        group="api",
        env=tricky,
        config_env={"SERVER_PORT": "3000"},
        fetch=True,
        desired=Desired.STOPPED,
        pid=123,
        pgid=123,
        start_token="boot:42",
        instance="abc",
        started_at=1.5,
        exit_code=137,
        restarts=4,
        guard={"phase": "backoff", "failures": [1, 2]},
        events=({"at": 1.0, "event": "started", "detail": "pid 123"},),
    )
    with store.open_registry(create=True) as reg:
        stored = reg.put(original)
        loaded = reg.get("web")
    assert loaded == stored
    assert loaded is not None
    assert loaded.env == tricky
    assert loaded.guard == {"phase": "backoff", "failures": [1, 2]}
    assert loaded.fetch is True
    assert loaded.desired is Desired.STOPPED
    assert loaded.created_at is not None and loaded.updated_at is not None


def test_update_with_instance_applies_only_while_the_row_describes_it() -> None:
    with store.open_registry(create=True) as reg:
        reg.put(record(instance="first", exit_code=None))
        assert reg.update("web", instance="other", exit_code=1) is None
        got = reg.get("web")
        assert got is not None and got.exit_code is None
        updated = reg.update("web", instance="first", exit_code=2)
        assert updated is not None and updated.exit_code == 2
        got = reg.get("web")
        assert got is not None and got.exit_code == 2
        assert reg.update("missing", exit_code=1) is None


def test_update_appends_an_event_in_the_same_write_only_where_the_change_applies() -> None:
    with store.open_registry(create=True) as reg:
        reg.put(record(instance="first", exit_code=None, events=()))
        assert reg.update("web", instance="other", event=("exited", "stale"), exit_code=1) is None
        updated = reg.update("web", instance="first", event=("exited", "code 2"), exit_code=2)
        got = reg.get("web")
    assert updated == got
    assert got is not None and got.exit_code == 2
    assert [(e["event"], e["detail"]) for e in got.events] == [("exited", "code 2")]


def test_events_are_capped_newest_last() -> None:
    with store.open_registry(create=True) as reg:
        reg.put(record())
        for i in range(store.EVENTS_KEPT + 5):
            reg.add_event("web", "tick", str(i))
        reg.add_event("missing", "tick")  # no row: silently nothing
        got = reg.get("web")
    assert got is not None
    assert len(got.events) == store.EVENTS_KEPT
    assert got.events[-1]["detail"] == str(store.EVENTS_KEPT + 4)
    assert got.events[0]["detail"] == "5"


def test_all_filters_by_group_and_sorts_by_name_require_and_delete() -> None:
    with store.open_registry(create=True) as reg:
        for name, group in (("c", "api"), ("a", None), ("b", "api")):
            reg.put(record(name, group=group))
        assert [r.name for r in reg.all()] == ["a", "b", "c"]
        assert [r.name for r in reg.all("api")] == ["b", "c"]
        assert reg.all("nope") == []
        with pytest.raises(NotFound, match="no process named 'zz'"):
            reg.require("zz")
        assert reg.delete("b") is True
        assert reg.delete("b") is False
        assert [r.name for r in reg.all()] == ["a", "c"]


def test_summaries_read_a_few_columns_of_every_row_as_stored() -> None:
    with store.open_registry(create=True) as reg:
        for name, group in (("c", "api"), ("a", None), ("b", "api")):
            reg.put(record(name, group=group, desired=Desired.STOPPED if name == "b" else Desired.RUNNING))
        assert reg.summaries(("name", "desired", "intent")) == [
            ("a", "running", "{}"),
            ("b", "stopped", "{}"),
            ("c", "running", "{}"),
        ]
        assert reg.summaries(("name",), group="api") == [("b",), ("c",)]
        assert reg.summaries(("name", "stdout"), name="c") == [("c", "/tmp/c-out.txt")]
        assert reg.summaries(("name",), name="zz") == []
        for bad in ((), ("name", "nope"), ('name" FROM meta --',)):
            with pytest.raises(ValueError, match="not columns"):
                reg.summaries(bad)


def test_a_registry_of_the_previous_schema_is_migrated_and_keeps_its_rows(bgr_home: Path) -> None:
    """A registry an older bgr wrote (schema 4: no limits column) gains the column, '{}' for
    every row, and its rows read and write as before."""
    paths.ensure_state_dir()
    db = bgr_home / "bgr.sqlite"
    conn = sqlite3.connect(db, isolation_level=None)
    for statements in store.MIGRATIONS[:4]:
        for statement in statements:
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 4")
    conn.execute(
        "INSERT INTO processes (name, directory, command, stdout, stderr, on_failure) "
        "VALUES ('old', '/srv', 'sleep 60', '/tmp/o', '/tmp/e', 'notify-send')"
    )
    conn.close()
    with store.open_registry() as reg:
        old = reg.require("old")
        assert (old.command, old.on_failure, old.limits) == ("sleep 60", "notify-send", {})
        assert reg.summaries(("name", "limits")) == [("old", "{}")]
        reg.update("old", limits={"max_memory": 1024, "restart_every": 0.5})
        assert reg.require("old").limits == {"max_memory": 1024, "restart_every": 0.5}
    assert registry_snapshot(db)[0] == store.SCHEMA_VERSION == 5


def test_transaction_rolls_back_when_the_block_fails() -> None:
    with store.open_registry(create=True) as reg:
        reg.put(record())
        with pytest.raises(RuntimeError), reg.transaction() as conn:
            conn.execute("DELETE FROM processes")
            raise RuntimeError("boom")
        assert reg.get("web") is not None


def test_json_columns_are_checked_by_the_database() -> None:
    with store.open_registry(create=True) as reg:
        reg.put(record())
        with pytest.raises(RegistryError, match="CHECK constraint"), reg.transaction() as conn:
            conn.execute("UPDATE processes SET env = 'not json' WHERE name = 'web'")


def test_new_registry_is_private_wal_and_versioned_even_with_umask_000(bgr_home: Path) -> None:
    old = os.umask(0)
    try:
        with store.open_registry(create=True) as reg:
            reg.put(record())
            db = reg.path
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in bgr_home.iterdir() if p.is_file()}
            mode = reg._conn.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        os.umask(old)
    assert db == str(bgr_home / "bgr.sqlite")
    assert stat.S_IMODE(bgr_home.stat().st_mode) == 0o700
    # The WAL and shared-memory files exist while the connection is open; all are private.
    assert modes and all(m == 0o600 for m in modes.values()), modes
    assert mode == "wal"
    assert registry_snapshot(db)[0] == store.SCHEMA_VERSION


def test_registry_from_a_newer_bgr_is_refused_and_left_alone(bgr_home: Path) -> None:
    with store.open_registry(create=True) as reg:
        reg.put(record())
        db = reg.path
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    before = registry_snapshot(db)
    with pytest.raises(RegistryError, match="newer bgr"):
        store.open_registry(create=True)
    assert registry_snapshot(db) == before


def test_corrupt_registry_is_refused_and_left_alone(bgr_home: Path) -> None:
    paths.ensure_state_dir()
    db = bgr_home / "bgr.sqlite"
    garbage = b"this is not a database\0" * 400
    db.write_bytes(garbage)
    with pytest.raises(RegistryError, match="corrupt"):
        store.open_registry(create=True)
    assert db.read_bytes() == garbage


def test_someone_elses_sqlite_database_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "other.sqlite"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE accounts (id INTEGER)")
    conn.commit()
    conn.close()
    with pytest.raises(RegistryError, match="did not create"):
        store.open_registry(str(db), create=True)
    conn = sqlite3.connect(db)
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    conn.close()
    assert tables == ["accounts"]


def test_locked_registry_gives_a_clear_error_and_reads_still_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(store, "BUSY_TIMEOUT_MS", 100)
    with store.open_registry(create=True) as reg:
        reg.put(record())
        db = reg.path
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with store.open_registry(create=True) as reg:
            # WAL: a listing keeps working while a writer holds the lock.
            assert reg.get("web") is not None
            with pytest.raises(RegistryError, match="locked"):
                reg.put(record("other"))
            with pytest.raises(RegistryError, match="locked"):
                reg.update("web", exit_code=1)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with store.open_registry(create=True) as reg:
        assert [r.name for r in reg.all()] == ["web"]


def test_missing_registry_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="is missing"):
        store.open_registry(str(tmp_path / "nope" / "x.sqlite"), create=True)
    assert not (tmp_path / "nope").exists()


# --------------------------------------------------------------------------------------------
# through the CLI: a registry bgr cannot use is one line, and is left alone


def test_corrupt_registry_is_one_line_through_the_real_cli(bgr_home: Path) -> None:
    bgr_home.mkdir(mode=0o700)
    db = bgr_home / "bgr.sqlite"
    db.write_bytes(b"garbage " * 1000)
    for argv in ([], ["--name", "n", "--command", "sleep 60"], ["--nuke"]):
        done = run_bgr(*argv)
        assert done.returncode == 7
        assert_one_error_line(done.stderr)
        assert "corrupt" in done.stderr
    assert db.read_bytes() == b"garbage " * 1000
    assert managed("n") == []


def test_a_directory_given_as_registry_is_one_line(tmp_path: Path) -> None:
    for argv in ([], ["--name", "n", "--command", "sleep 60"]):
        done = run_bgr("--db", str(tmp_path), *argv)
        assert done.returncode == 7
        assert_one_error_line(done.stderr)
        assert "is a directory" in done.stderr
    assert managed("n") == []


def test_newer_registry_is_refused(populated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import sqlite3

    conn = sqlite3.connect(populated)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    before = registry_snapshot(populated)
    for argv in ([], ["--name", "n", "--command", "sleep 60"], ["--delete", "known"]):
        code, out, err = main(capsys, *argv)
        assert code == 7 and out == ""
        assert_one_error_line(err)
        assert "newer bgr" in err
    assert registry_snapshot(populated) == before


def test_locked_registry_is_one_line_and_starts_nothing(
    populated: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    monkeypatch.setattr(store, "BUSY_TIMEOUT_MS", 100)
    before = registry_snapshot(populated)
    holder = sqlite3.connect(populated, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        for argv in (["--name", "n", "--command", "sleep 60"], ["known", "--restart"], ["--nuke"]):
            code, out, err = main(capsys, *argv)
            assert code == 7 and out == ""
            assert_one_error_line(err)
            assert "locked" in err
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert registry_snapshot(populated) == before
    assert managed("n") == []
    assert managed("known") == []


def _read_only_mount_works() -> bool:
    probe = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "true"], capture_output=True, check=False
    ) if shutil.which("unshare") else None  # fmt: skip
    return probe is not None and probe.returncode == 0


def test_read_only_registry_is_one_line(populated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Mode bits do not stop root, so as root the state directory is bind-mounted read-only in a
    private mount namespace (`unshare -m`); as another user, chmod does the job."""
    before = registry_snapshot(populated)
    state = populated.parent
    commands = (["--name", "n", "--command", "sleep 60"], ["known", "--restart"], ["--stop", "known"])
    if os.geteuid() != 0:
        populated.chmod(0o400)
        state.chmod(0o500)
        try:
            for argv in commands:
                code, _, err = main(capsys, *argv)
                assert code == 7
                assert_one_error_line(err)
                assert "read-only" in err.lower()
        finally:
            state.chmod(0o700)
            populated.chmod(0o600)
    else:
        if not _read_only_mount_works():
            pytest.skip("root, and no mount namespace to make the state directory read-only")
        for argv in commands:
            script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
            done = subprocess.run(
                ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", str(state),
                 sys.executable, "-m", "bgr", *argv],
                capture_output=True, text=True, timeout=30, check=False,
            )  # fmt: skip
            assert done.returncode == 7, done.stderr
            assert_one_error_line(done.stderr)
            assert "read-only" in done.stderr.lower()
    assert registry_snapshot(populated) == before
    assert managed("n") == []


def test_fifty_concurrent_first_commands_create_the_registry_once(tmp_path: Path) -> None:
    """Concurrent first starts and listings on a registry that does not exist yet: all succeed
    (the creation and migration are one process at a time), none says "database is locked"."""
    import os
    import subprocess
    import sys

    from tests.support import managed

    for round_ in range(3):
        home = tmp_path / f"home{round_}"
        env = {**os.environ, "BGR_HOME": str(home)}
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bgr",
                    *(["--name", f"p{i}", "--command", "sleep 60", "--wait", "0"] if i % 5 else ["--json"]),
                ],
                env=env,
                cwd=tmp_path,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(50)
        ]
        errors = [err for p in procs if (err := p.communicate(timeout=120)[1]) or p.returncode]
        assert errors == []
        with store.Registry(paths.registry_layout(str(home / "bgr.sqlite"))) as reg:
            assert len(reg.names()) == 40
        kill = subprocess.run(
            [sys.executable, "-m", "bgr", "--nuke", "--grace", "0.5"],
            env=env,
            capture_output=True,
            check=False,
        )
        assert kill.returncode == 0
    assert managed("p1") == []
