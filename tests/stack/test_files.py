"""bgr.stack.files: bgr.toml and Procfile into complete definitions, or one error naming file,
process and key."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from bgr.errors import StackError
from bgr.stack import files


def write(tmp_path: Path, text: str, name: str = "bgr.toml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_a_full_table_becomes_a_complete_request(tmp_path: Path) -> None:
    (tmp_path / "api").mkdir()
    (tmp_path / "api.env").write_text("FROM_FILE=1\nLOG_LEVEL=info\n")
    path = write(
        tmp_path,
        """
        name = "shop"
        [db]
        command = "sleep 60"
        health = "tcp:127.0.0.1:6390"
        health_every = "5s"
        health_timeout = 1.5
        health_retries = 2
        health_start = 0
        [api]
        command = "python3 -m api"
        directory = "api"
        env = { LOG_LEVEL = "debug", WORKERS = 4, DEBUG = true }
        env_file = "api.env"
        config = "prod.toml"
        group = "web"
        stdout = "logs/out.txt"
        fetch = true
        ports = [8000, 8001]
        restart_at = "0 4 * * *"
        on_failure = "echo failed"
        max_memory = "200M"
        restart_every = "24h"
        depends_on = { db = "healthy" }
        """,
    )
    stack = files.load(path)
    assert (stack.name, stack.path, stack.names()) == ("shop", path, ("db", "api"))
    db, api = stack.services
    assert db.request.health == {
        "check": "tcp:127.0.0.1:6390", "every": 5.0, "timeout": 1.5, "retries": 2, "start": 0.0,
    }  # fmt: skip
    assert db.request.group == "shop" and db.request.directory == str(tmp_path)
    assert db.request.env == {} and db.request.ports == () and db.request.cron == ""
    req = api.request
    assert req.directory == str(tmp_path / "api")
    assert req.env == {"FROM_FILE": "1", "LOG_LEVEL": "debug", "WORKERS": "4", "DEBUG": "true"}
    assert req.config == str(tmp_path / "prod.toml") and req.stdout == str(tmp_path / "logs" / "out.txt")
    assert (req.group, req.fetch, req.ports, req.restart_at) == ("web", True, (8000, 8001), "0 4 * * *")
    assert req.health == {} and req.on_failure == "echo failed"
    assert (req.max_memory, req.restart_every) == (200 * 1024**2, 86400.0)
    assert (db.request.max_memory, db.request.restart_every) == (0, 0.0)  # none: a stored one goes
    assert api.depends_on == (files.Dependency("db", "healthy"),)


def test_the_stack_is_named_after_its_directory_unless_it_says(tmp_path: Path) -> None:
    folder = tmp_path / "my-app"
    folder.mkdir()
    path = write(folder, '[web]\ncommand = "sleep 1"\ndepends_on = []\n')
    assert files.load(path).name == "my-app"
    odd = tmp_path / "my app"
    odd.mkdir()
    with pytest.raises(StackError, match=r"invalid stack name 'my app'.*set name = "):
        files.load(write(odd, '[web]\ncommand = "sleep 1"\n'))


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('command = "x"\ncomand = "y"', "process web, key comand: unknown key (did you mean command?)"),
        ("command = 1", "process web, key command: must be a string, not an integer"),
        ('command = "  "', "process web, key command: must not be empty"),
        ('directory = "."', "process web: no command"),
        ('command = "x"\nfetch = "yes"', "key fetch: must be true or false, not a string"),
        ('command = "x"\nports = [0]', "key ports: takes port numbers from 1 to 65535, not 0"),
        ('command = "x"\nports = ["80"]', "key ports: takes port numbers"),
        ('command = "x"\nenv = ["A=1"]', "key env: must be a table of variables"),
        ('command = "x"\nenv = { "1A" = "x" }', "key env: '1A' is not an environment variable name"),
        ('command = "x"\nenv = { A = [1] }', "key env.A: must be a string, not an array"),
        ('command = "x"\nhealth = "ftp://x"', "key health: health takes http://"),
        ('command = "x"\nhealth_every = "5s"', "key health_every: needs health = CHECK"),
        ('command = "x"\nhealth = "tcp:h:1"\nhealth_every = 0', "key health_every: must be more than 0"),
        ('command = "x"\nhealth = "tcp:h:1"\nhealth_every = "soon"', "key health_every: health_every takes"),
        ('command = "x"\nhealth = "tcp:h:1"\nhealth_retries = 0', "key health_retries: must be a whole"),
        ('command = "x"\nhealth = "tcp:h:1"\nhealth_start = true', "key health_start: must be a duration"),
        ('command = "x"\ncron = "every day"', "key cron: cron takes 5 cron fields"),
        ('command = "x"\ngroup = "a b"', "key group: invalid group 'a b'"),
        ('command = "x"\nmax_memory = "lots"', "key max_memory: invalid size 'lots'"),
        ('command = "x"\nmax_memory = 0', "key max_memory: must be more than 0 bytes, not 0"),
        ('command = "x"\nmax_memory = 1.5', "key max_memory: must be a size such as"),
        ('command = "x"\nmax_memory = true', "key max_memory: must be a size such as"),
        ('command = "x"\nrestart_every = "daily"', "key restart_every: restart_every takes a duration"),
        ('command = "x"\nrestart_every = -1', "key restart_every: must be more than 0"),
        ('command = "x"\nrestart_every = [1]', "key restart_every: must be a duration"),
        ('command = "x"\nenv_file = "nope.env"', "env file"),
        ('command = "x"\ndepends_on = "db"', "key depends_on: must be a table"),
        ('command = "x"\ndepends_on = { db = "ready" }', "key depends_on.db: the condition is one of"),
    ],
)
def test_every_mistake_names_the_file_the_process_and_the_key(
    tmp_path: Path, table: str, message: str
) -> None:
    path = write(tmp_path, f"[web]\n{table}\n")
    with pytest.raises(StackError) as caught:
        files.load(path)
    assert message in str(caught.value)
    assert str(caught.value).startswith(path) or "env file" in message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('command = "x"', "'command' is not a process table"),
        ("", "defines no process"),
        ('name = 3\n[a]\ncommand = "x"', "name must be a string"),
        ("[a\n", "invalid TOML in"),
        ('["a b"]\ncommand = "x"', "process a b: invalid process name"),
    ],
)
def test_file_level_mistakes(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(StackError) as caught:
        files.load(write(tmp_path, text))
    assert message in str(caught.value)


def test_find_prefers_bgr_toml_then_a_procfile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StackError, match=r"no bgr\.toml or Procfile in"):
        files.find()
    write(tmp_path, "web: sleep 1\n", "Procfile")
    assert files.find() == str(tmp_path / "Procfile")
    write(tmp_path, '[web]\ncommand = "x"\n')
    assert files.find() == str(tmp_path / "bgr.toml")
    assert files.find(str(tmp_path)) == str(tmp_path / "bgr.toml")
    assert files.find("Procfile") == str(tmp_path / "Procfile")
    with pytest.raises(StackError, match=r"stack file .*other\.toml not found"):
        files.find("other.toml")


def test_a_procfile_with_its_env_gets_ports_as_honcho_gives_them(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("PORT=8000\nSECRET=x\n")
    path = write(
        tmp_path, "# processes\nweb: python3 -m http.server $PORT\n\nworker:   sleep 60  \n", "Procfile"
    )
    stack = files.load(path)
    assert stack.name == os.path.basename(tmp_path)
    web, worker = stack.services
    assert (web.request.command, web.request.env) == (
        "python3 -m http.server $PORT",
        {"PORT": "8000", "SECRET": "x"},
    )
    assert (worker.request.command, worker.request.env["PORT"]) == ("sleep 60", "8100")
    assert worker.request.directory == str(tmp_path) and worker.request.group == stack.name
    (tmp_path / ".env").unlink()
    assert files.load(path).services[0].request.env == {"PORT": "5000"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("web sleep 1\n", "line 1: expected 'name: command'"),
        ("web: a\nweb: b\n", "line 2: process web is defined twice"),
        ("_web: a\n", "line 1: invalid process name '_web'"),
        ("# nothing\n", "defines no process"),
    ],
)
def test_procfile_mistakes(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(StackError) as caught:
        files.load(write(tmp_path, text, "Procfile"))
    assert message in str(caught.value)


def test_a_bad_port_in_the_procfile_env(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("PORT=http\n")
    with pytest.raises(StackError, match="PORT must be a port number"):
        files.load(write(tmp_path, "web: x\n", "Procfile"))


def test_unreadable_and_non_utf8_stack_files(tmp_path: Path) -> None:
    path = tmp_path / "bgr.toml"
    path.write_bytes(b"[a]\ncommand = '\xff'\n")
    with pytest.raises(StackError, match="not valid UTF-8"):
        files.load(str(path))
    with pytest.raises(StackError, match="not found"):
        files.load(str(tmp_path / "gone.toml"))


def test_a_size_in_bytes_is_a_max_memory_too(tmp_path: Path) -> None:
    path = write(tmp_path, '[web]\ncommand = "x"\nmax_memory = 52428800\nrestart_every = 0.5\n')
    request = files.load(path).services[0].request
    assert (request.max_memory, request.restart_every) == (50 * 1024**2, 0.5)
