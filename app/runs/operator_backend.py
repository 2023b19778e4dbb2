"""Runs executed by k6-operator on Kubernetes (issue 16, in progress): the calls a worker makes
to the cluster for one run, through the official ``kubernetes`` client.

1. ``submit``: the script's ConfigMap, the NetworkPolicy, then the TestRun
   (``app/k6/operator.py`` makes all three). A retried submit finds them there and goes on.
2. ``wait``: follows ``status.stage`` to finished or error. When the caller's ``stop`` names a
   reason (an abort, a guardrail, the budget) or the time limit passes, it deletes the TestRun:
   the operator's jobs and pods belong to it and go with it.
3. ``summaries``: each runner's k6 summary, from its pod's log. The generated script prints it
   to stdout as one JSON line when ``PERF_AGENT_SUMMARY=stdout``.
4. ``merged_counts``: the runners' counters and rates added exactly. Percentiles cannot be
   added: they come from the runners' histograms, which the live receiver merges.
5. ``cleanup``.

Not yet wired into the worker: nothing picks this backend for a run today.
The client is synchronous: a worker calls these methods in a thread.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from app.k6 import operator

FINISHED = operator.STAGES[-1]
# A k6 summary's metric key: name, then its tags ("http_reqs{name:list_orders}").
_METRIC = re.compile(r"^(?P<name>[a-z_]+)(?:\{(?P<tags>.*)\})?$")


@dataclass
class Outcome:
    """How a TestRun ended: its last stage seen, and why it was stopped when it was."""

    stage: str | None
    stopped: str | None = None
    stages_seen: list[str] = field(default_factory=list)


class OperatorBackend:
    def __init__(self, api: client.ApiClient, namespace: str, *, poll_s: float = 2.0) -> None:
        self.namespace = namespace
        self.poll_s = poll_s
        self.core = client.CoreV1Api(api)
        self.networking = client.NetworkingV1Api(api)
        self.custom = client.CustomObjectsApi(api)

    def submit(self, run: operator.OperatorRun) -> str:
        config_map, policy, testrun = operator.manifests(run)
        ns = self.namespace
        # Plain dicts, as the manifests are: the client serialises them as they are.
        _created(lambda: self.core.create_namespaced_config_map(ns, cast(Any, config_map)))
        _created(lambda: self.networking.create_namespaced_network_policy(ns, cast(Any, policy)))
        _created(
            lambda: self.custom.create_namespaced_custom_object(
                operator.GROUP, operator.VERSION, ns, operator.PLURAL, testrun
            )
        )
        return str(testrun["metadata"]["name"])

    def stage(self, name: str) -> str | None:
        found = self.custom.get_namespaced_custom_object(
            operator.GROUP, operator.VERSION, self.namespace, operator.PLURAL, name
        )
        return operator.stage_of(cast(dict[str, Any], found))

    def wait(
        self,
        name: str,
        *,
        limit_s: float,
        stop: Callable[[], str | None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Outcome:
        """Until the TestRun is finished or failed; stopped (deleted) for ``stop``'s reason
        or when ``limit_s`` has passed."""
        outcome = Outcome(stage=None)
        deadline = clock() + limit_s
        while True:
            stage = self.stage(name)
            outcome.stage = stage
            if stage and (not outcome.stages_seen or outcome.stages_seen[-1] != stage):
                outcome.stages_seen.append(stage)
            if stage in (FINISHED, operator.FAILED_STAGE):
                return outcome
            reason = stop()
            if reason is None and clock() >= deadline:
                reason = f"the time limit ({limit_s:.0f} s) passed at stage {stage or 'none'}"
            if reason is not None:
                self.abort(name)
                outcome.stopped = reason
                return outcome
            sleep(self.poll_s)

    def abort(self, name: str) -> None:
        """Delete the TestRun; its jobs and pods are deleted with it (foreground)."""
        body = client.V1DeleteOptions(propagation_policy="Foreground")
        _gone(
            lambda: self.custom.delete_namespaced_custom_object(
                operator.GROUP, operator.VERSION, self.namespace, operator.PLURAL, name, body=body
            )
        )

    def summaries(self, name: str) -> list[dict[str, Any]]:
        """Each runner pod's k6 summary, in pod-name order (a runner without one is left
        out: the caller compares the count with the parallelism)."""
        pods = self.core.list_namespaced_pod(
            self.namespace, label_selector=f"k6_cr={name},runner=true"
        )
        names = sorted(p.metadata.name for p in pods.items if p.metadata and p.metadata.name)
        found = []
        for pod in names:
            log = self.core.read_namespaced_pod_log(pod, self.namespace)
            summary = last_summary(log)
            if summary is not None:
                found.append(summary)
        return found

    def cleanup(self, name: str) -> None:
        self.abort(name)
        _gone(lambda: self.networking.delete_namespaced_network_policy(name, self.namespace))
        _gone(lambda: self.core.delete_namespaced_config_map(name, self.namespace))


def _created(create: Callable[[], Any]) -> None:
    try:
        create()
    except ApiException as exc:
        if exc.status != 409:  # already there: a retried submit
            raise


def _gone(delete: Callable[[], Any]) -> None:
    try:
        delete()
    except ApiException as exc:
        if exc.status != 404:
            raise


def last_summary(log: str) -> dict[str, Any] | None:
    """The last line of ``log`` that is a k6 summary (a JSON object with ``metrics``)."""
    for line in reversed(log.splitlines()):
        text = line.strip()
        if not text.startswith("{"):
            continue
        try:
            parsed = json.loads(text)
        except ValueError:
            continue
        if isinstance(parsed, dict) and isinstance(parsed.get("metrics"), dict):
            return parsed
    return None


def merged_counts(summaries: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Counters summed, rates recomputed from their summed passes and fails, for every
    metric (with its tags) any runner reported. Trends (percentiles) are left out: they do
    not add."""
    merged: dict[str, dict[str, float]] = {}
    for summary in summaries:
        for key, metric in summary["metrics"].items():
            if not _METRIC.match(key):
                continue
            values = metric.get("values", {})
            kind = metric.get("type")
            into = merged.setdefault(key, {})
            if kind == "counter":
                into["count"] = into.get("count", 0.0) + float(values.get("count", 0))
            elif kind == "rate":
                into["passes"] = into.get("passes", 0.0) + float(values.get("passes", 0))
                into["fails"] = into.get("fails", 0.0) + float(values.get("fails", 0))
                total = into["passes"] + into["fails"]
                into["rate"] = into["passes"] / total if total else 0.0
            else:
                merged.pop(key)
    return merged
