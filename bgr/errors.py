"""Every failure bgr reports to a user: a message that says what is wrong and what to do.

Core code raises these; only the ``cli`` modules turn them into one stderr line and an exit code.
"""

from __future__ import annotations


class BgrError(Exception):
    """Base class. ``exit_code`` is what the CLI exits with; ``str(err)`` is the one-line message."""

    exit_code = 1

    def __init__(self, message: str, *, details: str = "") -> None:
        super().__init__(message)
        self.message = message
        # Extra lines shown after the message (e.g. the stderr tail of a crashed start).
        self.details = details

    def __str__(self) -> str:
        return self.message


class UsageError(BgrError):
    """The command line itself is wrong (unknown flag, two actions at once, bad value)."""

    exit_code = 2


class InvalidName(UsageError):
    """A process name that could become a path outside the state directory, or is otherwise unusable."""


class NotFound(BgrError):
    """No process of that name is registered."""

    exit_code = 3


class NoRegistry(NotFound):
    """The registry does not exist yet; only a start creates it (reading never does)."""


class AlreadyRunning(BgrError):
    """Starting a name that is running, without --force."""

    exit_code = 4


class ConfigError(BgrError):
    """A TOML config file is missing, unreadable or invalid."""

    exit_code = 5


class StackError(ConfigError):
    """A stack file (``bgr.toml``, ``Procfile``, a ``.env``) is missing or wrong: the message names
    the file, the process and the key; nothing was started or stopped."""


class SpawnError(BgrError):
    """The process could not be started, or died within its startup window."""

    exit_code = 6


class PortInUse(SpawnError):
    """--force would have to stop another user's process to free a port: nothing is done."""


class RegistryError(BgrError):
    """The SQLite registry is corrupt, locked, read-only or from a newer bgr."""

    exit_code = 7


class RegistryFull(RegistryError):
    """The registry cannot be written: the disk is full or a file size limit was reached."""

    reason = "the disk is full"  # what exactly: "no space left on device (DIR)", "file size limit ..."


class StateDirError(BgrError):
    """The state directory is unsafe (a symlink, another user's) or cannot be created."""

    exit_code = 7


class GitError(BgrError):
    """A --fetch pull could not be done (not a repository, dirty tree, diverged, unreachable)."""

    exit_code = 8


class WatchError(BgrError):
    """File watching could not be set up (e.g. out of inotify watches)."""

    exit_code = 9


class LockHeld(BgrError):
    """Another bgr or bgr-guard holds the lock this operation needs."""

    exit_code = 10


class StopError(BgrError):
    """A process could not be stopped (e.g. it belongs to another user)."""

    exit_code = 11


class Interrupted(BgrError):
    """Ctrl-C stopped an action half-way; the message says what is left."""

    exit_code = 130
