"""bgr.proc.command: which commands are exec'd directly, so the pid users see is the program's."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

import bgr
from bgr.proc import command
from tests.support import GRACE, api_start


@pytest.mark.parametrize(
    ("line", "argv"),
    [
        ("python3 -m http.server 8080", ["python3", "-m", "http.server", "8080"]),
        ("redis-server --daemonize yes", ["redis-server", "--daemonize", "yes"]),
        ("uvicorn app:app --port 18001", ["uvicorn", "app:app", "--port", "18001"]),
        ('node "my server.js"', ["node", "my server.js"]),
        ("prog 'a b' c", ["prog", "a b", "c"]),
        ('x"y"z  w', ["xyz", "w"]),
        ("a '' b", ["a", "", "b"]),
        ("./run.sh --flag=1", ["./run.sh", "--flag=1"]),
    ],
)
def test_plain_words_are_split_as_the_shell_would(line: str, argv: list[str]) -> None:
    assert command.plain_argv(line) == argv == shlex.split(line)


@pytest.mark.parametrize(
    "line",
    [
        "echo hi",  # a builtin
        "cd /tmp && ls",
        "sleep 60; ls",
        "a | b",
        "x > out.txt",
        "prog $HOME",
        "prog `date`",
        "prog *.py",
        "prog ~/file",
        "PORT=1 prog",  # an assignment
        "exec prog",
        "prog 'unbalanced",
        "prog a\\ b",
        "prog &",
        "prog # comment",
        "if true; then x; fi",
        "",
        "   ",
    ],
)
def test_anything_with_shell_syntax_goes_to_sh(line: str) -> None:
    assert command.plain_argv(line) is None


def cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]


def test_the_pid_of_a_simple_command_is_the_program(tmp_path: Path) -> None:
    api_start("plain", "sleep 60", tmp_path)
    simple = bgr.get("plain").pid
    assert simple is not None and cmdline(simple) == ["sleep", "60"]
    api_start("compound", "sleep 60; true", tmp_path)
    shell = bgr.get("compound").pid
    assert shell is not None and cmdline(shell)[:2] == ["/bin/sh", "-c"]
    bgr.nuke(grace=GRACE)
