"""``GET /metrics`` through the app: every family after the events that feed it, parsed with
prometheus_client's own parser (which rejects malformed exposition text)."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import timedelta
from typing import Any

from httpx import AsyncClient
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.settings import Settings
from app.main import create_app
from app.models import Analysis, RunStatus
from app.models.base import utcnow
from app.runs import fanout
from app.runs.worker import Worker
from tests.builders import API, make_key, make_plan, make_run, result

Labels = tuple[tuple[str, str], ...]


async def scrape(client: AsyncClient) -> dict[str, dict[Labels, float]]:
    """sample name → {sorted labels → value}; every family's name appears once."""
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    samples: dict[str, dict[Labels, float]] = {}
    names: list[str] = []
    for family in text_string_to_metric_families(response.text):
        names.append(family.name)
        for sample in family.samples:
            key = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[key] = sample.value
    assert len(names) == len(set(names)), "a family is described twice"
    assert response.text.count("# TYPE perf_agent_runs gauge") == 1
    return samples


def value(samples: dict[str, dict[Labels, float]], name: str, **labels: str) -> float:
    return samples.get(name, {}).get(tuple(sorted(labels.items())), 0.0)


async def finished_run(
    session: AsyncSession, plan: Any, rows: list[dict[str, Any]], *, ago_s: float = 0
) -> Any:
    run = await make_run(session, plan, results=rows)
    run.finished_at = utcnow() - timedelta(seconds=ago_s)
    await session.flush()
    return run


async def test_http_durations_are_labelled_by_route_template_not_path(
    client: AsyncClient,
) -> None:
    template = f"{API}/runs/{{run_id}}"
    before = await scrape(client)

    for _ in range(2):
        response = await client.get(f"{API}/runs/{uuid.uuid4()}")
        assert response.status_code == 404
    assert (await client.get("/no/such/route")).status_code == 404
    after = await scrape(client)

    count = "perf_agent_http_request_duration_seconds_count"
    run_404 = {"route": template, "method": "GET", "status": "404"}
    assert value(after, count, **run_404) - value(before, count, **run_404) == 2
    unmatched = {"route": "unmatched", "method": "GET", "status": "404"}
    assert value(after, count, **unmatched) - value(before, count, **unmatched) == 1
    routes = {dict(labels)["route"] for labels in after[count]}
    uuid_in_path = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
    assert not any(uuid_in_path.search(route) for route in routes)
    assert value(after, count, route="/metrics", method="GET", status="200") >= 1


async def test_runs_by_state_and_the_queue_depth_come_from_the_database(
    client: AsyncClient, session: AsyncSession
) -> None:
    before = await scrape(client)
    plan = await make_plan(session)
    for status in (RunStatus.queued, RunStatus.queued, RunStatus.running, RunStatus.failed):
        await make_run(session, plan, status=status)
    await session.commit()

    after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("perf_agent_runs", state="queued") == 2
    assert delta("perf_agent_runs", state="running") == 1
    assert delta("perf_agent_runs", state="failed") == 1
    assert delta("perf_agent_runs", state="succeeded") == 0
    assert {dict(k)["state"] for k in after["perf_agent_runs"]} == {
        "queued", "running", "succeeded", "failed", "aborted", "timed_out", "partial"
    }  # fmt: skip
    assert delta("perf_agent_queue_depth") == 2
    assert value(after, "perf_agent_queue_oldest_age_seconds") >= 0
    assert value(after, "perf_agent_metrics_database_up") == 1


async def test_the_latest_finished_run_per_plan_and_endpoint_and_its_verdict(
    client: AsyncClient, session: AsyncSession
) -> None:
    plan = await make_plan(session, name="checkout-trend")
    old = await finished_run(
        session, plan, [result("*", p95=900), result("pay", p95=950)], ago_s=60
    )
    new = await finished_run(
        session, plan, [result("*", p95=120, p99=200, requests=200, failures=2)], ago_s=1
    )
    for run, verdict in ((old, "pass"), (new, "fail")):
        session.add(
            Analysis(
                run_id=run.id,
                verdict=verdict,
                slo_results=[],
                findings=[],
                warnings=[],
                report_md="",
            )
        )
    stale = await make_plan(session, name="long-ago")
    await finished_run(session, stale, [result("*", p95=10)], ago_s=8 * 86400)
    await session.commit()

    samples = await scrape(client)

    everyone = {"plan": "checkout-trend", "environment": "local", "endpoint": "*"}
    assert value(samples, "perf_agent_latest_run_p95_seconds", **everyone) == 0.12
    assert value(samples, "perf_agent_latest_run_p99_seconds", **everyone) == 0.2
    assert value(samples, "perf_agent_latest_run_error_ratio", **everyone) == 0.01
    assert value(samples, "perf_agent_latest_run_requests", **everyone) == 200
    # An endpoint the newest run did not have keeps the figures of the run that had it.
    pay = {**everyone, "endpoint": "pay"}
    assert value(samples, "perf_agent_latest_run_p95_seconds", **pay) == 0.95
    stamp = value(samples, "perf_agent_latest_run_finished_timestamp_seconds", **everyone)
    assert abs(stamp - new.finished_at.timestamp()) < 1e-3
    verdict = {"plan": "checkout-trend", "environment": "local"}
    assert value(samples, "perf_agent_plan_verdict", **verdict, verdict="fail") == 1
    assert value(samples, "perf_agent_plan_verdict", **verdict, verdict="pass") == 0
    assert value(samples, "perf_agent_plan_verdict", **verdict, verdict="warning") == 0
    # Outside the 7-day window: not exposed. No run id is ever a label.
    exposed = [
        dict(labels)
        for name, rows in samples.items()
        if "latest_run" in name and "truncated" not in name
        for labels in rows
    ]
    assert all(labels.get("plan") != "long-ago" for labels in exposed)
    assert all(str(new.id) not in str(labels) for labels in exposed)
    assert all(set(labels) == {"plan", "environment", "endpoint"} for labels in exposed)
    assert value(samples, "perf_agent_latest_run_series_truncated") == 0


