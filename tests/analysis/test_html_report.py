"""The HTML report: self-contained, escaped, and its charts really render in Chromium."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import itertools
import json
import math
import os
import re
import shutil
import subprocess
import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from httpx import AsyncClient
from PIL import Image
from playwright.async_api import Route, async_playwright
from sqlalchemy.ext.asyncio import AsyncSession

from app.analysis import charts
from app.analysis import html as html_module
from app.analysis.html import inline_code, render_html
from app.analysis.repository import EndpointTimeline, Second
from app.core import vendor
from app.models import Analysis, Plan, Run, RunHistogram, RunResult, RunSample
from app.runs import archive
from app.runs.histogram import Histogram
from app.runs.live import LiveMetrics
from app.runs.repository import RunRepository
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
    assert [attrs.get("id") for attrs, _ in scripts(html)] == [None, "report-data", None]
    assert "checkout &lt;script&gt;" in html
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")  # nothing fetched
    assert not re.search(r"<(link|img|iframe|object|embed)\b|\bsrc=|@import|url\(", html)
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

SVG = "{http://www.w3.org/2000/svg}"


def svgs(html: str) -> list[ET.Element]:
    return [ET.fromstring(m) for m in re.findall(r"<svg\b.*?</svg>", html, re.DOTALL)]


def title(svg: ET.Element) -> str:
    node = svg.find(f"{SVG}text[@class='title']")
    assert node is not None
    assert node.text is not None
    return node.text


def chart(html: str, name: str) -> ET.Element:
    return next(svg for svg in svgs(html) if title(svg).startswith(name))


def x_ticks(svg: ET.Element) -> list[tuple[float, str]]:
    return [
        (float(t.attrib["x"]), t.text or "")
        for t in svg.iter(f"{SVG}text")
        if "xtick" in t.attrib.get("class", "").split()
    ]


def y_ticks(svg: ET.Element) -> list[float]:
    return [
        float((t.text or "").replace(",", ""))
        for t in svg.iter(f"{SVG}text")
        if "ytick" in t.attrib.get("class", "").split()
    ]


def lines(svg: ET.Element) -> list[list[tuple[float, float]]]:
    """Each polyline's points (x, y) in pixels."""
    return [
        [(float(x), float(y)) for x, y in (p.split(",") for p in line.attrib["points"].split())]
        for line in svg.iter(f"{SVG}polyline")
    ]


def seconds_of(label: str) -> int:
    """``45s``, ``1m30s``, ``2m``, ``1h``, ``1h05m`` → seconds."""
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", label)
    assert label
    assert match is not None, label
    hours, minutes, secs = (int(g) if g else 0 for g in match.groups())
    return hours * 3600 + minutes * 60 + secs


NICE_STEPS = {1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200}


def assert_nice_time_axis(ticks: list[tuple[float, str]]) -> int:
    """Labels at exact multiples of one nice step, evenly spaced on the page; the step."""
    values = [seconds_of(label) for _, label in ticks]
    assert 3 <= len(values) <= charts.MAX_TIME_TICKS, values
    steps = {b - a for a, b in itertools.pairwise(values)}
    assert len(steps) == 1, values
    step = steps.pop()
    assert step in NICE_STEPS, values
    assert all(v % step == 0 for v in values), values
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(ticks)]
    assert max(gaps) - min(gaps) <= 0.2, gaps  # (positions are rounded to 0.1 px)
    return step


