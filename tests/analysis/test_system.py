"""System metrics beside load: the target's process (psutil) and Prometheus series."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from app.analysis.findings import system_findings
from app.analysis.system import from_samples
from app.models import Run
from tests.builders import API, add_seconds, make_plan, make_run, result


def local(cpu: list[float], rss: list[float] | None = None) -> dict[str, Any]:
    seconds = [
        ({"cpu_percent": c, "rss_mb": (rss or [100.0] * len(cpu))[i], "cores": 2}, 100, 10.0 + i)
        for i, c in enumerate(cpu)
    ]
    summary = from_samples(seconds)
    assert summary is not None
    return {"local": summary}


def test_a_target_falling_behind_with_idle_cpu_points_at_a_pool_or_lock() -> None:
    [finding] = system_findings(local([12, 15, 11, 14, 13, 12]), struggling=True)

    assert finding.kind == "idle_cpu"
    assert "pool" in finding.summary
    assert finding.evidence["cpu_max_percent"] == 15


def test_a_busy_cpu_is_computation_and_growing_memory_is_reported() -> None:
    found = system_findings(
        local([90, 96, 98, 97, 99, 97], rss=[100, 130, 160, 190, 220, 260]), struggling=True
    )

    assert [f.kind for f in found] == ["cpu_bound", "memory_growth"]
    assert "100 MB to 260 MB" in found[1].summary


def test_a_healthy_run_gets_no_cpu_finding() -> None:
    assert system_findings(local([12, 15, 11, 14, 13, 12]), struggling=False) == []


@pytest.fixture
def prometheus() -> Iterator[tuple[str, list[dict[str, list[str]]]]]:
    """A fake Prometheus HTTP API: query_range answers a CPU series rising with time."""
    asked: list[dict[str, list[str]]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            params = parse_qs(parts.query)
            asked.append(params)
            if parts.path != "/api/v1/query_range":
                self.send_response(404)
                self.end_headers()
                return
            if "broken" in params["query"][0]:
                body = {"status": "error", "errorType": "bad_data", "error": "parse error"}
                status = 400
            else:
                start, end = float(params["start"][0]), float(params["end"][0])
                values = [[start + t, str(0.1 + 0.02 * t)] for t in range(int(end - start) + 1)]
                body = {"status": "success", "data": {"resultType": "matrix",
                        "result": [{"metric": {"pod": "a"}, "values": values}]}}  # fmt: skip
                status = 200
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", asked
    finally:
        server.shutdown()
        server.server_close()


async def test_prometheus_series_are_fetched_over_the_runs_window_and_correlated(
    client: AsyncClient, session: AsyncSession, prometheus: tuple[str, list[Any]]
) -> None:
    url, asked = prometheus
    plan = await make_plan(
        session,
        system_metrics={"prometheus_url": url, "step": "1s",
                        "queries": {"cpu": "sum(rate(process_cpu_seconds_total[15s]))",
                                    "bad": "broken("}},
    )  # fmt: skip
    run = await make_run(session, plan, results=[result("*", p95=100)])
    started = datetime(2026, 11, 25, tzinfo=UTC)
    stored = await session.get(Run, run.id)
    assert stored is not None
    stored.started_at, stored.finished_at = started, started + timedelta(seconds=20)
    # Throughput rises second by second, as the fake CPU series does.
    await add_seconds(session, run, {"api": [100.0] * 20}, vus=list(range(1, 21)))

    body = (await client.post(f"{API}/analyse", json={"run_id": str(run.id)})).json()

    cpu_query = next(a for a in asked if a["query"][0].startswith("sum("))
    assert float(cpu_query["start"][0]) == started.timestamp()
    assert float(cpu_query["end"][0]) == started.timestamp() + 20
    series = body["system_metrics"]["prometheus"]["series"]["cpu"]
    assert series["max"] == pytest.approx(0.5)
    assert any("bad: parse error" in w for w in body["warnings"])
    assert any(f["kind"] == "system_metrics" for f in body["findings"])


def test_the_worker_samples_the_process_behind_a_local_port() -> None:
    from app.runs.system import ProcessSampler

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        sampler = ProcessSampler(f"http://127.0.0.1:{server.server_address[1]}")
        assert sampler.start()
        time.sleep(0.2)
        reading = sampler.sample()
    finally:
        server.shutdown()
        server.server_close()

    assert reading is not None
    assert reading["processes"] == 1  # this test's own process holds the socket
    assert reading["rss_mb"] > 10


async def test_a_prometheus_url_obeys_the_host_guardrail(client: AsyncClient) -> None:
    from tests.builders import plan_doc

    document = plan_doc(
        system_metrics={"prometheus_url": "http://prometheus.prod.example:9090",
                        "queries": {"cpu": "up"}}
    )  # fmt: skip

    response = await client.post(f"{API}/plan", json=document)

    assert response.status_code == 422
    assert response.json()["code"] == "guardrail.host_denied"


async def test_a_prometheus_answer_of_nans_or_odd_shapes_is_a_warning_not_a_failure() -> None:
    from app.analysis.system import _prometheus_totals

    nans = {"status": "success", "data": {"result": [{"values": [[1, "NaN"], [2, "NaN"]]}]}}
    for status, body, reason in [
        (200, nans, "non-finite"),
        (200, {"status": "success", "data": None}, "no data"),
        (200, ["not", "a", "dict"], "not a Prometheus answer"),
        (503, {"status": "error", "error": "overloaded"}, "overloaded"),
    ]:
        with pytest.raises(ValueError, match=reason):
            _prometheus_totals(status, body)
