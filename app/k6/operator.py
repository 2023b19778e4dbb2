"""A run as k6-operator executes it: the ``TestRun`` (k6.io/v1alpha1) with the ConfigMap that
holds its script and the NetworkPolicy that is its address policy on Kubernetes.

The sandbox a worker builds for a local k6 (bubblewrap, a uid-scoped nftables rule) becomes
the pods' own restrictions:
- every pod the operator makes for the run (initializer, starter, runners) runs as a non-root
  user with no capabilities, no privilege escalation, a read-only root filesystem, the
  runtime's default seccomp profile and no service-account token;
- the NetworkPolicy lets them reach only these:
  - the target's checked addresses, on its port;
  - the cluster's DNS, so k6 can resolve the target's name;
  - each other on k6's REST port (the starter resumes the paused runners through it);
  - the receiver for the live metrics, when one is given.

The operator labels every pod of a TestRun ``k6_cr: <name>`` and its runners ``runner: "true"``
(grafana/k6-operator, ``pkg/resources/jobs``); the policy selects them by that.

Pure functions of their inputs: nothing here talks to a cluster.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

GROUP = "k6.io"
VERSION = "v1alpha1"
PLURAL = "testruns"
KIND = "TestRun"
# status.stage, in the order the operator moves through them; "error" can follow any.
STAGES = ("initialization", "initialized", "created", "started", "stopped", "finished")
FAILED_STAGE = "error"
SCRIPT_FILE = "script.js"
K6_REST_PORT = 6565  # each runner's REST API: the starter un-pauses runners through it
K6_USER = 12345  # the grafana/k6 image's user
MANAGED_BY = "perf-agent"
RUN_LABEL = "perf-agent.io/run"
_NAME_LIMIT = 63  # a label value, and so a TestRun's name (k6_cr), holds at most 63 characters
_SAFE_ARGUMENT = re.compile(r"[^\s'\"\\`$]+")  # the operator splits `arguments` on spaces


@dataclass(frozen=True)
class Endpoint:
    """Addresses (already resolved and checked by the guardrails) and a TCP port."""

    addresses: tuple[str, ...]
    port: int

    def __post_init__(self) -> None:
        if not self.addresses:
            raise ValueError("an endpoint needs at least one address")
        for address in self.addresses:
            ipaddress.ip_address(address)  # raises ValueError: names are not allowed here
        if not 0 < self.port < 65536:
            raise ValueError(f"port {self.port} is out of range")


@dataclass(frozen=True)
class Runners:
    """What each runner pod gets: k6's image and the resources it may use."""

    parallelism: int = 1
    image: str = "grafana/k6:1.1.0"
    cpu: str = "1"
    memory: str = "1Gi"
    # One runner per node, so that runners do not take each other's CPU (k6 measures its own
    # wait for a CPU as latency).
    separate: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.parallelism <= 100:
            raise ValueError("parallelism must be between 1 and 100")


@dataclass(frozen=True)
class OperatorRun:
    run_id: uuid.UUID
    script: str
    target: Endpoint
    runners: Runners = field(default_factory=Runners)
    arguments: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    receiver: Endpoint | None = None  # where runners push their live metrics
    namespace: str | None = None


def name_of(run_id: uuid.UUID) -> str:
    """The TestRun's (and its ConfigMap's and NetworkPolicy's) name: DNS-1123, ≤ 63 chars."""
    name = f"perf-agent-{run_id.hex}"
    assert len(name) <= _NAME_LIMIT
    return name


def _metadata(spec: OperatorRun) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name_of(spec.run_id),
        "labels": {"app.kubernetes.io/managed-by": MANAGED_BY, RUN_LABEL: str(spec.run_id)},
    }
    if spec.namespace:
        meta["namespace"] = spec.namespace
    return meta


def _arguments(arguments: tuple[str, ...]) -> str:
    for argument in arguments:
        if not _SAFE_ARGUMENT.fullmatch(argument):
            raise ValueError(
                f"k6 argument {argument!r} holds whitespace, a quote or a shell character: the "
                "operator splits its arguments on spaces"
            )
    return " ".join(arguments)


def _pod(spec: OperatorRun, *, resources: bool) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "image": spec.runners.image,
        "imagePullPolicy": "IfNotPresent",
        "automountServiceAccountToken": "false",
        "metadata": {"labels": {RUN_LABEL: str(spec.run_id)}},
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": K6_USER,
            "runAsGroup": K6_USER,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containerSecurityContext": {
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    if resources:
        amount = {"cpu": spec.runners.cpu, "memory": spec.runners.memory}
        pod["resources"] = {"requests": dict(amount), "limits": dict(amount)}
        if spec.env:
            pod["env"] = [{"name": key, "value": value} for key, value in spec.env]
    return pod


def testrun(spec: OperatorRun) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": _metadata(spec),
        "spec": {
            "parallelism": spec.runners.parallelism,
            "separate": spec.runners.separate,
            "script": {"configMap": {"name": name_of(spec.run_id), "file": SCRIPT_FILE}},
            "arguments": _arguments(spec.arguments),
            "scuttle": {"enabled": "false"},  # no Istio sidecar to stop: k6 is the pod
            "runner": _pod(spec, resources=True),
            "starter": _pod(spec, resources=False),
            "initializer": _pod(spec, resources=False),
        },
    }


def config_map(spec: OperatorRun) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(spec),
        "data": {SCRIPT_FILE: spec.script},
    }


def _blocks(endpoint: Endpoint) -> list[dict[str, Any]]:
    return [
        {"ipBlock": {"cidr": str(ipaddress.ip_network(address))}}
        for address in dict.fromkeys(endpoint.addresses)
    ]


def network_policy(spec: OperatorRun) -> dict[str, Any]:
    """Egress only to the target (and DNS, the receiver, each other's REST port)."""
    own_pods = {"podSelector": {"matchLabels": {"k6_cr": name_of(spec.run_id)}}}
    rest = [{"protocol": "TCP", "port": K6_REST_PORT}]
    egress: list[dict[str, Any]] = [
        {"to": _blocks(spec.target), "ports": [{"protocol": "TCP", "port": spec.target.port}]},
        {
            "to": [
                {
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
                    },
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                }
            ],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
        },
        {"to": [own_pods], "ports": rest},
    ]
    if spec.receiver is not None:
        egress.append(
            {
                "to": _blocks(spec.receiver),
                "ports": [{"protocol": "TCP", "port": spec.receiver.port}],
            }
        )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(spec),
        "spec": {
            "podSelector": own_pods["podSelector"],
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [own_pods], "ports": rest}],
            "egress": egress,
        },
    }


def manifests(spec: OperatorRun) -> list[dict[str, Any]]:
    """What a backend applies, in order: the script, the policy, then the TestRun (so no
    runner starts before its policy exists)."""
    return [config_map(spec), network_policy(spec), testrun(spec)]


def stage_of(testrun_object: dict[str, Any]) -> str | None:
    """The TestRun's ``status.stage`` as the operator last wrote it, or None before it has."""
    stage = (testrun_object.get("status") or {}).get("stage")
    return str(stage) if stage else None
