"""The whole loop against the demo shop with real k6: plan → execute → analyse."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.cli import demo_plan
from app.core.settings import Settings
from app.runs.worker import Worker
from tests.builders import API, approve, skip_if_analysis_disturbed, skip_if_host_disturbed

pytestmark = pytest.mark.k6

SLOW = "recent_orders"


def short_demo_plan(target: str) -> str:
    plan = yaml.safe_load(demo_plan(target))
    plan["load"] = {"vus": 4, "duration": "4s"}
    return yaml.safe_dump(plan)


async def test_plan_execute_analyse_flags_only_the_slow_endpoint(
    committed_client: AsyncClient,
    committed: async_sessionmaker[AsyncSession],
    settings: Settings,
    demo_target: str,
) -> None:
    client = committed_client
    plan = await client.post(
        f"{API}/plan",
        content=short_demo_plan(demo_target),
        headers={"Content-Type": "application/yaml"},
    )
    assert plan.status_code == 201, plan.text
    await approve(client, plan.json())
    queued = await client.post(f"{API}/execute", json={"plan_id": plan.json()["id"]})
    assert queued.status_code == 202
    run_id = queued.json()["id"]

    assert await Worker(committed, settings).run_once() is not None

    run = (await client.get(f"{API}/runs/{run_id}")).json()
    assert run["status"] == "succeeded", run["error"]
    assert run["exit_code"] == 99  # k6's own verdict: a threshold failed
    assert run["k6_version"].startswith("k6 v1.1.0")
    results = {r["endpoint"]: r for r in run["results"]}
    assert set(results) == {"*", "list_products", "get_product", "create_order", SLOW}

    # Every stored figure is k6's measurement: the summary k6 wrote for this run, as it is.
    summary = json.loads((settings.runs_dir / run_id / "attempt-1" / "summary.json").read_text())
    k6_slow = summary["metrics"][f"http_req_duration{{name:{SLOW},expected_response:true}}"]
    assert results[SLOW]["source"] == "summary"
    assert results[SLOW]["p95_ms"] == k6_slow["values"]["p(95)"]
    assert results[SLOW]["p99_ms"] == k6_slow["values"]["p(99)"]
    assert results["*"]["requests"] == summary["metrics"]["http_reqs"]["values"]["count"]
    assert results["*"]["requests"] == sum(
        r["requests"] for name, r in results.items() if name != "*"
    )

    analysis = await client.post(f"{API}/analyse", json={"run_id": run_id})
    assert analysis.status_code == 201
    body = analysis.json()
    # A machine that could not give k6 its CPU rightly gets no verdict (and no findings from
    # the comparison): what is above held, the rest needs a healthy generator.
    skip_if_analysis_disturbed(body)
    assert body["verdict"] == "fail", body["warnings"]
    verdicts = {(r["endpoint"], r["sli"]): r["status"] for r in body["slo_results"]}
    assert verdicts == {
        ("list_products", "p95"): "pass",
        ("get_product", "p95"): "pass",
        ("create_order", "p95"): "pass",
        (SLOW, "p95"): "fail",
        (None, "error_rate"): "pass",
    }
    assert all(r["k6_threshold_ok"] == (r["status"] == "pass") for r in body["slo_results"])
    assert any(f["kind"] == "slow_endpoint" and f["endpoint"] == SLOW for f in body["findings"])
    # The profile of the shop under this load names the handler and its query, first.
    hot = [f for f in body["findings"] if f["kind"] == "hot_path"]
    assert hot, body["profile"]
    assert hot[0]["endpoint"] == SLOW
    assert hot[0]["evidence"]["function"] == "recent_orders"
    assert hot[0]["evidence"]["in_loop"] == 1  # evidence is numbers: 1 for yes
    assert "N+1" in hot[0]["summary"]
    kinds = [f["kind"] for f in body["findings"]]
    assert kinds.index("hot_path") < kinds.index("slow_endpoint")

    report = await client.get(body["links"]["report"])
    assert report.headers["content-type"].startswith("text/markdown")
    assert "**SLO NOT MET:**" in report.text
    assert f"{results[SLOW]['p95_ms']:.1f} ms" in report.text


def test_demo_command_prints_the_verdict_and_writes_the_report(
    database_url: str,
    tmp_path: Path,
    committed: async_sessionmaker[AsyncSession],
) -> None:
    env = {
        **os.environ,
        "PERF_AGENT_DATABASE_URL": database_url,
        "PERF_AGENT_DATA_DIR": str(tmp_path / "data"),
        "COLUMNS": "80",  # a CI log's width: nothing may be cut off to fit it
    }

    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )

    skip_if_host_disturbed(done.stdout)  # then no verdict, rightly: nothing below to check
    assert done.returncode == 0, done.stderr
    assert "verdict: FAIL" in done.stdout, done.stdout
    # No terminal: the run is followed with plain progress lines (vus, rps, p95, errors).
    assert re.search(r"running\s+0:\d\d/0:10\s+vus \d+\s+rps [\d,]+\s+p95", done.stdout)
    assert "\x1b[" not in done.stdout
    assert re.search(rf"p95 < 100ms\s*│\s*{SLOW}\s*│[^│]*│\s*fail", done.stdout), done.stdout
    for fast in ("list_products", "get_product", "create_order"):
        assert re.search(rf"p95 < 100ms\s*│\s*{fast}\s*│[^│]*│\s*pass", done.stdout), done.stdout
    path = Path(re.search(r"report: (\S+\.md)", done.stdout)[1])  # type: ignore[index]
    assert path.exists()
    report = path.read_text()
    assert "### Performance Test Report: `demo-shop`" in report
    # From a real profile of the shop under load: the function and the query pattern.
    assert "`recent_orders`" in report
    assert "SELECT product_id, quantity FROM order_items WHERE order_id = ?" in report
    assert "N+1 query pattern" in report
    # Without a terminal the report is printed as written: every table row whole, none cut.
    assert "…" not in done.stdout
    rows = [line for line in report.splitlines() if line.startswith("|")]
    assert rows
    assert all(row in done.stdout.splitlines() for row in rows)


def test_the_demo_against_an_unreachable_service_says_so_in_one_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "demo", "--api", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 2
    assert "Traceback" not in done.stdout + done.stderr
    assert (
        "cannot reach perf-agent at http://127.0.0.1:9 (ConnectError: [Errno 111] Connection "
        "refused)" in done.stdout
    )
    assert len(done.stdout.strip().splitlines()) == 2  # the demo shop's line, then the error
