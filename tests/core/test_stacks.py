"""bgr.core.stacks: --up with real processes (dependencies first, conditions held, changes
restarted, failures named) and --down in reverse order."""

from __future__ import annotations

import json
import shlex
import sys
import textwrap
from pathlib import Path

from bgr.core import stacks
from bgr.stack import files, plan
from tests.support import health_server, must, record_alive

PY = shlex.quote(sys.executable)
GRACE = 0.5


def write_stack(tmp_path: Path, text: str) -> files.Stack:
    path = tmp_path / "bgr.toml"
    path.write_text(textwrap.dedent(text))
    return files.load(str(path))


def up(stack: files.Stack, **kwargs: object) -> list[stacks.Outcome]:
    heard: list[stacks.Outcome] = []
    outcomes = stacks.up(
        stacks.make_plan(stack, **kwargs),  # type: ignore[arg-type]
        grace=GRACE,
        report=heard.append,
    )
    assert sorted(o.step.name for o in heard) == sorted(o.step.name for o in outcomes)
    return outcomes


def by_name(outcomes: list[stacks.Outcome]) -> dict[str, stacks.Outcome]:
    return {o.step.name: o for o in outcomes}


def connects(port: int) -> str:
    """A command that fails at once unless 127.0.0.1:PORT accepts, then sleeps."""
    code = f"import socket, time; socket.create_connection(('127.0.0.1', {port}), 1).close(); time.sleep(60)"
    return f"{PY} -c {shlex.quote(code)}"


def test_a_dependent_starts_only_once_its_dependency_is_healthy_and_a_second_up_keeps_all(
    tmp_path: Path,
) -> None:
    db, port, _ = health_server(tmp_path, delay=0.8)  # listens only after 0.8 s
    stack = write_stack(
        tmp_path,
        f"""
        [db]
        command = {json.dumps(db)}
        health = "tcp:127.0.0.1:{port}"
        [migrate]
        command = "sleep 0.4; echo done > migrated"
        depends_on = {{ db = "started" }}
        [api]
        command = {json.dumps(connects(port))}
        depends_on = {{ db = "healthy", migrate = "completed" }}
        [worker]
        command = "sleep 60"
        """,
    )
    outcomes = by_name(up(stack))
    assert all(o.error is None for o in outcomes.values()), outcomes
    assert outcomes["migrate"].finished == 0 and (tmp_path / "migrated").read_text() == "done\n"
    assert must("migrate").exit_code == 0
    api = must("api")
    assert record_alive(api) and api.group == tmp_path.name
    assert api.stack["file"] == stack.path and api.stack["depends_on"] == {
        "db": "healthy",
        "migrate": "completed",
    }
    # worker waits for nothing: it started while db was still getting ready
    assert (must("worker").started_at or 0) < (must("api").started_at or 0)

    pids = {name: must(name).pid for name in ("db", "api", "worker")}
    again = up(stack)
    assert [(o.step.name, o.step.action) for o in again] == [
        ("db", "keep"), ("worker", "keep"), ("migrate", "keep"), ("api", "keep"),
    ]  # fmt: skip
    assert all(o.error is None for o in again)
    assert {name: must(name).pid for name in pids} == pids


def test_a_change_restarts_only_that_process(tmp_path: Path) -> None:
    text = """
    [a]
    command = "sleep 60"
    env = { MODE = "one" }
    [b]
    command = "sleep 61"
    depends_on = ["a"]
    """
    stack = write_stack(tmp_path, text)
    up(stack)
    before = {n: must(n).pid for n in ("a", "b")}
    changed = write_stack(tmp_path, text.replace('"one"', '"two"'))
    outcomes = by_name(up(changed))
    assert (outcomes["a"].step.action, outcomes["b"].step.action) == ("restart", "keep")
    assert must("a").pid != before["a"] and must("b").pid == before["b"]
    assert must("a").env == {"MODE": "two"}


def test_a_changed_limit_restarts_on_the_next_up_and_an_unchanged_one_nothing(tmp_path: Path) -> None:
    text = """
    [a]
    command = "sleep 60"
    max_memory = "200M"
    [b]
    command = "sleep 61"
    """
    up(write_stack(tmp_path, text))
    assert (must("a").limits, must("b").limits) == ({"max_memory": 200 * 1024**2}, {})
    before = {n: must(n).pid for n in ("a", "b")}
    again = by_name(up(write_stack(tmp_path, text)))
    assert [again[n].step.action for n in ("a", "b")] == ["keep", "keep"]
    changed = text.replace('"200M"', "1048576").replace('"sleep 61"', '"sleep 61"\nrestart_every = "1h"')
    outcomes = by_name(up(write_stack(tmp_path, changed)))
    assert [outcomes[n].step.action for n in ("a", "b")] == ["restart", "restart"]
    assert must("a").pid != before["a"] and must("b").pid != before["b"]
    assert (must("a").limits, must("b").limits) == ({"max_memory": 1024**2}, {"restart_every": 3600.0})
    # A limit the file no longer has is removed: the file is the whole definition.
    by_name(up(write_stack(tmp_path, text)))
    assert must("b").limits == {}


