"""POST /analyse calls a plan's Prometheus only where the outbound policy allows, at the
address it checked. Real sockets on 127.0.0.1/127.0.0.2; test names never reach DNS."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.settings import Settings
from app.models import Plan, Run
from tests.builders import API, add_seconds, make_plan, make_run, result
from tests.guardrails.listeners import FakeDNS, Listeners, fake_dns, listeners


@pytest.fixture
def listen() -> Iterator[Listeners]:
    yield from listeners()


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> FakeDNS:
    return fake_dns(monkeypatch)


def prometheus_answer(method: str, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
    start, end = float(query["start"][0]), float(query["end"][0])
    values = [[start + t, str(0.1 + 0.02 * t)] for t in range(int(end - start) + 1)]
    return 200, {"status": "success", "data": {"resultType": "matrix",
                 "result": [{"metric": {}, "values": values}]}}  # fmt: skip


async def finished_run(session: AsyncSession, prometheus_url: str) -> Run:
    # Stored directly: the name resolved somewhere allowed when the plan was made, and
    # points elsewhere by the time the run is analysed.
    plan: Plan = await make_plan(
        session,
        system_metrics={"prometheus_url": prometheus_url, "step": "1s",
                        "queries": {"cpu": "sum(rate(process_cpu_seconds_total[15s]))"}},
    )  # fmt: skip
    run = await make_run(session, plan, results=[result("*", p95=100)])
    stored = await session.get(Run, run.id)
    assert stored is not None
    started = datetime(2026, 11, 25, tzinfo=UTC)
    stored.started_at, stored.finished_at = started, started + timedelta(seconds=10)
    await add_seconds(session, run, {"api": [100.0] * 10}, vus=list(range(1, 11)))
    return run


@pytest.mark.parametrize(
    "spelling", ["metrics.perf.example", "Metrics.ＰＥＲＦ.example."], ids=["ascii", "fullwidth"]
)
async def test_a_prometheus_resolving_to_a_denied_address_gets_no_request_and_a_warning(
    client: AsyncClient,
    session: AsyncSession,
    settings: Settings,
    dns: FakeDNS,
    listen: Listeners,
    spelling: str,
) -> None:
    production = listen("127.0.0.2", respond=prometheus_answer)
    dns["metrics.perf.example"] = ["127.0.0.2"]
    settings.denied_networks = ["127.0.0.2/32"]
    run = await finished_run(session, f"http://{spelling}:{production.port}")

    response = await client.post(f"{API}/analyse", json={"run_id": str(run.id)})

    assert response.status_code == 201, response.text
    assert production.connections == 0
    body = response.json()
    assert "prometheus" not in (body["system_metrics"] or {})
    [warning] = [w for w in body["warnings"] if "Prometheus" in w]
    assert "Prometheus not queried" in warning
    assert "inside the denied network 127.0.0.2/32" in warning
    assert "guardrail.address_denied" in warning


async def test_a_prometheus_at_a_mapped_denied_literal_gets_no_request(
    client: AsyncClient, session: AsyncSession, settings: Settings, listen: Listeners
) -> None:
    production = listen("127.0.0.2", respond=prometheus_answer)
    settings.allowed_hosts = [*settings.allowed_hosts, "127.0.0.2"]
    settings.denied_networks = ["127.0.0.2/32"]
    run = await finished_run(session, f"http://[::ffff:127.0.0.2]:{production.port}")

    response = await client.post(f"{API}/analyse", json={"run_id": str(run.id)})

    assert response.status_code == 201, response.text
    assert production.connections == 0
    assert any("Prometheus not queried" in w for w in response.json()["warnings"])


async def test_localhost_inside_a_denied_network_is_not_queried(
    client: AsyncClient, session: AsyncSession, settings: Settings, listen: Listeners
) -> None:
    prometheus = listen("127.0.0.1", respond=prometheus_answer)
    settings.denied_networks = ["127.0.0.0/8", "::1/128"]
    run = await finished_run(session, f"http://localhost:{prometheus.port}")

    response = await client.post(f"{API}/analyse", json={"run_id": str(run.id)})

    assert response.status_code == 201, response.text
    assert prometheus.connections == 0
    assert any("Prometheus not queried" in w for w in response.json()["warnings"])


async def test_an_allowed_prometheus_is_queried_at_the_address_that_was_checked(
    client: AsyncClient,
    session: AsyncSession,
    settings: Settings,
    dns: FakeDNS,
    listen: Listeners,
) -> None:
    prometheus = listen("127.0.0.1", respond=prometheus_answer)
    production = listen("127.0.0.2", prometheus.port, respond=prometheus_answer)
    answers = iter([["127.0.0.1"]])
    dns["metrics.perf.example"] = lambda: next(answers, ["127.0.0.2"])  # then it rebinds
    settings.denied_networks = ["127.0.0.2/32"]
    run = await finished_run(session, f"http://metrics.perf.example:{prometheus.port}")

    response = await client.post(f"{API}/analyse", json={"run_id": str(run.id)})

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["system_metrics"]["prometheus"]["series"]["cpu"]["points"] > 0
    assert [r.host for r in prometheus.requests] == [f"metrics.perf.example:{prometheus.port}"]
    assert production.connections == 0
    assert dns.lookups == {"metrics.perf.example": 1}  # resolved once, for the check
