"""Where bgr keeps its state: BGR_HOME, else ~/.bgr; the registry, log, backup and lock paths.

The state directory is created 0700 and refused when it is a symlink or owned by someone else, because
logs hold secrets and the registry decides which processes bgr signals.

Paths here, and on every path ``bgr`` lists or starts through, are plain ``str`` and ``os.path``:
``pathlib`` imports ``urllib.parse`` and ``ipaddress``, a tenth of a listing (``bench/run.py --only
imports``; tests/test_layers.py keeps it off both paths).
"""

from __future__ import annotations

import os
import re
import stat

from bgr.errors import BgrError, InvalidName, StateDirError

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
DEFAULT_DB = "bgr.sqlite"
DIR_MODE = 0o700
FILE_MODE = 0o600


def validate_name(name: str, what: str = "process name") -> str:
    """Return ``name`` if it is safe to use as part of a file name, else raise InvalidName."""
    if not NAME_PATTERN.fullmatch(name) or name in {".", ".."}:
        raise InvalidName(
            f"invalid {what} {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def current_directory() -> str:
    """``os.getcwd()``, or one clear error when that directory was deleted under the shell."""
    try:
        return os.getcwd()
    except FileNotFoundError:
        raise BgrError(
            "the current directory no longer exists; cd to an existing one (or give absolute paths)"
        ) from None


def absolute(path: str) -> str:
    """``~`` expanded, made absolute and normalised (``a/../b`` → ``b``)."""
    path = os.path.expanduser(path)
    if not os.path.isabs(path):
        path = os.path.join(current_directory(), path)
    return os.path.normpath(path)


def state_dir() -> str:
    """The state directory path (not created)."""
    configured = os.environ.get("BGR_HOME")
    if configured:
        return absolute(configured)
    return os.path.join(os.path.expanduser("~"), ".bgr")


def _ensure_private_dir(path: str) -> str:
    try:
        os.makedirs(path, mode=DIR_MODE, exist_ok=True)
        info = os.lstat(path)
    except OSError as exc:
        raise StateDirError(f"cannot create state directory {path}: {exc.strerror}") from exc
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise StateDirError(f"{path} is a symlink or not a directory; refusing to use it for state")
    if info.st_uid != os.geteuid():
        raise StateDirError(f"{path} belongs to uid {info.st_uid}, not you; refusing to use it")
    if stat.S_IMODE(info.st_mode) != DIR_MODE:
        os.chmod(path, DIR_MODE)
    return path


def ensure_state_dir() -> str:
    """Create (0700) and check the state directory; return it."""
    return _ensure_private_dir(state_dir())


def ensure_subdir(name: str) -> str:
    """A private subdirectory of the state directory (``backup``, ``run``, ``locks``)."""
    return _ensure_private_dir(os.path.join(ensure_state_dir(), name))


def db_path(explicit: str | None = None) -> str:
    """--db PATH, else $DB_NAME (``x`` → <state>/x.sqlite), else <state>/bgr.sqlite."""
    if explicit:
        return absolute(explicit)
    db_name = os.environ.get("DB_NAME")
    if db_name:
        stem = db_name.removesuffix(".sqlite")
        validate_name(stem, "DB_NAME")
        return os.path.join(state_dir(), f"{stem}.sqlite")
    return os.path.join(state_dir(), DEFAULT_DB)


def default_log_paths(name: str) -> tuple[str, str]:
    """The spec's layout: <state>/<name>-out.txt and <state>/<name>-err.txt."""
    base = state_dir()
    return os.path.join(base, f"{name}-out.txt"), os.path.join(base, f"{name}-err.txt")


def backup_dir() -> str:
    """Where replaced and rotated logs go (created on demand)."""
    return ensure_subdir("backup")


def lock_path(name: str) -> str:
    """A per-name lock file; names are validated before they get here."""
    return os.path.join(ensure_subdir("locks"), f"{name}.lock")


def open_private(path: os.PathLike[str] | str, flags: int) -> int:
    """``os.open`` with mode 0600 and FD_CLOEXEC, and fix the mode of a file that already exists."""
    fd = os.open(path, flags | os.O_CLOEXEC, FILE_MODE)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) != FILE_MODE and os.fstat(fd).st_uid == os.geteuid():
            os.fchmod(fd, FILE_MODE)
    except OSError:
        os.close(fd)
        raise
    return fd


def file_size(path: os.PathLike[str] | str) -> int:
    """The size of a file (a log) in bytes; 0 when it does not exist (yet) or cannot be read."""
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
