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

from bgr.actions import (
    clean,
    delete,
    get,
    list_processes,
    logs,
    nuke,
    restart,
    start,
    stop,
)
from bgr.errors import BgrError
from bgr.models import ProcessInfo, ProcessRecord, StartRequest, StartResult, Status, StopResult

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
