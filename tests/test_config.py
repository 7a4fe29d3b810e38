"""bgr.config: TOML file → flat environment dict, and what a started child sees of it."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bgr.config import env_name, flatten, load_env, resolve_config
from bgr.errors import ConfigError
from tests.support import PY, listing, main, one, read, wait_for

SPEC_EXAMPLE = """\
# .config.toml
[server]
port = 3000
host = "0.0.0.0"
timeout = 30000

[database]
url = "postgresql://localhost/myapp"
pool_size = 10
connection_timeout = 5000

[logging]
level = "info"
format = "json"
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_spec_example_exactly(tmp_path: Path) -> None:
    env = load_env(write(tmp_path / ".config.toml", SPEC_EXAMPLE))
    assert env == {
        "SERVER_PORT": "3000",
        "SERVER_HOST": "0.0.0.0",
        "SERVER_TIMEOUT": "30000",
        "DATABASE_URL": "postgresql://localhost/myapp",
        "DATABASE_POOL_SIZE": "10",
        "DATABASE_CONNECTION_TIMEOUT": "5000",
        "LOGGING_LEVEL": "info",
        "LOGGING_FORMAT": "json",
    }


def test_nested_tables_three_deep_and_inline_tables(tmp_path: Path) -> None:
    text = """\
top = "t"
[a.b.c]
d = 1
[a.b]
e = { f = "inline", g = { h = true } }
[a]
x = "ax"
"""
    assert load_env(write(tmp_path / "c.toml", text)) == {
        "TOP": "t",
        "A_B_C_D": "1",
        "A_B_E_F": "inline",
        "A_B_E_G_H": "true",
        "A_X": "ax",
    }


def test_every_value_type(tmp_path: Path) -> None:
    text = """\
s = "text"
empty = ""
yes = true
no = false
int = 42
neg = -7
hex = 0xff
half = 0.5
big = 1e100
whole = 3.0
inf = inf
odt = 1979-05-27T07:32:00Z
odt_offset = 1979-05-27T07:32:00.5-07:00
ldt = 1979-05-27T07:32:00
ld = 1979-05-27
lt = 07:32:00
ints = [1, 2, 3]
strings = ["a", "b"]
mixed = [1, "x", true, 1979-05-27]
none = []
nested = [[1, 2], ["a"]]
tables = [{ name = "a", port = 1 }, { name = "b", when = 1979-05-27 }]
[[servers]]
name = "alpha"
[[servers]]
name = "beta"
"""
    env = load_env(write(tmp_path / "types.toml", text))
    assert env == {
        "S": "text",
        "EMPTY": "",
        "YES": "true",
        "NO": "false",
        "INT": "42",
        "NEG": "-7",
        "HEX": "255",
        "HALF": "0.5",
        "BIG": "1e+100",
        "WHOLE": "3.0",
        "INF": "inf",
        "ODT": "1979-05-27T07:32:00+00:00",
        "ODT_OFFSET": "1979-05-27T07:32:00.500000-07:00",
        "LDT": "1979-05-27T07:32:00",
        "LD": "1979-05-27",
        "LT": "07:32:00",
        "INTS": "1,2,3",
        "STRINGS": "a,b",
        "MIXED": "1,x,true,1979-05-27",
        "NONE": "",
        "NESTED": '[[1,2],["a"]]',
        "TABLES": '[{"name":"a","port":1},{"name":"b","when":"1979-05-27"}]',
        "SERVERS": '[{"name":"alpha"},{"name":"beta"}]',
    }
    assert json.loads(env["SERVERS"]) == [{"name": "alpha"}, {"name": "beta"}]


def test_flatten_accepts_python_values_directly() -> None:
    when = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert flatten({"app": {"debug": False, "started": when, "ratio": 0.25}}) == {
        "APP_DEBUG": "false",
        "APP_STARTED": "2024-01-02T03:04:05+00:00",
        "APP_RATIO": "0.25",
    }


