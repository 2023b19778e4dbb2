"""The console's acceptance test: one user's journey through /ui in headless Chromium, against
`perf-agent serve` with its worker (real k6 runs) and the demo shop.

Key entry → a plan typed in the editor (its problems listed as it is typed) → dry run →
approval → a live run (its chart growing each second, the stream dropped once and resumed
without losing or repeating a second) → a second run aborted → the first run analysed and a
recommendation accepted (the KPI counts it) → a baseline promoted, another run, its analysis,
the comparison with the baseline and the plan's history.

Debian's /usr/bin/chromium driven by Playwright (never a browser Playwright downloads). Every
request off the service's origin is aborted and recorded, every CSP violation and page error is
recorded, and each test ends by asserting there were none. Each chart is checked drawn: its
element's screenshot must hold a real number of pixels in the console's series colours.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml
from PIL import Image
from playwright.sync_api import Browser, Locator, Page, Route, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from sqlalchemy import make_url

from app.cli import demo_plan, running_server
from app.core import migrate
from app.core.db import normalise_url
from tests.builders import API
from tests.conftest import free_port, live_key

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OWNER = "console-journey@example.com"
SLOW = "recent_orders"  # the demo shop's deliberately slow endpoint: its SLO fails
STEPS = ["list_products", "get_product", "create_order", SLOW]
DURATION_S = 8
# console/src/chart.jsx's PALETTE: the series colours of every chart.
PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04"]
TOLERANCE = 40  # per channel: the middle of an antialiased 1.5 px line stays this close
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"

# Runs in every page before the console: CSP violations go to the test (a binding survives
# navigations), and each response of a run's event stream is teed so the test sees exactly
# which seconds each connection delivered (the console itself dedups them, which would hide
# a resumed stream repeating or skipping one).
INIT_SCRIPT = """
document.addEventListener("securitypolicyviolation",
    (e) => window.__cspViolation(e.effectiveDirective, e.blockedURI));
