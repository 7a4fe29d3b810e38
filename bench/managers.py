"""The three process managers behind one small interface, so every figure measures them alike.

Each manager gets its own directory in the sandbox and its own state there (``BGR_HOME``,
``PM2_HOME``, a generated supervisord config with its unix socket). Commands are returned as argv
lists for the figures to time; everything else here is untimed set-up and tear-down.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, ClassVar

from harness import (
    BenchError,
    Reps,
    Sandbox,
    Skip,
    alive,
    read_pidfile,
    run,
    terminate,
    wait_for,
    wait_gone,
)

# Every managed test process: note when this instance started (for crash → running), then idle.
CHILD = """\
#!/bin/sh
date +%s%N >> "$1"
exec sleep 900
"""


@dataclass(frozen=True, slots=True)
class Cmd:
    """A command a figure times, and the exit codes that count as success."""

    argv: tuple[str, ...]
    ok: tuple[int, ...] = (0,)


@dataclass(frozen=True, slots=True)
class Tools:
    """Where the programs are. Peers are None when bench/setup-peers.sh has not installed them."""

    python: Path
    bgr: Path
    guard: Path
    supervisord: Path | None
    supervisorctl: Path | None
    pm2: Path | None
    node: Path | None

    @classmethod
    def find(cls, python: Path) -> Tools:
        scripts = python.parent
        peers = Path(__file__).resolve().parent / ".peers"
        supervisord = peers / "venv" / "bin" / "supervisord"
        pm2 = peers / "node_modules" / ".bin" / "pm2"
        node = next(
            (
                Path(d) / "node"
                for d in os.environ.get("PATH", "").split(os.pathsep)
                if (Path(d) / "node").is_file()
            ),
            None,
        )
        return cls(
            python=python,
            bgr=scripts / "bgr",
            guard=scripts / "bgr-guard",
            supervisord=supervisord if supervisord.is_file() else None,
            supervisorctl=supervisord.with_name("supervisorctl") if supervisord.is_file() else None,
            pm2=pm2 if pm2.exists() else None,
            node=node,
        )


class Manager(ABC):
    """One process manager, isolated in ``sandbox/<key>``."""

    key: ClassVar[str]
    title: ClassVar[str]

    def __init__(self, sandbox: Sandbox, tools: Tools) -> None:
        self.sandbox = sandbox
        self.tools = tools
        self.dir = sandbox.path(self.key)
        self.env = dict(sandbox.env)
        self.child_script = sandbox.path("child.sh")

    # --- set-up -------------------------------------------------------------------------------

    @abstractmethod
    def missing(self) -> str | None:
        """Why this manager cannot run here, or None."""

    def open(self) -> None:
        """Prepare the state directory and start a daemon if the manager has one (untimed)."""
        (self.dir / "stamps").mkdir(parents=True, exist_ok=True)
        (self.dir / "logs").mkdir(parents=True, exist_ok=True)
        if not self.child_script.exists():
            self.child_script.write_text(CHILD)

    @abstractmethod
    def close(self) -> None:
        """Stop everything this manager runs, daemon included, and verify by PID."""

    def version(self) -> str:
        return "?"

    # --- timed commands -----------------------------------------------------------------------

    @abstractmethod
    def floor_cmd(self) -> Cmd:
        """Starting the manager's interpreter with nothing to do: the floor under every CLI call."""

    @abstractmethod
    def list_cmd(self, as_json: bool) -> Cmd: ...

    @abstractmethod
    def start_cmd(self, name: str) -> Cmd: ...

    @abstractmethod
    def stop_cmd(self, name: str) -> Cmd: ...

    @abstractmethod
    def stop_all_cmd(self) -> Cmd: ...

    @abstractmethod
    def restart_cmd(self, name: str) -> Cmd: ...

    # --- untimed helpers ----------------------------------------------------------------------

    def child_argv(self, name: str) -> list[str]:
        return ["/bin/sh", str(self.child_script), str(self.stamp(name))]

    def stamp(self, name: str) -> Path:
        return self.dir / "stamps" / name

    def call(self, cmd: Cmd) -> float:
        return run(cmd.argv, self.env, ok=cmd.ok)[0]

    def define(self, names: Sequence[str]) -> None:
        """Make ``names`` startable (supervisord needs a program section first)."""
        return None

    @abstractmethod
    def discard(self, name: str) -> None:
        """Stop one process and forget it."""

    @abstractmethod
    def reset(self) -> None:
        """Stop and forget every process (the daemon, if any, keeps running)."""

    @abstractmethod
    def pids(self) -> dict[str, int]:
        """Name → PID of each running process."""

    def kill(self, name: str, pid: int) -> int:
        """SIGKILL one running process, as a crash would; the wall clock (ns) just before."""
        now = time.time_ns()
        os.kill(pid, signal.SIGKILL)
        return now

    @abstractmethod
    def supervise(self, reps: Reps) -> int:
        """Make sure dead processes get restarted; the PID of the process doing it."""

    def unsupervise(self) -> None:
        """Undo :meth:`supervise` where it started something."""
        return None

    def populate_idle(self, count: int) -> str:
        """Register ``count`` stopped processes cheaply; a note saying how."""
        raise Skip("no cheap way to register stopped processes")

    @abstractmethod
    def start_writer(self, name: str, argv: Sequence[str], log: Path) -> None:
        """Start ``argv`` as a managed process whose stdout goes to ``log`` (run once, no restart)."""


