"""The part of bgr that bgr-guard may use: one list, checked by a test (tests/test_layers.py).

bgr-guard imports nothing from bgr but this module, so every other module of bgr may change shape
without breaking the guard. Log rotation (ctypes) and git pulls (GitPython) are imported on first
use only: the guard stays small until it needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bgr import __version__
from bgr.cli.funnel import run_program
from bgr.cli.parse import check_spelling, parse, unmatched_names
from bgr.cli.table import Table, flag, positional, value
from bgr.core.launch import (
    ExitNote,
    follow_daemon,
    follow_in,
    guard_replace,
    guard_restart,
    record_exit,
    recover_name,
    restart,
    tidy_cgroups,
)
from bgr.core.ready import probe_environment
from bgr.core.scheduled import finish_run, last_run, restart_on_schedule, run_job, set_next_run
from bgr.core.scheduled import unfinished as unfinished_run
from bgr.errors import BgrError, GitError, LockHeld, NoRegistry, NotFound, UsageError
from bgr.health.probes import Probe as HealthProbe
from bgr.health.probes import check as check_probe
from bgr.health.probes import from_dict as probe_from_dict
from bgr.health.schedule import next_time as next_cron_time
from bgr.health.state import HealthState
from bgr.health.state import from_dict as read_health_state
from bgr.health.state import observe as observe_health
from bgr.models import Desired, Identity, ProcessRecord
from bgr.paths import Layout, db_path, file_size, layout, validate_name
from bgr.proc.cgroups import base as cgroup_base
from bgr.proc.cgroups import create as create_cgroup
from bgr.proc.cgroups import slow_joins as slow_cgroup_joins
from bgr.proc.exits import describe_exit
from bgr.proc.host import become_subreaper, boot_id, group_usage, is_alive, start_token
from bgr.proc.identity import instance_alive, leader_alive, marked_in_group
from bgr.proc.locks import file_lock, name_lock
from bgr.proc.spawn import new_instance, reap_spawned
from bgr.proc.stopper import DEFAULT_GRACE
from bgr.record import Record
from bgr.store import Registry, open_registry
from bgr.units import count_from, format_size, parse_duration, size_option

if TYPE_CHECKING:
    from bgr.git import PullResult, pull_if_clean
    from bgr.logfiles.rotation import RotationResult, rotate_live

__all__ = [
    "DEFAULT_GRACE",
    "BgrError",
    "Desired",
    "ExitNote",
    "GitError",
    "HealthProbe",
    "HealthState",
    "Identity",
    "Layout",
    "LockHeld",
    "NoRegistry",
    "NotFound",
    "ProcessRecord",
    "PullResult",
    "Record",
    "Registry",
    "RotationResult",
    "Table",
    "UsageError",
    "__version__",
    "become_subreaper",
    "boot_id",
    "cgroup_base",
    "check_probe",
    "check_spelling",
    "count_from",
    "create_cgroup",
    "db_path",
    "describe_exit",
    "file_lock",
    "file_size",
    "finish_run",
    "flag",
    "follow_daemon",
    "follow_in",
    "format_size",
    "group_usage",
    "guard_replace",
    "guard_restart",
    "instance_alive",
    "is_alive",
    "last_run",
    "layout",
    "leader_alive",
    "marked_in_group",
    "name_lock",
    "new_instance",
    "next_cron_time",
    "observe_health",
    "open_registry",
    "parse",
    "parse_duration",
    "positional",
    "probe_environment",
    "probe_from_dict",
    "pull_if_clean",
    "read_health_state",
    "reap_spawned",
    "record_exit",
    "recover_name",
    "restart",
    "restart_on_schedule",
    "rotate_live",
    "run_job",
    "run_program",
    "set_next_run",
    "size_option",
    "slow_cgroup_joins",
    "start_token",
    "tidy_cgroups",
    "unfinished_run",
    "unmatched_names",
    "validate_name",
    "value",
]

_LAZY = {
    "pull_if_clean": "bgr.git",
    "PullResult": "bgr.git",
    "rotate_live": "bgr.logfiles.rotation",
    "RotationResult": "bgr.logfiles.rotation",
}


def __getattr__(name: str) -> object:
    """The heavy half, imported on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bgr.guard_api' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