window.__sse = [];
const originalFetch = window.fetch;
window.fetch = async function (input, init) {
  const response = await originalFetch.call(this, input, init);
  const url = new URL(typeof input === "string" ? input : input.url, location.href);
  if (!url.pathname.endsWith("/stream") || !response.body) return response;
  const headers = (init && init.headers) || {};
  const connection = {path: url.pathname, lastEventId: headers["Last-Event-ID"] || null,
                      seconds: [], ids: [], end: false, broken: false};
  window.__sse.push(connection);
  const [forPage, forTest] = response.body.tee();
  (async () => {
    const reader = forTest.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buffer += value;
      let cut;
      while ((cut = buffer.indexOf("\\n\\n")) >= 0) {
        const frame = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        let kind = "message", data = "";
        for (const line of frame.split("\\n")) {
          if (line.startsWith("event: ")) kind = line.slice(7);
          else if (line.startsWith("data: ")) data += line.slice(6);
          else if (line.startsWith("id: ")) connection.ids.push(line.slice(4));
        }
        if (kind === "sample") connection.seconds.push(JSON.parse(data).elapsed_s);
        if (kind === "end") connection.end = true;
      }
    }
  })().catch(() => { connection.broken = true; });
  return new Response(forPage,
      {status: response.status, statusText: response.statusText, headers: response.headers});
};
"""

pytestmark = [
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="Debian's Chromium is not at /usr/bin/chromium (apt-get install chromium; CI does)",
    ),
    pytest.mark.k6,
    pytest.mark.timeout(90),
]


# -- the service, the shop and the browser ----------------------------------------------------


def _libpq(url: str) -> str:
    return make_url(normalise_url(url)).set(drivername="postgresql").render_as_string(False)


@pytest.fixture(scope="module")
def fresh_database(database_url: str) -> Iterator[str]:
    """A database of this module's own, migrated, on the tests' server: the worker claims only
    this journey's runs and the console lists nothing of other tests."""
    name = f"perf_agent_console_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(_libpq(database_url), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.errors.InsufficientPrivilege:
        pytest.skip("the tests' database server does not let these tests create a database")
    url = normalise_url(
        make_url(normalise_url(database_url)).set(database=name).render_as_string(False)
    )
    try:
        migrate.upgrade(url)
        yield url
    finally:
        with psycopg.connect(_libpq(database_url), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def key(fresh_database: str) -> str:
    return live_key(fresh_database, owner=OWNER)


@pytest.fixture(scope="module")
def service(fresh_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`perf-agent serve` as a user starts it, API and worker, with keys on; two runs at once
    (the second run is aborted while it runs) and a quick heartbeat (which carries aborts)."""
    data = tmp_path_factory.mktemp("console-service")
    port = free_port()
    env = {
        **os.environ,
        "PERF_AGENT_DATABASE_URL": fresh_database,
        "PERF_AGENT_DATA_DIR": str(data),
        "PERF_AGENT_AUTH": "on",
        "PERF_AGENT_MIGRATE_ON_START": "false",
        "PERF_AGENT_WORKER_POLL_INTERVAL_S": "0.2",
        "PERF_AGENT_WORKER_CONCURRENCY": "2",
        "PERF_AGENT_HEARTBEAT_INTERVAL_S": "0.5",
    }
    argv = [sys.executable, "-m", "app.cli", "serve", "--port", str(port)]
    with (
        (data / "service.log").open("wb") as log,
        running_server(
            argv, port, health="/readyz", env=env, stdout=log, stderr=subprocess.STDOUT
        ) as url,
    ):
        yield url


@pytest.fixture(scope="module")
def api(service: str, key: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=service + API, headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as client:
        yield client


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


class Console:
    """One browser context on the console (its key kept in localStorage across the tests) in
    which only the service's own origin answers."""

    def __init__(self, browser: Browser, origin: str) -> None:
        self.origin = origin
        self.aborted: list[str] = []
        self.refused: list[tuple[str, str]] = []
        self.errors: list[str] = []
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.context.route("**/*", self._route)
        self.context.expose_binding(
            "__cspViolation", lambda _source, directive, uri: self.refused.append((directive, uri))
        )
        self.context.add_init_script(INIT_SCRIPT)
        self.page: Page = self.context.new_page()
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.set_default_timeout(20_000)

    def _route(self, route: Route) -> None:
        if route.request.url.startswith(f"{self.origin}/"):
            route.continue_()
        else:
            self.aborted.append(route.request.url)
            route.abort("internetdisconnected")

    def goto(self, path: str) -> None:
        self.page.goto(f"{self.origin}{path}")

    def rendered(self, name: str) -> None:
        self.page.wait_for_selector(f'body[data-rendered="{name}"]', state="attached")
        # The page took every request the boot script sent ahead for it (none went twice):
        # what first.js says a page asks for first is what it asks for.
        untaken = "() => [...(window.__perfAgentEarly || new Map()).keys()]"
        try:
            self.page.wait_for_function(f"() => ({untaken})().length === 0", timeout=3000)
        except PlaywrightTimeoutError as waited:
            left = self.page.evaluate(untaken)
            raise AssertionError(f"sent ahead, never taken: {left}") from waited

    def testid(self, name: str) -> Locator:
        return self.page.get_by_test_id(name)

    def connections(self, run_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.page.evaluate("window.__sse")
        return [c for c in found if c["path"] == f"{API}/runs/{run_id}/stream"]

    def assert_clean(self) -> None:
        assert self.aborted == [], "requests left the service's origin"
        assert self.refused == [], "the page's CSP refused something"
        assert self.errors == [], "the page threw"


@pytest.fixture(scope="module")
def console(browser: Browser, service: str) -> Iterator[Console]:
    made = Console(browser, service)
    yield made
    made.context.close()


@dataclass
class Journey:
    """What one test hands the next."""

    plan_id: str = ""
    runs: list[str] = field(default_factory=list)
    analyses: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def journey() -> Journey:
    return Journey()


@pytest.fixture(autouse=True)
def _clean_page(console: Console) -> Iterator[None]:
    yield
    console.assert_clean()


# -- screenshots ---------------------------------------------------------------------------


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def series_pixels(path: Path) -> dict[str, int]:
    """Per palette colour, the pixels of the image within TOLERANCE of it."""
    wanted = {colour: _rgb(colour) for colour in PALETTE}
    counts = dict.fromkeys(PALETTE, 0)
    with Image.open(path) as image:
        found = image.convert("RGB").getcolors(maxcolors=1 << 24) or []
    for n, (r, g, b) in found:
        for colour, (wr, wg, wb) in wanted.items():
            if abs(r - wr) <= TOLERANCE and abs(g - wg) <= TOLERANCE and abs(b - wb) <= TOLERANCE:
                counts[colour] += n
                break
    return counts


def assert_drawn(
    chart: Locator, path: Path, *, colours: int = 1, least: int = 300
) -> dict[str, int]:
    """The chart's own box, screenshotted: at least ``colours`` series colours with ``least``
    pixels each (a line across the plot), not an empty frame or a one-colour block."""
    expect(chart.locator("canvas")).to_have_count(1)
    chart.screenshot(path=path)
    counts = series_pixels(path)
    drawn = [colour for colour, n in counts.items() if n >= least]
    assert len(drawn) >= colours, f"{path.name}: series pixels {counts}"
    return counts


def assert_not_blank(page: Page, path: Path) -> None:
    page.screenshot(path=path, full_page=True)
    with Image.open(path) as image:
        found = image.convert("RGB").getcolors(maxcolors=1 << 16)
    assert found is None or len(found) > 50, f"{path.name} is (nearly) one colour"


def points(chart: Locator) -> int:
    return int(chart.get_attribute("data-points") or 0)


def wait_points(chart: Locator, least: int, timeout_s: float = 20) -> int:
    deadline = time.monotonic() + timeout_s
    while (n := points(chart)) < least:
        assert time.monotonic() < deadline, f"the chart stayed at {n} points (wanted {least})"
        time.sleep(0.1)
    return n


def stored_seconds(api: httpx.Client, run_id: str) -> list[int]:
    """The seconds of a finished run as its stream replays them from the start (one reader of
    the service's own, not the page's)."""
    seconds: list[int] = []
    kind = ""
    with api.stream("GET", f"/runs/{run_id}/stream", timeout=30) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("event: "):
                kind = line[len("event: ") :]
            elif line.startswith("data: ") and kind == "sample":
                seconds.append(json.loads(line[len("data: ") :])["elapsed_s"])
            elif line.startswith("data: ") and kind == "end":
                break
    return seconds


def expected_verdict(api: httpx.Client, analysis_id: str) -> str:
    """The analysis' verdict as the API gives it: the demo shop's slow endpoint fails its SLO,
    unless the analysis found the load generator disturbed or saturated in the run or in its
    baseline (a busy machine: k6 waited for CPU), when nothing is judged: inconclusive."""
    analysis = api.get(f"/analyses/{analysis_id}").json()
    kinds = {finding["kind"] for finding in analysis["findings"]}
    if analysis["verdict"] == "inconclusive":
        doubted = any("the load generator was" in w for w in analysis["warnings"])
        assert "load_generator" in kinds or doubted, analysis["warnings"]
    else:
        assert analysis["verdict"] == "fail", analysis["warnings"]
    return str(analysis["verdict"])


def plan_text(target: str) -> str:
    """The demo plan against this shop, short and light, its load last (typed in the editor)."""
    plan = yaml.safe_load(demo_plan(target))
    plan.pop("load")
    return yaml.safe_dump(plan, sort_keys=False)


# -- the journey ---------------------------------------------------------------------------


def test_key_entry_then_a_plan_typed_in_the_editor_dry_run_and_approved(
    console: Console, journey: Journey, key: str, demo_target: str, tmp_path: Path
) -> None:
    page = console.page
    # A first visit has no key: the API answers 401 and the console asks for one.
    console.goto("/ui")
    expect(console.testid("key-form")).to_be_visible()
    expect(console.testid("whoami")).to_have_text("no key")
    assert_not_blank(page, tmp_path / "1-key-form.png")
    console.testid("key-input").fill(key)
    console.testid("key-form").get_by_role("button", name="Use key").click()
    expect(console.testid("key-form")).to_be_hidden()
    console.rendered("runs")  # the page asks again, with the key
    expect(console.testid("whoami")).to_have_text(OWNER)
    expect(console.testid("key-button")).to_have_text("change key")
    expect(console.testid("runs-table")).to_contain_text("No runs match.")

    # Plans → New plan: the editor has the plan schema and checks the starter plan.
    page.locator("header nav").get_by_role("link", name="Plans").click()
    console.rendered("plans")
    console.testid("new-plan").click()
    console.rendered("plan-editor")
    expect(console.testid("editor-status")).to_have_text("Valid against the plan schema")

    # The plan, typed: while `vus:` holds a word the editor lists the problem on its line.
    editor = console.testid("plan-yaml")
    head = plan_text(demo_target) + f"load:\n  duration: {DURATION_S}s\n  vus: "
    editor.fill(head)
    editor.press("Control+End")
    editor.press_sequentially("three", delay=20)
    problems = console.testid("editor-problems")
    expect(problems).to_be_visible()
    vus_line = head.count("\n") + 1
    expect(problems).to_contain_text(f"line {vus_line} load.vus")
    expect(console.testid("editor-status")).to_contain_text("problem")
    expect(console.testid("save-plan")).to_be_disabled()
    assert_not_blank(page, tmp_path / "2-editor-problems.png")
    for _ in "three":
        editor.press("Backspace")
    editor.press_sequentially("3", delay=20)
    expect(problems).to_have_count(0)
    expect(console.testid("editor-status")).to_have_text("Valid against the plan schema")
    assert yaml.safe_load(editor.input_value())["load"] == {"duration": f"{DURATION_S}s", "vus": 3}

    console.testid("save-plan").click()
    page.wait_for_url(re.compile(rf"/ui/plans/{UUID}$"))
    console.rendered("plan")
    journey.plan_id = page.url.rsplit("/", 1)[1]
    expect(console.testid("plan-status")).to_have_text("draft")
    expect(page.locator("h1")).to_contain_text("demo-shop v1")

    # Dry run: each step once, each as expected.
    console.testid("dry-run").click()
    result = console.testid("dry-run-result")
    expect(result).to_be_visible(timeout=30_000)
    expect(result).to_contain_text("Dry run passed")
    rows = result.get_by_test_id("dry-step")
    expect(rows).to_have_count(len(STEPS))
    for i, step in enumerate(STEPS):
        expect(rows.nth(i).locator("td").first).to_have_text(step)
        expect(rows.nth(i).locator("td").last).to_have_text("✓")
    assert_not_blank(page, tmp_path / "3-dry-run.png")

    console.testid("approve").click()
    expect(console.testid("plan-status")).to_have_text("approved")
    expect(console.testid("reviewed-by")).to_have_text(OWNER)
    expect(page.locator("p.meta")).to_contain_text(f"approved by {OWNER}")
    expect(console.testid("run-plan")).to_be_visible()
    assert_not_blank(page, tmp_path / "4-approved.png")


def test_a_live_run_grows_each_second_and_survives_a_dropped_stream(
    console: Console, journey: Journey, api: httpx.Client, tmp_path: Path
) -> None:
    page = console.page
    console.testid("run-plan").click()
    page.wait_for_url(re.compile(rf"/ui/runs/{UUID}$"))
    console.rendered("run")
    run_id = page.url.rsplit("/", 1)[1]
    journey.runs.append(run_id)
    chart = console.testid("latency-chart")

    # The chart gains a point each second.
    first = wait_points(chart, 1, timeout_s=20)
    expect(console.testid("run-status")).to_have_text("running")
    expect(console.testid("stream-state")).to_have_text("open")
    time.sleep(3.5)
    later = points(chart)
    assert later >= first + 2, (first, later)
    assert_drawn(chart, tmp_path / "5-live-chart.png", colours=3, least=300)
    assert_not_blank(page, tmp_path / "5-live.png")

    # The network drops the stream mid-run; the console reconnects with Last-Event-ID.
    assert later < DURATION_S - 1, "the run ended before the stream could be dropped"
    page.evaluate("window.__perfAgentStream.drop()")
    wait_points(chart, later + 1, timeout_s=10)

    expect(console.testid("stream-state")).to_have_text("ended", timeout=40_000)
    expect(console.testid("run-status")).to_have_text("succeeded")
    expect(console.testid("analyse")).to_be_visible()
    expect(console.testid("results")).to_contain_text(SLOW)

    # Every second once. What the service stored, read afresh from the stream's start …
    stored = stored_seconds(api, run_id)
    assert stored, "the run stored no second"
    # … is what the two connections delivered between them, the second resuming after the
    # last event the first saw: nothing repeated, nothing skipped.
    connections = console.connections(run_id)
    assert len(connections) == 2, connections
    dropped, resumed = connections
    assert dropped["lastEventId"] is None
    assert resumed["lastEventId"] == dropped["ids"][-1], connections
    assert dropped["seconds"], connections
    assert resumed["seconds"], connections
    assert dropped["seconds"] + resumed["seconds"] == stored, (connections, stored)
    assert resumed["end"]
    assert not dropped["end"]
    # The chart has a point per stored second, the last one the elapsed time.
    figures = console.testid("figures").inner_text()
    elapsed = re.search(r"(\d+) s / (\d+) s", figures)
    assert elapsed, figures
    assert points(chart) == len(stored)
    assert (int(elapsed[1]), int(elapsed[2])) == (stored[-1] + 1, DURATION_S), figures
    # Each second once, in order. (Not always every second: on a starved machine k6's pushes
    # come late and two merge into one second, which the service then stores as one — seen
    # on a 2-core machine at a load of 8; the console shows what was stored.)
    assert stored == sorted(set(stored)), stored
    assert len(stored) >= DURATION_S - 2, stored

    assert_drawn(chart, tmp_path / "6-finished-chart.png", colours=3, least=400)
    assert_drawn(console.testid("throughput-chart"), tmp_path / "6-throughput.png", colours=2)
    assert_not_blank(page, tmp_path / "6-finished.png")


def test_a_second_run_started_from_the_runs_page_is_aborted(
    console: Console, journey: Journey, api: httpx.Client, tmp_path: Path
) -> None:
    page = console.page
    page.locator("header nav").get_by_role("link", name="Runs").click()
    console.rendered("runs")
    expect(console.testid("run-row")).to_have_count(1)
    console.testid("start-plan").select_option(journey.plan_id)
    console.testid("start-button").click()
    page.wait_for_url(re.compile(rf"/ui/runs/{UUID}$"))
    console.rendered("run")
    run_id = page.url.rsplit("/", 1)[1]
    assert run_id != journey.runs[0]
    journey.runs.append(run_id)

    wait_points(console.testid("latency-chart"), 1, timeout_s=20)  # it runs
    expect(console.testid("run-status")).to_have_text("running")

    # A third, queued while the second loads the same shop, in another tab: it says it waits
    # for the shop (one run per target host at once), and is aborted before it starts.
    third = api.post("/execute", json={"plan_id": journey.plan_id})
    assert third.status_code == 202, third.text
    other = console.context.new_page()
    try:
        other.goto(f"{console.origin}/ui/runs/{third.json()['id']}")
        other.wait_for_selector('body[data-rendered="run"]', state="attached")
        expect(other.get_by_test_id("run-status")).to_have_text("queued")
        expect(other.get_by_test_id("queue-reason")).to_contain_text(
            "waiting for 127.0.0.1: 1 run(s) loading it, at most 1 at once"
        )
        assert_not_blank(other, tmp_path / "7-queued.png")
        other.get_by_test_id("abort").click()
        expect(other.get_by_test_id("run-status")).to_have_text("aborted", timeout=10_000)
        expect(other.get_by_test_id("queue-reason")).to_have_count(0)
    finally:
        other.close()
    journey.runs.append(third.json()["id"])

    console.testid("abort").click()
    expect(console.testid("run-status")).to_have_text("aborted", timeout=30_000)
    expect(console.testid("abort")).to_have_count(0)
    assert_not_blank(page, tmp_path / "7-aborted.png")

    page.locator("header nav").get_by_role("link", name="Runs").click()
    console.rendered("runs")
    rows = console.testid("run-row")
    expect(rows).to_have_count(3)
    expect(page.locator(f'[data-run="{run_id}"] .badge').first).to_have_text("aborted")
    expect(page.locator(f'[data-run="{journey.runs[0]}"] .badge').first).to_have_text("succeeded")
    assert_not_blank(page, tmp_path / "8-runs.png")


def test_the_first_run_analysed_and_a_recommendation_accepted(
    console: Console, journey: Journey, api: httpx.Client, tmp_path: Path
) -> None:
    page = console.page
    console.goto(f"/ui/runs/{journey.runs[0]}")
    console.rendered("run")
    console.testid("analyse").click()
    page.wait_for_url(re.compile(rf"/ui/analyses/{UUID}$"), timeout=60_000)
    console.rendered("analysis")
    journey.analyses.append(page.url.rsplit("/", 1)[1])

    expect(console.testid("verdict")).to_have_text(expected_verdict(api, journey.analyses[0]))
    objectives = console.testid("objectives").locator("tbody tr")
    expect(objectives).to_have_count(5)
    # Each objective's status as the analysis has it; the slow endpoint's fails whatever the
    # machine (the shop sleeps), the others pass on a quiet one.
    judged = api.get(f"/analyses/{journey.analyses[0]}").json()["slo_results"]
    statuses = {(r["endpoint"] or "all", r["objective"]): r["status"] for r in judged}
    assert statuses[(SLOW, "p95 < 100ms")] == "fail"
    for (endpoint, objective), status in statuses.items():
        row = objectives.filter(has=page.get_by_role("cell", name=endpoint, exact=True))
        row = row.filter(has=page.get_by_role("cell", name=objective, exact=True))
        expect(row.locator("td").last).to_have_text(status)
    expect(console.testid("finding").filter(has_text=SLOW).first).to_be_visible()

    # The slow endpoint's findings carry recommendations: accept the first.
    accept = console.testid("accept")
    expect(accept.first).to_be_visible()
    findings = console.testid("finding")
    index = next(
        i for i in range(findings.count()) if findings.nth(i).get_by_test_id("accept").count()
    )
    finding = findings.nth(index)  # by position: once answered it has no accept button
    kind = finding.locator("strong").first.inner_text()
    accept.first.click()
    expect(finding.get_by_test_id("feedback-given")).to_have_text("accepted")
    kpi = api.get("/recommendations/kpi").json()
    assert (kpi["accepted"], kpi["rejected"]) == (1, 0), kpi
    assert kpi["by_kind"][kind]["accepted"] == 1, kpi

    overlay = console.testid("overlay-chart")
    wait_points(overlay, DURATION_S - 1)
    assert_drawn(overlay, tmp_path / "9-overlay.png", colours=3, least=400)
    assert_not_blank(page, tmp_path / "9-analysis.png")


def test_a_baseline_another_run_the_comparison_and_the_history(
    console: Console, journey: Journey, api: httpx.Client, tmp_path: Path
) -> None:
    page = console.page
    baseline = journey.runs[0]
    promoted = api.post("/baselines", json={"run_id": baseline, "note": "console journey"})
    assert promoted.status_code == 201, promoted.text

    console.goto(f"/ui/plans/{journey.plan_id}")
    console.rendered("plan")
    console.testid("run-plan").click()
    page.wait_for_url(re.compile(rf"/ui/runs/{UUID}$"))
    console.rendered("run")
    run_id = page.url.rsplit("/", 1)[1]
    journey.runs.append(run_id)
    expect(console.testid("stream-state")).to_have_text("ended", timeout=45_000)
    expect(console.testid("run-status")).to_have_text("succeeded")
    console.testid("analyse").click()
    page.wait_for_url(re.compile(rf"/ui/analyses/{UUID}$"), timeout=60_000)
    console.rendered("analysis")
    journey.analyses.append(page.url.rsplit("/", 1)[1])
    expect(console.testid("verdict")).to_have_text(expected_verdict(api, journey.analyses[1]))
    expect(page.locator("p.meta").first).to_contain_text(f"baseline: {baseline[:8]}")
    overlay = console.testid("overlay-chart")
    wait_points(overlay, DURATION_S - 1)
    assert_drawn(overlay, tmp_path / "10-overlay.png", colours=3, least=400)
    assert_not_blank(page, tmp_path / "10-analysis.png")

    # The comparison with the baseline, from the analysis' own link.
    console.testid("compare-baseline").click()
    page.wait_for_url(re.compile(rf"/ui/compare\?a={baseline}&b={run_id}$"))
    console.rendered("compare")
    summary = console.testid("compare-summary")
    expect(summary).to_contain_text(f"{run_id[:8]} against {baseline[:8]}")
    expect(summary).to_contain_text("regressions")
    rows = console.testid("comparisons").locator("tbody tr")
    expect(rows.filter(has_text=SLOW).first).to_be_visible()
    assert rows.count() >= len(STEPS)
    distributions = console.testid("distribution-chart")
    expect(distributions.first).to_be_visible()
    assert_drawn(distributions.first, tmp_path / "11-distribution.png", least=200)
    assert_not_blank(page, tmp_path / "11-compare.png")

    # The plan's history: a point per succeeded run (the aborted one is none), the baseline.
    console.goto(f"/ui/plans/{journey.plan_id}/history")
    console.rendered("history")
    chart = console.testid("history-chart")
    expect(chart).to_be_visible()
    assert points(chart) == 2
    expect(page.locator("p.meta")).to_contain_text("points")
    expect(console.testid("baselines")).to_contain_text(baseline[:8])
    assert_drawn(chart, tmp_path / "12-history-chart.png", colours=3)
    assert_not_blank(page, tmp_path / "12-history.png")


def test_a_first_visit_to_the_editor_asks_for_the_key_and_the_editor_then_works(
    browser: Browser, service: str, key: str, tmp_path: Path
) -> None:
    """A new browser (no key yet) opening /ui/plans/new straight away. Last in the module, in
    a context of its own: the journey above does not depend on it."""
    fresh = Console(browser, service)
    try:
        page = fresh.page
        fresh.goto("/ui/plans/new")
        fresh.rendered("plan-editor")
        expect(fresh.testid("key-form")).to_be_visible()
        expect(fresh.testid("whoami")).to_have_text("no key")
        fresh.testid("key-input").fill(key)
        fresh.testid("key-form").get_by_role("button", name="Use key").click()
        expect(fresh.testid("key-form")).to_be_hidden()
        expect(fresh.testid("whoami")).to_have_text(OWNER)
        # CONSOLE BUG (fails here): with the key the editor should load the plan schema and
        # check the starter plan, but console/src/pages/plans.jsx's planSchema() keeps the
        # promise of the schema request that failed without a key (401) and never asks
        # again: the editor shows "Unauthorized auth.missing_key" instead of its status and
        # "Create plan" stays disabled until the page is reloaded.
        try:
            expect(fresh.testid("editor-status")).to_have_text("Valid against the plan schema")
            expect(fresh.testid("save-plan")).to_be_enabled()
        finally:
            assert_not_blank(page, tmp_path / "13-editor-after-key.png")
        fresh.assert_clean()
    finally:
        fresh.context.close()
