"""An analysis in CI's formats: JUnit XML, a Markdown step summary, GitLab's Load Performance
report — downloaded from the API as a pipeline would."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from app.analysis.ci import COMMENT_MARKER
from tests.builders import API, add_seconds, make_plan, make_run, noisy, result

NAMES = ("list_orders", "create_order")


async def analysed(
    client: AsyncClient, session: AsyncSession, *, slow_p95: float, slos: list[Any]
) -> dict[str, Any]:
    """A baseline at 100 ms and a run whose list_orders (and overall) p95 is ``slow_p95``."""
    plan = await make_plan(session, slos=slos)
    before = await make_run(
        session, plan, results=[result("*", p95=100), *(result(n, p95=100) for n in NAMES)]
    )
    await add_seconds(session, before, {n: noisy(100, i) for i, n in enumerate(NAMES)})
    after = await make_run(
        session,
        plan,
        results=[
            result("*", p95=slow_p95),
            result("list_orders", p95=slow_p95),
            result("create_order", p95=100),
        ],
    )
    await add_seconds(
        session,
        after,
        {n: noisy(slow_p95 if n == "list_orders" else 100, 10 + i) for i, n in enumerate(NAMES)},
    )
    response = await client.post(
        f"{API}/analyse", json={"run_id": str(after.id), "baseline_run_ids": [str(before.id)]}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def cases(root: ET.Element) -> list[ET.Element]:
    return root.findall("./testsuite/testcase")


async def test_junit_has_a_case_per_objective_and_comparison_and_fails_what_failed(
    client: AsyncClient, session: AsyncSession
) -> None:
    analysis = await analysed(
        client, session, slow_p95=210, slos=["p95 < 150ms", "error_rate < 1%"]
    )

    response = await client.get(f"{API}/analyses/{analysis['id']}/junit.xml")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(response.text)
    suite = root.find("testsuite")
    assert suite is not None
    failed = {
        c.get("name"): c.find("failure") for c in cases(root) if c.find("failure") is not None
    }
    objective = failed["all requests: p95 < 150ms"]
    assert objective is not None
    message = objective.get("message") or ""
    assert "measured 210.00 ms" in message
    assert "target < 150.00 ms" in message
    regression = failed["list_orders p95 against the baseline"]
    assert regression is not None
    assert "against the baseline's 100.00 ms (+110.0%)" in (regression.get("message") or "")
    assert "99 % interval" in (regression.get("message") or "")
    # The passing objective and the unchanged endpoint are cases that pass.
    passed = {c.get("name") for c in cases(root) if not list(c)}
    assert "all requests: error_rate < 1%" in passed
    assert "create_order p95 against the baseline" in passed
    counts = {k: int(suite.get(k, "-1")) for k in ("tests", "failures", "errors", "skipped")}
    assert (
        counts["tests"]
        == len(cases(root))
        == len(analysis["slo_results"]) + len(analysis["comparisons"])
    )
    assert counts["failures"] == len(failed)
    assert counts["skipped"] == sum(c.find("skipped") is not None for c in cases(root))
    assert counts["errors"] == 0
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert properties["verdict"] == "fail"
    assert (properties["report"] or "").endswith(f"/analyses/{analysis['id']}/report.html")


async def test_the_step_summary_names_the_verdict_failures_changes_and_report(
    client: AsyncClient, session: AsyncSession
) -> None:
    analysis = await analysed(client, session, slow_p95=210, slos=["p95 < 150ms"])

    response = await client.get(f"{API}/analyses/{analysis['id']}/summary.md")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/markdown")
    text = response.text
    lines = text.splitlines()
    plan_id = (await client.get(f"{API}/runs/{analysis['run_id']}")).json()["plan_id"]
    assert lines[0] == COMMENT_MARKER.format(plan_id=plan_id)
    assert "**FAIL**" in lines[1]
    assert "| p95 < 150ms | all requests | 210.00 ms | < 150.00 ms | – | fail |" in text
    assert any(line.startswith("| list_orders | p95 | 100.00 ms | 210.00 ms |") for line in lines)
    assert f"/analyses/{analysis['id']}/report.html)" in text


async def test_a_clean_run_summary_says_so(client: AsyncClient, session: AsyncSession) -> None:
    analysis = await analysed(client, session, slow_p95=100, slos=["p95 < 150ms"])

    text = (await client.get(f"{API}/analyses/{analysis['id']}/summary.md")).text

    assert "**PASS**" in text
    assert "Every objective was met." in text
    assert "No significant change against the baseline." in text


async def test_the_gitlab_report_is_the_runs_summary_in_k6s_export_shape(
    client: AsyncClient, session: AsyncSession
) -> None:
    plan = await make_plan(session)
    run = await make_run(session, plan, results=[result("*", p95=20)])
    run.summary = {
        "metrics": {
            "checks": {"type": "rate", "values": {"rate": 0.9, "passes": 9, "fails": 1}},
            "http_reqs": {"type": "counter", "values": {"count": 10, "rate": 5.0}},
            "http_req_waiting": {
                "type": "trend",
                "values": {"avg": 3.0, "p(90)": 4.0, "p(95)": 5.0},
                "thresholds": {"p(95)<1": {"ok": False}},
            },
        },
        "root_group": {"name": "", "checks": []},
    }
    await session.flush()
    analysis = (await client.post(f"{API}/analyse", json={"run_id": str(run.id)})).json()

    response = await client.get(f"{API}/analyses/{analysis['id']}/load-performance.json")

    assert response.status_code == 200
    metrics = json.loads(response.text)["metrics"]
    assert metrics["checks"] == {"value": 0.9, "passes": 9, "fails": 1}
    assert metrics["http_reqs"] == {"count": 10, "rate": 5.0}
    assert metrics["http_req_waiting"]["p(90)"] == 4.0
    assert metrics["http_req_waiting"]["thresholds"] == {"p(95)<1": True}  # true: it failed


async def test_an_unknown_analysis_has_no_ci_report(client: AsyncClient) -> None:
    for name in ("junit.xml", "summary.md", "load-performance.json"):
        response = await client.get(f"{API}/analyses/00000000-0000-0000-0000-000000000000/{name}")
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "analysis.not_found"


def test_markdown_cells_cannot_break_the_table_or_open_html() -> None:
    from app.analysis.ci import _md

    assert _md("p95 < 300ms") == "p95 < 300ms"
    assert _md("a|b\nc <script>alert(1)</script>") == "a\\|b c &lt;script>alert(1)&lt;/script>"
