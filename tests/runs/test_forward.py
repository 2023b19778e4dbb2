"""A run's k6 series forwarded to a real Prometheus (Debian's 2.42, native histograms on): the
run's p95 and request count come back from PromQL, labelled with the run, plan and environment
— what Grafana's k6 dashboards read (issue 11 item 3)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.settings import Settings
from app.models import Run, RunEvent, RunResult, RunStatus
from app.runs.worker import Worker
from tests.builders import API, make_plan, make_run
from tests.prometheus_server import running_prometheus, value

pytestmark = pytest.mark.k6

# histogram_quantile interpolates inside a native bucket (schema 3: 2^(1/8), ~9 % wide).
BUCKET_WIDTH = 2 ** (1 / 8) - 1


async def test_a_forwarded_runs_p95_and_requests_come_back_from_prometheus(
    committed: async_sessionmaker[AsyncSession],
    settings: Settings,
    demo_target: str,
    tmp_path: Path,
) -> None:
    name = f"forwarded-{uuid.uuid4().hex[:8]}"
    with running_prometheus([], tmp_path / "prometheus") as prometheus:
        settings.remote_write_url = prometheus.remote_write_url
        plan_spec = {
            "name": name,
            "target": {"base_url": demo_target, "environment": "local"},
            "endpoints": [{"name": "product", "path": "/api/products/3"}],
            "load": {"vus": 3, "duration": "3s"},
            "slos": ["p95 < 2000ms"],
        }
        async with committed() as session, session.begin():
            plan = await make_plan(session, **plan_spec)
            run = await make_run(session, plan, status="queued")

        await Worker(committed, settings).run_once()

        async with committed() as session:
            finished = await session.get(Run, run.id)
            assert finished is not None
            assert finished.status == RunStatus.succeeded, finished.error
            [overall] = await session.scalars(
                select(RunResult).where(RunResult.run_id == run.id, RunResult.endpoint == "*")
            )
            forwarded = await session.scalar(
                select(RunEvent.data).where(RunEvent.run_id == run.id, RunEvent.kind == "forwarded")
            )
        selector = (
            f'testid="{run.id}",plan="{name}",plan_id="{plan.id}",environment="local",'
            'name="product"'
        )
        [count] = prometheus.wait_for(
            f"sum(histogram_count(k6_http_req_duration_seconds{{{selector}}}))", timeout_s=10
        )
        [p95] = prometheus.query(
            "histogram_quantile(0.95, sum(k6_http_req_duration_seconds"
            f'{{{selector},expected_response="true"}}))'
        )
        [vus] = prometheus.query(f'max_over_time(k6_vus{{testid="{run.id}"}}[5m])')
        assert "Error appending remote write" not in prometheus.log

    assert forwarded is not None
    [endpoint] = forwarded["endpoints"]
    assert endpoint["source"] == "deployment"
    assert endpoint["sent"] >= 3
    assert endpoint["failed"] == endpoint["dropped"] == 0
    assert value(count) == overall.requests > 100  # every request, exactly
    assert overall.p95_ms is not None
    assert value(p95) * 1000 == pytest.approx(overall.p95_ms, rel=BUCKET_WIDTH)
    assert value(vus) == 3


async def test_a_plans_remote_write_url_outside_the_allowed_hosts_is_refused(
    client: AsyncClient,
) -> None:
    plan = {
        "name": "forward-elsewhere",
        "target": {"base_url": "http://127.0.0.1:9", "environment": "local"},
        "endpoints": [{"name": "root", "path": "/"}],
        "load": {"vus": 1, "duration": "1s"},
        # 127.0.0.2 stands in for a host the allowed patterns do not name.
        "remote_write": {"url": "http://127.0.0.2:9090/api/v1/write"},
    }
    answer = await client.post(f"{API}/plan", json=plan)
    assert answer.status_code == 422, answer.text
    problem = answer.json()
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert problem["code"] == "guardrail.host_not_allowed"
    assert problem["purpose"] == "remote_write.url"
    assert (await client.get(f"{API}/plans")).json()["items"] == []


async def test_a_remote_write_url_with_credentials_is_a_validation_error(
    client: AsyncClient,
) -> None:
    plan = {
        "name": "forward-creds",
        "target": {"base_url": "http://127.0.0.1:9", "environment": "local"},
        "endpoints": [{"name": "root", "path": "/"}],
        "load": {"vus": 1, "duration": "1s"},
        "remote_write": {"url": "http://user:pw@127.0.0.1:9090/api/v1/write"},
    }
    answer = await client.post(f"{API}/plan", json=plan)
    assert answer.status_code == 422, answer.text
    assert "credentials" in answer.text
