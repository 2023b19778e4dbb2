"""The metric vocabulary and the HTTP middleware, without a database."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route

from app.core import metrics
from app.core.http_metrics import HTTPMetricsMiddleware

HOSTILE = 'a "quoted" \\ back\\slash\nnew line} 1\n# TYPE x counter'


def snapshot(**changes: Any) -> metrics.DatabaseSnapshot:
    fields: dict[str, Any] = {
        "runs_by_state": {"queued": 3, "running": 1},
        "oldest_queued_age_s": 12.5,
        "results": [
            metrics.LatestResult(HOSTILE, "staging", "*", 120.0, 300.0, 0.02, 500, 1.7e9),
            metrics.LatestResult(HOSTILE, "staging", "login", None, None, 1.0, 5, 1.7e9),
        ],
        "verdicts": [metrics.PlanVerdict(HOSTILE, "staging", "warning")],
        "results_truncated": False,
    }
    fields.update(changes)
    return metrics.DatabaseSnapshot(**fields)


def parse(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        assert family.name not in found
        found[family.name] = [(s.labels, s.value) for s in family.samples]
    return found


def test_database_families_escape_a_hostile_plan_name_and_parse_back() -> None:
    text = generate_latest(metrics.registry_of(metrics.database_families(snapshot()))).decode()

    families = parse(text)

    # The name's newline and quotes stay inside one escaped label value: no injected lines.
    assert "\n# TYPE x counter" not in text
    assert 'plan="a \\"quoted\\" \\\\ back\\\\slash\\nnew line} 1\\n# TYPE x counter"' in text
    p95 = families["perf_agent_latest_run_p95_seconds"]
    assert p95 == [({"plan": HOSTILE, "environment": "staging", "endpoint": "*"}, 0.12)]
    assert families["perf_agent_latest_run_p99_seconds"][0][1] == 0.3
    errors = {labels["endpoint"]: v for labels, v in families["perf_agent_latest_run_error_ratio"]}
    assert errors == {"*": 0.02, "login": 1.0}  # no latency when nothing succeeded, but errors
    verdicts = {labels["verdict"]: v for labels, v in families["perf_agent_plan_verdict"]}
    assert verdicts == {"pass": 0, "warning": 1, "fail": 0, "inconclusive": 0}
    states = {labels["state"]: v for labels, v in families["perf_agent_runs"]}
    assert states == {s: {"queued": 3, "running": 1}.get(s, 0) for s in metrics.RUN_STATES}
    assert families["perf_agent_queue_depth"] == [({}, 3)]
    assert families["perf_agent_queue_oldest_age_seconds"] == [({}, 12.5)]
    assert families["perf_agent_metrics_database_up"] == [({}, 1)]
    assert text.count("# HELP perf_agent_runs ") == text.count("# TYPE perf_agent_runs ") == 1


def test_without_the_database_only_that_is_said() -> None:
    text = generate_latest(metrics.registry_of(metrics.database_families(None))).decode()

    assert parse(text) == {"perf_agent_metrics_database_up": [({}, 0)]}


def test_a_truncated_result_set_says_so() -> None:
    families = metrics.database_families(snapshot(results_truncated=True))
    text = generate_latest(metrics.registry_of(families)).decode()

    assert parse(text)["perf_agent_latest_run_series_truncated"] == [({}, 1)]


def test_database_families_do_not_clash_with_the_process_counters() -> None:
    local = {family.name for family in text_string_to_metric_families(generate_latest().decode())}
    scraped = {family.name for family in metrics.database_families(snapshot())}

    assert not local & scraped


def test_run_refusals_are_counted_by_code_and_sandbox_ones_as_sandbox_failures() -> None:
    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    refusals = "perf_agent_guardrail_refusals_total"
    before = (
        sample(refusals, code="guardrail.vu_ceiling", at="claim"),
        sample(refusals, code="sandbox.unavailable", at="claim"),
        sample("perf_agent_sandbox_failures_total", code="sandbox.unavailable"),
        sample("perf_agent_sandbox_failures_total", code="guardrail.vu_ceiling"),
    )

    metrics.count_run_refusal("guardrail.vu_ceiling")
    metrics.count_run_refusal("sandbox.unavailable")

    after = (
        sample(refusals, code="guardrail.vu_ceiling", at="claim"),
        sample(refusals, code="sandbox.unavailable", at="claim"),
        sample("perf_agent_sandbox_failures_total", code="sandbox.unavailable"),
        sample("perf_agent_sandbox_failures_total", code="guardrail.vu_ceiling"),
    )
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1, 0]


# --- the middleware ------------------------------------------------------------------------


def duration_count(route: str, method: str, status: str) -> float:
    labels = {"route": route, "method": method, "status": status}
    return REGISTRY.get_sample_value("perf_agent_http_request_duration_seconds_count", labels) or 0


async def call(
    app: Any, method: str, path: str, sent: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """One request straight through ASGI; ``sent`` fills as the app sends."""
    sent = [] if sent is None else sent
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": b"", "headers": [], "server": ("test", 80), "client": ("t", 1),
    }  # fmt: skip
    asked = False

    async def receive() -> dict[str, Any]:
        nonlocal asked
        if not asked:
            asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # never disconnects
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


async def item(request: Request) -> PlainTextResponse:
    return PlainTextResponse(request.path_params["item_id"])


async def boom(request: Request) -> PlainTextResponse:
    raise RuntimeError("boom")


def small_app() -> HTTPMetricsMiddleware:
    routes = [Route("/items/{item_id}", item), Route("/boom", boom)]
    return HTTPMetricsMiddleware(Starlette(routes=routes))


async def test_a_parameterised_path_is_labelled_by_its_template() -> None:
    app = small_app()
    before = duration_count("/items/{item_id}", "GET", "200")

    for n in range(3):
        await call(app, "GET", f"/items/{n}")

    assert duration_count("/items/{item_id}", "GET", "200") == before + 3
    assert duration_count("/items/0", "GET", "200") == 0


async def test_unknown_routes_and_methods_are_one_label_each() -> None:
    app = small_app()
    before = (
        duration_count("unmatched", "GET", "404"),
        duration_count("/items/{item_id}", "other", "405"),
    )

    await call(app, "GET", "/nope/1")
    await call(app, "GET", "/nope/2")
    await call(app, "BREW", "/items/1")

    after = (
        duration_count("unmatched", "GET", "404"),
        duration_count("/items/{item_id}", "other", "405"),
    )
    assert (after[0] - before[0], after[1] - before[1]) == (2, 1)


async def test_an_exception_counts_as_a_500_and_still_propagates() -> None:
    app = small_app()
    before = duration_count("/boom", "GET", "500")

    with pytest.raises(RuntimeError):
        await call(app, "GET", "/boom")

    assert duration_count("/boom", "GET", "500") == before + 1


async def test_a_stream_passes_through_chunk_by_chunk_and_is_timed_to_its_start() -> None:
    release = asyncio.Event()

    async def chunks() -> Any:
        yield b"event: first\n\n"
        await release.wait()
        yield b"event: second\n\n"

    async def stream(request: Request) -> StreamingResponse:
        return StreamingResponse(chunks(), media_type="text/event-stream")

    app = HTTPMetricsMiddleware(Starlette(routes=[Route("/stream/{id}", stream)]))
    before = duration_count("/stream/{id}", "GET", "200")
    sent: list[dict[str, Any]] = []
    scope_sent = asyncio.create_task(call(app, "GET", "/stream/7", sent))

    for _ in range(200):
        if any(m.get("body") == b"event: first\n\n" for m in sent):
            break
        await asyncio.sleep(0.01)
    assert any(m.get("body") == b"event: first\n\n" for m in sent), "the first chunk was held back"
    assert not scope_sent.done()
    assert duration_count("/stream/{id}", "GET", "200") == before + 1  # at its start
    release.set()
    await asyncio.wait_for(scope_sent, 5)
    assert [m.get("body") for m in sent if m["type"] == "http.response.body"][:2] == [
        b"event: first\n\n",
        b"event: second\n\n",
    ]
    assert duration_count("/stream/{id}", "GET", "200") == before + 1  # observed once


def test_a_knee_the_analysis_found_is_exposed_and_a_run_without_one_has_no_sample() -> None:
    kneed = metrics.PlanVerdict("ramp", "staging", "fail", 412.5, 40.0, "vus")
    flat = metrics.PlanVerdict("flat", "staging", "pass")
    families = parse(
        generate_latest(
            metrics.registry_of(metrics.database_families(snapshot(verdicts=[kneed, flat])))
        ).decode()
    )

    assert families["perf_agent_plan_knee_rps"] == [
        ({"plan": "ramp", "environment": "staging"}, 412.5)
    ]
    assert families["perf_agent_plan_knee_load"] == [
        ({"plan": "ramp", "environment": "staging", "load_metric": "vus"}, 40.0)
    ]