class Scripts(HTMLParser):
    """Every script element: its attributes and its text."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[dict[str, str | None], str]] = []
        self.inside = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self.found.append((dict(attrs), ""))
            self.inside = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self.inside = False

    def handle_data(self, data: str) -> None:
        if self.inside:
            attrs, text = self.found[-1]
            self.found[-1] = (attrs, text + data)


def scripts(html: str) -> list[tuple[dict[str, str | None], str]]:
    parser = Scripts()
    parser.feed(html)
    return parser.found


def island(html: str) -> dict[str, Any]:
    """The page's chart data, read as a browser reads it: the JSON island's text."""
    (text,) = [t for a, t in scripts(html) if a.get("id") == "report-data"]
    data: dict[str, Any] = json.loads(text)
    return data


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


# -- a run as k6 streams it --------------------------------------------------------------------

T0 = 1_795_000_000.4  # k6 starts 0.4 s into a wall-clock second


def _stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _point(metric: str, epoch: float, value: float, name: str = "list_orders") -> bytes:
    data: dict[str, Any] = {"time": _stamp(epoch), "value": value}
    if metric == "http_req_duration":
        data["tags"] = {"name": name, "expected_response": "true"}
    # Compact, keys in k6's order: the live path tells lines apart by their first bytes.
    line = {"metric": metric, "type": "Point", "data": data}
    return json.dumps(line, separators=(",", ":")).encode()


def k6_stream_of_a_run_cut_short() -> list[bytes]:
    """14.9 s of k6: two seconds of 0 VUs (a ramp's start: no responses), then 5 VUs with 50
    responses a second at about 40 ms, and k6 stopping 0.3 s into its last wall second, where
    only the 3 responses still in flight — about a second each — arrive."""
    lines = []
    start = int(T0)
    for i in range(14):
        second = start + i
        lines.append(_point("vus", max(T0, second + 0.01), 0 if i < 2 else 5))
        if i >= 2:
            lines += [
                _point("http_req_duration", second + (k + 0.5) / 50, 38.0 + k % 5)
                for k in range(50)
            ]
    lines += [_point("http_req_duration", start + 14 + 0.1 * k, 990.0 + k) for k in range(3)]
    return lines


async def report_of_a_run_cut_short(client: AsyncClient, session: AsyncSession) -> str:
    plan = await make_plan(session)
    run = await make_run(
        session, plan, results=[result("*", p95=42), result("list_orders", p95=42)]
    )
    live = LiveMetrics(["list_orders"])
    live.feed(b"\n".join(k6_stream_of_a_run_cut_short()) + b"\n")
    live.finish()
    samples = [r for r in live.drain() if r["type"] == "sample"]
    for record in samples:  # as runs.spool stores them
        sample = record["sample"]
        session.add(
            RunSample(
                run_id=run.id,
                at=datetime.fromisoformat(record["at"]),
                vus=sample["vus"],
                requests=sample["requests"],
                failures=sample["failures"],
                data=sample,
            )
        )
    await session.flush()
    # What the live path made of it: 15 seconds; the last one, k6's final 0.3 s, is the spike.
    assert [s["sample"]["elapsed_s"] for s in samples] == list(range(15))
    assert [s["sample"]["requests"] for s in samples] == [0, 0] + [50] * 12 + [3]
    assert samples[-1]["sample"]["latency_ms"]["p50"] > 900
    body = (await client.post(f"{API}/analyse", json={"run_id": str(run.id)})).json()
    response = await client.get(body["links"]["report_html"])
    assert response.status_code == 200
    return response.text


# -- the defects a new user reported (issue 9, items 11 and 16) --------------------------------


async def test_the_last_partial_second_draws_no_spike(
    client: AsyncClient, session: AsyncSession
) -> None:
    html = await report_of_a_run_cut_short(client, session)

    latency = chart(html, "Latency")
    assert max(y_ticks(latency)) < 100  # the axis is sized for ~40 ms, not for ~1 s
    plot_top = min(y for line in lines(latency) for _, y in line)
    assert plot_top >= charts.TOP  # and no line is clipped at its ceiling
    for svg in svgs(html):
        assert seconds_of(x_ticks(svg)[-1][1]) <= 13, title(svg)
    throughput = lines(chart(html, "Throughput"))[0]
    assert len(throughput) == 14  # seconds 0‥13: the partial 14th is not drawn
    assert len({y for _, y in throughput[2:]}) == 1  # flat at 50/s to the end, no drop to 3


async def test_every_chart_has_one_time_axis_and_each_line_starts_with_its_data(
    client: AsyncClient, session: AsyncSession
) -> None:
    html = await report_of_a_run_cut_short(client, session)

    axes = {title(svg): x_ticks(svg) for svg in svgs(html)}
    assert len(axes) == 4
    assert len({tuple(ticks) for ticks in axes.values()}) == 1, axes
    (left, first), (right, last) = axes["Throughput"][0], axes["Throughput"][-1]
    assert (left, first) == (charts.LEFT, "0s")

    def x_of(second: float) -> float:  # the axis starts at 0 s
        return left + second * (right - left) / seconds_of(last)

    # Throughput is 0 in the two seconds before the first response; latency has none there.
    assert lines(chart(html, "Throughput"))[0][0][0] == pytest.approx(charts.LEFT)
    for line in lines(chart(html, "Latency")):
        assert line[0][0] == pytest.approx(x_of(2), abs=0.1)


async def test_time_ticks_are_nice_steps_at_exact_multiples(
    client: AsyncClient, session: AsyncSession
) -> None:
    html = await report_of_a_run_cut_short(client, session)  # seconds 0‥13

    for svg in svgs(html):
        assert assert_nice_time_axis(x_ticks(svg)) == 2
        assert [label for _, label in x_ticks(svg)] == ["0s", "2s", "4s", "6s", "8s", "10s", "12s"]


@pytest.mark.parametrize(
    ("x0", "x1"), [(0, 1), (0, 5), (0, 11), (0, 13), (0, 39), (0, 59), (0, 61), (0, 119),
                   (0, 299), (0, 900), (0, 3599), (0, 3 * 3600 + 7), (0, 26 * 3600), (7, 93)],
)  # fmt: skip
def test_a_time_axis_of_any_length_gets_a_nice_step(x0: int, x1: int) -> None:
    ticks = charts.time_ticks(x0, x1)
    step = charts.time_step(x1 - x0)

    assert step in NICE_STEPS or step % charts.DAY == 0
    assert 2 <= len(ticks) <= charts.MAX_TIME_TICKS
    assert all(t % step == 0 and x0 <= t <= x1 for t in ticks)
    assert ticks == list(range(ticks[0], ticks[-1] + 1, step))
    assert ticks[0] - x0 < step  # the whole axis is ticked
    assert x1 - ticks[-1] < step
    assert [seconds_of(charts.time_label(t)) for t in ticks] == ticks


def test_time_labels_read_as_durations() -> None:
    assert [charts.time_label(s) for s in (0, 45, 60, 90, 600, 3600, 5400, 3900)] == [
        "0s", "45s", "1m", "1m30s", "10m", "1h", "1h30m", "1h05m"
    ]  # fmt: skip


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

    findings = html[html.index("<h2>Findings</h2>") : html.index("<script")]
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

    assert len(scripts(html)) == 3  # uPlot, the data, the drawing: none from the finding
    assert "<script>alert" not in html
    assert "<b>" not in html
    assert "<code>&lt;script&gt;alert(1)&lt;/script&gt;</code> is slow." in html
    assert "→ Look at <code>&lt;/div&gt;&lt;b&gt;</code>" in html


def legend_boxes(svg: ET.Element) -> list[tuple[float, float]]:
    """Each legend entry's (first x, baseline y), as drawn."""
    out = []
    for group in svg.iter(f"{SVG}g"):
        if group.attrib.get("class") == "legend":
            line = group.find(f"{SVG}line")
            text = group.find(f"{SVG}text")
            assert line is not None
            assert text is not None
            out.append((float(line.attrib["x1"]), float(text.attrib["y"])))
    return out


def test_a_legend_that_does_not_fit_beside_its_title_gets_a_row_of_its_own() -> None:
    series = [charts.Series(n, "#000", [(0, 1.0), (10, 2.0)]) for n in ("p50", "p95", "p99")]
    short = svgs(charts.render(charts.Chart("Latency", "ms", series)))[0]
    long = svgs(charts.render(charts.Chart("A title " * 12, "ms", series)))[0]

    assert {y for _, y in legend_boxes(short)} == {18.0}  # the title's row, right-aligned
    assert min(x for x, _ in legend_boxes(short)) > charts.WIDTH / 2
    assert {y for _, y in legend_boxes(long)} == {18.0 + charts.LEGEND_ROW}
    assert int(long.attrib["height"]) == charts.HEIGHT + charts.LEGEND_ROW
    assert min(y for line in lines(long) for _, y in line) >= charts.TOP + charts.LEGEND_ROW


MEASURE = """<script>
const out = [];
const box = (el) => { const b = el.getBBox(); return [b.x, b.y, b.x + b.width, b.y + b.height]; };
for (const svg of document.querySelectorAll("svg.chart")) {
  out.push({title: box(svg.querySelector(".title")), width: svg.width.baseVal.value,
            legend: [...svg.querySelectorAll(".legend")].map(box)});
}
const pre = document.createElement("pre"); pre.id = "boxes"; pre.textContent = JSON.stringify(out);
document.body.appendChild(pre);
</script>"""


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt install chromium)")
async def test_no_legend_overlaps_a_title_as_chromium_lays_them_out(
    client: AsyncClient, session: AsyncSession, tmp_path: Path
) -> None:
    html, _ = await report_with_cpu(client, session)
    many = [charts.Series(n, "#000", [(0, 1.0), (9, 2.0)]) for n in ("p50", "p95", "p99", "x y")]
    extra = charts.render(charts.Chart("Target CPU (its processes) " * 3, "%", many))
    page = tmp_path / "measure.html"
    # The static SVG charts, as a page without scripting shows them: this copy of the report
    # has none of its scripts (nor its CSP), but one to ask Chromium where text went.
    static = re.sub(r"<script\b.*?</script>", "", html, flags=re.DOTALL)
    static = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", static)
    page.write_text(static.replace("</body>", extra + MEASURE + "</body>"))

    assert CHROMIUM is not None
    done = await asyncio.to_thread(
        subprocess.run,
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
        check=True, capture_output=True, timeout=60, text=True,
    )  # fmt: skip

    found = re.search(r'<pre id="boxes">(.*?)</pre>', done.stdout, re.DOTALL)
    assert found is not None, done.stdout[-2000:]
    boxes = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert len(boxes) == 6

    def overlap(a: list[float], b: list[float]) -> bool:
        return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]

    for chart_boxes in boxes:
        legend = chart_boxes["legend"]
        assert legend
        for entry in legend:
            assert not overlap(chart_boxes["title"], entry), chart_boxes
            assert entry[0] >= 0, chart_boxes
            assert entry[2] <= chart_boxes["width"], chart_boxes
        for a, b in itertools.pairwise(legend):
            assert not overlap(a, b), chart_boxes