def test_flatten_rejects_unsupported_python_values() -> None:
    with pytest.raises(ConfigError, match=r"a\.b .*unsupported type bytes"):
        flatten({"a": {"b": b"raw"}})


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (("server", "port"), "SERVER_PORT"),
        (("my-app", "log.level"), "MY_APP_LOG_LEVEL"),
        (("with space",), "WITH_SPACE"),
        (("3d", "x"), "_3D_X"),
        (("a", "1"), "A_1"),
        (("straße",), "STRA_E"),
        (("\u0131d",), "_D"),  # dotless i upper-cases to ASCII "I"; must not
        (("Mixed_Case9",), "MIXED_CASE9"),
    ],
)
def test_key_normalisation(parts: tuple[str, ...], expected: str) -> None:
    assert env_name(parts) == expected


def test_quoted_and_dotted_keys_in_a_file(tmp_path: Path) -> None:
    text = '"3d-model" = "x"\n[web]\n"api.url" = "u"\nsite.name = "n"\n'
    assert load_env(write(tmp_path / "k.toml", text)) == {
        "_3D_MODEL": "x",
        "WEB_API_URL": "u",
        "WEB_SITE_NAME": "n",
    }


@pytest.mark.parametrize(
    ("text", "first", "second", "name"),
    [
        ("a_b = 1\n[a]\nb = 2\n", "a_b", "a.b", "A_B"),
        ("[a]\nb = 1\n[A]\nb = 2\n", "a.b", "A.b", "A_B"),
        ('"x.y" = 1\nx_y = 2\n', '"x.y"', "x_y", "X_Y"),
        ("x-y = 1\nx_y = 2\n", "x-y", "x_y", "X_Y"),
    ],
)
def test_collision_names_both_keys(tmp_path: Path, text: str, first: str, second: str, name: str) -> None:
    path = write(tmp_path / "clash.toml", text)
    with pytest.raises(ConfigError) as info:
        load_env(path)
    message = str(info.value)
    assert first in message
    assert second in message
    assert name in message
    assert str(path) in message


def test_empty_top_level_key_is_rejected() -> None:
    with pytest.raises(ConfigError, match="empty variable name"):
        flatten({"": "x"})


def test_nul_in_value_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"a\.b contains a NUL"):
        load_env(write(tmp_path / "nul.toml", '[a]\nb = "x\\u0000y"\n'))


def test_special_characters_survive_unchanged(tmp_path: Path) -> None:
    text = r'''
comma = "a,b,c"
equals = "k=v=w"
quotes = "say \"hi\" and 'bye'"
newline = "line1\nline2\n"
multi = """
first
second"""
literal = 'C:\path\with $dollar and `tick`'
'''
    env = load_env(write(tmp_path / "special.toml", text))
    assert env == {
        "COMMA": "a,b,c",
        "EQUALS": "k=v=w",
        "QUOTES": "say \"hi\" and 'bye'",
        "NEWLINE": "line1\nline2\n",
        "MULTI": "first\nsecond",
        "LITERAL": "C:\\path\\with $dollar and `tick`",
    }


def test_invalid_toml_names_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path / "prod.toml", '[server]\nport = 3000\nhost = "x" oops\n')
    with pytest.raises(ConfigError) as info:
        load_env(path)
    message = str(info.value)
    assert message.startswith(f"invalid TOML in {path} at line 3, column ")
    column = int(message.split("column ")[1].split(":", maxsplit=1)[0])
    assert 11 <= column <= 13
    assert "\n" not in message


def test_duplicate_key_is_invalid_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"at line 2, column \d+"):
        load_env(write(tmp_path / "dup.toml", "a = 1\na = 2\n"))


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'a = "ok"\nb = "caf\xe9"\n')
    with pytest.raises(ConfigError, match=r"not valid UTF-8 \(line 2\)"):
        load_env(path)


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.toml"
    path.write_bytes(b'\xef\xbb\xbfname = "caf\xc3\xa9"\n')
    assert load_env(path) == {"NAME": "café"}


