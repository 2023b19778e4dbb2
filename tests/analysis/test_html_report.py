"""The HTML report: self-contained, escaped, and its charts really render in Chromium."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import uuid
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient
from PIL import Image
from sqlalchemy.ext.asyncio import AsyncSession

from app.analysis.html import inline_code, render_html
from app.models import Analysis, Plan, Run, RunResult
from tests.builders import API, add_seconds, make_plan, make_run, result

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
P95_ORANGE = (217, 119, 6)
KNEE_RED = (185, 28, 28)
BASELINE_GREY = (107, 114, 128)


async def report_of_a_ramp_that_saturates(client: AsyncClient, session: AsyncSession) -> str:
    plan = await make_plan(
        session,
        name="checkout <script>alert(1)</script>",
        load={"profile": "ramp", "stages": [{"duration": "40s", "target": 40}]},
    )
    before = await make_run(
        session, plan, results=[result("*", p95=100), result("list_orders", p95=100)]
    )
    await add_seconds(session, before, {"list_orders": [20.0 + i % 3 for i in range(40)]})
    after = await make_run(
        session, plan, results=[result("*", p95=160), result("list_orders", p95=160)]
    )
    # Flat up to 20 VUs, then p95 doubles and climbs with every VU: the knee is at 21.
    p95s = [20.0 + i % 3 if i < 20 else 20.0 * (i / 10) for i in range(40)]
    await add_seconds(session, after, {"list_orders": p95s}, vus=list(range(1, 41)))
    analysis = await client.post(
        f"{API}/analyse", json={"run_id": str(after.id), "baseline_run_ids": [str(before.id)]}
    )
    assert analysis.status_code == 201, analysis.text
    body = analysis.json()
    assert body["saturation"]["knee_load"] == 21
    response = await client.get(body["links"]["report_html"])
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    return response.text


async def test_the_html_report_is_self_contained_and_escapes_what_users_wrote(
    client: AsyncClient, session: AsyncSession
) -> None:
    html = await report_of_a_ramp_that_saturates(client, session)

    assert html.count("<svg") == 4
    assert "<script>" not in html
    assert "checkout &lt;script&gt;" in html
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")  # nothing fetched
    assert "baseline p95" in html
    assert "knee: 21 VUs" in html
    assert "saturation" not in html or "Latency grows with load" in html


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt install chromium)")
async def test_the_charts_render_in_headless_chromium(
    client: AsyncClient, session: AsyncSession, tmp_path: Path
) -> None:
    page = tmp_path / "report.html"
    page.write_text(await report_of_a_ramp_that_saturates(client, session))
    shot = tmp_path / "report.png"

    assert CHROMIUM is not None
    await asyncio.to_thread(
        subprocess.run,
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--window-size=960,1300", f"--screenshot={shot}", page.as_uri()],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip

    image = Image.open(shot).convert("RGB")
    if keep := os.environ.get("PERF_AGENT_KEEP_SCREENSHOT"):
        image.save(keep)
    assert image.size == (960, 1300)
    pixels = list(image.get_flattened_data())  # type: ignore[arg-type]

    def near(color: tuple[int, int, int]) -> int:
        return sum(
            1 for p in pixels if all(abs(a - b) <= 24 for a, b in zip(p, color, strict=True))
        )

    # The p95 line, the dashed baseline and the knee marker are drawn, not just the page.
    assert near(P95_ORANGE) > 300
    assert near(BASELINE_GREY) > 150
    assert near(KNEE_RED) > 100
    assert len(set(pixels)) > 50


async def report_with_cpu(client: AsyncClient, session: AsyncSession) -> tuple[str, Any]:
    plan = await make_plan(session)
    run = await make_run(session, plan, results=[result("*", p95=100)])
    await add_seconds(session, run, {"list_orders": [20.0] * 10}, cpu=[30.0 + i for i in range(10)])
    body = (await client.post(f"{API}/analyse", json={"run_id": str(run.id)})).json()
    return (await client.get(body["links"]["report_html"])).text, body


async def test_the_targets_cpu_is_charted_when_the_worker_sampled_it(
    client: AsyncClient, session: AsyncSession
) -> None:
    html, body = await report_with_cpu(client, session)

    assert html.count("<svg") == 5
    assert "Target CPU" in html
    assert body["system_metrics"]["local"]["series"]["cpu_percent"]["max"] == 39.0


# -- reading the page back -------------------------------------------------------------------


class Tables(HTMLParser):
    """Every table as rows of cells: (tag, classes, text)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[tuple[str, set[str], str]]]] = []
        self.cell: list[Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("th", "td") and self.tables:
            self.cell = [tag, set((dict(attrs).get("class") or "").split()), ""]

    def handle_endtag(self, tag: str) -> None:
        if tag in ("th", "td") and self.cell is not None:
            self.tables[-1][-1].append((self.cell[0], self.cell[1], self.cell[2].strip()))
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell[2] += data


def tables(html: str) -> list[list[list[tuple[str, set[str], str]]]]:
    parser = Tables()
    parser.feed(html)
    return parser.tables


# -- the defects a new user reported (issue 9, item 16) --------------------------------------


async def test_numeric_headers_are_right_aligned_over_their_numbers_and_p90_is_there(
    client: AsyncClient, session: AsyncSession
) -> None:
    html = await report_of_a_ramp_that_saturates(client, session)

    assert re.search(r"th\.n, td\.n \{ text-align: right;", html)
    found = tables(html)
    assert len(found) == 3  # objectives, endpoints, against the baseline
    for table in found:
        header, *rows = table
        assert all(tag == "th" for tag, _, _ in header)
        for column, (_, classes, name) in enumerate(header):
            numeric = {"n" in row[column][1] for row in rows}
            assert numeric == {"n" in classes}, (name, numeric, classes)
    endpoints = next(t for t in found if t[0][0][2] == "Endpoint")
    assert [name for _, _, name in endpoints[0]] == [
        "Endpoint", "Requests", "RPS", "Errors", "p50", "p90", "p95", "p99", "max"
    ]  # fmt: skip
    row = next(r for r in endpoints[1:] if r[0][2] == "list_orders")
    assert [text for _, _, text in row[4:7]] == ["80.0 ms", "144.0 ms", "160.0 ms"]


async def test_findings_show_code_spans_as_code_not_backticks(
    client: AsyncClient, session: AsyncSession
) -> None:
    html = await report_of_a_ramp_that_saturates(client, session)

    findings = html[html.index("<h2>Findings</h2>") :]
    assert "`" not in findings
    assert "<code>list_orders</code> regressed against the baseline" in findings
    assert "→ Compare what changed in <code>list_orders</code> since" in findings


def test_code_spans_are_escaped_inside_and_out() -> None:
    text = "`<img src=x onerror=alert(1)>` is slow & `a&b`, a lone ` stays text"

    assert str(inline_code(text)) == (
        "<code>&lt;img src=x onerror=alert(1)&gt;</code> is slow &amp; <code>a&amp;b</code>, "
        "a lone ` stays text"
    )
    assert str(inline_code(None)) == ""
    assert str(inline_code("<b>")) == "&lt;b&gt;"


def offline_report(findings: list[dict[str, Any]], title_: str = "checkout") -> str:
    """The page rendered from objects alone (no database): what an analysis row holds."""
    analysis = Analysis(
        id=uuid.uuid4(), run_id=uuid.uuid4(), verdict="pass", warnings=[], narrative=None,
        narrative_meta={"status": "not_configured"}, slo_results=[], comparisons=[],
        baseline_run_ids=[], saturation=None, findings=findings,
    )  # fmt: skip
    when = datetime(2026, 11, 25, tzinfo=UTC)
    return render_html(
        analysis=analysis,
        plan=Plan(id=uuid.uuid4(), name=title_, version=1),
        run=Run(id=uuid.uuid4(), plan_version=1, started_at=when, created_at=when),
        results=[RunResult(endpoint="*", requests=10, failures=0, rps=1.0, error_rate=0.0)],
        series=[],
        baseline_series=None,
    )


def test_a_finding_cannot_inject_html_through_a_code_span() -> None:
    html = offline_report(
        [{"kind": "x", "severity": "warning", "summary": "`<script>alert(1)</script>` is slow",
          "recommendation": "Look at `</div><b>`"}]
    )  # fmt: skip

    assert "<script>" not in html
    assert "<b>" not in html
    assert "<code>&lt;script&gt;alert(1)&lt;/script&gt;</code> is slow." in html
    assert "→ Look at <code>&lt;/div&gt;&lt;b&gt;</code>" in html
