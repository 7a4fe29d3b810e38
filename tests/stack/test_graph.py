"""bgr.stack.graph: unknown names, cycles and impossible conditions refused; waves in order."""

from __future__ import annotations

from pathlib import Path

import pytest

from bgr.errors import StackError
from bgr.stack import files, graph


def load(tmp_path: Path, text: str) -> files.Stack:
    path = tmp_path / "bgr.toml"
    path.write_text(text)
    return files.load(str(path))


CHAIN = """
[db]
command = "x"
health = "tcp:127.0.0.1:1"
[cache]
command = "x"
[migrate]
command = "x"
depends_on = { db = "healthy" }
[api]
command = "x"
depends_on = { db = "healthy", migrate = "completed", cache = "started" }
[worker]
command = "x"
depends_on = ["api"]
"""


def test_waves_follow_the_dependencies(tmp_path: Path) -> None:
    stack = load(tmp_path, CHAIN)
    assert graph.waves(stack.services) == [["db", "cache"], ["migrate"], ["api"], ["worker"]]
    assert graph.closure(stack, ["migrate"]) == ["db", "migrate"]
    assert graph.closure(stack, ["worker"]) == ["db", "cache", "migrate", "api", "worker"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[a]\ncommand = "x"\ndepends_on = ["b"]\n', "process a, key depends_on.b: no process b in the file"),
        (
            '[a]\ncommand = "x"\ndepends_on = ["a"]\n',
            "process a, key depends_on.a: a process cannot depend on itself",
        ),
        (
            '[a]\ncommand = "x"\n[b]\ncommand = "x"\ndepends_on = { a = "healthy" }\n',
            "process b, key depends_on.a: a has no health check to pass",
        ),
        (
            '[a]\ncommand = "x"\ncron = "* * * * *"\n[b]\ncommand = "x"\ndepends_on = { a = "completed" }\n',
            "a is a cron job",
        ),
        (
            '[a]\ncommand = "x"\ndepends_on = ["c"]\n[b]\ncommand = "x"\ndepends_on = ["a"]\n'
            '[c]\ncommand = "x"\ndepends_on = ["b"]\n',
            "process a, key depends_on: a cycle, a → c → b → a",
        ),
    ],
)
def test_dependencies_that_cannot_work_are_refused(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(StackError) as caught:
        load(tmp_path, text)
    assert message in str(caught.value)
    assert str(caught.value).startswith(str(tmp_path / "bgr.toml"))
