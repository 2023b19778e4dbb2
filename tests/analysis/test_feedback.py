"""Engineers accept or reject recommendations; the acceptance rate is a KPI."""

from __future__ import annotations

import uuid

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from tests.builders import API, make_plan, make_run, result


async def analysis_with_recommendations(client: AsyncClient, session: AsyncSession) -> dict:  # type: ignore[type-arg]
    # A slow, failing endpoint: a confined-slowness and an errors finding, each recommending.
    results = [
        result("*", p95=120),
        result("list_orders", p95=900, failures=5),
        result("create_order", p95=40),
    ]
    run = await make_run(session, await make_plan(session), results=results)
    body = (await client.post(f"{API}/analyse", json={"run_id": str(run.id)})).json()
    return body  # type: ignore[no-any-return]


async def test_each_recommendation_has_an_id_and_takes_a_verdict(
    client: AsyncClient, session: AsyncSession
) -> None:
    analysis = await analysis_with_recommendations(client, session)
    recommending = [f for f in analysis["findings"] if f["recommendation"]]
    assert [f["recommendation_id"] for f in recommending] == [
        f"r{i}" for i in range(1, len(recommending) + 1)
    ]
    assert all(
        f["recommendation_id"] is None for f in analysis["findings"] if not f["recommendation"]
    )
    first, second = recommending[0], recommending[1]
    url = f"{API}/analyses/{analysis['id']}/recommendations"

    accepted = await client.post(
        f"{url}/{first['recommendation_id']}/feedback",
        json={"verdict": "accepted", "author": "ana", "comment": "it was the index"},
    )
    rejected = await client.post(
        f"{url}/{second['recommendation_id']}/feedback", json={"verdict": "rejected"}
    )

    assert accepted.status_code == 201
    assert accepted.json()["kind"] == first["kind"]
    assert rejected.status_code == 201
    kpi = (await client.get(f"{API}/recommendations/kpi")).json()
    assert (kpi["accepted"], kpi["rejected"], kpi["acceptance_rate"]) == (1, 1, 0.5)
    assert kpi["by_kind"][first["kind"]]["acceptance_rate"] == 1.0

    # Changing one's mind replaces the verdict: each recommendation counts once.
    changed = await client.post(
        f"{url}/{second['recommendation_id']}/feedback", json={"verdict": "accepted"}
    )
    assert changed.status_code == 200
    kpi = (await client.get(f"{API}/recommendations/kpi")).json()
    assert (kpi["accepted"], kpi["rejected"], kpi["acceptance_rate"]) == (2, 0, 1.0)
    metrics = (await client.get("/metrics")).text
    assert "perf_agent_recommendation_feedback_total" in metrics


async def test_feedback_on_what_does_not_exist_is_a_404_and_a_bad_verdict_a_422(
    client: AsyncClient, session: AsyncSession
) -> None:
    analysis = await analysis_with_recommendations(client, session)

    unknown_rec = await client.post(
        f"{API}/analyses/{analysis['id']}/recommendations/r99/feedback",
        json={"verdict": "accepted"},
    )
    unknown_analysis = await client.post(
        f"{API}/analyses/{uuid.uuid4()}/recommendations/r1/feedback", json={"verdict": "accepted"}
    )
    bad = await client.post(
        f"{API}/analyses/{analysis['id']}/recommendations/r1/feedback", json={"verdict": "maybe"}
    )

    assert (unknown_rec.status_code, unknown_rec.json()["code"]) == (
        404,
        "recommendation.not_found",
    )
    assert (unknown_analysis.status_code, unknown_analysis.json()["code"]) == (
        404,
        "analysis.not_found",
    )
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"


async def test_the_kpi_is_empty_before_any_feedback(client: AsyncClient) -> None:
    kpi = (await client.get(f"{API}/recommendations/kpi")).json()

    assert kpi == {"accepted": 0, "rejected": 0, "acceptance_rate": None, "by_kind": {}}
