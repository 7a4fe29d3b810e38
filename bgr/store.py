"""The SQLite registry: one row per process name, JSON columns, WAL, short explicit transactions.

Every read-modify-write runs inside ``BEGIN IMMEDIATE`` so two writers never interleave, and nothing
slow (spawning, sleeping, git) ever happens inside a transaction: callers serialise whole operations on
a name with ``locks.name_lock`` instead. The schema version lives in ``PRAGMA user_version``; a database
from a newer bgr is refused rather than "migrated" backwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator

# The sqlite3 package is this C module plus date/time adapters bgr never uses, whose import of
# datetime every call would pay (bench/); everything used here (connect, Connection, Row, Error) is the C
# module's own. The fallback is for Pythons other than CPython.
try:
    import _sqlite3 as sqlite3
except ImportError:  # pragma: no cover
    import sqlite3  # type: ignore[no-redef]

from bgr import paths
from bgr.errors import NotFound, RegistryError
from bgr.models import Desired, ProcessRecord

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: see bgr/record.py
if TYPE_CHECKING:
    from typing import Any

SCHEMA_VERSION = 1
EVENTS_KEPT = 50
BUSY_TIMEOUT_MS = 15_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS processes (
    name         TEXT PRIMARY KEY,
    directory    TEXT NOT NULL,
    command      TEXT NOT NULL,
    stdout       TEXT NOT NULL,
    stderr       TEXT NOT NULL,
    "group"      TEXT,
    env          TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(env)),
    config_path  TEXT,
    config_env   TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(config_env)),
    search_path  TEXT,
    fetch        INTEGER NOT NULL DEFAULT 0,
    desired      TEXT NOT NULL DEFAULT 'running',
    pid          INTEGER,
    pgid         INTEGER,
    start_token  TEXT,
    instance     TEXT,
    started_at   REAL,
    stopped_at   REAL,
    exit_code    INTEGER,
    restarts     INTEGER NOT NULL DEFAULT 0,
    guard        TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(guard)),
    events       TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(events)),
    created_at   REAL,
    updated_at   REAL
);
CREATE INDEX IF NOT EXISTS processes_group ON processes ("group");
"""

_JSON_FIELDS = frozenset({"env", "config_env", "guard", "events"})
_COLUMNS = ProcessRecord._fields
_QUOTED = ", ".join(f'"{c}"' for c in _COLUMNS)


def _to_row(record: ProcessRecord) -> tuple[Any, ...]:
    values: list[Any] = []
    for column in _COLUMNS:
        value = getattr(record, column)
        if column in _JSON_FIELDS:
            # Records hold read-only views (MappingProxyType, tuples); JSON wants dicts and lists.
            value = json.dumps(list(value) if column == "events" else dict(value), separators=(",", ":"))
        elif isinstance(value, bool):
            value = int(value)
        values.append(value)
    return tuple(values)


def _from_row(row: sqlite3.Row | tuple[Any, ...]) -> ProcessRecord:
    data: dict[str, Any] = dict(zip(_COLUMNS, row, strict=True))
    for column in _JSON_FIELDS:
        data[column] = json.loads(data[column])
    data["events"] = tuple(data["events"])
    data["fetch"] = bool(data["fetch"])
    data["desired"] = Desired(data["desired"])
    return ProcessRecord(**data)


def _translate(exc: sqlite3.Error, path: str) -> RegistryError:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return RegistryError(f"registry {path} is locked by another process ({text}); try again")
    if "readonly" in text or "read-only" in text:
        return RegistryError(f"registry {path} is read-only; check its permissions or use --db")
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return RegistryError(
            f"registry {path} is corrupt or not a bgr database ({text}); move it away to start a fresh one"
        )
    if "unable to open" in text:
        # os.access also says no for root on a read-only mount (EROFS), unlike the mode bits.
        parent = os.path.dirname(path)
        writable = os.access(parent, os.W_OK) and (not os.path.exists(path) or os.access(path, os.W_OK))
        if os.path.isdir(parent) and not writable:
            return RegistryError(
                f"registry {path} is read-only (its file or directory cannot be written: permissions or "
                "a read-only mount); fix that or use --db"
            )
        return RegistryError(f"cannot open registry {path}; check that its directory exists")
    return RegistryError(f"registry {path}: {text}")