def test_a_dependency_that_never_gets_healthy_names_itself_and_its_last_probe_error(tmp_path: Path) -> None:
    port = 1  # nothing listens there
    stack = write_stack(
        tmp_path,
        f"""
        [db]
        command = "sleep 60"
        health = "tcp:127.0.0.1:{port}"
        [api]
        command = "sleep 61"
        depends_on = {{ db = "healthy" }}
        [web]
        command = "sleep 62"
        depends_on = ["api"]
        [other]
        command = "sleep 63"
        """,
    )
    outcomes = by_name(stacks.up(stacks.make_plan(stack), grace=GRACE, wait_for=0.5))
    db_error = outcomes["db"].error
    assert db_error is not None and db_error.exit_code == 6
    assert "did not pass its health check within 0.5s (last: connection refused)" in str(db_error)
    api_error = str(outcomes["api"].error)
    assert api_error.startswith(
        "api was not started: its dependency db did not become healthy: db did not pass"
    )
    assert str(outcomes["web"].error).startswith(
        "web was not started: its dependency api did not become started"
    )
    assert outcomes["other"].error is None and record_alive(must("other"))
    assert must("db").name == "db"  # defined, and left running (it may just be slow)
    from tests.support import row

    assert row("api") is None and row("web") is None


def test_a_job_that_fails_keeps_its_dependents_from_starting(tmp_path: Path) -> None:
    stack = write_stack(
        tmp_path,
        """
        [migrate]
        command = "sleep 0.3; exit 3"
        [api]
        command = "sleep 60"
        depends_on = { migrate = "completed" }
        """,
    )
    outcomes = by_name(up(stack))
    assert "migrate finished with exit code 3" in str(outcomes["migrate"].error)
    assert str(outcomes["api"].error).startswith(
        "api was not started: its dependency migrate did not become completed"
    )


def test_down_stops_dependents_first_and_prune_stops_what_the_file_dropped(tmp_path: Path) -> None:
    text = """
    [db]
    command = "sleep 60"
    [api]
    command = "sleep 61"
    depends_on = ["db"]
    [old]
    command = "sleep 62"
    """
    stack = write_stack(tmp_path, text)
    up(stack)
    smaller = write_stack(tmp_path, text.replace('[old]\n    command = "sleep 62"\n', ""))
    kept = by_name(up(smaller))
    assert kept["old"].step.action == plan.REMOVED and record_alive(must("old"))
    results, removed = stacks.down(smaller, grace=GRACE)
    assert [r.name for r in results] == ["api", "db"] and all(r.was_running for r in results)
    assert removed == ["old"] and record_alive(must("old"))
    assert (must("api").stopped_at or 0) <= (must("db").stopped_at or 0)
    results, removed = stacks.down(smaller, grace=GRACE, prune=True)
    assert [r.name for r in results] == ["old", "api", "db"] and not record_alive(must("old"))


def test_up_with_prune_stops_what_the_file_dropped(tmp_path: Path) -> None:
    stack = write_stack(tmp_path, '[a]\ncommand = "sleep 60"\n[b]\ncommand = "sleep 61"\n')
    up(stack)
    smaller = write_stack(tmp_path, '[a]\ncommand = "sleep 60"\n')
    outcomes = by_name(up(smaller, prune=True))
    stopped = outcomes["b"].stopped
    assert stopped is not None and stopped.was_running and not record_alive(must("b"))


def test_independent_processes_get_ready_in_parallel(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, one, _ = health_server(tmp_path / "a", delay=1.5)
    second, two, _ = health_server(tmp_path / "b", delay=1.5)
    stack = write_stack(
        tmp_path,
        f"""
        [one]
        command = {json.dumps(first)}
        health = "tcp:127.0.0.1:{one}"
        [two]
        command = {json.dumps(second)}
        health = "tcp:127.0.0.1:{two}"
        """,
    )
    assert all(o.error is None for o in up(stack))
    # Both were spawned before either could be ready (each takes 1.5 s): not one after the other.
    assert abs((must("one").started_at or 0) - (must("two").started_at or 0)) < 1.5
