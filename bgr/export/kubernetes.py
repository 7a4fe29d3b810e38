"""Kubernetes manifests: a Deployment per process (a Job for one others need *completed*, a
CronJob for a ``cron`` job), a Service for each process with ports, and its environment.

- The container runs ``["/bin/sh", "-c", COMMAND]`` in ``workingDir`` (the process's directory,
  which must exist in ``--image``); readiness and liveness probes come from the health options
  (``httpGet``, ``tcpSocket`` or ``exec``; periods in whole seconds, rounded up). The kubelet probes
  the pod's address, so a server bound to 127.0.0.1 must listen on 0.0.0.0 there.
- Dependencies: every process is its own pod, so a dependency is reached through its Service
  (``STACK-NAME``). A dependent waits in an init container ``wait-for-NAME`` that repeats the
  dependency's probe against its Service until it passes (*healthy*), or until its first port
  accepts connections (*started*). A *completed* dependency becomes a Job; Kubernetes cannot make a
  pod wait for a Job without API access, so that dependency is only recorded in the annotation
  ``bgr/depends-on`` (a note says so).
- ``max_memory`` is the container's ``resources.limits.memory`` (over it, the kubelet kills the
  container and restarts it); a pod cannot be restarted after a time, so ``restart_every`` is
  left out (a note says so).
- Environment values are never written into a pod spec: each process takes them with ``envFrom``
  from a Secret ``STACK-NAME-env`` (base64, kept as a secret by the cluster), or, with
  ``--show-env``, from a ConfigMap, where they are readable.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping

from bgr.export import checks, emit, model
from bgr.health import probes
from bgr.record import Record
from bgr.stack.files import COMPLETED, HEALTHY, STARTED, Service, Stack

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: see bgr/record.py
if TYPE_CHECKING:
    from typing import Any

FILE_NAME = "kubernetes.yaml"
_NAME, _PART_OF = "app.kubernetes.io/name", "app.kubernetes.io/part-of"
_API = {"Deployment": "apps/v1", "Job": "batch/v1", "CronJob": "batch/v1", "Service": "v1"}


class _Context(Record):
    stack: Stack
    options: model.Options
    names: Mapping[str, str]  # process → Kubernetes name
    needed: Mapping[str, str]


def render(stack: Stack, options: model.Options) -> model.Exported:
    """The manifests for ``stack``, one YAML stream."""
    ctx = _Context(
        stack,
        options,
        model.unique_names(stack, lambda n: model.dns_name(stack.name, n)),
        model.needed(stack),
    )
    manifests: list[dict[str, Any]] = []
    notes: list[str] = []
    for service in stack.services:
        manifests += _manifests(ctx, service, notes)
    comments = [
        *model.header("kubernetes", options, stack),
        f"Containers run {options.image}; each process's directory must exist in it.",
        "Apply with: kubectl apply -f " + FILE_NAME,
    ]
    return model.Exported((model.Output(FILE_NAME, emit.documents(manifests, comments)),), tuple(notes))


def _manifests(ctx: _Context, service: Service, notes: list[str]) -> list[dict[str, Any]]:
    name = ctx.names[service.name]
    found: list[dict[str, Any]] = []
    env = model.env_of(service)
    if env:
        found.append(_env_object(ctx, name, env))
    pod = _pod(ctx, service, notes)
    spec: dict[str, Any]
    if service.request.cron:
        spec = {
            "schedule": service.request.cron,
            "jobTemplate": {"spec": {"template": _template(ctx, name, pod, "OnFailure")}},
        }
        found.append(_object(ctx, "CronJob", name, service, spec))
    elif ctx.needed.get(service.name) == COMPLETED:
        spec = {"backoffLimit": 3, "template": _template(ctx, name, pod, "OnFailure")}
        found.append(_object(ctx, "Job", name, service, spec))
    else:
        spec = {
            "replicas": 1,
            "selector": {"matchLabels": _labels(ctx, name)},
            "template": _template(ctx, name, pod, None),
        }
        found.append(_object(ctx, "Deployment", name, service, spec))
    if service.request.restart_at:
        notes.append(f"{service.name}: its restart_at schedule is not exported")
    if service.request.restart_every:
        notes.append(
            f"{service.name}: Kubernetes cannot restart a pod after a time; its restart_every is not exported"
        )
    ports = _ports(service)
    if ports:
        spec = {
            "selector": _labels(ctx, name),
            "ports": [{"name": f"port-{p}", "port": p, "targetPort": p} for p in ports],
        }
        found.append(_object(ctx, "Service", name, service, spec))
    return found


def _labels(ctx: _Context, name: str) -> dict[str, str]:
    return {_NAME: name, _PART_OF: model.dns_name(ctx.stack.name)}


def _object(ctx: _Context, kind: str, name: str, service: Service, spec: dict[str, Any]) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "labels": _labels(ctx, name)}
    if service.depends_on:
        metadata["annotations"] = {
            "bgr/depends-on": ",".join(f"{d.name}={d.condition}" for d in service.depends_on)
        }
    return {"apiVersion": _API[kind], "kind": kind, "metadata": metadata, "spec": spec}


def _template(ctx: _Context, name: str, pod: dict[str, Any], restart: str | None) -> dict[str, Any]:
    spec = dict(pod)
    if restart is not None:
        spec["restartPolicy"] = restart
        for container in spec["containers"]:
            container.pop("readinessProbe", None)  # a Job's pod is not a backend to be ready
            container.pop("livenessProbe", None)
    return {"metadata": {"labels": _labels(ctx, name)}, "spec": spec}


def _env_object(ctx: _Context, name: str, env: Mapping[str, str]) -> dict[str, Any]:
    metadata = {"name": f"{name}-env", "labels": _labels(ctx, name)}
    if ctx.options.show_env:
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata,
            "data": dict(sorted(env.items())),
        }
    data = {k: base64.b64encode(v.encode()).decode("ascii") for k, v in sorted(env.items())}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": metadata, "type": "Opaque", "data": data}


def _ports(service: Service) -> list[int]:
    ports = list(service.request.ports or ())
    probe_port = model.probe_port(model.probe_of(service))
    if probe_port is not None and probe_port not in ports:
        ports.append(probe_port)
    return ports


def _pod(ctx: _Context, service: Service, notes: list[str]) -> dict[str, Any]:
    name = ctx.names[service.name]
    container: dict[str, Any] = {
        "name": model.dns_name(service.name),
        "image": ctx.options.image,
        "command": ["/bin/sh", "-c", service.request.command or ""],
        "workingDir": service.request.directory or "/",
    }
    if model.env_of(service):
        ref = "configMapRef" if ctx.options.show_env else "secretRef"
        container["envFrom"] = [{ref: {"name": f"{name}-env"}}]
    ports = _ports(service)
    if ports:
        container["ports"] = [{"containerPort": p} for p in ports]
    if service.request.max_memory:
        container["resources"] = {
            "limits": {"memory": model.memory(service.request.max_memory, ("Ki", "Mi", "Gi"))}
        }
    probe = model.probe_of(service)
    if probe is not None:
        container["readinessProbe"] = _probe(probe)
        container["livenessProbe"] = _probe(probe)
    pod: dict[str, Any] = {"containers": [container]}
    waits = [w for d in service.depends_on if (w := _wait_for(ctx, service, d.name, d.condition, notes))]
    if waits:
        pod["initContainers"] = waits
    return pod


def _probe(probe: probes.Probe) -> dict[str, Any]:
    timing = {
        "periodSeconds": model.whole_seconds(probe.every),
        "timeoutSeconds": model.whole_seconds(probe.timeout),
        "failureThreshold": probe.retries,
        "initialDelaySeconds": model.whole_seconds(probe.start, 0),
    }
    if probe.kind == probes.HTTP:
        target = model.http_target(probe)
        return {"httpGet": {"path": target.path, "port": target.port, "scheme": target.scheme}, **timing}
    if probe.kind == probes.TCP:
        return {"tcpSocket": {"port": model.tcp_target(probe)[1]}, **timing}
    return {"exec": {"command": ["/bin/sh", "-c", probe.target]}, **timing}


def _wait_for(
    ctx: _Context, service: Service, dep: str, condition: str, notes: list[str]
) -> dict[str, Any] | None:
    """The init container that holds ``service``'s pod until ``dep`` meets ``condition``."""
    target = ctx.stack.get(dep)
    assert target is not None
    host = ctx.names[dep]
    probe = model.probe_of(target)
    if condition == HEALTHY and probe is not None:
        command = checks.wait_script(probe, host)
    elif condition == STARTED and _ports(target):
        command = checks.wait_script(probes.Probe(probes.TCP, f"{host}:{_ports(target)[0]}"), host)
    else:
        why = "it becomes a Job" if condition == COMPLETED else "it has no port to wait for"
        notes.append(f"{service.name}: does not wait for {dep} in Kubernetes ({why}); see bgr/depends-on")
        return None
    return {"name": model.dns_name("wait-for", dep), "image": ctx.options.image, "command": command}
