"""The SQLite registry: one row per process name, JSON columns, WAL, short explicit transactions.

Every read-modify-write runs inside ``BEGIN IMMEDIATE`` so two writers never interleave, and nothing
slow (spawning, sleeping, git) ever happens inside a transaction: callers serialise whole operations on
a name with ``locks.name_lock`` instead. The schema version lives in ``PRAGMA user_version``; a database
from a newer bgr is refused rather than "migrated" backwards, and creating or migrating one is done by
one process at a time (an flock), so any number of first commands create it once.

Only commands that write create a registry (``create=True``); the others say there is none. When the
disk is full a registry still opens for reading (read-only, then immutable: SQLite needs its ``-wal``
and ``-shm`` files to open normally), and its writes raise :class:`RegistryFull`, which a stop catches
to record later (:mod:`bgr.pending`).
"""

from __future__ import annotations

import os
import stat
import time

# The sqlite3 package is this C module plus date/time adapters bgr never uses, whose import of
# datetime every call would pay (bench/); everything used here (connect, Connection, Row, Error) is the C
# module's own. The fallback is for Pythons other than CPython.
try:
    import _sqlite3 as sqlite3
except ImportError:  # pragma: no cover
    import sqlite3  # type: ignore[no-redef]

from bgr import jsontext, paths
from bgr.errors import NoRegistry, NotFound, RegistryError, RegistryFull
from bgr.models import Desired, ProcessRecord

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: see bgr/record.py
if TYPE_CHECKING:
    from types import TracebackType
    from typing import Any

EVENTS_KEPT = 50
# Events a guard records on every pass of its own (a --once run from cron): the newest few of each
# kind are kept, so they never push the real events (exits, restarts, failures) out of the history.
ROUTINE_EVENTS = frozenset({"guarded"})
ROUTINE_KEPT = 3
BUSY_TIMEOUT_MS = 15_000
_CREATION_LOCK = "@registry.lock"

