"""The history is read in bounded windows: export pages through it, analysis reads the newest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from app.baselines import service
from tests.builders import API, make_plan, make_run, result


async def test_following_next_exports_every_run_and_imported_point_once(
    client: AsyncClient, session: AsyncSession
) -> None:
    plan = await make_plan(session)
    runs = [await make_run(session, plan, results=[result("*", p95=10.0 + i)]) for i in range(12)]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    imported = {
        "series": [
            {
                "endpoint": "*", "sli": "p99", "unit": "ms",
                "points": [{"at": (start + timedelta(days=d)).isoformat(), "value": 20.0 + d}
                           for d in range(8)],
            }
        ]
    }  # fmt: skip
    assert (await client.post(f"{API}/plans/{plan.id}/history", json=imported)).status_code == 201

    run_ids: list[str] = []
    p99_values: list[float] = []
    url: str | None = f"{API}/plans/{plan.id}/history?limit=5"
    windows = 0
    while url is not None:
        response = await client.get(url)
        assert response.status_code == 200, response.text
        document = response.json()
        for series in document["series"]:
            if (series["endpoint"], series["sli"]) == ("*", "p95"):
                run_ids += [p["run_id"] for p in series["points"]]
            if (series["endpoint"], series["sli"]) == ("*", "p99"):
                p99_values += [p["value"] for p in series["points"] if p["run_id"] is None]
        url, windows = document["next"], windows + 1
        assert windows < 10

    assert sorted(run_ids) == sorted(str(r.id) for r in runs)
    assert len(set(run_ids)) == len(run_ids)
    assert sorted(p99_values) == [20.0 + d for d in range(8)]
    assert windows >= 3


async def test_analysis_reads_only_the_newest_window_of_a_long_history(
    session: AsyncSession,
) -> None:
    plan = await make_plan(session)
    runs = [await make_run(session, plan, results=[result("*", p95=10.0 + i)]) for i in range(9)]

    window = await service.history_window(session, plan, "local", limit=4)

    points = window.series[("*", "p95")]
    assert [p[2] for p in points] == [r.id for r in runs[-4:]]  # oldest first, newest four
    assert window.next_before == runs[-4].created_at
