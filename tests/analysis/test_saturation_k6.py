"""A real stress run against the demo shop's CPU-bound endpoint: the analysis finds its knee."""

from __future__ import annotations

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.settings import Settings
from app.runs.worker import Worker
from tests.builders import API, make_plan, make_run

pytestmark = pytest.mark.k6


async def test_a_stress_run_on_a_cpu_bound_endpoint_shows_its_knee(
    committed_client: AsyncClient,
    committed: async_sessionmaker[AsyncSession],
    settings: Settings,
    demo_target: str,
) -> None:
    # /api/orders/recent does its N+1 queries in Python under the GIL: one request at a time
    # gets through, so from 2 VUs on latency grows with the VUs and throughput stays flat.
    plan = {
        "target": {"base_url": demo_target, "environment": "local"},
        "endpoints": [{"name": "recent", "path": "/api/orders/recent"}],
        "load": {"profile": "stress", "start_vus": 1, "step_vus": 2, "steps": 4,
                 "step_duration": "3s", "ramp": "1s"},
        "slos": ["p95 < 2000ms"],
    }  # fmt: skip
    async with committed() as session, session.begin():
        run = await make_run(session, await make_plan(session, **plan), status="queued")
    await Worker(committed, settings).run_once()

    response = await committed_client.post(f"{API}/analyse", json={"run_id": str(run.id)})

    body = response.json()
    assert response.status_code == 201, body
    knee = body["saturation"]
    assert knee is not None
    assert knee["load_metric"] == "vus"
    # Where exactly, and whether throughput is flat after it, moves with the machine's other
    # load (tests/analysis/test_saturation.py pins the rules on synthetic runs): a knee below
    # the top level is what a real run must show.
    assert knee["knee_load"] is not None
    assert knee["knee_load"] < knee["levels"][-1]["load"]
    kinds = {f["kind"] for f in body["findings"]}
    if body["load_generator"]["status"] in ("healthy", "unknown"):
        assert "saturation" in kinds
    else:
        # Something else on this machine took the CPU meanwhile: the analysis says so and
        # blames nothing on the target (tests/analysis/test_generator.py pins the rules).
        assert body["verdict"] == "inconclusive"
        assert kinds == {"load_generator"}
    report = (await committed_client.get(f"{API}/analyses/{body['id']}/report.md")).text
    assert "← knee" in report
