"""The service under its own load: reads with 10,000 runs stored, and live viewers of one run.

1. **Seed** (once; kept in its own database, ``perf_agent_selfload``): one real run of the demo
   shop through the service (k6, analysis), then cloned in SQL — 20 plans × 500 runs, each
   with the real run's results, events, samples and histograms, newest first five minutes
   apart, statuses mixed like a real history, about 28 % analysed.
2. **Reads**: API processes (``perf-agent serve --workers N``, no worker in them) and the
   project's k6 at a constant arrival rate with a read mix — ``GET /runs?plan_id=``,
   ``GET /runs?status=``, ``GET /runs/{id}``, ``GET /analyses/{id}``, ``GET /plans/{id}`` —
   one rate after another; per route p50/p95/p99, errors, dropped iterations, the service's
   CPU and RSS, database connections; and the first rate whose p95 exceeds 20 ms.
3. **Live viewers** (``--sse N``): a real run executed by a separate ``perf-agent worker``
   while N clients, spread over two API processes, follow its stream; every client must get
   every second. Gap percentiles between a client's samples, the API processes' CPU while
   relaying, database connections.

    .venv/bin/python bench/self_load.py [--rates 100,200,300,500] [--seconds 60] [--sse 200]
    .venv/bin/python bench/self_load.py --reseed --runs 100      # the same at 100 runs stored
    PERF_AGENT_LIST_CACHE_S=0 .venv/bin/python bench/self_load.py  # list pages never reused

k6 and the service share this machine: the figures include that (as the issue's do).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg

from app.cli import free_port, running_demo_target, running_service, stop_process, wait_http
from app.client import PerfAgentClient
from app.core.migrate import upgrade
from app.core.settings import get_settings

API = "/api/agents/performance-agent"
DATABASE = "perf_agent_selfload"
ROOT = Path(__file__).resolve().parent.parent
CLONED = ("run_results", "run_events", "run_samples", "run_histograms", "run_archives")
ROUTES = ("runs_by_plan", "runs_by_status", "run", "analysis", "plan")
P95_GOAL_MS = 20.0


def admin_url() -> str:
    return os.environ.get(
        "PERF_AGENT_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )


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


def demo_plan(target: str, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "target": {"base_url": target, "environment": "bench"},
        "endpoints": [
            {"name": "products", "path": "/api/products"},
            {"name": "product", "path": "/api/products/1"},
            {"name": "recent", "path": "/api/orders/recent"},
        ],
        "load": {"profile": "load", "vus": 5, "duration": "6s"},
        "slos": ["p95 < 300ms", "error_rate < 1%"],
    }


def seed(runs: int, plans: int) -> None:
    """One real run and its analysis, cloned into ``plans`` × ``runs / plans`` runs."""
    settings = get_settings().model_copy(update={"database_url": sqlalchemy_url()})
    with (
        running_demo_target(free_port()) as target,
        running_service(settings, free_port()) as service,
        PerfAgentClient(service) as client,
    ):
        plan, run = client.run_approved(demo_plan(target, "selfload-0"), reviewer="bench")
        if run["status"] != "succeeded":
            raise SystemExit(f"the real run {run['id']} {run['status']}: {run['error']}")
        client.http.post("/analyse", json={"run_id": run["id"]}).raise_for_status()
    per_plan = max(1, runs // plans)
    with psycopg.connect(database_url()) as conn:
        columns = {
            table: [
                r[0]
                for r in conn.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
                    "ORDER BY ordinal_position",
                    (table,),
                )
            ]
            for table in ("plans", "runs", "analyses", *CLONED)
        }
        conn.execute(
            """CREATE TEMP TABLE plan_map AS
               SELECT gen_random_uuid() AS id, p AS n FROM generate_series(1, %s) p""",
            (plans,),
        )
        # Versions 2..N+1 of the real run's plan: one family whose history holds every run,
        # what POST /analyse reads (the "a plan with 10,000 past runs").
        plan_cols = [
            c for c in columns["plans"] if c not in ("id", "version", "created_at")
        ]  # fmt: skip
        conn.execute(
            f"""INSERT INTO plans (id, version, created_at, {", ".join(plan_cols)})
                SELECT m.id, m.n + 1, now() - (%s - m.n) * interval '1 minute',
                       {", ".join("p." + c for c in plan_cols)}
                FROM plan_map m, plans p WHERE p.id = %s""",
            (plans, plan["id"]),
        )
        conn.execute(
            """CREATE TEMP TABLE run_map AS
               SELECT gen_random_uuid() AS id, m.id AS plan_id,
                      now() - ((r * %s + m.n) * interval '5 minutes') AS at,
                      CASE WHEN r %% 17 = 0 THEN 'failed' WHEN r %% 23 = 0 THEN 'aborted'
                           ELSE 'succeeded' END AS status,
                      r %% 7 IN (0, 3) AS analysed
               FROM plan_map m, generate_series(1, %s) r""",
            (plans, per_plan),
        )
        run_cols = [
            c for c in columns["runs"]
            if c not in ("id", "plan_id", "created_at", "started_at", "finished_at", "status")
        ]  # fmt: skip
        conn.execute(
            f"""INSERT INTO runs (id, plan_id, created_at, started_at, finished_at, status,
                                  {", ".join(run_cols)})
                SELECT m.id, m.plan_id, m.at, m.at + interval '1 second',
                       m.at + interval '8 seconds', m.status,
                       {", ".join("r." + c for c in run_cols)}
                FROM run_map m, runs r WHERE r.id = %s""",
            (run["id"],),
        )
        for table in CLONED:
            cols = [c for c in columns[table] if c not in ("id", "run_id")]
            conn.execute(
                f"""INSERT INTO {table} (run_id, {", ".join(cols)})
                    SELECT m.id, {", ".join("t." + c for c in cols)}
                    FROM run_map m, {table} t WHERE t.run_id = %s""",
                (run["id"],),
            )
        cols = [c for c in columns["analyses"] if c not in ("id", "run_id", "created_at")]
        conn.execute(
            f"""INSERT INTO analyses (id, run_id, created_at, {", ".join(cols)})
                SELECT gen_random_uuid(), m.id, m.at + interval '10 seconds',
                       {", ".join("a." + c for c in cols)}
                FROM run_map m, analyses a WHERE a.run_id = %s AND m.analysed""",
            (run["id"],),
        )
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")


def read_key() -> str:
    """A key with the read and execute scopes, as a pipeline polling the service holds."""
    env = {**os.environ, "PERF_AGENT_DATABASE_URL": sqlalchemy_url()}
    made = subprocess.run(
        [str(Path(sys.executable).with_name("perf-agent")), "keys", "create", "--owner",
         "bench-self-load", "--scope", "read", "--scope", "execute", "--quiet"],
        env=env, cwd=ROOT, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return made.stdout.strip().splitlines()[-1]


def sample_ids(count: int = 200) -> dict[str, list[str]]:
    with psycopg.connect(database_url()) as conn:

        def ids(query: str) -> list[str]:
            return [str(r[0]) for r in conn.execute(query, (count,))]

        return {
            "plans": ids("SELECT id FROM plans ORDER BY random() LIMIT %s"),
            "runs": ids("SELECT id FROM runs ORDER BY random() LIMIT %s"),
            "analyses": ids("SELECT id FROM analyses ORDER BY random() LIMIT %s"),
        }


SCRIPT = textwrap.dedent(
    """
    import http from 'k6/http';
    const ids = JSON.parse(open('./ids.json'));
    const base = __ENV.BASE;
    const auth = __ENV.KEY ? { Authorization: `Bearer ${__ENV.KEY}` } : {};
    const params = (name) => ({ tags: { name }, headers: auth });
    const statuses = ['succeeded', 'failed', 'aborted'];
    function pick(a) { return a[Math.floor(Math.random() * a.length)]; }
    export const options = {
      discardResponseBodies: true,
      scenarios: { reads: {
        executor: 'constant-arrival-rate', rate: Number(__ENV.RATE), timeUnit: '1s',
        duration: __ENV.DURATION, preAllocatedVUs: Number(__ENV.VUS), maxVUs: Number(__ENV.VUS) * 4,
      } },
      thresholds: ROUTE_THRESHOLDS,
    };
    export default function () {
      const r = Math.random();
      if (r < 0.25) http.get(`${base}/runs?plan_id=${pick(ids.plans)}`, params('runs_by_plan'));
      else if (r < 0.40)
        http.get(`${base}/runs?status=${pick(statuses)}`, params('runs_by_status'));
      else if (r < 0.70) http.get(`${base}/runs/${pick(ids.runs)}`, params('run'));
      else if (r < 0.85) http.get(`${base}/analyses/${pick(ids.analyses)}`, params('analysis'));
      else http.get(`${base}/plans/${pick(ids.plans)}`, params('plan'));
    }
    """
)


def k6_read_mix(
    base: str, rate: int, seconds: int, ids: dict[str, list[str]], key: str | None
) -> dict[str, Any]:
    thresholds = {f"http_req_duration{{name:{r}}}": ["p(95)<100000"] for r in ROUTES}
    thresholds.update({f"http_req_failed{{name:{r}}}": ["rate<2"] for r in ROUTES})
    script = SCRIPT.replace("ROUTE_THRESHOLDS", json.dumps(thresholds))
    with tempfile.TemporaryDirectory() as work:
        Path(work, "ids.json").write_text(json.dumps(ids))
        Path(work, "script.js").write_text(script)
        summary = Path(work, "summary.json")
        env = {
            **os.environ, "BASE": base + API, "RATE": str(rate), "DURATION": f"{seconds}s",
            "VUS": str(max(20, rate // 5)), "KEY": key or "",
        }  # fmt: skip
        subprocess.run(
            [
                get_settings().k6_binary, "run", "--quiet", "--no-color",
                "--summary-trend-stats", "p(50),p(95),p(99),max",
                "--summary-export", str(summary), "script.js",
            ],
            cwd=work, env=env, check=False, stdout=subprocess.DEVNULL, timeout=seconds + 120,
        )  # fmt: skip
        return dict(json.loads(summary.read_text())["metrics"])


class Watch:
    """CPU and RSS of a set of processes (and their children), and database connections."""

    def __init__(self, pids: list[int]) -> None:
        self.procs = []
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                parent = psutil.Process(pid)
                self.procs += [parent, *parent.children(recursive=True)]
        self.connections: list[int] = []
        self.rss: list[float] = []
        self._cpu0 = self._cpu()
        self._t0 = time.monotonic()

    def _cpu(self) -> float:
        total = 0.0
        for proc in self.procs:
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                total += times.user + times.system
        return total

    def tick(self) -> None:
        rss = 0.0
        for proc in self.procs:
            with contextlib.suppress(psutil.Error):
                rss += proc.memory_info().rss
        self.rss.append(rss / 2**20)
        with psycopg.connect(database_url()) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> "
                "pg_backend_pid()",
                (DATABASE,),
            ).fetchone()
            self.connections.append(int(row[0]) if row else 0)

    def cores(self) -> float:
        return (self._cpu() - self._cpu0) / max(1e-9, time.monotonic() - self._t0)


@contextlib.contextmanager
def api_processes(workers: int, port: int, *, auth: bool = False) -> Iterator[tuple[str, int]]:
    """``perf-agent serve --workers N`` on this database, no worker in it: (url, its pid)."""
    env = {
        **os.environ, "PERF_AGENT_DATABASE_URL": sqlalchemy_url(),
        "PERF_AGENT_AUTH": "on" if auth else "off", "PERF_AGENT_EMBEDDED_WORKER": "false",
        "PERF_AGENT_LIST_CACHE_S": os.environ.get("PERF_AGENT_LIST_CACHE_S", "1.0"),
    }  # fmt: skip
    argv = [
        str(Path(sys.executable).with_name("perf-agent")), "serve", "--no-worker",
        "--port", str(port), "--workers", str(workers),
    ]  # fmt: skip
    proc = subprocess.Popen(
        argv, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", timeout_s=60)
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        stop_process(proc)


def _route_figures(metrics: dict[str, Any], route: str) -> tuple[float, float, float, float, int]:
    d = metrics.get(f"http_req_duration{{name:{route}}}", {})
    failed = metrics.get(f"http_req_failed{{name:{route}}}", {})
    count = int(metrics.get("http_reqs", {}).get("count", 0))
    return (
        d.get("p(50)", float("nan")), d.get("p(95)", float("nan")), d.get("p(99)", float("nan")),
        float(failed.get("value", 0.0)), count,
    )  # fmt: skip


def reads(args: argparse.Namespace) -> None:
    ids = sample_ids()
    key = None if args.no_auth else read_key()
    print(
        f"\nread mix, {stored_runs():,} runs stored, {args.api_workers} API processes, "
        f"{args.seconds} s per rate, auth {'off' if args.no_auth else 'on (a read key)'}, "
        f"list cache {os.environ.get('PERF_AGENT_LIST_CACHE_S', '1.0')} s"
    )
    print(
        f"{'rate/s':>7} {'achieved':>8} {'dropped':>8} {'errors':>7} {'p95 all':>8}  "
        + "  ".join(f"{r + ' p50/p95/p99':>28}" for r in ROUTES)
        + f"  {'cpu':>5} {'rss MB':>7} {'db conns':>8}"
    )
    first_over = None
    port = free_port()
    with api_processes(args.api_workers, port, auth=not args.no_auth) as (base, owner):
        if args.warmup:  # the processes' first seconds (imports, pools, caches) not counted
            k6_read_mix(base, min(args.rates), args.warmup, ids, key)
        for rate in args.rates:
            watch = Watch([owner])
            done = asyncio.Event()

            async def ticker(watch: Watch = watch, done: asyncio.Event = done) -> None:
                while not done.is_set():
                    await asyncio.to_thread(watch.tick)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(done.wait(), timeout=2)

            async def one(
                rate: int = rate, watch: Watch = watch, done: asyncio.Event = done
            ) -> dict[str, Any]:
                task = asyncio.create_task(ticker())
                metrics = await asyncio.to_thread(k6_read_mix, base, rate, args.seconds, ids, key)
                done.set()
                await task
                return metrics

            metrics = asyncio.run(one())
            cores = watch.cores()
            overall = metrics.get("http_req_duration", {})
            achieved = metrics.get("http_reqs", {}).get("rate", 0.0)
            dropped = int(metrics.get("dropped_iterations", {}).get("count", 0))
            errors = metrics.get("http_req_failed", {}).get("value", 0.0)
            cells = []
            for route in ROUTES:
                p50, p95, p99, _, _ = _route_figures(metrics, route)
                cells.append(f"{p50:>8.1f}/{p95:>8.1f}/{p99:>8.1f} ms")
            p95_all = overall.get("p(95)", float("nan"))
            print(
                f"{rate:>7} {achieved:>8.1f} {dropped:>8} {errors:>7.2%} {p95_all:>6.1f}ms  "
                + "  ".join(f"{c:>28}" for c in cells)
                + f"  {cores:>5.2f} {max(watch.rss, default=0):>7.0f} "
                f"{max(watch.connections, default=0):>8}"
            )
            if first_over is None and p95_all > P95_GOAL_MS:
                first_over = rate
    print(
        f"first rate with p95 > {P95_GOAL_MS:g} ms: "
        + (f"{first_over}/s" if first_over else f"none up to {max(args.rates)}/s")
    )


async def _viewer(base: str, run_id: str, arrivals: list[float], ids: set[str]) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(10, read=60)) as http:
        async with http.stream("GET", f"{API}/runs/{run_id}/stream") as response:
            event = None
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("id:") and event == "sample":
                    ids.add(line[3:].strip().split(".")[0])
                    arrivals.append(time.monotonic())
                elif line.startswith("data:") and event == "end":
                    return


def viewers(args: argparse.Namespace) -> None:
    with running_demo_target(free_port()) as target:
        ports = [free_port(), free_port()]
        with contextlib.ExitStack() as stack:
            apis = [stack.enter_context(api_processes(1, port)) for port in ports]
            env = {**os.environ, "PERF_AGENT_DATABASE_URL": sqlalchemy_url()}
            worker = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "worker"], env=env, cwd=ROOT,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            )  # fmt: skip
            stack.callback(stop_process, worker)
            with PerfAgentClient(apis[0][0]) as client:
                doc = demo_plan(target, "selfload-live")
                doc["load"] = {"profile": "load", "vus": 3, "duration": f"{args.live_seconds}s"}
                plan = client.create_plan(doc)
                client.approve(plan["id"])
                run = client.execute(plan["id"])
            arrivals: list[list[float]] = [[] for _ in range(args.sse)]
            seen: list[set[str]] = [set() for _ in range(args.sse)]

            async def all_viewers() -> float:
                watch = Watch([owner for _, owner in apis])
                tasks = [
                    asyncio.create_task(_viewer(apis[i % 2][0], run["id"], arrivals[i], seen[i]))
                    for i in range(args.sse)
                ]
                while not all(t.done() for t in tasks):
                    await asyncio.to_thread(watch.tick)
                    await asyncio.sleep(2)
                await asyncio.gather(*tasks, return_exceptions=True)
                print(f"  database connections (max): {max(watch.connections, default=0)}")
                return watch.cores()

            cores = asyncio.run(all_viewers())
            with PerfAgentClient(apis[0][0]) as client:
                finished = client.wait(run["id"], timeout_s=60)
            samples = len({s for ids in seen for s in ids})
    gaps = sorted(
        b - a for times in arrivals for a, b in itertools.pairwise(times[2:-1])
    )  # the steady seconds: not k6's start-up nor its last partial second
    complete = sum(len(ids) == samples for ids in seen)
    print(
        f"\n{args.sse} live viewers over 2 API processes, run {finished['id']} "
        f"({finished['status']})"
    )
    print(f"  samples in the run: {samples}; viewers who got every one: {complete}/{args.sse}")
    if gaps:
        q = statistics.quantiles(gaps, n=100)
        print(
            f"  gap between a viewer's samples: p50 {q[49]:.2f} s, p95 {q[94]:.2f} s, "
            f"max {gaps[-1]:.2f} s"
        )
    print(f"  API processes' CPU while relaying: {cores:.2f} cores (both together)")


def sizes(args: argparse.Namespace) -> None:
    """Each list route's median time, one request at a time, and a walk over every page."""
    ids = sample_ids(20)
    with psycopg.connect(database_url()) as conn:
        total = int(conn.execute("SELECT count(*) FROM runs").fetchone()[0])  # type: ignore[index]
    routes = {
        "GET /runs": "/runs",
        "GET /runs?plan_id=": f"/runs?plan_id={ids['plans'][0]}",
        "GET /runs?status=": "/runs?status=succeeded",
        "GET /plans/{id}/history": f"/plans/{ids['plans'][0]}/history",
    }
    port = free_port()
    with api_processes(1, port) as (base, _), httpx.Client(base_url=base + API) as http:
        print(f"\none request at a time, {total:,} runs stored (median of {args.samples})")
        for name, path in routes.items():
            http.get(path).raise_for_status()
            times = []
            for _ in range(args.samples):
                started = time.perf_counter()
                response = http.get(path)
                times.append(time.perf_counter() - started)
                response.raise_for_status()
            median_ms = 1000 * statistics.median(times)
            print(f"  {name:<26} {median_ms:7.2f} ms  {len(response.content):>9,} B")
        seen, pages, url = 0, 0, "/runs?limit=200"
        started = time.perf_counter()
        while url:
            page = http.get(url.removeprefix(API)).raise_for_status().json()
            seen, pages, url = seen + len(page["items"]), pages + 1, page["next"]
        print(
            f"  following next from GET /runs?limit=200: {seen:,} of {total:,} runs in {pages} "
            f"pages, {time.perf_counter() - started:.2f} s"
        )