async def test_the_latest_analysis_knee_is_read_from_its_saturation(
    client: AsyncClient, session: AsyncSession
) -> None:
    ramp = await make_plan(session, name="ramp-knee")
    flat = await make_plan(session, name="flat-no-knee")
    for plan, saturation in (
        (ramp, {"load_metric": "vus", "knee_load": 40, "knee_rps": 412.5}),
        (flat, {"load_metric": "vus", "knee_load": None, "knee_rps": None}),
    ):
        run = await finished_run(session, plan, [result("*", p95=100)], ago_s=1)
        session.add(
            Analysis(
                run_id=run.id,
                verdict="pass",
                slo_results=[],
                findings=[],
                warnings=[],
                report_md="",
                saturation=saturation,
            )
        )
    await session.commit()

    samples = await scrape(client)

    knee = {"plan": "ramp-knee", "environment": "local"}
    assert value(samples, "perf_agent_plan_knee_rps", **knee) == 412.5
    assert value(samples, "perf_agent_plan_knee_load", **knee, load_metric="vus") == 40
    assert all(
        dict(labels).get("plan") != "flat-no-knee"
        for name in ("perf_agent_plan_knee_rps", "perf_agent_plan_knee_load")
        for labels in samples.get(name, [])
    )


async def test_a_hostile_plan_name_is_escaped(client: AsyncClient, session: AsyncSession) -> None:
    hostile = 'evil"} 1\nperf_agent_runs{state="x"} 99\\'
    plan = await make_plan(session)
    plan.name = hostile  # stored as given: the plan language's own rules are not relied on
    await finished_run(session, plan, [result("*", p95=50)])
    await session.commit()

    response = await client.get("/metrics")
    samples = await scrape(client)

    assert '\nperf_agent_runs{state="x"}' not in response.text
    assert 'plan="evil\\"} 1\\nperf_agent_runs{state=\\"x\\"} 99\\\\"' in response.text
    labels = {"plan": hostile, "environment": "local", "endpoint": "*"}
    assert value(samples, "perf_agent_latest_run_p95_seconds", **labels) == 0.05
    assert ("state", "x") not in {pair for key in samples["perf_agent_runs"] for pair in key}


async def test_guardrail_refusals_are_counted_by_code(client: AsyncClient) -> None:
    name, labels = "perf_agent_guardrail_refusals_total", {"code": "guardrail.host_not_allowed"}
    before = value(await scrape(client), name, **labels, at="request")
    doc = {
        "name": "elsewhere",
        "target": {"base_url": "http://petstore.swagger.io/v1", "environment": "x"},
        "endpoints": [{"name": "pets", "path": "/pets"}],
        "load": {"vus": 1, "duration": "1s"},
    }

    response = await client.post(f"{API}/plan", json=doc)

    assert response.json()["code"] == "guardrail.host_not_allowed"
    assert value(await scrape(client), name, **labels, at="request") == before + 1


async def test_an_analysis_is_timed_and_its_missing_llm_counted_as_a_fallback(
    client: AsyncClient, session: AsyncSession
) -> None:
    before = await scrape(client)
    run = await make_run(session, await make_plan(session), results=[result("*", p95=100)])

    response = await client.post(f"{API}/analyse", json={"run_id": str(run.id)})
    after = await scrape(client)

    assert response.status_code == 201
    assert response.json()["narrative_meta"]["status"] == "not_configured"
    count = "perf_agent_analysis_duration_seconds_count"
    assert value(after, count) == value(before, count) + 1
    calls = "perf_agent_llm_calls_total"
    fallbacks = {
        labels: n - before.get(calls, {}).get(labels, 0.0)
        for labels, n in after[calls].items()
        if dict(labels)["outcome"] == "not_configured"
    }
    assert sum(fallbacks.values()) == 1


