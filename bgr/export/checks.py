"""A probe as a command a container can run (Compose's ``healthcheck``, Kubernetes' wait for a
dependency): ``python3 -c`` with the standard library only, so any image with Python 3 can run it
(the default image has it; the README says so). A ``cmd:`` probe is its own command.

Host and port are arguments of the script, never spliced into its source.
"""

from __future__ import annotations

from bgr.export import model
from bgr.health import probes

# Exit 0 when the URL answers 2xx/3xx within the timeout (urllib raises on 4xx/5xx).
_HTTP = (
    "import ssl,sys,urllib.request as u;"
    "c=ssl.create_default_context();c.check_hostname=False;c.verify_mode=ssl.CERT_NONE;"
    "u.urlopen(sys.argv[1],timeout=float(sys.argv[2]),context=c)"
)
# Exit 0 when HOST:PORT accepts a connection within the timeout.
_TCP = "import socket,sys;socket.create_connection((sys.argv[1],int(sys.argv[2])),float(sys.argv[3])).close()"


def argv(probe: probes.Probe, host: str | None = None) -> list[str]:
    """One check of ``probe`` as an argv; ``host`` replaces the probe's host (another pod's)."""
    timeout = f"{probe.timeout:g}"
    if probe.kind == probes.HTTP:
        target = model.http_target(probe)
        name = host or target.host
        url = f"{target.scheme.lower()}://{name}:{target.port}{target.path}"
        return ["python3", "-c", _HTTP, url, timeout]
    if probe.kind == probes.TCP:
        probe_host, port = model.tcp_target(probe)
        return ["python3", "-c", _TCP, host or probe_host, str(port), timeout]
    return ["/bin/sh", "-c", probe.target]


def wait_script(probe: probes.Probe, host: str | None = None) -> list[str]:
    """A shell command that repeats the check every second until it passes (an init container)."""
    import shlex

    check = shlex.join(argv(probe, host))
    return ["/bin/sh", "-c", f"until {check} >/dev/null 2>&1; do sleep 1; done"]