# ---------------------------------------------------------------------------------------------


class Bgr(Manager):
    key = "bgr"
    title = "bgr"

    def __init__(self, sandbox: Sandbox, tools: Tools) -> None:
        super().__init__(sandbox, tools)
        self.home = self.dir / "home"
        self.env["BGR_HOME"] = str(self.home)
        self.guard: subprocess.Popen[bytes] | None = None
        self.guard_log: IO[bytes] | None = None

    def missing(self) -> str | None:
        if not self.tools.bgr.is_file():
            return f"no bgr console script next to {self.tools.python}; run with the project venv's python"
        return None

    def guard_missing(self) -> str | None:
        """Why bgr-guard cannot run (it is being written while this benchmark is), or None."""
        if not self.tools.guard.is_file():
            return "guard not available (no bgr-guard script)"
        probe = subprocess.run(
            [str(self.tools.python), "-c", "import guard.cli"],
            capture_output=True,
            env=self.env,
            check=False,
        )
        if probe.returncode != 0:
            return "guard not available (guard.cli does not import yet)"
        return None

    def version(self) -> str:
        return run([str(self.tools.bgr), "--version"], self.env, capture=True)[1].strip()

    def close(self) -> None:
        self.unsupervise()
        if self.home.exists():
            self.reset()

    def floor_cmd(self) -> Cmd:
        return Cmd((str(self.tools.python), "-c", "pass"))

    def list_cmd(self, as_json: bool) -> Cmd:
        return Cmd((str(self.tools.bgr), "--json") if as_json else (str(self.tools.bgr),))

    def start_cmd(self, name: str) -> Cmd:
        return Cmd(
            (
                str(self.tools.bgr),
                "--name",
                name,
                "--directory",
                str(self.dir),
                "--command",
                shlex.join(self.child_argv(name)),
                # Fire and forget, as supervisorctl (startsecs=0) and pm2 return: the default
                # start watches the process settle (up to 1 s); figure "startup" measures that.
                "--wait",
                "0",
            )
        )

    def stop_cmd(self, name: str) -> Cmd:
        return Cmd((str(self.tools.bgr), "--stop", name))

    def stop_all_cmd(self) -> Cmd:
        return Cmd((str(self.tools.bgr), "--nuke"))

    def restart_cmd(self, name: str) -> Cmd:
        return Cmd((str(self.tools.bgr), name, "--restart", "--wait", "0"))

    def discard(self, name: str) -> None:
        self.call(Cmd((str(self.tools.bgr), "--delete", name, "--grace", "2")))

    def reset(self) -> None:
        self.call(Cmd((str(self.tools.bgr), "--nuke", "--grace", "2")))

    def _records(self) -> list[tuple[str, int | None]]:
        from bgr.store import open_registry

        with open_registry(str(self.home / "bgr.sqlite")) as reg:
            return [(r.name, r.pgid) for r in reg.all()]

    def pids(self) -> dict[str, int]:
        # The process group: the recorded pid is `sh -c`, and Debian's dash forks the command.
        return {name: pgid for name, pgid in self._records() if pgid}

    def kill(self, name: str, pid: int) -> int:
        """SIGKILL the instance's whole process group (sh and the program it forked)."""
        now = time.time_ns()
        os.killpg(pid, signal.SIGKILL)
        return now

    def supervise(self, reps: Reps) -> int:
        reason = self.guard_missing()
        if reason:
            raise Skip(reason)
        self.guard_log = (self.dir / "guard.log").open("ab")
        self.guard = subprocess.Popen(
            [str(self.tools.guard), "--all", *reps.guard_args],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self.guard_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        time.sleep(0.5)
        if self.guard.poll() is not None:
            tail = (self.dir / "guard.log").read_text(errors="replace").strip().splitlines()[-3:]
            raise BenchError(f"bgr-guard --all exited {self.guard.returncode}: {' | '.join(tail)}")
        return self.guard.pid

    def unsupervise(self) -> None:
        terminate(self.guard, 5)
        self.guard = None
        if self.guard_log is not None:
            self.guard_log.close()
            self.guard_log = None

    def populate_idle(self, count: int) -> str:
        from bgr.models import Desired, ProcessRecord
        from bgr.store import open_registry

        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        now = time.time()
        free_pids = (p for p in range(32_000, 1, -1) if not alive(p))
        with open_registry(str(self.home / "bgr.sqlite"), create=True) as reg:
            for i in range(count):
                name = f"idle{i:04d}"
                pid = next(free_pids)
                reg.put(
                    ProcessRecord(
                        name=name,
                        directory=str(self.dir),
                        command=shlex.join(self.child_argv(name)),
                        stdout=str(self.home / f"{name}-out.txt"),
                        stderr=str(self.home / f"{name}-err.txt"),
                        search_path=os.environ.get("PATH"),
                        desired=Desired.STOPPED,
                        pid=pid,
                        pgid=pid,
                        start_token=f"{boot_id}:{1000 + i}",
                        instance=uuid.uuid4().hex,
                        started_at=now - 3600,
                        stopped_at=now - 60,
                        exit_code=143,
                        events=(
                            {"at": now - 3600, "event": "started", "detail": f"pid {pid}"},
                            {"at": now - 60, "event": "stopped", "detail": ""},
                        ),
                    )
                )
        return (
            f"bgr, {count + 20} processes: {count} stopped rows inserted directly with bgr.store "
            "(with the pid, start token and events of a past run) + 20 running"
        )

    def start_writer(self, name: str, argv: Sequence[str], log: Path) -> None:
        self.call(
            Cmd(
                (
                    str(self.tools.bgr),
                    "--name",
                    name,
                    "--directory",
                    str(self.dir),
                    "--stdout",
                    str(log),
                    "--command",
                    shlex.join(argv),
                )
            )
        )


# ---------------------------------------------------------------------------------------------

_PROGRAM = """\
[program:{name}]
command={command}
directory={directory}
autostart=false
autorestart={autorestart}
startsecs=0
startretries=3
stopwaitsecs=5
stdout_logfile={stdout}
stdout_logfile_maxbytes=0
stderr_logfile={stderr}
stderr_logfile_maxbytes=0
"""

_SUPERVISORD = """\
[unix_http_server]
file={dir}/supervisor.sock
chmod=0700

[supervisord]
logfile={dir}/supervisord.log
pidfile={dir}/supervisord.pid
childlogdir={dir}/logs
loglevel=warn
minfds=1024
minprocs=200

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{dir}/supervisor.sock

[include]
files = {dir}/conf.d/*.conf
"""


class Supervisord(Manager):
    key = "supervisord"
    title = "supervisord"

    def __init__(self, sandbox: Sandbox, tools: Tools) -> None:
        super().__init__(sandbox, tools)
        self.conf = self.dir / "supervisord.conf"
        self.daemon: int | None = None

    def missing(self) -> str | None:
        if self.tools.supervisord is None:
            return "not installed (run sh bench/setup-peers.sh)"
        return None

    def ctl(self, *args: str) -> tuple[str, ...]:
        assert self.tools.supervisorctl is not None
        return (str(self.tools.supervisorctl), "-c", str(self.conf), *args)

    def version(self) -> str:
        assert self.tools.supervisord is not None
        return (
            "supervisor " + run([str(self.tools.supervisord), "--version"], self.env, capture=True)[1].strip()
        )

    def open(self) -> None:
        super().open()
        assert self.tools.supervisord is not None
        (self.dir / "conf.d").mkdir(exist_ok=True)
        self.conf.write_text(_SUPERVISORD.format(dir=self.dir))
        run([str(self.tools.supervisord), "-c", str(self.conf)], self.env)
        pidfile = self.dir / "supervisord.pid"
        wait_for("supervisord's pidfile", lambda: read_pidfile(pidfile) is not None, 10, 0.01)
        self.daemon = read_pidfile(pidfile)
        wait_for("supervisord's socket", self._answers, 10, 0.05)

    def _answers(self) -> bool:
        try:
            run(self.ctl("pid"), self.env)
        except BenchError:
            return False
        return True

    def close(self) -> None:
        if self.daemon is None:
            return
        with contextlib.suppress(BenchError):
            run(self.ctl("stop", "all"), self.env, timeout=30)
        with contextlib.suppress(BenchError):
            run(self.ctl("shutdown"), self.env, timeout=30)
        if not wait_gone(self.daemon, 10):
            os.kill(self.daemon, signal.SIGKILL)
            wait_gone(self.daemon, 5)
        self.daemon = None

    def floor_cmd(self) -> Cmd:
        assert self.tools.supervisorctl is not None
        # supervisorctl's own interpreter (the peers venv, same base Python as bgr's venv).
        return Cmd((str(self.tools.supervisorctl.with_name("python")), "-c", "pass"))

    def list_cmd(self, as_json: bool) -> Cmd:
        if as_json:
            raise Skip("supervisorctl has no JSON output")
        return Cmd(self.ctl("status"), ok=(0, 3))  # 3: some programs are not running

    def start_cmd(self, name: str) -> Cmd:
        return Cmd(self.ctl("start", name))

    def stop_cmd(self, name: str) -> Cmd:
        return Cmd(self.ctl("stop", name))

    def stop_all_cmd(self) -> Cmd:
        return Cmd(self.ctl("stop", "all"))

    def restart_cmd(self, name: str) -> Cmd:
        return Cmd(self.ctl("restart", name))

    def _program(self, name: str, command: str, stdout: Path, *, autorestart: bool = True) -> str:
        return _PROGRAM.format(
            name=name,
            command=command.replace("%", "%%"),
            directory=self.dir,
            autorestart="true" if autorestart else "false",
            stdout=str(stdout).replace("%", "%%"),
            stderr=self.dir / "logs" / f"{name}-err.txt",
        )

    def define(self, names: Sequence[str]) -> None:
        for name in names:
            (self.dir / "conf.d" / f"{name}.conf").write_text(
                self._program(name, shlex.join(self.child_argv(name)), self.dir / "logs" / f"{name}-out.txt")
            )
        run(self.ctl("update"), self.env, timeout=60)

    def discard(self, name: str) -> None:
        run(self.ctl("stop", name), self.env)

    def reset(self) -> None:
        run(self.ctl("stop", "all"), self.env, timeout=60)
        for conf in (self.dir / "conf.d").glob("*.conf"):
            conf.unlink()
        run(self.ctl("update"), self.env, timeout=60)

    def pids(self) -> dict[str, int]:
        out = run(self.ctl("status"), self.env, ok=(0, 3), capture=True)[1]
        found = {}
        for line in out.splitlines():
            match = re.match(r"(\S+)\s+RUNNING\s+pid (\d+),", line)
            if match:
                found[match.group(1)] = int(match.group(2))
        return found

    def supervise(self, reps: Reps) -> int:
        # autorestart=true in every program section; supervisord itself does the restarting.
        assert self.daemon is not None
        return self.daemon

    def populate_idle(self, count: int) -> str:
        sections = [
            self._program(
                f"idle{i:04d}", shlex.join(self.child_argv(f"idle{i:04d}")), self.dir / "logs" / "idle.txt"
            )
            for i in range(count)
        ]
        (self.dir / "conf.d" / "idle.conf").write_text("\n".join(sections))
        run(self.ctl("update"), self.env, timeout=120)
        return (
            f"supervisord, {count + 20} processes: {count} programs defined with autostart=false + 20 running"
        )

    def start_writer(self, name: str, argv: Sequence[str], log: Path) -> None:
        (self.dir / "conf.d" / f"{name}.conf").write_text(
            self._program(name, shlex.join(argv), log, autorestart=False)
        )
        run(self.ctl("update"), self.env)
        run(self.ctl("start", name), self.env)


# ---------------------------------------------------------------------------------------------


class Pm2(Manager):
    key = "pm2"
    title = "pm2"

    def __init__(self, sandbox: Sandbox, tools: Tools) -> None:
        super().__init__(sandbox, tools)
        self.home = self.dir / "home"
        self.env["PM2_HOME"] = str(self.home)
        # Without this the daemon phones home once a day; it never affects a timed command.
        self.env["PM2_DISABLE_VERSION_CHECK"] = "true"
        self.daemon: int | None = None

    def missing(self) -> str | None:
        if self.tools.pm2 is None:
            return "not installed (run sh bench/setup-peers.sh)"
        if self.tools.node is None:
            return "node not found on PATH"
        return None

    def pm2(self, *args: str) -> tuple[str, ...]:
        assert self.tools.pm2 is not None
        return (str(self.tools.pm2), *args)

    def version(self) -> str:
        assert self.tools.pm2 is not None and self.tools.node is not None
        package = self.tools.pm2.resolve().parent.parent / "package.json"
        pm2_version = json.loads(package.read_text()).get("version", "?")
        node = run([str(self.tools.node), "--version"], self.env, capture=True)[1].strip()
        return f"pm2 {pm2_version} (node {node})"

    def open(self) -> None:
        super().open()
        self.home.mkdir(parents=True, exist_ok=True)
        run(self.pm2("ping"), self.env, timeout=60)  # starts the daemon ("God Daemon")
        pidfile = self.home / "pm2.pid"
        wait_for("pm2's pidfile", lambda: read_pidfile(pidfile) is not None, 10, 0.01)
        self.daemon = read_pidfile(pidfile)

    def close(self) -> None:
        if self.daemon is None:
            return
        with contextlib.suppress(BenchError):
            run(self.pm2("kill"), self.env, ok=(0, 1), timeout=60)
        if not wait_gone(self.daemon, 10):
            os.kill(self.daemon, signal.SIGKILL)
            wait_gone(self.daemon, 5)
        self.daemon = None

    def floor_cmd(self) -> Cmd:
        assert self.tools.node is not None
        return Cmd((str(self.tools.node), "-e", "0"))

    def list_cmd(self, as_json: bool) -> Cmd:
        return Cmd(self.pm2("jlist" if as_json else "ls"))

    def start_cmd(self, name: str) -> Cmd:
        argv = self.child_argv(name)
        return Cmd(self.pm2("start", argv[0], "--name", name, "--", *argv[1:]))

    def stop_cmd(self, name: str) -> Cmd:
        return Cmd(self.pm2("stop", name))

    def stop_all_cmd(self) -> Cmd:
        return Cmd(self.pm2("delete", "all"))

    def restart_cmd(self, name: str) -> Cmd:
        return Cmd(self.pm2("restart", name))

    def discard(self, name: str) -> None:
        run(self.pm2("delete", name), self.env)

    def reset(self) -> None:
        run(self.pm2("delete", "all"), self.env, ok=(0, 1), timeout=60)

    def pids(self) -> dict[str, int]:
        listing = json.loads(run(self.pm2("jlist"), self.env, capture=True)[1])
        return {p["name"]: p["pid"] for p in listing if p.get("pid")}

    def supervise(self, reps: Reps) -> int:
        # pm2 restarts crashed apps itself (autorestart is on by default).
        assert self.daemon is not None
        return self.daemon

    def populate_idle(self, count: int) -> str:
        raise Skip("pm2 registers an app only by starting it; 1000 real processes are too heavy here")

    def start_writer(self, name: str, argv: Sequence[str], log: Path) -> None:
        run(
            self.pm2(
                "start",
                argv[0],
                "--name",
                name,
                "--no-autorestart",
                "--output",
                str(log),
                "--error",
                str(self.dir / "logs" / f"{name}-err.txt"),
                "--",
                *argv[1:],
            ),
            self.env,
        )


MANAGERS: tuple[type[Manager], ...] = (Bgr, Supervisord, Pm2)
