"""ETags on a run and an analysis: an unchanged resource is an empty 304."""

from __future__ import annotations

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.caching import IMMUTABLE, REVALIDATE
from app.models import Analysis
from tests.builders import API, make_plan, make_run, result


async def test_a_run_carries_an_etag_and_an_unchanged_one_is_a_304(
    client: AsyncClient, session: AsyncSession
) -> None:
    run = await make_run(session, await make_plan(session), results=[result("*", p95=9.0)])

    first = await client.get(f"{API}/runs/{run.id}")
    again = await client.get(
        f"{API}/runs/{run.id}", headers={"If-None-Match": first.headers["etag"]}
    )
    stale = await client.get(f"{API}/runs/{run.id}", headers={"If-None-Match": '"other"'})

    assert first.status_code == 200
    assert first.headers["cache-control"] == REVALIDATE
    assert (again.status_code, again.content) == (304, b"")
    assert again.headers["etag"] == first.headers["etag"]
    assert stale.status_code == 200
    assert stale.json() == first.json()


async def test_an_analysis_and_its_report_are_immutable(
    client: AsyncClient, session: AsyncSession
) -> None:
    run = await make_run(session, await make_plan(session))
    analysis = Analysis(
        run_id=run.id, verdict="pass", slo_results=[], findings=[], warnings=[],
        report_md="# fine",
    )  # fmt: skip
    session.add(analysis)
    await session.flush()

    body = await client.get(f"{API}/analyses/{analysis.id}")
    report = await client.get(f"{API}/analyses/{analysis.id}/report.md")
    unchanged = await client.get(
        f"{API}/analyses/{analysis.id}/report.md", headers={"If-None-Match": report.headers["etag"]}
    )

    assert body.status_code == 200, body.text
    assert body.headers["cache-control"] == IMMUTABLE
    assert body.json()["verdict"] == "pass"
    assert report.text == "# fine"
    assert report.headers["content-type"].startswith("text/markdown")
    assert unchanged.status_code == 304