# -- the interactive charts (issue 15, item 7) -------------------------------------------------

HOSTILE = "</script><img src=x onerror=alert(1)>"
SECONDS = 41  # the last one, cut short, is left out of every chart: 0‥39 drawn
GAP = range(10, 15)  # seconds the hostile endpoint had no response in


def _figures(p95: float, requests: int, failures: int = 0) -> dict[str, Any]:
    return {
        "requests": requests,
        "failures": failures,
        "latency_ms": {"p50": p95 / 2, "p90": p95 * 0.9, "p95": p95, "p99": p95 * 1.2},
    }


async def add_endpoint_seconds(
    session: AsyncSession, run: Run, p95s: dict[str, list[float | None]], vus: list[int]
) -> None:
    """Per-second samples as the live path stores them; an endpoint with no response in a
    second (``None``) is absent from it, as in k6's stream."""
    start = datetime(2026, 11, 25, tzinfo=UTC)
    total = 0
    for i in range(len(vus)):
        here = {name: v[i] for name, v in p95s.items() if v[i] is not None}
        requests = 20 * len(here)
        total += requests
        failures = 1 if HOSTILE in here else 0
        session.add(
            RunSample(
                run_id=run.id,
                at=start + timedelta(seconds=i),
                vus=vus[i],
                requests=requests,
                failures=failures,
                data={
                    "elapsed_s": i,
                    "vus": vus[i],
                    **_figures(max(v for v in here.values() if v is not None), requests, failures),
                    "endpoints": {
                        name: _figures(v, 20, 1 if name == HOSTILE else 0)
                        for name, v in here.items()
                        if v is not None
                    },
                    "total_requests": total,
                },
            )
        )
    await session.flush()


