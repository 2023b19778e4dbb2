"""The console's first render with 1,000 runs stored: every page within 300 ms (the issue's figure).

1. **Seed** (once; its own database, ``perf_agent_bench_console``; ``--reseed`` drops it): one
   real run of the demo shop through the service (60 s, 4 endpoints), a copy of it promoted to
   baseline, the real run analysed against it, imported history points — then cloned in SQL as
   ``bench/self_load.py`` does into 1,000 runs over 5 plans × 2 versions, newest first, mixed
   statuses, ~28 % analysed, each finished one with the real run's results (latencies scaled so
   the history has a series and a shift), events and packed samples and histograms
   (``run_archives``, as the worker leaves a run two minutes after its end); plus one run still
   running for 30 minutes, its 1,800 seconds in rows.
2. ``perf-agent serve --no-worker`` on a free port (auth off, loopback only).
3. Headless Chromium (Playwright, the system's ``/usr/bin/chromium``) opens every page:
   ``--cold`` first visits (each a fresh profile); then, in a browser profile on disk as a
   returning user's is (its HTTP cache and the compiled code Chromium keeps), a warm-up and N
   fresh tabs, and N loads of the page in one tab each after another page; then N fresh tabs
   of a private window (cache in memory, no compiled code kept). Each time, the time from
   navigation start to the page's ``rendered:<page>`` mark. One more pass routes every
   request to count (and block) any that leave the origin; routing disables the HTTP cache,
   so it is not timed.
4. Prints per page: median / p90 / max first render (warm), the first visits' median and
   max, whether all are ≤ 300 ms, the API requests made, where the time went (HTML, script,
   API), and each API request's own time (httpx, median of 5); the first load's bytes.

    .venv/bin/python bench/console.py [--reseed] [--navigations 10] [--cold 5 | --no-cold]

Exits 1 if a page never rendered; timings are figures, not assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
import yaml

from app.cli import (
    DEMO_PLAN,
    free_port,
    running_demo_target,
    running_service,
    stop_process,
    wait_http,
)
from app.client import PerfAgentClient
from app.core.db import create_engine, create_sessionmaker
from app.core.migrate import upgrade
from app.core.settings import get_settings
from app.runs.retention import archive_finished_runs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_busy, tree_cpu
from self_load import API, CLONED, admin_url

DATABASE = "perf_agent_bench_console"
ROOT = Path(__file__).resolve().parent.parent
GOAL_MS = 300.0
FAMILIES = (
    "console-shop",
    "console-checkout",
    "console-search",
    "console-catalog",
    "console-admin",
)
VERSIONS = 2
LONG_RUN_S = 1800
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip


def database_url() -> str:
    return admin_url().rsplit("/", 1)[0] + f"/{DATABASE}"


def sqlalchemy_url() -> str:
    return database_url().replace("postgresql://", "postgresql+psycopg://", 1)


def ensure_database(reseed: bool) -> None:
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
        ).fetchone()
        if exists and reseed:
            conn.execute(f"DROP DATABASE {DATABASE} WITH (FORCE)")
            exists = None
        if not exists:
            conn.execute(f"CREATE DATABASE {DATABASE}")
    upgrade(sqlalchemy_url())


def stored_runs() -> int:
    with psycopg.connect(database_url()) as conn:
        return int(conn.execute("SELECT count(*) FROM runs").fetchone()[0])  # type: ignore[index]


# --- seeding ---------------------------------------------------------------------------------


def columns_of(conn: psycopg.Connection[Any], table: str) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
            "ORDER BY ordinal_position",
            (table,),
        )
    ]


def clone_runs(
    conn: psycopg.Connection[Any], source: str, mapping: str, tables: tuple[str, ...]
) -> None:
    """Copy run ``source`` into every row of the temp table ``mapping`` (id, plan_id,
    plan_version, at, status, factor): the run row, then its rows in ``tables``; latencies in
    run_results scaled by ``factor``."""
    run_cols = [
        c for c in columns_of(conn, "runs")
        if c not in ("id", "plan_id", "plan_version", "created_at", "started_at", "finished_at",
                     "status", "error", "heartbeat_at")
    ]  # fmt: skip
    conn.execute(
        f"""INSERT INTO runs (id, plan_id, plan_version, created_at, started_at, finished_at,
                              status, error, heartbeat_at, {", ".join(run_cols)})
            SELECT m.id, m.plan_id, m.plan_version, m.at, m.at + interval '1 second',
                   m.at + interval '1 second' + (r.finished_at - r.started_at), m.status,
                   CASE m.status WHEN 'failed' THEN 'k6 exited with code 99 (thresholds)'
                                 WHEN 'aborted' THEN 'aborted by bench' END,
                   m.at + interval '1 second' + (r.finished_at - r.started_at),
                   {", ".join("r." + c for c in run_cols)}
            FROM {mapping} m, runs r WHERE r.id = %s""",
        (source,),
    )
    scaled = {f"{s}_ms" for s in ("avg", "min", "p50", "p90", "p95", "p99", "max")}
    for table in tables:
        every = columns_of(conn, table)
        cols = [c for c in every if c not in ("id", "run_id")]
        order = "m.at, t.id" if "id" in every else "m.at"
        values = [
            f"t.{c} * m.factor" if table == "run_results" and c in scaled else f"t.{c}"
            for c in cols
        ]
        conn.execute(
            f"""INSERT INTO {table} (run_id, {", ".join(cols)})
                SELECT m.id, {", ".join(values)} FROM {mapping} m, {table} t
                WHERE t.run_id = %s ORDER BY {order}""",
            (source,),
        )


def demo_plan(target: str, name: str, seconds: int) -> dict[str, Any]:
    plan = yaml.safe_load(DEMO_PLAN.read_text())
    plan["name"] = name
    plan["target"]["base_url"] = target
    plan["target"]["environment"] = "bench"
    plan["load"] = {"vus": 5, "duration": f"{seconds}s"}
    return dict(plan)


def history_document(results: list[dict[str, Any]], until: datetime) -> dict[str, Any]:
    """Imported history (e.g. from a previous tool): p95 and error rate per endpoint, every
    6 hours over 20 days, around the real run's figures."""
    series = []
    for result in results:
        name = result["endpoint"]
        base = result.get("p95_ms") or 10.0
        points = []
        for i in range(80):
            at = until - timedelta(hours=6 * i, minutes=7)
            wobble = 1 + 0.06 * ((i * 37 + len(name)) % 11 - 5) / 5
            points.append({"at": at.isoformat(), "value": round(base * wobble, 3),
                           "label": f"ci-{1000 - i}"})  # fmt: skip
        series.append({"endpoint": name, "sli": "p95", "unit": "ms", "points": points})
    return {"format": "perf-agent.history/v1", "environment": "bench", "series": series}


