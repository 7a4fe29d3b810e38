"""bgr.models: the records' read-only defaults behave like the values they stand for."""

from __future__ import annotations

from pathlib import Path

from bgr import store
from bgr.models import ProcessRecord


def test_a_record_built_with_defaults_renders_as_json_and_round_trips(bgr_home: Path) -> None:
    """The read-only defaults (MappingProxyType, tuples) must serialise like the dicts they stand for."""
    import json

    from bgr.cli import output
    from bgr.models import ProcessInfo, Status

    fresh = ProcessRecord(name="n", directory="/", command="true", stdout="/o", stderr="/e")
    shown = json.loads(output.to_json(output.as_dict(ProcessInfo(fresh, Status.STOPPED, None), details=True)))
    assert shown["guard"] == {} and shown["events"] == [] and shown["env_keys"] == []
    with store.open_registry(create=True) as reg:
        reg.put(fresh)
        again = reg.require("n")
    assert again.env == {} and again.guard == {} and again.events == ()
