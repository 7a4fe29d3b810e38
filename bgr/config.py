"""TOML config file → flat environment dict: ``[server] port = 3000`` → ``SERVER_PORT=3000``.

Tables (and inline tables) nest with ``_``; names are upper-cased and made shell-safe. Values become
the text a program would expect to read from its environment; see ``flatten`` for the exact rules.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from bgr import paths
from bgr.errors import ConfigError

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: see bgr/record.py
if TYPE_CHECKING:
    from typing import Any

DEFAULT_CONFIG = ".config.toml"

# Spelled out rather than taken from the string module, which every start would import.
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_NAME_CHARS = frozenset(_ALNUM + "_")
_BARE_KEY_CHARS = frozenset(_ALNUM + "_-")


def env_name(parts: tuple[str, ...]) -> str:
    """The variable name for a key path: segments joined by ``_``, upper-cased, [A-Z0-9_] only.

    Non-ASCII characters become ``_`` one for one (rather than ``str.upper()``'s ``ß`` → ``SS``),
    so a name never depends on Unicode case rules; a leading digit gets a ``_`` prefix because
    shells and most env parsers reject such names.
    """
    name = "_".join(parts)
    name = "".join(ch.upper() if ch in _NAME_CHARS else "_" for ch in name)
    if name[:1].isdigit():
        name = "_" + name
    return name


def _display_key(parts: tuple[str, ...]) -> str:
    """A key path as TOML would write it (``server.port``, ``a."b c"``), for error messages."""
    import json  # on errors only: json imports re, the costliest import of a start

    return ".".join(
        p if p and set(p) <= _BARE_KEY_CHARS else json.dumps(p, ensure_ascii=False) for p in parts
    )


def _iso_date(value: object) -> str | None:
    """ISO 8601 text for a TOML date, time or date-time; None for anything else."""
    import datetime as dt  # tomli has loaded it; kept off this module's import, which every start pays

    return value.isoformat() if isinstance(value, dt.datetime | dt.date | dt.time) else None


def _json_default(value: object) -> str:
    text = _iso_date(value)
    if text is not None:
        return text
    raise TypeError(f"unsupported value type {type(value).__name__}")


def _scalar(value: object, parts: tuple[str, ...]) -> str:
    # bool before int: bool is a subclass of int and str(True) would give "True".
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    text = _iso_date(value)
    if text is not None:
        return text
    raise ConfigError(f"key {_display_key(parts)} has a value of unsupported type {type(value).__name__}")


def _value(value: object, parts: tuple[str, ...]) -> str:
    if isinstance(value, list):
        if any(isinstance(item, list | dict) for item in value):
            # Structure would be lost by comma-joining; JSON keeps it for the program to parse.
            import json  # here: json imports re, the costliest import of a start

            try:
                return json.dumps(value, default=_json_default, ensure_ascii=False, separators=(",", ":"))
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"key {_display_key(parts)}: {exc}") from exc
        # What the original (JavaScript Array.toString) produced, and what FOO=a,b readers expect.
        return ",".join(_scalar(item, parts) for item in value)
    return _scalar(value, parts)


def flatten(data: Mapping[str, Any]) -> dict[str, str]:
    """Flatten parsed TOML into ``{VARIABLE: text}``.

    Tables nest with ``_``; booleans are ``true``/``false``; numbers use ``str``/``repr``
    (``0.5``, ``inf``); dates and times are ISO 8601; arrays of scalars are comma-joined; arrays
    holding tables or arrays are compact JSON; strings (including empty ones) are kept verbatim.
    Raises ConfigError when two keys map to the same variable, a top-level key is empty, or a
    value holds a NUL character (the OS cannot pass one in an environment variable).
    """
    env: dict[str, str] = {}
    origin: dict[str, tuple[str, ...]] = {}

    def walk(table: Mapping[str, Any], prefix: tuple[str, ...]) -> None:
        for key, value in table.items():
            parts = (*prefix, key)
            if isinstance(value, Mapping):
                walk(value, parts)
                continue
            name = env_name(parts)
            if not name:
                raise ConfigError(f"key {_display_key(parts)} gives an empty variable name; rename it")
            if name in origin:
                raise ConfigError(
                    f"keys {_display_key(origin[name])} and {_display_key(parts)} both become "
                    f"{name}; rename one of them"
                )
            text = _value(value, parts)
            if "\0" in text:
                raise ConfigError(
                    f"key {_display_key(parts)} contains a NUL character, which an environment "
                    "variable cannot hold"
                )
            origin[name] = parts
            env[name] = text

    walk(data, ())
    return env


def load_env(path: os.PathLike[str] | str) -> dict[str, str]:
    """Read the TOML file at ``path`` and return its flattened environment (see ``flatten``).

    Raises ConfigError naming the file when it is missing, unreadable, not UTF-8 or not valid TOML
    (with line and column).
    """
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} not found") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    try:
        # utf-8-sig: editors on Windows often save a BOM, which TOML parsers otherwise reject.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"config file {path} is not valid UTF-8 (line {line}); TOML files must be UTF-8"
        ) from exc
    import tomli  # paid only when there is a config file to read

    try:
        data = tomli.loads(text)
    except tomli.TOMLDecodeError as exc:
        raise ConfigError(
            f"invalid TOML in {path} at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from exc
    try:
        return flatten(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc.message}") from exc


def resolve_config(directory: str, explicit: str | None) -> str | None:
    """The config file to load: ``explicit`` (relative to the current directory), else
    ``<directory>/.config.toml`` when it exists, else None.

    A missing explicit file is a ConfigError; a missing default is not.
    """
    if explicit is not None:
        path = paths.absolute(explicit)
        if not os.path.exists(path):
            raise ConfigError(f"config file {path} not found; {_config_hint(directory, explicit)}")
        return path
    default = os.path.join(paths.absolute(directory), DEFAULT_CONFIG)
    return default if os.path.exists(default) else None


def _config_hint(directory: str, explicit: str) -> str:
    """What to check about a --config that is not there: a relative one is read from the current
    directory (as every relative path on the command line is), which users of ``--directory``
    often do not expect; point at the file when it is in the process's directory instead."""
    if os.path.isabs(explicit):
        return "check the --config path"
    beside = os.path.join(paths.absolute(directory), explicit)
    here = paths.current_directory()
    hint = f"a relative --config is read from the current directory ({here}), not --directory"
    if os.path.exists(beside):
        hint += f"; for the one in --directory: --config {beside}"
    return hint
