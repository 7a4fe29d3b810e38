"""bgr: named, detached background processes, tracked in a SQLite registry.

The Python API is the same set of actions the ``bgr`` command uses::

    import bgr

    bgr.start(bgr.StartRequest(name="web", command="python3 -m http.server 8080", directory="."))
    for info in bgr.list_processes():
        print(info.name, info.status, info.pid)
    print(bgr.logs("web", lines=20)["stdout"])
    bgr.restart("web")
    bgr.stop("web")
    bgr.delete("web")

Every function takes ``db=`` (a registry path) and raises ``bgr.errors.BgrError`` subclasses.
"""

from bgr.core.queries import get, list_processes, logs
from bgr.errors import BgrError
from bgr.models import ProcessInfo, ProcessRecord, StartRequest, StartResult, Status, StopResult

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: see bgr/record.py
if TYPE_CHECKING:
    from bgr.core.launch import restart, start
    from bgr.core.teardown import clean, delete, nuke, stop

__version__ = "0.1.0"

__all__ = [
    "BgrError",
    "ProcessInfo",
    "ProcessRecord",
    "StartRequest",
    "StartResult",
    "Status",
    "StopResult",
    "__version__",
    "clean",
    "delete",
    "get",
    "list_processes",
    "logs",
    "nuke",
    "restart",
    "start",
    "stop",
]


def __getattr__(name: str) -> object:
    """The changing half of the API, imported on first use: ``bgr`` (the list) never needs it."""
    if name in ("start", "restart"):
        from bgr.core import launch

        return getattr(launch, name)
    if name in ("stop", "delete", "clean", "nuke"):
        from bgr.core import teardown

        return getattr(teardown, name)
    raise AttributeError(f"module 'bgr' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