async def add_window(session: AsyncSession, run: Run, endpoint: str, values: list[float]) -> None:
    histogram = Histogram()
    histogram.record(np.array(values))
    session.add(
        RunHistogram(
            run_id=run.id, attempt=1, endpoint=endpoint, at=datetime(2026, 11, 25, tzinfo=UTC),
            start_s=0, seconds=SECONDS, requests=len(values), failures=0, count=histogram.total,
            sum_ms=histogram.sum_ms, min_ms=histogram.min_ms, max_ms=histogram.max_ms,
            counts=histogram.encode(),
        )
    )  # fmt: skip
    await session.flush()


async def runs_with_endpoints(session: AsyncSession) -> tuple[Run, Run]:
    """A baseline and a ramp to 41 VUs that saturates (p95 flat up to 20 VUs, then climbing
    with every VU: the knee is found at 23), over two endpoints, one of them named to break
    out of a script element and silent for five seconds; each with its merged histograms."""
    plan = await make_plan(
        session, load={"profile": "ramp", "stages": [{"duration": "41s", "target": 41}]}
    )
    before = await make_run(
        session, plan, results=[result(e, p95=100) for e in ("*", "list_orders", HOSTILE)]
    )
    flat: list[float | None] = [20.0 + i % 3 for i in range(SECONDS)]
    await add_endpoint_seconds(
        session, before, {"list_orders": flat, HOSTILE: [30.0] * SECONDS}, [20] * SECONDS
    )
    after = await make_run(
        session, plan, results=[result(e, p95=160) for e in ("*", "list_orders", HOSTILE)]
    )
    ramp: list[float | None] = [20.0 + i % 3 if i < 20 else 20.0 * (i / 10) for i in range(SECONDS)]
    hostile: list[float | None] = [None if i in GAP else 30.0 + i for i in range(SECONDS)]
    await add_endpoint_seconds(
        session, after, {"list_orders": ramp, HOSTILE: hostile}, list(range(1, SECONDS + 1))
    )
    rng = np.random.default_rng(7)
    for run, scale in ((before, 20.0), (after, 35.0)):
        for endpoint in ("list_orders", HOSTILE):
            values = rng.lognormal(np.log(scale), 0.4, 2000).tolist()
            await add_window(session, run, endpoint, values)
        await add_window(session, run, "*", rng.lognormal(np.log(scale), 0.4, 4000).tolist())
    return before, after


