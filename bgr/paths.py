"""Where bgr keeps its state: BGR_HOME, else ~/.bgr; each registry's file and the folder of its files.

The state directory is created 0700 and refused when it is a symlink or owned by someone else, because
logs hold secrets and the registry decides which processes bgr signals. Each registry keeps its logs,
backups and locks in a folder of its own (:class:`Layout`), so two registries never share a file:
the default registry ``<state>/bgr.sqlite`` uses the state directory itself (the original's layout),
any other registry ``X.sqlite`` the folder ``X.d`` beside it. Only commands that write create any of it.

Paths here, and on every path ``bgr`` lists or starts through, are plain ``str`` and ``os.path``:
``pathlib`` imports ``urllib.parse`` and ``ipaddress``, a tenth of a listing (``bench/run.py --only
imports``; tests/test_layers.py keeps it off both paths).
"""

from __future__ import annotations

import errno
import os
import stat

from bgr.errors import BgrError, InvalidName, StateDirError
from bgr.record import Record

# Names become file names: ASCII letters and digits, then also '.', '_' and '-'; at most 64.
# Sets rather than a regular expression: ``re`` is the costliest import of a ``bgr`` call.
_NAME_START = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_NAME_CHARS = _NAME_START | frozenset("._-")
DEFAULT_DB = "bgr.sqlite"
DIR_MODE = 0o700
FILE_MODE = 0o600


def is_valid_name(name: str) -> bool:
    """Whether ``name`` is safe to use as part of a file name (see :func:`validate_name`)."""
    return 0 < len(name) <= 64 and name[0] in _NAME_START and _NAME_CHARS.issuperset(name)


def validate_name(name: str, what: str = "process name") -> str:
    """Return ``name`` if it is safe to use as part of a file name, else raise InvalidName."""
    if not is_valid_name(name):
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
    # Not os.path.expanduser alone: without HOME and a passwd entry it leaves a relative "~".
    path = home_directory() + path[1:] if path == "~" or path.startswith("~/") else os.path.expanduser(path)
    if not os.path.isabs(path):
        path = os.path.join(current_directory(), path)
    return os.path.normpath(path)


def state_dir() -> str:
    """The state directory path (not created): $BGR_HOME, else ~/.bgr."""
    configured = os.environ.get("BGR_HOME")
    if configured:
        return absolute(configured)
    return os.path.join(home_directory(), ".bgr")


def home_directory() -> str:
    """The user's home: $HOME, else the passwd entry; never a relative ``~``."""
    home = os.environ.get("HOME")
    if home and os.path.isabs(home):
        return home
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_dir
    except KeyError:
        raise StateDirError(
            f"no home directory (HOME is not set and uid {os.geteuid()} has no passwd entry); "
            "set BGR_HOME to the directory bgr should keep its state in"
        ) from None


def ensure_private_dir(path: str, *, parents: bool = False) -> str:
    """Create ``path`` (0700) if needed and check it is a directory of ours, not a symlink.

    Only the last component is created unless ``parents``: a typo in BGR_HOME must not become a
    whole new tree.
    """
    try:
        if parents:
            os.makedirs(path, mode=DIR_MODE, exist_ok=True)
        else:
            try:  # noqa: SIM105 (contextlib.suppress: an import of contextlib on every call)
                os.mkdir(path, DIR_MODE)
            except FileExistsError:
                pass
        info = os.lstat(path)
    except FileNotFoundError:
        raise StateDirError(
            f"cannot create {path}: its parent directory {os.path.dirname(path)} does not exist; "
            "create it first (or fix BGR_HOME)"
        ) from None
    except OSError as exc:
        raise StateDirError(f"cannot create state directory {path}: {exc.strerror}") from exc
    _check_private(path, info)
    if stat.S_IMODE(info.st_mode) != DIR_MODE:
        os.chmod(path, DIR_MODE)
    return path


def _check_private(path: str, info: os.stat_result) -> None:
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise StateDirError(f"{path} is a symlink or not a directory; refusing to use it for state")
    if info.st_uid != os.geteuid():
        raise StateDirError(f"{path} belongs to uid {info.st_uid}, not you; refusing to use it")