def analyses(args: argparse.Namespace) -> None:
    """``POST /analyse`` of the newest run of the family that holds every stored run: no
    baseline given, so it is judged against the plan's history (no LLM, no profiler)."""
    with psycopg.connect(database_url()) as conn:
        row = conn.execute(
            "SELECT r.id, (SELECT count(*) FROM runs r2 JOIN plans p2 ON p2.id = r2.plan_id "
            "WHERE p2.family_id = p.family_id) FROM runs r JOIN plans p ON p.id = r.plan_id "
            "WHERE r.status = 'succeeded' AND p.name = 'selfload-0' "
            "ORDER BY r.created_at DESC LIMIT 1"
        ).fetchone()
    assert row is not None
    run_id, stored = row
    port = free_port()
    with api_processes(1, port) as (base, _), httpx.Client(base_url=base + API) as http:
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            response = http.post("/analyse", json={"run_id": str(run_id)}, timeout=120)
            times.append(time.perf_counter() - started)
            response.raise_for_status()
        body = response.json()
    print(
        f"\nPOST /analyse, a run of a plan with {stored:,} past runs (baseline: "
        f"{body.get('baseline_source')}): median {statistics.median(times):.3f} s, "
        f"max {max(times):.3f} s over {len(times)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--plans", type=int, default=20)
    parser.add_argument("--reseed", action="store_true", help="drop the bench database first")
    parser.add_argument(
        "--rates", type=lambda s: [int(x) for x in s.split(",")], default=[100, 200, 300, 500]
    )
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--api-workers", type=int, default=2)
    parser.add_argument("--sse", type=int, default=0, help="live viewers (0: skip)")
    parser.add_argument("--live-seconds", type=int, default=30)
    parser.add_argument("--no-reads", action="store_true")
    parser.add_argument("--no-auth", action="store_true", help="PERF_AGENT_AUTH=off")
    parser.add_argument("--repeat", type=int, default=5, help="POST /analyse timings (0: skip)")
    parser.add_argument("--samples", type=int, default=50, help="list timings (0: skip)")
    parser.add_argument("--warmup", type=int, default=10, help="seconds of load not counted")
    args = parser.parse_args()
    ensure_database(args.reseed)
    if stored_runs() < args.runs:
        started = time.monotonic()
        seed(args.runs, args.plans)
        print(f"seeded {stored_runs():,} runs in {time.monotonic() - started:.0f} s")
    if not args.no_reads:
        reads(args)
    if args.samples:
        sizes(args)
    if args.repeat:
        analyses(args)
    if args.sse:
        viewers(args)


if __name__ == "__main__":
    main()
