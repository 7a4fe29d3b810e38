"""Pure data: what the registry stores about a process and what bgr reports about it.

These are named tuples (``bgr.record.Record``, typed as ``typing.NamedTuple``) rather than frozen
dataclasses on purpose, as are the small records of the CLI and the process layer: they sit on the
path of every ``bgr`` call, and importing ``dataclasses`` (which imports ``inspect``) plus
generating the frozen slotted classes was a fifth of a ``bgr --json`` (``bench/``). Code off those
paths (the guard, ``--watch``, log rotation) keeps
dataclasses. Named tuples are just as immutable and typed; change one with
``record._replace(field=value)``. Their mapping and sequence fields are typed
read-only (``Mapping``, ``tuple``) so that no code can change a value in place, which would
otherwise leak through a shared default.
"""

from __future__ import annotations

from types import MappingProxyType

from bgr.choice import Choice
from bgr.record import Record

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: see bgr/record.py
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

# The one shared empty default of the Mapping fields: read-only, so no record can change another's.
EMPTY: Mapping[str, Any] = MappingProxyType({})


class Status(Choice):
    """What a user sees in the STATUS column and in ``--json``."""

    RUNNING = "running"
    STOPPED = "stopped"  # stopped on purpose (bgr --stop); the guard leaves it alone
    # ended by itself with exit code 0, or in a way no bgr saw (its code is unknown: no verdict)
    EXITED = "exited"
    CRASHED = "crashed"  # ended by itself with a non-zero code or a signal
    STARTING = "starting"  # a bgr or bgr-guard is starting it right now
    BACKOFF = "backoff"  # dead; the guard will restart it after a delay
    FATAL = "fatal"  # dead; the guard gave up until a manual restart
    SCHEDULED = "scheduled"  # a --cron job between two runs


class Desired(Choice):
    """What the user last asked for. The guard only restarts rows that should be running."""

    RUNNING = "running"
    STOPPED = "stopped"


class Identity(Record):
    """One launched instance: its leader's pid and start token, its process group, its marker uuid.

    A pid alone is never trusted (see ``bgr.proc.identity``): ``token`` pins it to one process, and
    ``instance`` is the ``BGR_INSTANCE`` value every process of the instance carries.
    """

    pid: int | None
    pgid: int | None
    token: str | None
    instance: str | None
    # Processes of the instance that left its process group (a daemon's setsid), seen while they
    # could still be attributed to it: (pid, start token).
    members: tuple[tuple[int, str], ...] = ()
    cgroup: str | None = None  # the instance's own cgroup, where bgr could make one


class Scan(Record):
    """What one pass over the process table saw (``bgr.proc.host.scan``)."""

    children: dict[int, list[int]]  # ppid → live children
    marked: dict[str, list[int]]  # marker → live pids carrying it

    def descendants(self, pid: int) -> list[int]:
        """Live descendants of ``pid`` that are still attached to it (children, grandchildren, …)."""
        found: list[int] = []
        seen = {pid}
        pending = [pid]
        while pending:
            for child in self.children.get(pending.pop(), ()):
                if child not in seen:
                    seen.add(child)
                    found.append(child)
                    pending.append(child)
        return found