# MIGRATIONS[v] takes a registry from schema v to v + 1; a new registry runs them all.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE IF NOT EXISTS processes (
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
        )""",
        'CREATE INDEX IF NOT EXISTS processes_group ON processes ("group")',
    ),
    (
        # An operation in flight (start, restart) and the instance it is creating: recorded before
        # the spawn, so an instance whose starter died before recording it can be found again.
        "ALTER TABLE processes ADD COLUMN intent TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(intent))",
        # (pid, start token) of the instance's processes that left its process group (daemons).
        "ALTER TABLE processes ADD COLUMN members TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(members))",
        "ALTER TABLE processes ADD COLUMN cgroup TEXT",
        "ALTER TABLE processes ADD COLUMN ports TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(ports))",
        "ALTER TABLE processes ADD COLUMN seen_ports TEXT NOT NULL DEFAULT '[]' "
        "CHECK (json_valid(seen_ports))",
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "INSERT OR IGNORE INTO meta (key, value) VALUES ('id', lower(hex(randomblob(8))))",
    ),
    (
        # The health loop: a probe and what it found, schedules, an alert hook, a job's runs.
        "ALTER TABLE processes ADD COLUMN health TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(health))",
        "ALTER TABLE processes ADD COLUMN health_state TEXT NOT NULL DEFAULT '{}' "
        "CHECK (json_valid(health_state))",
        "ALTER TABLE processes ADD COLUMN schedule TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(schedule))",
        "ALTER TABLE processes ADD COLUMN on_failure TEXT",
        "ALTER TABLE processes ADD COLUMN runs TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(runs))",
    ),
    (
        # Stacks (bgr --up): the file a definition came from, the hash of that definition (what a
        # second --up compares) and its depends_on (what --down and --export order by).
        "ALTER TABLE processes ADD COLUMN stack TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(stack))",
    ),
    (
        # Per-process guard limits (--max-memory, --restart-every on bgr's command line or in a
        # stack file); '{}' for the rows of older registries: the guard-wide options apply to them.
        "ALTER TABLE processes ADD COLUMN limits TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(limits))",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)

_DICT_FIELDS = frozenset(
    {"env", "config_env", "guard", "intent", "health", "health_state", "schedule", "stack", "limits"}
)
_LIST_FIELDS = frozenset({"events", "members", "ports", "seen_ports", "runs"})
_COLUMNS = ProcessRecord._fields
_QUOTED = ", ".join(f'"{c}"' for c in _COLUMNS)


def _to_row(record: ProcessRecord) -> tuple[Any, ...]:
    values: list[Any] = []
    for column in _COLUMNS:
        value = getattr(record, column)
        if column in _DICT_FIELDS:
            # Records hold read-only views (MappingProxyType, tuples); JSON wants dicts and lists.
            value = jsontext.dumps(dict(value))
        elif column in _LIST_FIELDS:
            value = jsontext.dumps(list(value))
        elif isinstance(value, bool):
            value = int(value)
        values.append(value)
    return tuple(values)


def _from_row(row: tuple[Any, ...]) -> ProcessRecord:
    data: dict[str, Any] = dict(zip(_COLUMNS, row, strict=True))
    for column in _DICT_FIELDS:
        data[column] = jsontext.loads(data[column])
    for column in _LIST_FIELDS:
        data[column] = tuple(jsontext.loads(data[column]))
    data["members"] = tuple((int(pid), str(token)) for pid, token in data["members"])
    data["fetch"] = bool(data["fetch"])
    data["desired"] = Desired(data["desired"])
    return ProcessRecord._make(data[column] for column in _COLUMNS)


def append_event(
    events: tuple[Any, ...], kind: str, detail: str = "", at: float | None = None
) -> tuple[dict[str, Any], ...]:
    """``events`` plus one more (newest last), trimmed: the newest ``EVENTS_KEPT``, of which at
    most ``ROUTINE_KEPT`` of each routine kind."""
    history = [*events, {"at": time.time() if at is None else at, "event": kind, "detail": detail}]
    if kind in ROUTINE_EVENTS:
        same = [i for i, e in enumerate(history) if e.get("event") == kind]
        dropped = set(same[:-ROUTINE_KEPT])
        history = [e for i, e in enumerate(history) if i not in dropped]
    return tuple(history[-EVENTS_KEPT:])


def _full_disk(exc: sqlite3.Error, path: str) -> tuple[str, str] | None:
    """(why, what to do) when a write failed for the disk or a file size limit, else None.

    SQLite says only "disk I/O error" or "database or disk is full"; the file size limit and the
    free space tell which it was.
    """
    code = getattr(exc, "sqlite_errorname", "") or ""
    if not (code.startswith(("SQLITE_FULL", "SQLITE_IOERR", "SQLITE_CANTOPEN")) or "disk" in str(exc)):
        return None
    directory = os.path.dirname(path)
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    if soft != resource.RLIM_INFINITY:
        sizes = [paths.file_size(path + suffix) for suffix in ("", "-wal", "-shm")]
        if max(sizes) >= soft or code.startswith("SQLITE_IOERR"):
            return f"file size limit exceeded (ulimit -f: {soft} bytes)", "raise the limit, then try again"
    try:
        full = os.statvfs(directory).f_bavail == 0
    except OSError:
        full = False
    if full or code.startswith("SQLITE_FULL"):
        return f"no space left on device ({directory})", "free some space, then try again"
    return None


def _translate(exc: sqlite3.Error, path: str) -> RegistryError:
    text = str(exc)
    full = _full_disk(exc, path)
    if full is not None:
        why, advice = full
        error = RegistryFull(f"registry {path}: {why}; {advice}")
        error.reason = why
        return error
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


class _Transaction:
    """``with registry.transaction() as conn``: commits when the block ends, rolls back when it raises.

    A class rather than ``contextlib.contextmanager``: importing contextlib (with collections and
    functools) is milliseconds of every ``bgr`` call (``bench/``).
    """

    __slots__ = ("_registry",)

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def __enter__(self) -> sqlite3.Connection:
        registry = self._registry
        if registry.full is not None:
            raise registry.full
        try:
            registry._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise _translate(exc, registry.path) from exc
        return registry._conn

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, trace: TracebackType | None
    ) -> None:
        registry = self._registry
        if exc is None:
            try:
                registry._conn.execute("COMMIT")
            except sqlite3.Error as error:
                registry._rollback()
                raise _translate(error, registry.path) from error
            return
        registry._rollback()
        if isinstance(exc, sqlite3.Error):
            # A write inside the block (read-only file, full disk) is the registry's fault, not a bug.
            raise _translate(exc, registry.path) from exc


class Registry:
    """A connection to one registry file. Use as a context manager, or call ``close()``.

    ``create``: make the registry (and its folder) when it does not exist yet; without it, a
    missing registry raises :class:`NoRegistry`. ``full`` is set when the disk was too full to
    open it for writing: it was opened read-only, and every write raises that error.
    """

    def __init__(self, layout: paths.Layout, *, create: bool = False) -> None:
        self.layout = layout
        self.path = path = layout.db
        self.full: RegistryFull | None = None
        self._id: str | None = None
        if os.path.isdir(path):
            raise RegistryError(f"registry path {path} is a directory; give --db a file path")
        layout.check()
        if not os.path.lexists(path):
            if not create:
                raise NoRegistry(f"no registry at {path} (the first start creates it)")
            self._create()
        self._conn = self._connect(path)
        try:
            self._prepare()
        except sqlite3.Error as exc:
            self._conn.close()
            raise _translate(exc, path) from exc
        except BaseException:
            self._conn.close()
            raise

    def _create(self) -> None:
        """Create the registry's folder and an empty registry file (0600) for it, never through a
        symlink; another process creating it at the same time is fine."""
        parent = os.path.dirname(self.path)
        if parent != paths.state_dir() and not os.path.isdir(parent):
            raise RegistryError(f"cannot create registry {self.path}: directory {parent} is missing")
        self.layout.ensure_home()
        try:
            fd = paths.open_private(self.path, os.O_WRONLY | os.O_CREAT)
        except OSError as exc:
            raise RegistryError(f"cannot create registry {self.path}: {exc.strerror}") from exc
        os.close(fd)

    def _connect(self, path: str) -> sqlite3.Connection:
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode) and self.layout.owns(path):
            raise RegistryError(
                f"registry {path} is a symlink; bgr does not follow links in its state directory"
            )
        try:
            return sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        except sqlite3.Error as exc:
            raise _translate(exc, path) from exc

    def _prepare(self) -> None:
        conn = self._conn
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.Error as exc:
            error = _translate(exc, self.path)
            if not isinstance(error, RegistryFull):
                raise
            self._open_read_only(error)
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RegistryError(
                f"registry {self.path} was written by a newer bgr (schema {version}, this bgr "
                f"knows {SCHEMA_VERSION}); upgrade bgr or use another --db"
            )
        if version < SCHEMA_VERSION:
            if self.full is not None:
                raise self.full
            from bgr.proc.locks import file_lock

            # One creator or migrator at a time: SQLite answers a second writer changing the journal
            # mode at the same moment with "database is locked", without waiting.
            lock = os.path.join(self.layout.subdir("locks"), _CREATION_LOCK)
            with file_lock(lock, timeout=BUSY_TIMEOUT_MS / 1000, held_by=f"registry {self.path}"):
                self._migrate()
        if self.full is None:
            conn.execute("PRAGMA synchronous = NORMAL")

    def _open_read_only(self, error: RegistryFull) -> None:
        """The disk is full: read what is there. Read-only still needs a ``-shm`` file; immutable
        reads the main file alone (the last writer to close checkpointed the WAL into it)."""
        self._conn.close()
        for mode in ("mode=ro", "immutable=1"):
            try:
                conn = sqlite3.connect(f"file:{self.path}?{mode}", uri=True, isolation_level=None)
                conn.execute("PRAGMA user_version").fetchone()
            except sqlite3.Error:
                continue
            self._conn, self.full = conn, error
            return
        raise error

    def _migrate(self) -> None:
        conn = self._conn
        # WAL lets `bgr` list while a guard or another start writes. The mode is stored in the file.
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == SCHEMA_VERSION:  # another process did it while we waited for the lock
                conn.execute("COMMIT")
                return
            if version == 0:
                # Refuse to write our schema into someone else's database.
                tables = conn.execute(
                    "SELECT name FROM sqlite_master "
                    "WHERE type = 'table' AND name NOT IN ('processes', 'meta')"
                ).fetchall()
                if tables:
                    raise RegistryError(
                        f"{self.path} is an SQLite database that bgr did not create; use another --db"
                    )
            for statements in MIGRATIONS[version:]:
                for statement in statements:
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._conn.close()

    def limit_page_cache(self, kib: int) -> None:
        """Keep at most ``kib`` KiB of database pages in this connection's cache (SQLite's default
        is 2 MiB). For connections a long-running program keeps open: each fills its cache up to
        the limit as the registry grows, and the operating system caches the file anyway."""
        self._conn.execute(f"PRAGMA cache_size = -{max(kib, 1)}")  # negative: KiB, not pages

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def registry_id(self) -> str:
        """A random id of this registry, carried by its processes as ``BGR_REGISTRY``."""
        if self._id is None:
            rows = self._query("SELECT value FROM meta WHERE key = 'id'")
            self._id = str(rows[0][0]) if rows else ""
        return self._id

    def transaction(self) -> _Transaction:
        """``BEGIN IMMEDIATE`` … ``COMMIT``: the write lock is taken up front, so no deadlock upgrade."""
        return _Transaction(self)

    def _rollback(self) -> None:
        # After some errors SQLite has already rolled back: a second ROLLBACK must not mask the first.
        try:  # noqa: SIM105 (contextlib.suppress: an import of contextlib on every call)
            self._conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass

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
            raise NotFound(
                f"no process named {name!r}{_did_you_mean(name, self.names())}; run `bgr` to list them"
            )
        return record

    def all(self, group: str | None = None) -> list[ProcessRecord]:
        if group is None:
            rows = self._query(f"SELECT {_QUOTED} FROM processes ORDER BY name")
        else:
            rows = self._query(f'SELECT {_QUOTED} FROM processes WHERE "group" = ? ORDER BY name', (group,))
        return [_from_row(r) for r in rows]

    def summaries(
        self, columns: tuple[str, ...], *, group: str | None = None, name: str | None = None
    ) -> list[tuple[Any, ...]]:
        """These ``columns`` of every row (of ``group``, or the row ``name``), sorted by name, as
        stored (JSON columns as text, ``desired`` as a string).

        A pass over every row without decoding the rest of each: the guard's periodic passes
        read a few columns of every row, and decoding 1000 rows' events was most of their cost.
        """
        unknown = [c for c in columns if c not in _COLUMNS]
        if unknown or not columns:
            raise ValueError(f"not columns of the registry: {unknown or columns!r}")
        wanted = ", ".join(f'"{c}"' for c in columns)
        if name is not None:
            return self._query(f"SELECT {wanted} FROM processes WHERE name = ?", (name,))
        if group is not None:
            return self._query(f'SELECT {wanted} FROM processes WHERE "group" = ? ORDER BY name', (group,))
        return self._query(f"SELECT {wanted} FROM processes ORDER BY name")

    def names(self, group: str | None = None) -> list[str]:
        """Every registered name (or one group's), sorted (no rows decoded)."""
        if group is None:
            return [str(r[0]) for r in self._query("SELECT name FROM processes ORDER BY name")]
        query = 'SELECT name FROM processes WHERE "group" = ? ORDER BY name'
        return [str(r[0]) for r in self._query(query, (group,))]

    def groups(self) -> list[str]:
        """Every group that has a process, sorted."""
        query = 'SELECT DISTINCT "group" FROM processes WHERE "group" IS NOT NULL ORDER BY 1'
        return [str(r[0]) for r in self._query(query)]

    def put(self, record: ProcessRecord) -> ProcessRecord:
        """Insert or replace the whole row."""
        now = time.time()
        record = record._replace(created_at=record.created_at or now, updated_at=now)
        marks = ", ".join("?" for _ in _COLUMNS)
        with self.transaction() as conn:
            conn.execute(f"INSERT OR REPLACE INTO processes ({_QUOTED}) VALUES ({marks})", _to_row(record))
        return record

    def update(
        self,
        name: str,
        *,
        instance: str | None = None,
        event: tuple[str, str] | None = None,
        **changes: Any,
    ) -> ProcessRecord | None:
        """Change some fields of a row atomically; None if the row is gone.

        With ``instance``, the change applies only while the row still describes that instance, so
        news about an old instance never overwrites a newer start. ``event``: (kind, detail) to
        append to its history in the same write (see ``add_event``).
        """
        with self.transaction() as conn:
            rows = conn.execute(f"SELECT {_QUOTED} FROM processes WHERE name = ?", (name,)).fetchall()
            if not rows:
                return None
            current = _from_row(rows[0])
            if instance is not None and current.instance != instance:
                return None
            if event is not None:
                changes["events"] = append_event(current.events, *event)
            updated = current._replace(**changes, updated_at=time.time())
            assignments = ", ".join(f'"{c}" = ?' for c in _COLUMNS)
            conn.execute(f"UPDATE processes SET {assignments} WHERE name = ?", (*_to_row(updated), name))
        return updated

    def add_event(self, name: str, kind: str, detail: str = "") -> None:
        """Append one event (newest last, capped) to a row's history."""
        with self.transaction() as conn:
            row = conn.execute("SELECT events FROM processes WHERE name = ?", (name,)).fetchone()
            if row is None:
                return
            events = append_event(tuple(jsontext.loads(row[0])), kind, detail)
            conn.execute(
                "UPDATE processes SET events = ? WHERE name = ?", (jsontext.dumps(list(events)), name)
            )

    def delete(self, name: str) -> bool:
        with self.transaction() as conn:
            return conn.execute("DELETE FROM processes WHERE name = ?", (name,)).rowcount > 0


def open_registry(db: str | None = None, *, create: bool = False) -> Registry:
    """Open the registry chosen by --db, $DB_NAME or the default (``create``: make it if missing)."""
    return Registry(paths.layout(db), create=create)


def _did_you_mean(word: str, known: list[str]) -> str:
    """`` (did you mean web?)`` for a near miss among ``known``, else nothing."""
    import difflib  # only on this error path

    near = difflib.get_close_matches(word, known, n=1)
    return f" (did you mean {near[0]}?)" if near else ""
