"""``bgr --up``, ``--down`` and ``--export``: run the stack use cases and say what each did.

``--up`` prints a line per process as it is done (dependencies first, so the lines come in the
order things became ready), then one summary line; failures go to stderr as ``bgr: NAME: why``
and the exit status is the first failure's. ``--json`` prints one array at the end instead.
"""

from __future__ import annotations

import os
import sys

from bgr.cli import output, rules
from bgr.stack import plan
from bgr.stack.files import find, load

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: see bgr/record.py
if TYPE_CHECKING:
    from bgr.core import stacks


def _grace(grace: float | None) -> float:
    from bgr.proc.stopper import DEFAULT_GRACE

    return DEFAULT_GRACE if grace is None else grace


def up(command: rules.StackUp) -> int:
    from bgr.core import stacks  # the start machinery: not for --export

    stack = load(find(command.file))
    infos = stacks.snapshot(command.db)
    the_plan = stacks.make_plan(stack, names=command.names, prune=command.prune, infos=infos)
    if command.dry_run:
        output.emit(output.to_json(plan_dicts(the_plan)) if command.as_json else plan_text(the_plan))
        return 0

    def report(outcome: stacks.Outcome) -> None:
        if command.as_json:
            return
        if outcome.error is not None:
            sys.stdout.flush()
            details = f"\n{outcome.error.details.rstrip()}" if outcome.error.details else ""
            sys.stderr.write(f"bgr: {outcome.step.name}: {outcome.error}{details}\n")
            sys.stderr.flush()
        else:
            output.emit(outcome_text(outcome, stack_file=os.path.basename(stack.path)))
            sys.stdout.flush()

    outcomes = stacks.up(
        the_plan,
        db=command.db,
        grace=_grace(command.grace),
        wait_for=command.wait,
        report=report,
        infos=infos,
    )
    if command.as_json:
        output.emit(output.to_json([outcome_dict(o) for o in outcomes]))
    else:
        output.emit(summary(the_plan, outcomes))
    failures = [o.error for o in outcomes if o.error is not None]
    return failures[0].exit_code if failures else 0


def down(command: rules.StackDown) -> int:
    from bgr.core import stacks

    stack = load(find(command.file))
    results, removed = stacks.down(stack, db=command.db, grace=_grace(command.grace), prune=command.prune)
    if command.as_json:
        output.emit(output.stop_results(results, "stopped", as_json=True))
    else:
        lines = [output.stop_results(results, "stopped", as_json=False)] if results else []
        if not results:
            lines.append(f"none of {os.path.basename(stack.path)}'s processes is registered")
        if removed and not command.prune:
            lines.append(
                f"left alone, no longer in {os.path.basename(stack.path)}: {', '.join(removed)} "
                "(bgr --down --prune stops them too)"
            )
        output.emit("\n".join(lines))
    from bgr.cli.execute import _stopped

    return _stopped(results)


def export(command: rules.Export) -> int:
    from bgr.core import exports

    selection = command.selection
    if command.from_registry:
        stack = exports.from_registry(
            selection.names, group=selection.group, everything=selection.everything, db=command.db
        )
        source = "the registry"
    else:
        stack = exports.from_file(command.file, selection.names)
        source = stack.path
    exported = exports.export(
        command.format, stack, out=command.out, image=command.image, show_env=command.show_env, source=source
    )
    for note in exported.notes:
        sys.stderr.write(f"bgr: note: {note}\n")
    if command.out is None:
        output.emit("".join(f.text for f in exported.files))
        return 0
    for path in exports.write(exported, command.out):
        output.emit(f"wrote {path}")
    return 0


# ------------------------------------------------------------------------------------------
# shapes


def plan_text(the_plan: plan.Plan) -> str:
    """``--dry-run``: one line per step, in the order --up takes them."""
    stack = the_plan.stack
    lines = [f"{os.path.basename(stack.path)} (stack {stack.name}), bgr --up would:"]
    width = max((len(s.name) for s in the_plan.steps), default=0)
    for step in the_plan.steps:
        service = stack.get(step.name)
        after = ""
        if service is not None and service.depends_on:
            after = "; after " + ", ".join(f"{d.name} is {d.condition}" for d in service.depends_on)
        lines.append(f"  {step.action:<8} {step.name.ljust(width)}  {step.reason}{after}")
    return "\n".join(lines)


def plan_dicts(the_plan: plan.Plan) -> list[dict[str, object]]:
    stack = the_plan.stack
    found: list[dict[str, object]] = []
    for step in the_plan.steps:
        service = stack.get(step.name)
        depends = {d.name: d.condition for d in service.depends_on} if service is not None else {}
        found.append({"name": step.name, "action": step.action, "reason": step.reason, "depends_on": depends})
    return found


def outcome_text(outcome: stacks.Outcome, *, stack_file: str) -> str:
    step = outcome.step
    if step.action == plan.KEEP:
        return f"{step.name} is {step.reason}: left as it is"
    if step.action == plan.REMOVED:
        return f"{step.name} is no longer in {stack_file}: left as it is (bgr --up --prune stops it)"
    if step.action == plan.PRUNE:
        assert outcome.stopped is not None
        verb = "stopped" if outcome.stopped.was_running else "was not running"
        return f"{step.name} is no longer in {stack_file}: {verb}"
    assert outcome.result is not None
    text = output.started(outcome.result, replaced=step.action == plan.RESTART)
    if outcome.finished == 0 and outcome.result.how != "finished":
        text += f"\n{step.name} finished with exit code 0"
    return text


def outcome_dict(outcome: stacks.Outcome) -> dict[str, object]:
    step = outcome.step
    data: dict[str, object] = {"name": step.name, "action": step.action, "reason": step.reason}
    if outcome.error is not None:
        data.update(error=outcome.error.message, exit_code=outcome.error.exit_code)
    elif outcome.result is not None:
        data["process"] = output.as_dict(outcome.result.info)
    if outcome.finished is not None:
        data["finished"] = outcome.finished
    return data


def summary(the_plan: plan.Plan, outcomes: list[stacks.Outcome]) -> str:
    counts = {"started": 0, "restarted": 0, "unchanged": 0, "failed": 0}
    for o in outcomes:
        if o.error is not None:
            counts["failed"] += 1
        elif o.step.action == plan.START:
            counts["started"] += 1
        elif o.step.action == plan.RESTART:
            counts["restarted"] += 1
        elif o.step.action == plan.KEEP:
            counts["unchanged"] += 1
    stack = the_plan.stack
    told = ", ".join(f"{n} {what}" for what, n in counts.items())
    return f"stack {stack.name} ({os.path.basename(stack.path)}): {told}"