async def test_the_worker_observes_claim_latency(
    client: AsyncClient,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    before = await scrape(client)
    run = await make_run(session, await make_plan(session), status=RunStatus.queued)
    run.created_at = utcnow() - timedelta(seconds=3)
    await session.commit()

    claimed = await Worker(sessionmaker, settings).claim()
    after = await scrape(client)

    assert claimed == run.id
    name = "perf_agent_run_claim_latency_seconds"
    assert value(after, f"{name}_count") == value(before, f"{name}_count") + 1
    latency = value(after, f"{name}_sum") - value(before, f"{name}_sum")
    assert 3 <= latency < 30
    assert value(after, f"{name}_bucket", le="2.5") == value(before, f"{name}_bucket", le="2.5")


async def test_process_local_families_say_so(client: AsyncClient) -> None:
    text = (await client.get("/metrics")).text

    for name in (
        "perf_agent_http_request_duration_seconds",
        "perf_agent_k6_points_ingested_total",
        "perf_agent_run_claim_latency_seconds",
    ):
        help_line = next(line for line in text.splitlines() if line.startswith(f"# HELP {name} "))
        assert "this process" in help_line
    runs_help = next(
        line for line in text.splitlines() if line.startswith("# HELP perf_agent_runs ")
    )
    assert "the same in every process" in runs_help


async def test_a_server_sent_event_stream_still_streams_through_the_middleware(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], session: AsyncSession
) -> None:
    """Driven at the ASGI level (httpx's ASGI transport waits for the whole body): the first
    event arrives while the stream is still open, and the stream's duration is its start."""
    run = await make_run(session, await make_plan(session), status=RunStatus.running)
    key = await make_key(session)
    await session.commit()
    app = create_app(settings)
    app.state.sessionmaker = sessionmaker
    path = f"{API}/runs/{run.id}/stream"
    sent: list[dict[str, Any]] = []
    first_body = asyncio.Event()
    disconnect = asyncio.Event()

    asked: list[bool] = []

    async def receive() -> dict[str, Any]:
        if not asked:
            asked.append(True)
            return {"type": "http.request", "body": b"", "more_body": False}
        await disconnect.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and b"event: " in message.get("body", b""):
            first_body.set()  # the first event (after the stream's `retry:` hint)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": b"", "server": ("test", 80), "client": ("127.0.0.1", 1),
        "headers": [(b"host", b"test"), (b"authorization", f"Bearer {key}".encode())],
        "state": {},
    }  # fmt: skip
    histogram = "perf_agent_http_request_duration_seconds_count"
    labels = {"route": f"{API}/runs/{{run_id}}/stream", "method": "GET", "status": "200"}
    streaming = asyncio.create_task(app(scope, receive, send))  # type: ignore[arg-type]
    try:
        await asyncio.wait_for(first_body.wait(), 10)
        assert not streaming.done(), "the whole stream was buffered"
        assert (sent[0]["type"], sent[0]["status"]) == ("http.response.start", 200)
        assert b"event: " in b"".join(m.get("body", b"") for m in sent[1:])
        observed = REGISTRY.get_sample_value(histogram, labels)
        assert (observed or 0) >= 1  # counted at its start, while it still streams
    finally:
        disconnect.set()
        await asyncio.wait_for(streaming, 10)
        await fanout.hub_of(app).close()


async def test_k6_points_decoded_are_counted(client: AsyncClient) -> None:
    from app.runs.live import LiveMetrics
    from tests.runs.test_live import gauge, noise, request

    before = value(await scrape(client), "perf_agent_k6_points_ingested_total")
    live = LiveMetrics(["a"])
    live.feed(request(100.1, 12.0) + request(100.2, 14.0) + noise(100.3) + gauge("vus", 100.4, 2))
    live.finish()

    after = value(await scrape(client), "perf_agent_k6_points_ingested_total")
    assert after - before == 3  # the two requests and the VU gauge; the noise is not decoded


async def test_a_run_refused_at_claim_is_counted_by_its_code(
    client: AsyncClient,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    name, labels = "perf_agent_guardrail_refusals_total", {"code": "guardrail.host_not_allowed"}
    before = value(await scrape(client), name, **labels, at="claim")
    run = await make_run(session, await make_plan(session), status=RunStatus.queued)
    await session.commit()
    settings.allowed_hosts = ["*.staging.*"]  # tightened after the plan was stored

    assert await Worker(sessionmaker, settings).run_once() == run.id
    samples = await scrape(client)

    assert value(samples, name, **labels, at="claim") == before + 1
    assert (
        value(samples, "perf_agent_sandbox_failures_total", code="guardrail.host_not_allowed") == 0
    )
    assert value(samples, "perf_agent_runs", state="failed") >= 1