def seed(runs: int, seconds: int) -> None:
    settings = get_settings().model_copy(
        update={"database_url": sqlalchemy_url(), "archive_after_s": 0.0}  # we pack, below
    )
    with (
        running_demo_target(free_port()) as target,
        running_service(settings, free_port()) as service,
        PerfAgentClient(service) as client,
    ):
        plan, run = client.run_approved(demo_plan(target, FAMILIES[0], seconds), reviewer="bench")
        if run["status"] != "succeeded":
            raise SystemExit(f"the real run {run['id']} {run['status']}: {run['error']}")
        real = run["id"]
        # The baseline: a copy of the real run two hours earlier, promoted; the real run is
        # then analysed against it (a comparison per endpoint, two distributions).
        with psycopg.connect(database_url()) as conn:
            conn.execute(
                """CREATE TEMP TABLE base_map AS
                   SELECT gen_random_uuid() AS id, plan_id, plan_version,
                          created_at - interval '2 hours' AS at, 'succeeded'::text AS status,
                          1.0::float AS factor FROM runs WHERE id = %s""",
                (real,),
            )
            clone_runs(conn, real, "base_map", CLONED)
            baseline = str(conn.execute("SELECT id FROM base_map").fetchone()[0])  # type: ignore[index]
            conn.commit()
        client.http.post(
            "/baselines", json={"run_id": baseline, "note": "bench baseline"}
        ).raise_for_status()
        client.http.post("/analyse", json={"run_id": real}, timeout=120).raise_for_status()
        results = client.http.get(f"/runs/{real}").raise_for_status().json().get("results", [])
        if results:
            client.http.post(
                f"/plans/{plan['id']}/history",
                json=history_document(results, datetime.now(UTC)),
            ).raise_for_status()
    with psycopg.connect(database_url()) as conn:
        row = conn.execute("SELECT family_id FROM plans WHERE id = %s", (plan["id"],)).fetchone()
        assert row is not None
        family = row[0]
        plan_cols = [
            c for c in columns_of(conn, "plans")
            if c not in ("id", "name", "family_id", "version", "created_at", "spec", "source")
        ]  # fmt: skip
        # 5 families × 2 versions; the real plan is the first family's version 1.
        conn.execute(
            """CREATE TEMP TABLE plan_map AS
               SELECT CASE WHEN f = 0 AND v = 1 THEN %s::uuid ELSE gen_random_uuid() END AS id,
                      f, v, (%s::text[])[f + 1] AS name,
                      CASE WHEN f = 0 THEN %s::uuid ELSE NULL END AS family_id
               FROM generate_series(0, %s) f, generate_series(1, %s) v""",
            (plan["id"], list(FAMILIES), family, len(FAMILIES) - 1, VERSIONS),
        )
        conn.execute(
            """UPDATE plan_map m SET family_id = g.fid
               FROM (SELECT f, gen_random_uuid() AS fid FROM plan_map WHERE family_id IS NULL
                     GROUP BY f) g WHERE m.f = g.f AND m.family_id IS NULL"""
        )
        conn.execute(
            f"""INSERT INTO plans (id, name, family_id, version, created_at, spec, source,
                                   {", ".join(plan_cols)})
                SELECT m.id, m.name, m.family_id, m.v,
                       now() - interval '30 days' + (m.f * 2 + m.v) * interval '1 hour',
                       jsonb_set(p.spec, '{{name}}', to_jsonb(m.name)),
                       replace(p.source, p.name, m.name), {", ".join("p." + c for c in plan_cols)}
                FROM plan_map m, plans p WHERE p.id = %s AND m.id <> p.id""",
            (plan["id"],),
        )
        # The run still running: 30 minutes of seconds in rows so far (the real run's 60
        # seconds, repeated), its histogram windows likewise; no results yet.
        latest = conn.execute(
            "SELECT id, v FROM plan_map WHERE f = 0 ORDER BY v DESC LIMIT 1"
        ).fetchone()
        assert latest is not None
        conn.execute(
            """CREATE TEMP TABLE live_map AS
               SELECT gen_random_uuid() AS id, %s::uuid AS plan_id, %s::int AS plan_version,
                      now() - %s * interval '1 second' AS at, 'running'::text AS status,
                      1.0::float AS factor""",
            (latest[0], latest[1], LONG_RUN_S),
        )
        clone_runs(conn, real, "live_map", ("run_events",))
        conn.execute(
            """UPDATE runs SET finished_at = NULL, exit_code = NULL, summary = NULL,
                              test_duration_s = NULL, heartbeat_at = now(),
                              planned_duration_s = %s
               WHERE id = (SELECT id FROM live_map)""",
            (2 * LONG_RUN_S,),
        )
        span = int(conn.execute(
            "SELECT count(*) FROM run_samples WHERE run_id = %s", (real,)
        ).fetchone()[0])  # type: ignore[index]  # fmt: skip
        if not span:
            raise SystemExit("the real run has no per-second samples in rows to clone")
        repeat = LONG_RUN_S // span
        shift = "((SELECT at FROM live_map) - (SELECT min(at) FROM run_samples WHERE run_id = %s))"
        conn.execute(
            f"""INSERT INTO run_samples (run_id, at, vus, requests, failures, data)
                SELECT l.id, s.at + {shift} + k * %s * interval '1 second', s.vus, s.requests,
                       s.failures,
                       CASE WHEN s.data ? 'elapsed_s' THEN jsonb_set(s.data, '{{elapsed_s}}',
                            to_jsonb((s.data->>'elapsed_s')::float + k * %s)) ELSE s.data END
                FROM live_map l, run_samples s, generate_series(0, %s) k
                WHERE s.run_id = %s ORDER BY k, s.id""",
            (real, span, span, repeat - 1, real),
        )
        hist_cols = [
            c for c in columns_of(conn, "run_histograms")
            if c not in ("id", "run_id", "at", "start_s")
        ]  # fmt: skip
        conn.execute(
            f"""INSERT INTO run_histograms (run_id, at, start_s, {", ".join(hist_cols)})
                SELECT l.id, h.at + {shift} + k * %s * interval '1 second', h.start_s + k * %s,
                       {", ".join("h." + c for c in hist_cols)}
                FROM live_map l, run_histograms h, generate_series(0, %s) k
                WHERE h.run_id = %s ORDER BY k, h.id""",
            (real, span, span, repeat - 1, real),
        )
        conn.commit()
        # Pack the real run and the baseline as the worker would two minutes after their
        # end; the clones then copy the packed row (run_archives) like self_load.py's do.
        asyncio.run(_pack())
        clones = runs - stored_runs()
        conn.execute(
            """CREATE TEMP TABLE run_map AS
               SELECT gen_random_uuid() AS id, p.id AS plan_id, p.v AS plan_version,
                      now() - interval '1 hour' - r * interval '15 minutes' AS at,
                      CASE WHEN r %% 17 = 16 THEN 'failed' WHEN r %% 23 = 22 THEN 'aborted'
                           ELSE 'succeeded' END AS status,
                      r %% 7 IN (0, 3) AS analysed,
                      -- the newest 40 runs of a family 25 %% slower: a shift in its history
                      (1 + 0.08 * random() + CASE WHEN r < 40 * %s THEN 0.25 ELSE 0 END)::float
                          AS factor
               FROM generate_series(0, %s) r
               JOIN plan_map p ON p.f = r %% %s
                              AND p.v = CASE WHEN r < %s THEN %s ELSE 1 END""",
            (len(FAMILIES), clones - 1, len(FAMILIES), clones // 2, VERSIONS),
        )
        clone_runs(conn, real, "run_map", CLONED)
        cols = [c for c in columns_of(conn, "analyses") if c not in ("id", "run_id", "created_at")]
        conn.execute(
            f"""INSERT INTO analyses (id, run_id, created_at, {", ".join(cols)})
                SELECT gen_random_uuid(), m.id, m.at + interval '70 seconds',
                       {", ".join("a." + c for c in cols)}
                FROM run_map m, analyses a
                WHERE a.run_id = %s AND m.analysed AND m.status = 'succeeded'""",
            (real,),
        )
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")


async def _pack() -> None:
    engine = create_engine(sqlalchemy_url())
    try:
        await archive_finished_runs(create_sessionmaker(engine), 1e-6, limit=10)
    finally:
        await engine.dispose()


@dataclass
class Subjects:
    real: str
    baseline: str
    live: str
    analysis: str
    plan: str  # the first family's newest version
    first_plan: str  # the real run's plan (the baseline's)


def subjects() -> Subjects:
    with psycopg.connect(database_url()) as conn:

        def one(query: str, *args: Any) -> str:
            row = conn.execute(query, args).fetchone()
            if row is None:
                raise SystemExit(f"nothing for {query!r}: --reseed")
            return str(row[0])

        baseline = one("SELECT run_id FROM baselines ORDER BY created_at LIMIT 1")
        analysis = one(
            "SELECT id FROM analyses WHERE baseline_source = 'promoted' OR baseline_run_ids <> "
            "'[]' ORDER BY created_at DESC LIMIT 1"
        )
        real = one("SELECT run_id FROM analyses WHERE id = %s", analysis)
        first_plan = one("SELECT plan_id FROM runs WHERE id = %s", real)
        return Subjects(
            real=real,
            baseline=baseline,
            live=one("SELECT id FROM runs WHERE status = 'running' ORDER BY created_at LIMIT 1"),
            analysis=analysis,
            plan=one(
                "SELECT p2.id FROM plans p JOIN plans p2 ON p2.family_id = p.family_id "
                "WHERE p.id = %s ORDER BY p2.version DESC LIMIT 1",
                first_plan,
            ),
            first_plan=first_plan,
        )


# --- the service ----------------------------------------------------------------------------


@contextlib.contextmanager
def serve(port: int) -> Iterator[tuple[str, int]]:
    env = {
        **os.environ, "PERF_AGENT_DATABASE_URL": sqlalchemy_url(), "PERF_AGENT_AUTH": "off",
        "PERF_AGENT_EMBEDDED_WORKER": "false",
    }  # fmt: skip
    argv = [
        str(Path(sys.executable).with_name("perf-agent")), "serve", "--no-worker",
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    proc = subprocess.Popen(
        argv, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", timeout_s=60)
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        stop_process(proc)


# --- the browser ----------------------------------------------------------------------------


@dataclass
class Page:
    label: str
    path: str
    mark: str


@dataclass
class Visit:
    ms: float | None
    api: list[str] = field(default_factory=list)
    off_origin: list[str] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)
    resources: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Figures:
    page: Page
    warm: list[Visit] = field(default_factory=list)
    same_tab: list[Visit] = field(default_factory=list)
    private: list[Visit] = field(default_factory=list)
    cold: list[Visit] = field(default_factory=list)
    routed: Visit | None = None


# Long tasks (> 50 ms on the main thread), kept from the page's start.
LONG_TASKS_JS = """window.__longTasks = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) window.__longTasks.push([e.startTime, e.duration]);
}).observe({type: 'longtask', buffered: true});"""

PHASES_JS = """(mark) => {
  const nav = performance.getEntriesByType('navigation')[0];
  const m = performance.getEntriesByName('rendered:' + mark)[0];
  const res = performance.getEntriesByType('resource').map((r) => ({
    name: r.name, type: r.initiatorType, start: r.startTime, end: r.responseEnd,
    transfer: r.transferSize, encoded: r.encodedBodySize, decoded: r.decodedBodySize}));
  return {mark: m ? m.startTime : null, html: nav ? nav.responseEnd : null,
          dom: nav ? nav.domContentLoadedEventEnd : null,
          html_transfer: nav ? nav.transferSize : null,
          html_decoded: nav ? nav.decodedBodySize : null, resources: res,
          long: (window.__longTasks || []).filter(([at]) => !m || at < m.startTime)};
}"""


def visit(context: Any, base: str, page: Page, *, timeout_ms: float, tab: Any = None) -> Visit:
    """One navigation, in a fresh tab or in ``tab``: the mark's time, the API requests, where
    time went."""
    origin = urlsplit(base)[:2]
    api: list[str] = []
    off: list[str] = []
    own = tab is None
    tab = context.new_page() if own else tab

    def seen(request: Any) -> None:
        parts = urlsplit(request.url)
        if parts.scheme in ("data", "blob", "about"):
            return
        if parts[:2] != origin:
            off.append(request.url)
        elif parts.path.startswith(API):
            api.append(request.method + " " + parts.path.removeprefix(API)
                       + (f"?{parts.query}" if parts.query else ""))  # fmt: skip

    tab.on("request", seen)
    try:
        tab.goto(base + page.path, wait_until="commit", timeout=timeout_ms)
        try:
            tab.wait_for_selector(
                f'body[data-rendered="{page.mark}"]', state="attached", timeout=timeout_ms
            )
        except Exception:
            return Visit(ms=None, api=api, off_origin=off)
        figures = tab.evaluate(PHASES_JS, page.mark)
        # Let the requests the first data leads to start (plan, analyses, distributions …).
        count, quiet_since = len(api), time.monotonic()
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and time.monotonic() - quiet_since < 0.3:
            tab.wait_for_timeout(50)
            if len(api) != count:
                count, quiet_since = len(api), time.monotonic()
        mark = figures["mark"]
        resources = figures["resources"]
        before = [r for r in resources if r["type"] == "fetch" and r["end"] <= mark]
        script = [r for r in resources if "/console.js" in r["name"]]
        phases = {
            "html": figures["html"],
            "js": script[0]["end"] if script else float("nan"),
            "dom": figures["dom"],
            "api_start": min((r["start"] for r in before), default=float("nan")),
            "api_end": max((r["end"] for r in before), default=float("nan")),
            "api_before_mark": float(len(before)),
            "long_ms": sum(d for _, d in figures["long"]),
            "long_n": float(len(figures["long"])),
            "html_transfer": figures["html_transfer"] or 0,
            "html_decoded": figures["html_decoded"] or 0,
        }
        return Visit(ms=mark, api=api, off_origin=off, phases=phases, resources=resources)
    finally:
        tab.remove_listener("request", seen)
        if own:
            tab.close()


def guard(base: str, blocked: list[str]) -> Any:
    origin = urlsplit(base)[:2]

    def handler(route: Any) -> None:
        parts = urlsplit(route.request.url)
        if parts.scheme in ("http", "https", "ws", "wss") and parts[:2] != origin:
            blocked.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    return handler


def measure(
    base: str, pages: list[Page], args: argparse.Namespace
) -> tuple[list[Figures], list[str]]:
    from playwright.sync_api import sync_playwright

    out = [Figures(p) for p in pages]
    blocked: list[str] = []
    timeout = args.timeout * 1000
    with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        viewport = {"width": 1366, "height": 900}
        try:
            for _ in range(0 if args.no_cold else args.cold):  # first visits: fresh profiles
                for fig in out:
                    context = browser.new_context(viewport=viewport)
                    context.add_init_script(LONG_TASKS_JS)
                    fig.cold.append(visit(context, base, fig.page, timeout_ms=timeout))
                    context.close()
            # The returning user: a browser profile on disk, as everyone's is, with its HTTP
            # cache and the compiled code Chromium keeps beside it. Warm it, then N fresh tabs;
            # then each page loaded in one tab after another page (a full document load, as
            # typing its address or reloading does, without a new tab's start).
            context = pw.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
                viewport=viewport,
            )  # fmt: skip
            context.add_init_script(LONG_TASKS_JS)
            for fig in out:
                visit(context, base, fig.page, timeout_ms=timeout)
                visit(context, base, fig.page, timeout_ms=timeout)
                for _ in range(args.navigations):
                    fig.warm.append(visit(context, base, fig.page, timeout_ms=timeout))
            tab = context.new_page()
            for fig in out:
                for _ in range(args.navigations):
                    visit(context, base, out[0].page if fig is not out[0] else out[1].page,
                          timeout_ms=timeout, tab=tab)  # fmt: skip
                    fig.same_tab.append(visit(context, base, fig.page, timeout_ms=timeout, tab=tab))
            tab.close()
            context.close()
            # A private window: the HTTP cache in memory and no compiled code kept.
            context = browser.new_context(viewport=viewport)
            context.add_init_script(LONG_TASKS_JS)
            for fig in out:
                visit(context, base, fig.page, timeout_ms=timeout)
                for _ in range(args.navigations):
                    fig.private.append(visit(context, base, fig.page, timeout_ms=timeout))
            context.close()
            context = browser.new_context(viewport=viewport)
            context.route("**/*", guard(base, blocked))  # disables the HTTP cache: not timed
            for fig in out:
                fig.routed = visit(context, base, fig.page, timeout_ms=timeout)
            context.close()
        finally:
            browser.close()
    return out, blocked


# --- report ---------------------------------------------------------------------------------


def q(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = p * (len(ordered) - 1)
    lo = int(rank)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


def api_times(base: str, paths: list[str], samples: int = 5) -> dict[str, float]:
    """Each distinct API request's own time (one at a time, after one warm-up), in ms."""
    out: dict[str, float] = {}
    with httpx.Client(base_url=base + API, timeout=30) as http:
        for entry in dict.fromkeys(paths):
            method, path = entry.split(" ", 1)
            if method != "GET" or path.endswith("/stream"):
                continue
            http.get(path)
            times = []
            for _ in range(samples):
                started = time.perf_counter()
                response = http.get(path)
                times.append(1000 * (time.perf_counter() - started))
            out[entry] = statistics.median(times)
            out[entry + " bytes"] = float(len(response.content))
    return out


def report(base: str, figures: list[Figures], blocked: list[str], args: argparse.Namespace) -> int:
    failed = 0
    print(
        f"\nfirst render (navigation start → rendered:<page> mark), {args.navigations} warm "
        f"navigations per page: fresh tabs of a browser profile on disk (its cache warm); the "
        f"same page loaded in one tab after another page; fresh tabs of a private window "
        f"(cache in memory, no compiled code kept). Goal ≤ {GOAL_MS:g} ms"
    )
    head = (
        f"{'page':<28} {'mark':<12} {'median':>7} {'p90':>7} {'max':>7} {'cold':>7} {'max':>5} "
        f"{'≤300ms':>7} {'api reqs':>8}   {'same tab: median':>16} {'p90':>7} {'max':>7}   "
        f"{'private: median':>15} {'p90':>7}"
    )
    print(head)
    print("-" * len(head))
    for fig in figures:
        times = [v.ms for v in fig.warm if v.ms is not None]
        colds = [v.ms for v in fig.cold if v.ms is not None]
        missing = len(fig.warm) - len(times) + len(fig.cold) - len(colds)
        cold = statistics.median(colds) if colds else float("nan")
        worst = max([*times, *colds], default=float("nan"))
        ok = "yes" if times and not missing and worst <= GOAL_MS else "NO"
        if missing:
            failed += 1
            ok = f"{missing} never"
        reqs = len(fig.warm[-1].api) if fig.warm else 0
        median = statistics.median(times) if times else float("nan")
        same = [v.ms for v in fig.same_tab if v.ms is not None]
        private = [v.ms for v in fig.private if v.ms is not None]
        print(
            f"{fig.page.label:<28} {fig.page.mark:<12} {median:>7.1f} "
            f"{q(times, 0.9):>7.1f} {max(times, default=float('nan')):>7.1f} {cold:>7.1f} "
            f"{max(colds, default=float('nan')):>5.0f} "
            f"{ok:>7} {reqs:>8}   {statistics.median(same) if same else float('nan'):>16.1f} "
            f"{q(same, 0.9):>7.1f} {max(same, default=float('nan')):>7.1f}   "
            f"{statistics.median(private) if private else float('nan'):>15.1f} "
            f"{q(private, 0.9):>7.1f}"
        )
    print(
        "\nwhere the time went (warm, medians, ms from navigation start): HTML received, "
        "console.js received, DOMContentLoaded, first API request sent, last API response "
        "before the mark (count), main-thread long tasks before the mark: total (count)"
    )
    print(
        f"{'page':<28} {'html':>6} {'js':>6} {'dom':>6} {'api 1st':>8} {'api last':>9} "
        f"{'n':>3} {'long tasks':>10} {'mark':>6}"
    )
    for fig in figures:
        ok = [v for v in fig.warm if v.ms is not None]
        if not ok:
            continue

        def med(key: str, ok: list[Visit] = ok) -> float:
            return statistics.median(v.phases[key] for v in ok)

        print(
            f"{fig.page.label:<28} {med('html'):>6.1f} {med('js'):>6.1f} {med('dom'):>6.1f} "
            f"{med('api_start'):>8.1f} {med('api_end'):>9.1f} {med('api_before_mark'):>3.0f} "
            f"{med('long_ms'):>5.0f} ({med('long_n'):.0f}) "
            f"{statistics.median(v.ms for v in ok):>6.1f}"  # type: ignore[misc]
        )
    first = next((f.cold[0] for f in figures if f.cold and f.cold[0].ms is not None), None)
    if first is not None:
        print("\nfirst load (cold, /ui/runs): transferred / encoded / decoded bytes")
        print(
            f"  {'document':<40} {first.phases['html_transfer']:>9,.0f} {'':>9} "
            f"{first.phases['html_decoded']:>9,.0f}"
        )
        total = first.phases["html_transfer"]
        for r in first.resources:
            name = urlsplit(r["name"]).path.removeprefix(API)
            total += r["transfer"]
            print(f"  {name:<40} {r['transfer']:>9,} {r['encoded']:>9,} {r['decoded']:>9,}")
        print(f"  {'total':<40} {total:>9,.0f}")
    warm = next((f.warm[-1] for f in figures if f.warm and f.warm[-1].ms is not None), None)
    if warm is not None:
        assets = [r for r in warm.resources if "/assets/" in r["name"]]
        print(
            "  warm (same profile): assets transferred "
            + ", ".join(
                f"{urlsplit(r['name']).path.rsplit('/', 1)[-1]} {r['transfer']:,} B" for r in assets
            )
            + " (0: from the cache)"
        )
    passive = sum(len(v.off_origin) for f in figures for v in [*f.warm, *f.cold, f.routed] if v)
    print(
        f"\nrequests leaving the origin: {len(blocked)} routed and blocked in the routed pass, "
        f"{passive} seen in all passes"
        + ("" if not (blocked or passive) else ": " + ", ".join(sorted(set(blocked))[:10]))
    )
    print("\nAPI requests per page (warm pass) and each one's own time (httpx, median of 5):")
    for fig in figures:
        visits = [v for v in fig.warm if v.ms is not None]
        if not visits:
            continue
        times = api_times(base, visits[-1].api)
        print(f"  {fig.page.label} ({len(visits[-1].api)}):")
        for entry in visits[-1].api:
            shown = entry
            if entry in times:
                print(
                    f"    {shown:<110} {times[entry]:>7.1f} ms {times[entry + ' bytes']:>10,.0f} B"
                )
            else:
                print(f"    {shown:<110} {'(stream)':>10}")
    return failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=60, help="the real run's length")
    parser.add_argument("--reseed", action="store_true", help="drop the bench database first")
    parser.add_argument("--navigations", type=int, default=10, help="warm navigations per page")
    parser.add_argument("--cold", type=int, default=5, help="first visits per page")
    parser.add_argument("--no-cold", action="store_true", help="skip the first visits")
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds a page may take")
    args = parser.parse_args()
    started = time.monotonic()
    ensure_database(args.reseed)
    if stored_runs() < args.runs:
        if stored_runs():
            raise SystemExit(f"{DATABASE} holds {stored_runs()} runs: run with --reseed")
        seed(args.runs, args.seconds)
        print(f"seeded {stored_runs():,} runs in {time.monotonic() - started:.0f} s")
    s = subjects()
    pages = [
        Page("/ui/runs", "/ui/runs", "runs"),
        Page("/ui/runs/{finished}", f"/ui/runs/{s.real}", "run"),
        Page("/ui/runs/{running, 30 min}", f"/ui/runs/{s.live}", "run"),
        Page("/ui/analyses/{id}", f"/ui/analyses/{s.analysis}", "analysis"),
        Page("/ui/compare?a=&b=", f"/ui/compare?a={s.baseline}&b={s.real}", "compare"),
        Page("/ui/plans", "/ui/plans", "plans"),
        Page("/ui/plans/{id}", f"/ui/plans/{s.plan}", "plan"),
        Page("/ui/plans/new", "/ui/plans/new", "plan-editor"),
        Page("/ui/plans/{id}/history", f"/ui/plans/{s.first_plan}/history", "history"),
    ]
    with psycopg.connect(database_url()) as conn:
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM runs), (SELECT count(*) FROM plans), "
            "(SELECT count(*) FROM analyses), (SELECT count(*) FROM run_archives), "
            "(SELECT count(*) FROM history_points), (SELECT count(*) FROM run_samples)"
        ).fetchone()
    print(
        "stored: {:,} runs, {} plans, {} analyses, {} packed runs, {} history points, "
        "{:,} sample rows".format(*counts)  # type: ignore[misc]
    )
    with serve(free_port()) as (base, service):
        print(f"service: {base} (perf-agent serve --no-worker, auth off)")

        def own_cpu() -> float:  # this process, its reaped children (Chromium), the service
            t = os.times()
            return t.user + t.system + t.children_user + t.children_system + tree_cpu(service)

        busy0, ours0, t0 = machine_busy(), own_cpu(), time.monotonic()
        figures, blocked = measure(base, pages, args)
        elapsed = time.monotonic() - t0
        ours = (own_cpu() - ours0) / elapsed
        other = (machine_busy() - busy0) / elapsed - ours
        print(
            f"\nbrowser passes: {elapsed:.0f} s; CPU of this bench (service + Chromium) "
            f"{ours:.2f} cores, other processes {max(0.0, other):.2f} cores of "
            f"{os.cpu_count()}; load average {os.getloadavg()[0]:.1f}"
        )
        failed = report(base, figures, blocked, args)
    print(f"\n{time.monotonic() - started:.0f} s in all")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
