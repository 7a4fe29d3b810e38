"""Health: what ``--health`` checks (``probes``), one check of it bounded by its timeout, and what a
run of checks makes of a process (``state``: starting, healthy, unhealthy).

Probes run from the ``bgr`` CLI (readiness after a start, ``bgr NAME``) and from ``bgr-guard``
(liveness), never inside the managed process. Nothing here touches the registry.
"""
