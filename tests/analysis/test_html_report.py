"""The HTML report: self-contained, escaped, and its charts really render in Chromium."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from httpx import AsyncClient
from PIL import Image
from sqlalchemy.ext.asyncio import AsyncSession

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


async def test_the_targets_cpu_is_charted_when_the_worker_sampled_it(
    client: AsyncClient, session: AsyncSession
) -> None:
    plan = await make_plan(session)
    run = await make_run(session, plan, results=[result("*", p95=100)])
    await add_seconds(session, run, {"list_orders": [20.0] * 10}, cpu=[30.0 + i for i in range(10)])
    body = (await client.post(f"{API}/analyse", json={"run_id": str(run.id)})).json()

    html = (await client.get(body["links"]["report_html"])).text

    assert html.count("<svg") == 5
    assert "Target CPU" in html
    assert body["system_metrics"]["local"]["series"]["cpu_percent"]["max"] == 39.0
