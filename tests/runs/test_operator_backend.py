"""The k6-operator backend against a fake Kubernetes API server: a small Starlette app on
127.0.0.1 that speaks the API's paths and objects as the official client calls them. It
refuses a TestRun its CRD's schema refuses, moves a TestRun through the operator's stages one
GET at a time (or holds it, to test aborts), and serves runner pods and their logs with k6
summaries. No cluster is needed."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import pytest
import uvicorn
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from app.cli import free_port
from app.k6 import operator
from app.k6.operator import Endpoint, OperatorRun, Runners
from app.runs.operator_backend import OperatorBackend, last_summary, merged_counts
from tests.k8s_types import crd_schema

NS = "perf"
RUN = uuid.UUID("0b7e9a52-1c3d-4e5f-8a9b-0c1d2e3f4a5b")
STAGES = list(operator.STAGES)


def summary(requests: int, failed: int, p95: float) -> dict[str, Any]:
    """A k6 summary as a runner prints it (the keys perf-agent reads)."""
    return {
        "metrics": {
            "http_reqs": {"type": "counter", "values": {"count": requests, "rate": requests / 10}},
            "http_reqs{name:product}": {"type": "counter", "values": {"count": requests}},
            "http_req_failed": {
                "type": "rate",
                "values": {"passes": failed, "fails": requests - failed, "rate": failed / requests},
            },
            "http_req_duration{name:product,expected_response:true}": {
                "type": "trend",
                "values": {"p(95)": p95},
            },
        }
    }


@dataclass
class FakeCluster:
    """What the fake API server holds, and what the tests arrange and read."""

    objects: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    hold_at: str | None = None  # a stage the TestRun stays in (an operator stuck, a long run)
    summaries: list[dict[str, Any]] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    schema: dict[str, Any] = field(default_factory=lambda: crd_schema(operator.VERSION))

    def status(self, code: int, reason: str, message: str) -> JSONResponse:
        body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
                "reason": reason, "message": message}  # fmt: skip
        return JSONResponse(body, status_code=code)

    async def create(self, request: Request) -> JSONResponse:
        kind = request.path_params["kind"]
        body = await request.json()
        self.calls.append(f"create {kind}")
        if kind == "testruns":
            problems = [
                e.message for e in jsonschema.Draft7Validator(self.schema).iter_errors(body)
            ]
            if problems:
                return self.status(422, "Invalid", "; ".join(problems))
        name = body["metadata"]["name"]
        if name in self.objects.setdefault(kind, {}):
            return self.status(409, "AlreadyExists", f"{kind} {name} already exists")
        self.objects[kind][name] = body
        return JSONResponse(body, status_code=201)

    async def get(self, request: Request) -> JSONResponse:
        kind, name = request.path_params["kind"], request.path_params["name"]
        self.calls.append(f"get {kind}")
        found = self.objects.get(kind, {}).get(name)
        if found is None:
            return self.status(404, "NotFound", f"{kind} {name} not found")
        stage = found.get("status", {}).get("stage")
        if (self.hold_at is None or stage != self.hold_at) and stage != STAGES[-1]:
            found["status"] = {"stage": STAGES[STAGES.index(stage) + 1 if stage else 0]}
        return JSONResponse(found)

    async def delete(self, request: Request) -> JSONResponse:
        kind, name = request.path_params["kind"], request.path_params["name"]
        self.calls.append(f"delete {kind}")
        if self.objects.get(kind, {}).pop(name, None) is None:
            return self.status(404, "NotFound", f"{kind} {name} not found")
        return JSONResponse({"kind": "Status", "apiVersion": "v1", "status": "Success"})

    async def pods(self, request: Request) -> JSONResponse:
        wanted = dict(p.split("=") for p in request.query_params["labelSelector"].split(","))
        items = [
            {"metadata": {"name": f"{wanted['k6_cr']}-{i + 1}-x7k2p", "namespace": NS,
                          "labels": {"app": "k6", "k6_cr": wanted["k6_cr"], "runner": "true"}}}
            for i in range(len(self.summaries))
        ]  # fmt: skip
        return JSONResponse({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items})

    async def log(self, request: Request) -> PlainTextResponse:
        index = int(request.path_params["pod"].split("-")[-2]) - 1
        banner = "\n          /\\      Grafana   /‾‾/\n     execution: local\n"
        return PlainTextResponse(banner + json.dumps(self.summaries[index]) + "\n")


@contextlib.contextmanager
def fake_api(cluster: FakeCluster) -> Iterator[client.ApiClient]:
    prefix = "/{api:path}/namespaces/{ns}/{kind}"
    app = Starlette(
        routes=[
            Route("/api/v1/namespaces/{ns}/pods", cluster.pods, methods=["GET"]),
            Route("/api/v1/namespaces/{ns}/pods/{pod}/log", cluster.log, methods=["GET"]),
            Route(prefix, cluster.create, methods=["POST"]),
            Route(prefix + "/{name}", cluster.get, methods=["GET"]),
            Route(prefix + "/{name}", cluster.delete, methods=["DELETE"]),
        ]
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    configuration = client.Configuration()
    configuration.host = f"http://127.0.0.1:{port}"
    try:
        with client.ApiClient(configuration) as api:
            yield api
    finally:
        server.should_exit = True
        thread.join(10)


def a_run(**changes: Any) -> OperatorRun:
    fields: dict[str, Any] = {
        "run_id": RUN,
        "script": "export default function () {}\n",
        "target": Endpoint(addresses=("10.20.30.40",), port=8080),
        "runners": Runners(parallelism=3),
        "arguments": ("--tag", f"testid={RUN}"),
        "env": (("PERF_AGENT_SUMMARY", "stdout"),),
        "namespace": NS,
    }
    return OperatorRun(**{**fields, **changes})


def no_sleep(_: float) -> None:
    """The fake moves a stage per GET: nothing to wait for."""


def test_a_run_is_submitted_followed_to_finished_and_its_runners_counts_merged() -> None:
    cluster = FakeCluster(summaries=[summary(1000, 3, 12.0), summary(1010, 0, 13.5),
                                     summary(990, 7, 11.0)])  # fmt: skip
    with fake_api(cluster) as api:
        backend = OperatorBackend(api, NS, poll_s=0)
        name = backend.submit(a_run())
        outcome = backend.wait(name, limit_s=60, sleep=no_sleep)
        found = backend.summaries(name)
        backend.cleanup(name)

    assert name == operator.name_of(RUN)
    # The script and its policy exist before the TestRun (no runner without its policy).
    assert cluster.calls[:3] == ["create configmaps", "create networkpolicies", "create testruns"]
    assert outcome.stage == "finished"
    assert outcome.stopped is None
    assert outcome.stages_seen == STAGES
    assert found == cluster.summaries
    merged = merged_counts(found)
    assert merged["http_reqs"]["count"] == 1000 + 1010 + 990  # exactly the runners' sum
    assert merged["http_reqs{name:product}"]["count"] == 3000
    assert merged["http_req_failed"]["passes"] == 10
    assert merged["http_req_failed"]["rate"] == pytest.approx(10 / 3000)
    # Percentiles are not added up: they come from the merged histograms.
    assert not any(k.startswith("http_req_duration") for k in merged)
    assert cluster.objects == {"configmaps": {}, "networkpolicies": {}, "testruns": {}}


def test_an_abort_deletes_the_testrun_while_it_runs() -> None:
    cluster = FakeCluster(hold_at="started")
    # Asked once a poll: through initialization, initialized, created, then twice while started.
    asked = iter([None, None, None, None, "aborted by alice@example.com"])
    with fake_api(cluster) as api:
        backend = OperatorBackend(api, NS, poll_s=0)
        name = backend.submit(a_run())
        outcome = backend.wait(name, limit_s=60, stop=lambda: next(asked), sleep=no_sleep)

    assert outcome.stopped == "aborted by alice@example.com"
    assert outcome.stage == "started"
    assert "delete testruns" in cluster.calls
    assert name not in cluster.objects["testruns"]


def test_a_testrun_past_its_time_limit_is_stopped() -> None:
    cluster = FakeCluster(hold_at="started")
    now = iter(range(0, 1000, 10))  # each poll, 10 s later
    with fake_api(cluster) as api:
        backend = OperatorBackend(api, NS, poll_s=0)
        name = backend.submit(a_run())
        outcome = backend.wait(name, limit_s=45, clock=lambda: float(next(now)), sleep=no_sleep)

    assert outcome.stopped == "the time limit (45 s) passed at stage started"
    assert name not in cluster.objects["testruns"]


def test_a_retried_submit_finds_its_objects_and_goes_on() -> None:
    cluster = FakeCluster()
    with fake_api(cluster) as api:
        backend = OperatorBackend(api, NS, poll_s=0)
        first = backend.submit(a_run())
        again = backend.submit(a_run())

    assert first == again
    assert len(cluster.objects["testruns"]) == 1


def test_a_testrun_the_crd_refuses_is_an_error_from_the_api_server() -> None:
    cluster = FakeCluster()
    cluster.schema = {**cluster.schema}
    cluster.schema["properties"] = {
        **cluster.schema["properties"],
        "spec": {**cluster.schema["properties"]["spec"], "required": ["parallelism", "token"]},
    }
    with fake_api(cluster) as api, pytest.raises(ApiException) as refused:
        OperatorBackend(api, NS).submit(a_run())

    assert refused.value.status == 422
    assert "'token' is a required property" in str(refused.value.body)


def test_the_summary_is_the_last_json_line_with_metrics_in_a_runners_log() -> None:
    log = 'time="…" level=info msg="starting"\n{"not": "a summary"}\n{"metrics": {"x": 1}}\nbye\n'

    assert last_summary(log) == {"metrics": {"x": 1}}
    assert last_summary("no summary here\n{broken") is None
