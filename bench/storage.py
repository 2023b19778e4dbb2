"""Stored bytes per run: flat in the traffic, and what a long, wide run costs.

Default: runs the same one-endpoint plan through the service twice, at an arrival rate of R
and of 10 R requests per second for the same duration, then sums PostgreSQL's own size of
every row stored for each run (runs, run_results, run_samples, run_events, run_histograms).

    .venv/bin/python bench/storage.py [--rate 30] [--seconds 10]

``--long``: a 30-minute, 20-endpoint run (``--minutes``, ``--endpoints``, ``--rate`` per
endpoint, 20 by default: 400 requests/s) stored as the worker stores it — k6 JSON points
for every request through the live path (app/runs/live.py), its samples and histogram
windows written by the spool's insert — into a finished run of a real plan. It prints the
bytes per table as stored, then after the retention roll-up (app/runs/retention.py), and
how far the percentiles read back from the stored histograms (whole run per endpoint, and
each per-minute sample's) are from the exact percentiles of the generated latencies (k6's
rank rule). No k6 process: 30 minutes of k6 would measure the same rows.

    .venv/bin/python bench/storage.py --long [--minutes 30] [--endpoints 20] [--rate 20]

Uses PERF_AGENT_DATABASE_URL / DATABASE_URL when set, else the embedded PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg

from app.cli import free_port, running_demo_target, running_service
from app.client import PerfAgentClient
from app.core.db import create_engine, create_sessionmaker, resolve_database_url
from app.core.settings import Settings, get_settings
from app.models import Run, RunStatus
from app.runs import retention
from app.runs.live import LiveMetrics
from app.runs.repository import RunRepository
from app.runs.service import merge_windows
from app.runs.spool import _insert

PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0}
SYSTEM = {"cpu_percent": 41.3, "rss_mb": 182.4, "threads": 9, "processes": 1, "cores": 2}
GENERATOR = {
    "k6_cpu_percent": 36.8,
    "k6_wait_percent": 1.2,
    "k6_rss_mb": 96.1,
    "service_cpu_percent": 3.1,
    "other_cpu_percent": 2.4,
    "machine_cpu_percent": 43.0,
    "cores": 2,
}

TABLES = {
    "runs": "id = %(run)s",
    "run_archives": "run_id = %(run)s",
    "run_results": "run_id = %(run)s",
    "run_samples": "run_id = %(run)s",
    "run_events": "run_id = %(run)s",
    "run_histograms": "run_id = %(run)s",
}


def plan(target: str, rate: int, seconds: int) -> dict[str, Any]:
    return {
        "name": f"storage-{rate}",
        "target": {"base_url": target, "environment": "local"},
        "endpoints": [{"name": "health", "path": "/health"}],
        "load": {
            "profile": "constant-arrival",
            "rate": rate,
            "duration": f"{seconds}s",
            "pre_allocated_vus": 20,
            "max_vus": 50,
        },
        "slos": ["p95 < 1000ms"],
    }


def stored_rows(
    url: str, run_id: str, tables: dict[str, str] = TABLES
) -> dict[str, tuple[int, int]]:
    """(rows, bytes as stored: ``pg_column_size`` of each row) the run holds in each table;
    ``tables`` says how each names the run."""
    libpq = url.replace("postgresql+psycopg://", "postgresql://")
    found = {}
    with psycopg.connect(libpq) as conn:
        for table, where in tables.items():
            row = conn.execute(
                f"SELECT count(*), coalesce(sum(pg_column_size(t.*)), 0) FROM {table} t "
                f"WHERE {where}",
                {"run": run_id},
            ).fetchone()
            assert row is not None
            found[table] = (int(row[0]), int(row[1]))
    return found


def stored_bytes(url: str, run_id: str) -> dict[str, int]:
    return {table: size for table, (_, size) in stored_rows(url, run_id).items()}


def wide_plan(target: str, endpoints: int) -> dict[str, Any]:
    return {
        "name": f"storage-{endpoints}-endpoints",
        "target": {"base_url": target, "environment": "local"},
        "endpoints": [{"name": f"e{i:02d}", "path": f"/e{i:02d}"} for i in range(endpoints)],
        "load": {"profile": "constant-arrival", "rate": 10, "duration": "30m", "max_vus": 50},
        "slos": ["p95 < 1000ms"],
    }


def synthetic_records(
    endpoints: list[str], seconds: int, rate: int, window_s: int, seed: int = 7
) -> tuple[list[dict[str, Any]], dict[str, list[np.ndarray]]]:
    """What the live path hands the spool for such a run, and every latency it was fed (per
    endpoint, per second)."""
    rng = np.random.default_rng(seed)
    live = LiveMetrics(list(endpoints), window_s=window_s)
    start = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp())
    medians = {name: 5.0 + 45.0 * rng.random() for name in endpoints}
    fed: dict[str, list[np.ndarray]] = {name: [] for name in endpoints}
    records: list[dict[str, Any]] = []
    for second in range(seconds):
        lines = []
        stamp = datetime.fromtimestamp(start + second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        for name in endpoints:
            values = medians[name] * rng.lognormal(0.0, 0.35, rate)
            fed[name].append(values)
            offsets = np.sort(rng.random(rate))
            for value, offset in zip(values.tolist(), offsets.tolist(), strict=True):
                lines.append(
                    '{"metric":"http_req_duration","type":"Point","data":{"time":"'
                    f'{stamp}.{int(offset * 1e6):06d}Z","value":{value:.6f},'
                    f'"tags":{{"name":"{name}","expected_response":"true"}}}}}}'
                )
        lines.append(
            '{"metric":"vus","type":"Point","data":{"time":"'
            f'{stamp}.999000Z","value":20,"tags":{{}}}}}}'
        )
        live.feed(("\n".join(lines) + "\n").encode())
        records.extend(live.drain())
    live.finish()
    records.extend(live.drain())
    for record in records:
        if record["type"] != "sample":
            record["attempt"] = 1
            continue
        # What the worker adds to each second (runs/execution.py): its attempt, and readings
        # of the target's and the load generator's machine (runs/system.py).
        record["sample"].update(attempt=1, system=dict(SYSTEM), generator=dict(GENERATOR))
    return records, fed


def k6_percentile(values: np.ndarray, pct: float) -> float:
    return float(np.percentile(values, pct))  # linear at rank p·(n−1): k6's TrendSink.P


async def store_long_run(
    url: str, plan: dict[str, Any], records: list[dict[str, Any]], minutes: int
) -> uuid.UUID:
    engine = create_engine(url)
    sessions = create_sessionmaker(engine)
    now = datetime.now(UTC)
    run = Run(
        id=uuid.uuid4(),
        plan_id=uuid.UUID(plan["id"]),
        plan_version=plan["version"],
        script_sha256=plan["script_sha256"],
        status=RunStatus.succeeded,
        attempts=1,
        started_at=now - timedelta(days=30, minutes=minutes),
        finished_at=now - timedelta(days=30),
        test_duration_s=minutes * 60.0,
    )
    try:
        async with sessions() as session, session.begin():
            session.add(run)
            await session.flush()
            for i in range(0, len(records), 200):
                await _insert(session, run.id, records[i : i + 200])
    finally:
        await engine.dispose()
    return run.id


async def errors_against_exact(
    url: str, run_id: uuid.UUID, fed: dict[str, list[np.ndarray]]
) -> tuple[float, float]:
    """(largest relative error of a whole-run percentile of an endpoint, of a per-minute
    sample's percentile — NaN while the samples are per second)."""
    engine = create_engine(url)
    worst_run = worst_minute = 0.0
    minute_checked = False
    try:
        async with create_sessionmaker(engine)() as session:
            repo = RunRepository(session)
            for name, seconds in fed.items():
                stored = merge_windows(await repo.histograms(run_id, name))
                every = np.concatenate(seconds)
                for pct in PERCENTILES.values():
                    got = stored.percentile(pct)
                    assert got is not None
                    exact = k6_percentile(every, pct)
                    worst_run = max(worst_run, abs(got / exact - 1))
            for sample in await repo.sample_rows(run_id):
                data = sample.data
                if not data.get("span_s"):
                    continue
                minute_checked = True
                first = int(data["elapsed_s"])
                for name, figures in data["endpoints"].items():
                    values = np.concatenate(fed[name][first : first + int(data["span_s"])])
                    for sli, pct in PERCENTILES.items():
                        exact = k6_percentile(values, pct)
                        worst_minute = max(
                            worst_minute, abs(figures["latency_ms"][sli] / exact - 1)
                        )
    finally:
        await engine.dispose()
    return worst_run, (worst_minute if minute_checked else float("nan"))


async def pack(url: str, run_id: uuid.UUID) -> None:
    engine = create_engine(url)
    try:
        packed = await retention.archive_finished_runs(
            create_sessionmaker(engine), after_s=1, limit=100
        )
        assert run_id in packed
    finally:
        await engine.dispose()


async def roll_up(url: str, run_id: uuid.UUID) -> None:
    engine = create_engine(url)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            await retention.roll_up(session, run_id, now=datetime.now(UTC))
    finally:
        await engine.dispose()


def long_run(args: argparse.Namespace, settings: Settings, url: str) -> None:
    endpoints = [f"e{i:02d}" for i in range(args.endpoints)]
    seconds = args.minutes * 60
    print(
        f"{args.minutes}-minute run, {args.endpoints} endpoints, {args.rate} requests/s each "
        f"({args.rate * args.endpoints * seconds:,} requests), "
        f"{settings.histogram_window_s}-s histogram windows"
    )
    records, fed = synthetic_records(endpoints, seconds, args.rate, settings.histogram_window_s)
    with (
        running_demo_target(free_port()) as target,
        running_service(settings, free_port()) as service,
        PerfAgentClient(service) as client,
    ):
        plan = client.create_plan(wide_plan(target, args.endpoints))
        client.approve(plan["id"], reviewer="bench")
    rows = []
    for stage in ("as stored", "packed", "rolled up"):
        if stage != "packed":
            run_id = asyncio.run(store_long_run(url, plan, records, args.minutes))
        if stage == "packed":
            started = time.perf_counter()
            asyncio.run(pack(url, run_id))
            print(f"packing took {time.perf_counter() - started:.2f} s")
        if stage == "rolled up":
            asyncio.run(roll_up(url, run_id))
        sizes = stored_bytes(url, str(run_id))
        worst_run, worst_minute = asyncio.run(errors_against_exact(url, run_id, fed))
        rows.append((stage, sizes, worst_run, worst_minute))
    print(f"{'':<10} " + " ".join(f"{t:>14}" for t in TABLES) + f" {'total':>11}")
    for stage, sizes, _, _ in rows:
        cells = " ".join(f"{sizes[t]:>14,}" for t in TABLES)
        print(f"{stage:<10} {cells} {sum(sizes.values()):>11,}")
    for stage, sizes, worst_run, worst_minute in rows:
        print(
            f"{stage}: {sum(sizes.values()) / 1e6:.2f} MB; whole-run p50/p90/p95/p99 of each "
            f"endpoint within {worst_run:.3%} of the exact ones"
            + (
                f"; per-minute samples' within {worst_minute:.3%}"
                if not np.isnan(worst_minute)
                else ""
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rate", type=int, default=None, help="requests/s of the small run (30), or per endpoint"
    )
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--long", action="store_true", help="a long, wide run (see above)")
    parser.add_argument("--minutes", type=int, default=30)
    parser.add_argument("--endpoints", type=int, default=20)
    args = parser.parse_args()
    settings = get_settings()
    if args.long:
        args.rate = args.rate or 20
        long_run(args, settings, resolve_database_url(settings))
        return
    args.rate = args.rate or 30
    url = resolve_database_url(settings)
    results = []
    with (
        running_demo_target(free_port()) as target,
        running_service(settings, free_port()) as service,
        PerfAgentClient(service) as client,
    ):
        for rate in (args.rate, args.rate * 10):
            _, run = client.run_approved(plan(target, rate, args.seconds), reviewer="bench")
            if run["status"] != "succeeded":
                raise SystemExit(f"run {run['id']} {run['status']}: {run['error']}")
            total = next(r for r in run["results"] if r["endpoint"] == "*")
            sizes = stored_bytes(url, run["id"])
            results.append((rate, total["requests"], sizes))
    print(
        f"{'rate/s':>7} {'requests':>9} " + " ".join(f"{t:>12}" for t in TABLES) + f" {'total':>9}"
    )
    for rate, requests, sizes in results:
        cells = " ".join(f"{sizes[t]:>12,}" for t in TABLES)
        print(f"{rate:>7} {requests:>9,} {cells} {sum(sizes.values()):>9,}")
    small, large = (sum(s.values()) for _, _, s in results)
    ratio = large / small
    print(
        f"\n{results[1][1] / results[0][1]:.1f}x the requests -> {ratio:.3f}x the stored bytes "
        f"({'flat within 10 %' if abs(ratio - 1) <= 0.10 else 'NOT flat within 10 %'})"
    )


if __name__ == "__main__":
    main()