class Registry:
    """A connection to one registry file. Use as a context manager, or call ``close()``."""

    def __init__(self, path: str) -> None:
        self.path = path
        parent = os.path.dirname(path)
        if os.path.isdir(path):
            raise RegistryError(f"registry path {path} is a directory; give --db a file path")
        if parent == paths.state_dir():
            paths.ensure_state_dir()
        elif not os.path.isdir(parent):
            raise RegistryError(f"cannot create registry {path}: directory {parent} is missing")
        created = not os.path.exists(path)
        try:
            self._conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        except sqlite3.Error as exc:
            raise _translate(exc, path) from exc
        try:
            self._prepare(created)
        except sqlite3.Error as exc:
            self._conn.close()
            raise _translate(exc, path) from exc
        except BaseException:
            self._conn.close()
            raise

    def _prepare(self, created: bool) -> None:
        conn = self._conn
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if created:
            with contextlib.suppress(OSError):
                os.chmod(self.path, paths.FILE_MODE)
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RegistryError(
                f"registry {self.path} was written by a newer bgr (schema {version}, this bgr "
                f"knows {SCHEMA_VERSION}); upgrade bgr or use another --db"
            )
        if version < SCHEMA_VERSION:
            self._migrate()
        conn.execute("PRAGMA synchronous = NORMAL")

    def _migrate(self) -> None:
        conn = self._conn
        # WAL lets `bgr` list while a guard or another start writes. The mode is stored in the file.
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                # Refuse to write our schema into someone else's database.
                tables = conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name != 'processes'"
                ).fetchall()
                if tables:
                    raise RegistryError(
                        f"{self.path} is an SQLite database that bgr did not create; use another --db"
                    )
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``: the write lock is taken up front, so no deadlock upgrade."""
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from exc
        try:
            yield self._conn
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            # A write inside the block (read-only file, full disk) is the registry's fault, not a bug.
            self._rollback()
            raise _translate(exc, self.path) from exc
        except BaseException:
            self._rollback()
            raise

    def _rollback(self) -> None:
        # After some errors SQLite has already rolled back: a second ROLLBACK must not mask the first.
        with contextlib.suppress(sqlite3.Error):
            self._conn.execute("ROLLBACK")

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from exc

    def get(self, name: str) -> ProcessRecord | None:
        rows = self._query(f"SELECT {_QUOTED} FROM processes WHERE name = ?", (name,))
        return _from_row(rows[0]) if rows else None

    def require(self, name: str) -> ProcessRecord:
        record = self.get(name)
        if record is None:
            raise NotFound(f"no process named {name!r}; run `bgr` to list them")
        return record

    def all(self, group: str | None = None) -> list[ProcessRecord]:
        if group is None:
            rows = self._query(f"SELECT {_QUOTED} FROM processes ORDER BY name")
        else:
            rows = self._query(f'SELECT {_QUOTED} FROM processes WHERE "group" = ? ORDER BY name', (group,))
        return [_from_row(r) for r in rows]

    def put(self, record: ProcessRecord) -> ProcessRecord:
        """Insert or replace the whole row."""
        now = time.time()
        record = record._replace(created_at=record.created_at or now, updated_at=now)
        marks = ", ".join("?" for _ in _COLUMNS)
        with self.transaction() as conn:
            conn.execute(f"INSERT OR REPLACE INTO processes ({_QUOTED}) VALUES ({marks})", _to_row(record))
        return record

    def update(self, name: str, *, instance: str | None = None, **changes: Any) -> ProcessRecord | None:
        """Change some fields of a row atomically; None if the row is gone.

        With ``instance``, the change applies only while the row still describes that instance, so
        news about an old instance never overwrites a newer start.
        """
        with self.transaction() as conn:
            rows = conn.execute(f"SELECT {_QUOTED} FROM processes WHERE name = ?", (name,)).fetchall()
            if not rows:
                return None
            current = _from_row(rows[0])
            if instance is not None and current.instance != instance:
                return None
            updated = current._replace(**changes, updated_at=time.time())
            assignments = ", ".join(f'"{c}" = ?' for c in _COLUMNS)
            conn.execute(f"UPDATE processes SET {assignments} WHERE name = ?", (*_to_row(updated), name))
        return updated

    def add_event(self, name: str, kind: str, detail: str = "") -> None:
        """Append one event (newest last, capped) to a row's history."""
        event = {"at": time.time(), "event": kind, "detail": detail}
        with self.transaction() as conn:
            row = conn.execute("SELECT events FROM processes WHERE name = ?", (name,)).fetchone()
            if row is None:
                return
            events = [*json.loads(row[0]), event][-EVENTS_KEPT:]
            conn.execute("UPDATE processes SET events = ? WHERE name = ?", (json.dumps(events), name))

    def delete(self, name: str) -> bool:
        with self.transaction() as conn:
            return conn.execute("DELETE FROM processes WHERE name = ?", (name,)).rowcount > 0


def open_registry(db: str | None = None) -> Registry:
    """Open (creating if needed) the registry chosen by --db, $DB_NAME or the default."""
    return Registry(paths.db_path(db))