def check_private_dir(path: str) -> None:
    """Refuse (StateDirError) a state directory that is a symlink or someone else's; a missing
    one is fine (and is not created: reading never creates state)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    _check_private(path, info)


def ensure_state_dir() -> str:
    """Create (0700) and check the state directory; return it. ~/.bgr's parent is the home."""
    return ensure_private_dir(state_dir())


class Layout(Record):
    """Where one registry keeps its files: the registry itself, and the folder of its logs, backups
    (``backup/``), locks (``locks/``) and pending records (``pending``)."""

    db: str
    home: str

    def log_paths(self, name: str) -> tuple[str, str]:
        """The default logs of ``name`` (validated): ``<home>/<name>-out.txt``, ``-err.txt``."""
        return os.path.join(self.home, f"{name}-out.txt"), os.path.join(self.home, f"{name}-err.txt")

    @property
    def pending_path(self) -> str:
        """Reserved space for what a full disk kept a stop from recording (``bgr.core.pending``)."""
        return os.path.join(self.home, "pending")

    def has_pending(self) -> bool:
        """True when something waits there to be recorded: one byte read, which a listing affords."""
        try:
            fd = os.open(self.pending_path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            return False
        try:
            return os.pread(fd, 1, 0) not in (b"", b"\0")
        finally:
            os.close(fd)

    def owns(self, path: str) -> bool:
        """True for a file bgr keeps in this registry's folder (a default log), not the user's."""
        return os.path.dirname(path) == self.home

    def subdir(self, name: str) -> str:
        """A private subdirectory of the folder (``backup``, ``locks``), created on demand."""
        self.ensure_home()
        return ensure_private_dir(os.path.join(self.home, name))

    def check(self) -> None:
        """Refuse a state directory or registry folder that is a symlink or someone else's."""
        if os.path.dirname(self.db) == state_dir():
            check_private_dir(state_dir())
        check_private_dir(self.home)

    def ensure_home(self) -> str:
        """Create the state directory and this registry's folder (0700) if needed."""
        if os.path.dirname(self.db) == state_dir():
            ensure_state_dir()
        return ensure_private_dir(self.home)

    def backup_dir(self) -> str:
        """Where replaced and rotated logs go (created on demand)."""
        return self.subdir("backup")

    def lock_path(self, name: str) -> str:
        """A per-name lock file; names are validated before they get here."""
        return os.path.join(self.subdir("locks"), f"{name}.lock")


def layout(explicit: str | None = None) -> Layout:
    """The registry chosen by --db PATH, else $DB_NAME (``x`` → <state>/x.sqlite), else the default."""
    return registry_layout(db_path(explicit))


def registry_layout(db: str) -> Layout:
    """The layout of the registry file ``db`` (absolute)."""
    default = os.path.join(state_dir(), DEFAULT_DB)
    if db == default:
        return Layout(db=db, home=state_dir())
    stem = db.removesuffix(".sqlite")
    return Layout(db=db, home=f"{stem}.d")


def backup_dir(db: str | None = None) -> str:
    """The backup directory of the registry chosen by ``db`` (default: the default one), created."""
    return layout(db).backup_dir()


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


def open_private(path: str, flags: int) -> int:
    """Open (creating, with ``os.O_CREAT`` in ``flags``) one of bgr's own files: never through a
    symlink, 0600 when bgr creates it, and an existing file's mode left as it is.

    A symlink where bgr expects its own file could make bgr write, or change the mode of, whatever
    it points to: that is refused with an error naming it.
    """
    flags |= os.O_CLOEXEC | os.O_NOFOLLOW
    while True:
        if flags & os.O_CREAT:
            try:
                fd = os.open(path, flags | os.O_EXCL, FILE_MODE)
            except FileExistsError:
                pass
            else:
                os.fchmod(fd, FILE_MODE)  # ours: the umask may have taken bits away
                return fd
        try:
            return os.open(path, flags & ~os.O_CREAT)
        except FileNotFoundError:
            if not flags & os.O_CREAT:
                raise
            continue  # removed between the two opens: create it after all
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise StateDirError(
                    f"{path} is a symlink; bgr does not write through links in its state directory "
                    "(remove it)"
                ) from None
            raise


def file_size(path: os.PathLike[str] | str) -> int:
    """The size of a file (a log) in bytes; 0 when it does not exist (yet) or cannot be read."""
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
