"""bgr.stack.plan: start what is missing, restart what changed, keep what is unchanged."""

from __future__ import annotations

from pathlib import Path

from bgr.models import StartRequest
from bgr.stack import files, plan

TEXT = """
[db]
command = "sleep 60"
[job]
command = "true"
depends_on = { db = "started" }
[api]
command = "sleep 61"
depends_on = { job = "completed" }
"""


def stack_at(tmp_path: Path, text: str = TEXT) -> files.Stack:
    path = tmp_path / "bgr.toml"
    path.write_text(text)
    return files.load(str(path))


def stored(stack: files.Stack, name: str, status: str, **kwargs: object) -> plan.Current:
    service = stack.get(name)
    assert service is not None
    return plan.Current(name, status, stack=plan.membership(stack, service), **kwargs)  # type: ignore[arg-type]


def actions(p: plan.Plan) -> list[tuple[str, str, str]]:
    return [(s.name, s.action, s.reason) for s in p.steps]


def test_a_fresh_registry_starts_everything_in_dependency_order(tmp_path: Path) -> None:
    stack = stack_at(tmp_path)
    assert actions(plan.make(stack, {})) == [
        ("db", "start", "new"),
        ("job", "start", "new"),
        ("api", "start", "new"),
    ]
    assert [s.name for s in plan.make(stack, {}, names=["job"]).steps] == ["db", "job"]


def test_unchanged_processes_are_kept_and_changed_ones_restarted(tmp_path: Path) -> None:
    stack = stack_at(tmp_path)
    current = {
        "db": stored(stack, "db", "running", pid=42),
        "job": stored(stack, "job", "exited", exit_code=0),
        "api": stored(stack, "api", "crashed", exit_code=1),
    }
    assert actions(plan.make(stack, current)) == [
        ("db", "keep", "unchanged, running (pid 42)"),
        ("job", "keep", "unchanged, finished with exit code 0"),
        ("api", "start", "unchanged, crashed"),
    ]
    changed = stack_at(tmp_path, TEXT.replace("sleep 60", "sleep 62"))
    assert actions(plan.make(changed, current))[0] == ("db", "restart", "changed")


def test_why_a_definition_counts_as_changed(tmp_path: Path) -> None:
    stack = stack_at(tmp_path)
    by_hand = plan.Current("db", "running", stack={})
    elsewhere = plan.Current("db", "stopped", stack={"file": "/other/bgr.toml", "hash": "x"})
    edited = plan.Current("db", "running", stack={"file": stack.path})
    steps = {
        row.stack.get("file"): plan.make(stack, {"db": row}, names=["db"]).steps[0]
        for row in (by_hand, elsewhere, edited)
    }
    assert steps[None] == plan.Step("db", "restart", "defined outside a stack file until now")
    assert steps["/other/bgr.toml"] == plan.Step("db", "start", "was defined by /other/bgr.toml")
    assert steps[stack.path] == plan.Step("db", "restart", "changed outside the file since the last --up")


def test_a_config_file_change_is_a_change(tmp_path: Path) -> None:
    stack = stack_at(tmp_path)
    db = stack.get("db")
    assert db is not None
    before = plan.fingerprint(db)
    (tmp_path / ".config.toml").write_text("a = 1\n")
    assert plan.fingerprint(db) != before
    assert plan.fingerprint(db._replace(depends_on=(files.Dependency("x", "started"),))) == plan.fingerprint(
        db
    )


def test_limits_change_the_hash_and_no_limits_keep_the_hash_of_before(tmp_path: Path) -> None:
    request = StartRequest(
        name="web", command="sleep 60", directory="/nonexistent/app", group="shop", env={"A": "1"},
        fetch=False, ports=(), health={}, restart_at="", cron="", on_failure="",
        max_memory=0, restart_every=0.0,
    )  # fmt: skip
    service = files.Service("web", request)
    # What bgr computed for this definition before the limit keys existed: a stack brought up
    # then is not restarted by the first --up after an upgrade.
    assert plan.fingerprint(service) == "9d09a063c09b9798"
    hashes = {
        plan.fingerprint(service._replace(request=request._replace(**change)))
        for change in ({}, {"max_memory": 1024}, {"max_memory": 2048}, {"restart_every": 5.0})
    }
    assert len(hashes) == 4


def test_processes_the_file_no_longer_has_are_reported_or_pruned(tmp_path: Path) -> None:
    stack = stack_at(tmp_path)
    gone = plan.Current("old", "running", stack={"file": stack.path, "hash": "x"})
    other = plan.Current("mine", "running", stack={"file": "/elsewhere/bgr.toml"})
    steps = plan.make(stack, {"old": gone, "mine": other}).steps
    assert steps[-1] == plan.Step("old", "removed", "no longer in bgr.toml; bgr --up --prune stops it")
    assert [s.name for s in steps] == ["db", "job", "api", "old"]
    assert plan.make(stack, {"old": gone}, prune=True).steps[-1] == plan.Step(
        "old", "prune", "no longer in bgr.toml"
    )
    assert [s.name for s in plan.make(stack, {"old": gone}).acting()] == ["db", "job", "api"]