async def report_with_endpoints(client: AsyncClient, session: AsyncSession) -> str:
    before, after = await runs_with_endpoints(session)
    analysis = await client.post(
        f"{API}/analyse", json={"run_id": str(after.id), "baseline_run_ids": [str(before.id)]}
    )
    assert analysis.status_code == 201, analysis.text
    assert analysis.json()["saturation"]["knee_load"] == 23
    response = await client.get(analysis.json()["links"]["report_html"])
    assert response.status_code == 200
    return response.text


def sha256_source(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


async def test_the_report_inlines_uplot_credits_it_and_lets_only_its_own_scripts_run(
    client: AsyncClient, session: AsyncSession
) -> None:
    html = await report_with_endpoints(client, session)

    (_, uplot), (data, _), (_, code) = scripts(html)
    assert uplot == vendor.read("uplot.iife.min.js")
    assert data == {"type": "application/json", "id": "report-data"}
    assert "new uPlot(" in code
    assert vendor.read("uplot.min.css") in html
    assert "uPlot 1.6.32" in html
    assert "Copyright (c) 2022 Leon Sorokin" in html  # its MIT licence, in a comment
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', html)
    assert csp is not None
    # Every inline script's hash: nothing else may run, nothing may load.
    policy = {d.split()[0]: d.split()[1:] for d in unescape(csp.group(1)).split("; ")}
    assert policy["default-src"] == ["'none'"]
    assert policy["script-src"] == [
        sha256_source(uplot),
        sha256_source(code),
    ]
    assert html.index("Content-Security-Policy") < html.index("<style")
    assert html.count("<svg") == 4  # the static charts stay, for print and no script
    assert '<div class="static-charts">' in html


def test_the_data_island_round_trips_whatever_the_names() -> None:
    names = [HOSTILE, "<!-- x", "a\u2028b", 'q"uote\\', "é"]
    x = list(range(6))
    seconds = [
        Second(i, 2, 10, 0, 5.0 + i, 10.0 + i / 3, None if i == 2 else 20.0, None, 0.0) for i in x
    ]
    timelines = {
        name: (x, [10] * 6, [0] * 6, [1.0] * 6, [2.123456] * 6, [math.nan] * 6) for name in names
    }
    expected = html_module.chart_data(seconds, None, None, timelines)
    page = render_html(
        analysis=offline_analysis(), plan=Plan(id=uuid.uuid4(), name="p", version=1),
        run=offline_run(), results=[], series=seconds, baseline_series=None,
        timelines=timelines,
    )  # fmt: skip

    assert island(page) == json.loads(json.dumps(expected))
    assert [e["name"] for e in island(page)["endpoints"]] == sorted(names)
    assert island(page)["x"] == [0, 1, 2, 3, 4]  # the last second is not drawn
    assert island(page)["overall"]["p99"][2] is None
    assert island(page)["endpoints"][0]["p95"] == [2.123] * 5  # four significant digits
    assert island(page)["endpoints"][0]["p99"] == [None] * 5  # NaN is no JSON
    text = next(t for a, t in scripts(page) if a.get("id") == "report-data")
    assert "<" not in text
    assert "\\u003c/script>" in text


async def test_a_hostile_endpoint_name_stays_data(
    client: AsyncClient, session: AsyncSession
) -> None:
    html = await report_with_endpoints(client, session)

    assert "<img" not in html
    assert "</script><img" not in html
    assert len(scripts(html)) == 3
    assert HOSTILE in [e["name"] for e in island(html)["endpoints"]]
    assert "&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in html  # the endpoints table


async def test_each_endpoint_is_drawn_on_the_runs_time_axis_with_its_distribution(
    client: AsyncClient, session: AsyncSession
) -> None:
    data = island(await report_with_endpoints(client, session))

    x = data["x"]
    assert x == list(range(SECONDS - 1))  # the baseline's and the run's whole seconds
    assert data["baseline"] is True
    assert data["knee"] == {"x": 22, "label": "knee: 23 VUs"}  # the first second at 23 VUs
    overall = data["overall"]
    assert overall["vus"] == list(range(1, SECONDS))
    assert overall["rps"][9] == 40
    assert overall["rps"][10] == 20  # one endpoint silent
    assert len(overall["base_p95"]) == len(x)
    assert "cpu" not in overall
    endpoints = {e["name"]: e for e in data["endpoints"]}
    assert sorted(endpoints) == sorted(["list_orders", HOSTILE])
    hostile = endpoints[HOSTILE]
    assert [i for i, v in enumerate(hostile["p95"]) if v is None] == list(GAP)
    assert hostile["p95"][20] == 50.0
    assert hostile["errors"][20] == 1
    assert hostile["errors"][10] is None
    assert hostile["base_p95"] == [30.0] * len(x)
    orders = endpoints["list_orders"]
    assert orders["p95"][30] == 60.0
    assert orders["p99"][30] == 72.0
    assert "errors" not in orders  # none failed: the page draws zeros
    assert set(data["distributions"]) == {"*", "list_orders", HOSTILE}
    for found in data["distributions"].values():
        assert len(found["x"]) == len(found["run"]) == len(found["base"])
        assert len(found["x"]) <= html_module.DISTRIBUTION_BINS
        assert sum(found["run"]) == pytest.approx(100, abs=0.1)
        assert sum(found["base"]) == pytest.approx(100, abs=0.1)
        assert found["x"] == sorted(found["x"])
        peak = found["x"][found["run"].index(max(found["run"]))]
        base_peak = found["x"][found["base"].index(max(found["base"]))]
        assert 25 < peak < 45  # the run's mode above the baseline's
        assert 14 < base_peak < 26


async def test_a_packed_run_draws_as_it_did_from_its_rows(
    client: AsyncClient, session: AsyncSession
) -> None:
    before, after = await runs_with_endpoints(session)
    body = (
        await client.post(
            f"{API}/analyse", json={"run_id": str(after.id), "baseline_run_ids": [str(before.id)]}
        )
    ).json()
    from_rows = island((await client.get(body["links"]["report_html"])).text)
    repo = RunRepository(session)
    for run in (before, after):
        rows = await repo.sample_rows(run.id)
        windows = [
            w for name in ("*", "list_orders", HOSTILE) for w in await repo.histograms(run.id, name)
        ]
        await repo.store_archive(
            run.id, samples=archive.pack_samples(rows), windows=archive.pack_windows(windows),
            sample_ids=[r.id for r in rows], window_ids=[w.id for w in windows],  # type: ignore[union-attr]
        )  # fmt: skip
        assert await repo.sample_rows(run.id) == []

    packed = island((await client.get(body["links"]["report_html"])).text)

    # The same seconds, names, counts and shares; latencies as the archive keeps them (on a
    # 0.2 % grid: within 0.1 %, and four significant digits on the page).
    def same(a: Any, b: Any, where: str = "") -> None:
        if isinstance(a, dict):
            assert a.keys() == b.keys(), where
            for key in a:
                same(a[key], b[key], f"{where}.{key}")
        elif isinstance(a, list):
            assert len(a) == len(b), where
            for i, (u, v) in enumerate(zip(a, b, strict=True)):
                same(u, v, f"{where}[{i}]")
        elif isinstance(a, float) and isinstance(b, int | float):
            assert a == pytest.approx(b, rel=1.5e-3), where
        else:
            assert a == b, where

    same(packed, from_rows)
    assert packed["distributions"] == from_rows["distributions"]  # the windows are exact


def offline_analysis(**changes: Any) -> Analysis:
    fields: dict[str, Any] = dict(
        id=uuid.uuid4(), run_id=uuid.uuid4(), verdict="pass", warnings=[], narrative=None,
        narrative_meta={"status": "not_configured"}, slo_results=[], comparisons=[],
        baseline_run_ids=[], saturation=None, findings=[],
    )  # fmt: skip
    return Analysis(**{**fields, **changes})


def offline_run() -> Run:
    when = datetime(2026, 11, 25, tzinfo=UTC)
    return Run(id=uuid.uuid4(), plan_version=1, started_at=when, created_at=when)


def long_run_report(minutes: int = 30, endpoints: int = 20) -> str:
    """The page of a ``minutes``-long run of ``endpoints`` endpoints against a baseline as
    long, noisy figures in every second (no database: the repository's shapes)."""
    rng = np.random.default_rng(3)
    n = minutes * 60
    x = list(range(n))

    def seconds() -> list[Second]:
        p95 = rng.lognormal(np.log(80), 0.2, n)
        return [
            Second(i, 50, int(rng.integers(900, 1100)), int(rng.integers(0, 3)),
                   round(p95[i] / 2, 3), round(p95[i], 3), round(p95[i] * 1.3, 3),
                   {"cpu_percent": round(float(rng.uniform(20, 90)), 1)}, 0.0)
            for i in x
        ]  # fmt: skip

    def timelines() -> dict[str, EndpointTimeline]:
        out: dict[str, EndpointTimeline] = {}
        for k in range(endpoints):
            p95 = rng.lognormal(np.log(20 + 5 * k), 0.25, n)
            out[f"endpoint_{k:02d}"] = (
                x, rng.integers(40, 60, n).tolist(), rng.integers(0, 2, n).tolist(),
                np.round(p95 / 2, 3).tolist(), np.round(p95, 3).tolist(),
                np.round(p95 * 1.3, 3).tolist(),
            )  # fmt: skip
        return out

    def histogram(center: float) -> Histogram:
        h = Histogram()
        h.record(rng.lognormal(np.log(center), 0.5, 50_000))
        return h

    names = ["*", *(f"endpoint_{k:02d}" for k in range(endpoints))]
    return render_html(
        analysis=offline_analysis(baseline_run_ids=[str(uuid.uuid4())]),
        plan=Plan(id=uuid.uuid4(), name="long", version=1),
        run=offline_run(),
        results=[RunResult(endpoint=name, requests=10, failures=0, rps=1.0, error_rate=0.0)
                 for name in names],
        series=seconds(), baseline_series=seconds(),
        timelines=timelines(), baseline_timelines=timelines(),
        histograms={name: (histogram(40), histogram(35)) for name in names},
    )  # fmt: skip


def test_a_30_minute_20_endpoint_report_stays_a_reasonable_size() -> None:
    html = long_run_report()
    size = len(html.encode())
    data = len(next(t for a, t in scripts(html) if a.get("id") == "report-data"))
    svg = sum(len(m) for m in re.findall(r"<svg\b.*?</svg>", html, re.DOTALL))
    uplot = len(vendor.read("uplot.iife.min.js"))
    print(  # noqa: T201 (the size is the point: pytest -s shows it)
        f"\n30 min, 20 endpoints: {size / 1e6:.2f} MB (data {data / 1e6:.2f} MB, "
        f"SVG {svg / 1e6:.2f} MB, uPlot {uplot / 1e3:.0f} KB)"
    )

    assert len(island(html)["endpoints"]) == 20
    assert size < 2_500_000


CHROMIUM_BIN = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def coloured(png: bytes, color: tuple[int, int, int], tolerance: int = 24) -> int:
    """Pixels of ``color`` (each channel within ``tolerance``) in a PNG screenshot."""
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int64)
    return int(np.all(np.abs(pixels - np.array(color)) <= tolerance, axis=-1).sum())