def test_missing_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "gone.toml"
    with pytest.raises(ConfigError, match=f"config file {path} not found"):
        load_env(path)


def test_unreadable_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"cannot read config file {tmp_path}"):
        load_env(tmp_path)  # a directory


def test_resolve_explicit_relative_to_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cwd = tmp_path / "cwd"
    procdir = tmp_path / "app"
    cwd.mkdir()
    procdir.mkdir()
    write(cwd / "prod.toml", "a = 1\n")
    write(procdir / "prod.toml", "a = 2\n")
    monkeypatch.chdir(cwd)
    resolved = resolve_config(str(procdir), "prod.toml")
    assert resolved == str(cwd / "prod.toml")


def test_resolve_missing_explicit_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / ".config.toml", "a = 1\n")  # a default must not stand in for it
    with pytest.raises(ConfigError, match=f"config file {tmp_path / 'nope.toml'} not found"):
        resolve_config(str(tmp_path), "nope.toml")


def test_resolve_default_present_and_missing(tmp_path: Path) -> None:
    assert resolve_config(str(tmp_path), None) is None
    default = write(tmp_path / ".config.toml", "a = 1\n")
    assert resolve_config(str(tmp_path), None) == str(default)


def test_resolved_env_is_usable_by_a_real_process(tmp_path: Path) -> None:
    """The flattened values go through execve unchanged."""
    text = 'v = "a,b=c \\"q\\"\\nz"\nn = ""\n'
    env = load_env(write(tmp_path / "e.toml", text))
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, json; print(json.dumps([os.environ['V'], os.environ['N']]))",
        ],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(out) == ['a,b=c "q"\nz', ""]


# --------------------------------------------------------------------------------------------
# through the real start: the config file and --env reach the child


def _env_dump(*keys: str) -> str:
    code = f"import json, os; print(json.dumps({{k: os.environ.get(k) for k in {json.dumps(list(keys))}}}))"
    return f"{PY} -c '{code}'; exec sleep 60"


def test_config_and_env_values_reach_the_child_losslessly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bgr_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "conf" / "settings.toml"
    config.parent.mkdir()
    config.write_text(
        '[server]\nport = 3000\nhosts = ["a", "b"]\n[db]\nurl = "postgres://u:p=w@h/db?x=1,y=\'2\'"\n'
    )
    tricky = "a,b=c \"dq\" 'sq' $HOME `x` ; \\"
    monkeypatch.chdir(tmp_path)  # --config is relative to the caller's directory
    code, _, err = main(
        capsys, "--name", "cfg", "--config", "conf/settings.toml",
        "--env", f"TRICKY={tricky}", "--env", "EMPTY=",
        "--command", _env_dump("SERVER_PORT", "DB_URL", "TRICKY", "EMPTY", "SERVER_HOSTS"),
    )  # fmt: skip
    assert code == 0, err
    wait_for(lambda: read(bgr_home / "cfg-out.txt").endswith("\n"), what="env dump")
    seen = json.loads(read(bgr_home / "cfg-out.txt"))
    assert seen["SERVER_PORT"] == "3000"
    assert seen["DB_URL"] == "postgres://u:p=w@h/db?x=1,y='2'"
    assert seen["TRICKY"] == tricky and seen["EMPTY"] == ""
    assert seen["SERVER_HOSTS"] == "a,b"  # arrays of scalars are comma-joined
    data = one(capsys, "cfg")
    assert data["config"] == str(config)
    assert set(data["env_keys"]) >= {"SERVER_PORT", "DB_URL", "TRICKY", "EMPTY"}
    shown = listing(capsys, "--show-env")[0]["env"]
    assert shown["TRICKY"] == tricky and shown["DB_URL"] == seen["DB_URL"]


def test_missing_default_config_is_fine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = main(capsys, "--name", "n", "--directory", str(tmp_path), "--command", "sleep 60")
    assert code == 0, err
    assert one(capsys, "n")["config"] is None