class ProcessRecord(Record):
    """One registry row: the definition a restart re-uses, plus the last launched instance."""

    name: str
    directory: str
    command: str
    stdout: str
    stderr: str
    group: str | None = None
    env: Mapping[str, str] = EMPTY  # set explicitly with --env
    config_path: str | None = None  # explicit --config (absolute); None = <directory>/.config.toml
    config_env: Mapping[str, str] = EMPTY  # flattened config, as last loaded
    search_path: str | None = None  # the starter's PATH, so a guard under systemd finds the same binaries
    fetch: bool = False
    desired: Desired = Desired.RUNNING
    # The last launched instance. A pid alone is never trusted: start_token pins it (see procs).
    pid: int | None = None
    pgid: int | None = None
    start_token: str | None = None
    instance: str | None = None  # uuid, also in the child's env as BGR_INSTANCE
    started_at: float | None = None  # wall clock, for display
    stopped_at: float | None = None
    exit_code: int | None = None  # 128+N for death by signal N (shell convention)
    restarts: int = 0
    guard: Mapping[str, Any] = EMPTY  # restart-policy state, owned by bgr-guard
    events: tuple[Mapping[str, Any], ...] = ()  # newest last, capped
    created_at: float | None = None
    updated_at: float | None = None
    # An operation in flight: {"op", "instance", "pid", "token", "at"} of the bgr or guard doing it.
    intent: Mapping[str, Any] = EMPTY
    members: tuple[tuple[int, str], ...] = ()  # see Identity.members
    cgroup: str | None = None
    ports: tuple[int, ...] = ()  # declared with --port
    seen_ports: tuple[int, ...] = ()  # ports the instance was seen listening on
    # --health and its options, as bgr.health.probes.Probe.to_dict() ({} = no probe)
    health: Mapping[str, Any] = EMPTY
    # What the checks found: {"state", "last_check", "last_error", "failures", "since"}
    health_state: Mapping[str, Any] = EMPTY
    # {"restart_at": CRON} and/or {"cron": CRON} (a scheduled job), plus the guard's "next_run"
    schedule: Mapping[str, Any] = EMPTY
    on_failure: str | None = None  # --on-failure: a command run when it crashes, goes fatal or unhealthy
    runs: tuple[
        Mapping[str, Any], ...
    ] = ()  # a --cron job's runs: {"started", "took", "exit_code"}, newest last
    # The stack file it came from (bgr --up): {"file", "name", "hash" of the definition, "depends_on"}
    stack: Mapping[str, Any] = EMPTY
    # The guard's limits for this process alone: {"max_memory": bytes, "restart_every": seconds},
    # either or both ({} = none: the guard-wide --max-memory / --restart-every apply)
    limits: Mapping[str, Any] = EMPTY

    @property
    def identity(self) -> Identity:
        """The last launched instance's identity."""
        return Identity(self.pid, self.pgid, self.start_token, self.instance, self.members, self.cgroup)

    def child_env(self) -> dict[str, str]:
        """The variables bgr itself adds to the inherited environment (config first, --env wins)."""
        merged = dict(self.config_env)
        merged.update(self.env)
        return merged


class ProcessInfo(Record):
    """A record plus what is true right now: derived status and, when running, live figures."""

    record: ProcessRecord
    status: Status
    exit_code: int | None
    memory_rss: int | None = None  # bytes, the whole process tree
    cpu_percent: float | None = None
    ports: tuple[int, ...] = ()

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def pid(self) -> int | None:
        return self.record.pid if self.status is Status.RUNNING else None


class StopResult(Record):
    """What stopping one instance did."""

    name: str
    was_running: bool
    killed: bool = False  # needed SIGKILL after the grace period
    leftover: tuple[int, ...] = ()  # pids still alive afterwards (not ours to kill, or unkillable)
    # Why the registry could not record it (a full disk), else "": the next command records it.
    unrecorded: str = ""


class FreedPort(Record):
    """A listener that --force stopped to free a port."""

    port: int
    pid: int
    command: str


class StartResult(Record):
    """What a start or restart did."""

    info: ProcessInfo
    replaced: bool = False  # an older instance was stopped first
    freed: tuple[FreedPort, ...] = ()
    pulled: str | None = None  # one-line summary of a --fetch pull
    # How the start window ended (bgr.core.startup): running, settled, daemonized or finished.
    how: str = "running"
    after: float = 0.0  # seconds from the spawn to that


class StartRequest(Record):
    """What a caller asks ``start`` for. ``None`` means "keep the stored value" (or the default)."""

    name: str
    command: str | None = None
    directory: str | None = None
    group: str | None = None
    env: Mapping[str, str] = EMPTY
    config: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    fetch: bool | None = None
    force: bool = False
    ports: tuple[int, ...] | None = None  # --port: the ports it listens on (None: keep the stored ones)
    health: Mapping[str, Any] | None = None  # a probe's to_dict(); {} removes it (--no-health)
    restart_at: str | None = None  # a cron expression; "" removes it
    cron: str | None = None  # a cron expression: a scheduled job; "" removes it
    on_failure: str | None = None  # a command; "" removes it
    max_memory: int | None = None  # bytes of resident memory before bgr-guard restarts it; 0 removes it
    restart_every: float | None = None  # seconds of uptime before bgr-guard restarts it; 0 removes it
    # From a stack file (bgr --up): {"file", "name", "hash", "depends_on"}. The request is then the
    # whole definition: its env replaces the stored one instead of adding to it.
    stack: Mapping[str, Any] | None = None