@pytest.mark.skipif(
    not CHROMIUM_BIN.exists(), reason="Debian's Chromium is not at /usr/bin/chromium"
)
async def test_the_interactive_charts_draw_offline_hover_zoom_and_print_as_svg(
    client: AsyncClient, session: AsyncSession, tmp_path: Path
) -> None:
    page_file = tmp_path / "report.html"
    page_file.write_text(await report_with_endpoints(client, session))
    requests: list[str] = []
    errors: list[str] = []
    dialogs: list[str] = []
    refused: list[str] = []

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM_BIN), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = await browser.new_page(viewport={"width": 960, "height": 1200})

            async def refuse(route: Route) -> None:  # any request but the page's own file
                if route.request.url == page_file.as_uri():
                    await route.continue_()
                else:
                    requests.append(route.request.url)
                    await route.abort()

            await page.route("**/*", refuse)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("dialog", lambda d: dialogs.append(d.message))
            await page.add_init_script(
                "document.addEventListener('securitypolicyviolation',"
                " (e) => window.__refused = (window.__refused || []).concat([e.blockedURI]));"
            )
            await page.goto(page_file.as_uri())
            await page.wait_for_load_state("load")
            refused = await page.evaluate("window.__refused || []")

            assert await page.evaluate("document.documentElement.classList.contains('js')")
            assert not await page.locator(".static-charts").is_visible()
            plots = page.locator("#charts-overall .uplot")
            assert await plots.count() == 3  # latency, throughput and errors, VUs
            assert await page.locator("#charts-endpoint .uplot").count() == 3
            canvases = page.locator(".uplot canvas")
            assert await canvases.count() == 6
            latency = plots.nth(0)
            shot = await latency.screenshot()
            if keep := os.environ.get("PERF_AGENT_KEEP_SCREENSHOT"):
                (Path(keep).parent / "interactive.png").write_bytes(
                    await page.screenshot(full_page=True)
                )
            assert coloured(shot, P95_ORANGE) > 300  # the p95 line
            assert coloured(shot, BASELINE_GREY) > 150  # the baseline's, dashed
            assert coloured(shot, KNEE_RED) > 100  # the knee
            assert coloured(await plots.nth(2).screenshot(), (8, 145, 178)) > 300  # VUs

            # Hover: the legend follows the cursor, and the other charts' cursors with it.
            over = latency.locator(".u-over")
            box = await over.bounding_box()
            assert box is not None
            p95_value = latency.locator(".u-legend .u-series").nth(2).locator(".u-value")
            values = []
            for share in (0.1, 0.9):
                await page.mouse.move(box["x"] + box["width"] * share, box["y"] + box["height"] / 2)
                values.append(await p95_value.text_content())
            assert values[0] != values[1], values
            assert all(v is not None and v.endswith(" ms") for v in values), values
            vus_value = plots.nth(2).locator(".u-legend .u-series").nth(1).locator(".u-value")
            assert int(await vus_value.text_content() or "0") > 30  # synced at 90 %

            # Drag to zoom: every chart over time follows; a double-click zooms out again.
            vus_time = plots.nth(2).locator(".u-legend .u-series").first.locator(".u-value")

            async def seconds_at_left_edge() -> int:
                await page.mouse.move(box["x"] + 1, box["y"] + box["height"] / 2)
                return seconds_of(await vus_time.text_content() or "")

            assert await seconds_at_left_edge() == 0
            await page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + 20)
            await page.mouse.down()
            await page.mouse.move(box["x"] + box["width"] * 0.75, box["y"] + 20, steps=5)
            await page.mouse.up()
            assert 17 <= await seconds_at_left_edge() <= 22  # the VUs chart starts mid-run
            await page.mouse.dblclick(box["x"] + box["width"] * 0.5, box["y"] + 20)
            assert await seconds_at_left_edge() == 0

            # An endpoint picked in the select: its own series, the hostile name as text.
            select = page.locator("#endpoint-select")
            assert await select.locator("option").all_text_contents() == [
                "all requests", HOSTILE, "list_orders"
            ]  # fmt: skip
            await select.select_option(HOSTILE)
            heading = page.locator("#charts-endpoint .plot h3").first
            assert await heading.text_content() == f"Latency: {HOSTILE}"
            distribution = page.locator("#charts-endpoint .uplot").nth(2)
            assert coloured(await distribution.screenshot(), P95_ORANGE) > 200
            assert coloured(await distribution.screenshot(), BASELINE_GREY) > 100
            assert await page.locator("img").count() == 0

            # On paper: the static SVG charts, not the canvases.
            await page.emulate_media(media="print")
            assert await page.locator(".static-charts").is_visible()
            assert await page.locator(".static-charts svg").count() == 4
            assert await page.locator(".static-charts svg").first.is_visible()
            assert not await plots.first.is_visible()
            assert not await page.locator("#charts-endpoint").is_visible()
        finally:
            await browser.close()

    assert requests == []
    assert errors == []
    assert dialogs == []
    assert refused == []
