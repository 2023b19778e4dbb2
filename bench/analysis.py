"""How long an analysis takes without the LLM: a 30-minute, 20-endpoint run against a baseline.

Stores a plan of 20 endpoints and two runs of it (baseline and candidate) as the worker would
— 1,800 per-second samples each with figures for every endpoint, each endpoint's 10-second
histogram windows (180 × 21, read by the response-level tests), per-endpoint results — one
endpoint 40 % slower in the candidate; then times ``POST /analyse`` (SLOs, regression tests on
every endpoint and SLI, findings, report) through the ASGI app, several times.

    .venv/bin/python bench/analysis.py [--seconds 1800] [--endpoints 20] [--repeat 5] [--packed]

Uses PERF_AGENT_DATABASE_URL / DATABASE_URL when set, else the embedded PostgreSQL. The runs
it stores are deleted afterwards. Goal: ≤ 1 s (issue 12; seed: ≤ 20 s).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
from sqlalchemy import delete, update

from app.core.db import create_engine, create_sessionmaker, resolve_database_url
from app.core.migrate import upgrade
from app.core.settings import get_settings
from app.main import create_app
from app.models import Plan, PlanStatus, Run, RunHistogram, RunResult, RunSample, RunStatus
from app.plans import k6script
from app.plans.schemas import PlanSpec, effective_slos
from app.runs import retention
from app.runs.histogram import Histogram

WINDOW_S = 10

API = "/api/agents/performance-agent"


def plan_row(endpoints: int) -> Plan:
    spec = PlanSpec.model_validate(
        {
            "name": "bench-analysis",
            "target": {"base_url": "http://127.0.0.1:9", "environment": "local"},
            "endpoints": [{"name": f"e{i:02d}", "path": f"/e/{i}"} for i in range(endpoints)],
            "load": {"vus": 50, "duration": "30m"},
            "slos": ["p95 < 300ms", "error_rate < 1%"],
        }
    )
    script = k6script.render(spec, slos=effective_slos(spec)[0])
    plan_id = uuid.uuid4()
    return Plan(
        id=plan_id,
        family_id=plan_id,
        name=spec.name,
        version=1,
        status=PlanStatus.approved,
        spec=spec.model_dump(mode="json", by_alias=True),
        source="{}",
        source_format="json",
        script=script,
        script_sha256=k6script.sha256(script),
    )


def figures(rng: np.random.Generator, p95: float, requests: int) -> dict[str, Any]:
    value = float(p95 * rng.lognormal(0, 0.08))
    return {
        "requests": requests,
        "failures": 0,
        "latency_ms": {
            "avg": value * 0.5,
            "min": value * 0.2,
            "p50": value * 0.45,
            "p90": value * 0.85,
            "p95": value,
            "p99": value * 1.3,
            "max": value * 1.8,
        },
    }


def window_row(
    run_id: uuid.UUID, endpoint: str, start: datetime, window: int, span: int, latency: Histogram
) -> RunHistogram:
    return RunHistogram(
        run_id=run_id,
        attempt=1,
        endpoint=endpoint,
        at=start + timedelta(seconds=window),
        start_s=window,
        seconds=span,
        requests=latency.total,
        failures=0,
        count=latency.total,
        sum_ms=latency.sum_ms,
        min_ms=latency.min_ms,
        max_ms=latency.max_ms,
        counts=latency.encode(),
    )


def run_rows(plan: Plan, seconds: int, endpoints: int, slow: int | None, seed: int) -> list[Any]:
    rng = np.random.default_rng(seed)
    run = Run(
        id=uuid.uuid4(),
        plan_id=plan.id,
        plan_version=1,
        script_sha256=plan.script_sha256,
        status=RunStatus.succeeded,
        attempts=1,
        test_duration_s=float(seconds),
    )
    base = [20.0 + 3 * i for i in range(endpoints)]
    p95s = [b * (1.4 if i == slow else 1.0) for i, b in enumerate(base)]
    start = datetime(2026, 11, 25, tzinfo=UTC)
    rows: list[Any] = [run]
    for second in range(seconds):
        per = {f"e{i:02d}": figures(rng, p95, 25) for i, p95 in enumerate(p95s)}
        data = {"elapsed_s": second, "vus": 50, "attempt": 1, **figures(rng, max(p95s), 500),
                "total_requests": 25 * endpoints * (second + 1), "endpoints": per}  # fmt: skip
        rows.append(
            RunSample(
                run_id=run.id,
                at=start + timedelta(seconds=second),
                vus=50,
                requests=25 * endpoints,
                failures=0,
                data=data,
            )
        )
    for window in range(0, seconds, WINDOW_S):
        span = min(WINDOW_S, seconds - window)
        every = Histogram()
        for i, p95 in enumerate(p95s):
            # Lognormal σ 0.3: its p95 is 1.64 × the median.
            values = p95 / 1.64 * rng.lognormal(0, 0.3, 25 * span)
            one = Histogram()
            one.record(values)
            every.add(one)
            rows.append(window_row(run.id, f"e{i:02d}", start, window, span, one))
        rows.append(window_row(run.id, "*", start, window, span, every))
    for name, p95 in [("*", max(p95s)), *((f"e{i:02d}", v) for i, v in enumerate(p95s))]:
        requests = 25 * seconds * (endpoints if name == "*" else 1)
        rows.append(
            RunResult(
                run_id=run.id,
                endpoint=name,
                requests=requests,
                failures=0,
                rps=requests / seconds,
                error_rate=0.0,
                avg_ms=p95 * 0.5,
                min_ms=p95 * 0.2,
                p50_ms=p95 * 0.45,
                p90_ms=p95 * 0.85,
                p95_ms=p95,
                p99_ms=p95 * 1.3,
                max_ms=p95 * 1.8,
                source="histograms",
            )
        )
    return rows


async def main_async(args: argparse.Namespace) -> None:
    # In-process, no network: the bench is its own only caller (auth would only add a key).
    settings = get_settings().model_copy(update={"auth": "off"})
    url = resolve_database_url(settings)
    await asyncio.to_thread(upgrade, url)
    engine = create_engine(url)
    maker = create_sessionmaker(engine)
    plan = plan_row(args.endpoints)
    baseline = run_rows(plan, args.seconds, args.endpoints, None, seed=1)
    candidate = run_rows(plan, args.seconds, args.endpoints, 7, seed=2)
    async with maker() as session, session.begin():
        session.add(plan)
        await session.flush()
        session.add_all(baseline + candidate)
    if args.packed:
        for run in (baseline[0], candidate[0]):
            async with maker() as session, session.begin():
                await session.execute(
                    update(Run).where(Run.id == run.id).values(finished_at=datetime.now(UTC))
                )
        await asyncio.sleep(1.1)
        packed = await retention.archive_finished_runs(maker, after_s=1, limit=10)
        assert {baseline[0].id, candidate[0].id} <= set(packed)
    app = create_app(settings)
    timings = []
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b") as http,
        ):
            body = {"run_id": str(candidate[0].id), "baseline_run_ids": [str(baseline[0].id)]}
            for _ in range(args.repeat):
                started = time.perf_counter()
                response = await http.post(f"{API}/analyse", json=body)
                timings.append(time.perf_counter() - started)
                response.raise_for_status()
            result = response.json()
    finally:
        async with maker() as session, session.begin():
            await session.execute(delete(Run).where(Run.plan_id == plan.id))
            await session.execute(delete(Plan).where(Plan.id == plan.id))
        await engine.dispose()
    moved = [
        (c["endpoint"], c["sli"]) for c in result["comparisons"] if c["verdict"] == "regression"
    ]
    if ("e07", "p95") not in moved:
        # The per-second data did not reach the tests: the figure would time an empty analysis.
        raise SystemExit(f"the slower endpoint e07 was not found: {result['warnings']}")
    print(
        f"{args.seconds} s x {args.endpoints} endpoints, {len(result['comparisons'])} comparisons; "
        f"regressions found: {moved}"
    )
    print(
        f"POST /analyse (no LLM): median {statistics.median(timings):.3f} s, "
        f"min {min(timings):.3f} s, max {max(timings):.3f} s over {len(timings)} "
        f"(goal <= 1 s; seed <= 20 s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=1800)
    parser.add_argument("--endpoints", type=int, default=20)
    parser.add_argument(
        "--packed", action="store_true", help="pack both runs first (app/runs/archive.py)"
    )
    parser.add_argument("--repeat", type=int, default=5)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
