"""Retention: a finished run's seconds rolled up into minutes, with every figure kept exact."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import Baseline, Plan, Run, RunHistogram, RunSample
from app.runs import retention
from app.runs.live import LiveMetrics
from app.runs.repository import RunRepository
from app.runs.service import merge_windows
from app.runs.spool import _insert
from tests.builders import make_plan, make_run

T0 = 1_790_000_000
ENDPOINTS = ("catalog", "orders")


def _line(t: float, ms: float, name: str, ok: bool = True) -> str:
    stamp = datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    tags = {"expected_response": "true" if ok else "false", "name": name}
    return json.dumps(
        {"metric": "http_req_duration", "type": "Point",
         "data": {"time": stamp, "value": ms, "tags": tags}},
        separators=(",", ":"),
    )  # fmt: skip


Records = tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, list[np.ndarray]]]


def live_records(
    seconds: int,
    seed: int = 3,
    *,
    window_s: int = 10,
    skip: frozenset[int] = frozenset(),
    attempt: int = 1,
) -> Records:
    """What the worker stores for a run of ``seconds`` at 20 requests/s per endpoint (one in
    ten of orders' failing) — samples and windows, and its results — and every latency fed in,
    per endpoint and second (``skip``: seconds in which k6 reported nothing)."""
    rng = np.random.default_rng(seed)
    live = LiveMetrics(list(ENDPOINTS), window_s=window_s)
    fed: dict[str, list[np.ndarray]] = {name: [] for name in ENDPOINTS}
    records: list[dict[str, Any]] = []
    for second in range(seconds):
        if second in skip:
            for name in ENDPOINTS:
                fed[name].append(np.array([]))
            continue
        lines = []
        for name in ENDPOINTS:
            values = (10 if name == "catalog" else 30) * rng.lognormal(0, 0.4, 20)
            ok = [not (name == "orders" and i % 10 == 0) for i in range(20)]
            fed[name].append(values[ok])
            lines += [
                _line(T0 + second + (i + 0.5) / 20, float(v), name, ok[i])
                for i, v in enumerate(values)
            ]
        live.feed(("\n".join(lines) + "\n").encode())
        records.extend(live.drain())
    live.finish()
    records.extend(live.drain())
    for record in records:
        (record["sample"] if record["type"] == "sample" else record)["attempt"] = attempt
    return records, live.results(list(ENDPOINTS), float(seconds)), fed


async def finished_run(
    session: AsyncSession, stored: Records, *, days_ago: float = 30, plan: Plan | None = None
) -> Run:
    records, results, _ = stored
    plan = plan or await make_plan(session)
    run = await make_run(session, plan, results=results)
    run.finished_at = datetime.now(UTC) - timedelta(days=days_ago)
    await _insert(session, run.id, records)
    await session.flush()
    return run


async def count(session: AsyncSession, model: type[RunSample | RunHistogram], run: Run) -> int:
    return int(
        await session.scalar(select(func.count()).select_from(model).where(model.run_id == run.id))
        or 0
    )


async def test_a_run_rolled_up_keeps_its_totals_and_whole_run_percentiles_exactly(
    session: AsyncSession,
) -> None:
    run = await finished_run(session, live_records(150))
    repo = RunRepository(session)
    before = {
        name: merge_windows(await repo.histograms(run.id, name)) for name in (*ENDPOINTS, "*")
    }
    seconds = await repo.sample_rows(run.id)

    await retention.roll_up(session, run.id, now=datetime.now(UTC))

    minutes = await repo.sample_rows(run.id)
    assert [s.data["elapsed_s"] for s in minutes] == [0, 60, 120]
    assert [s.data["span_s"] for s in minutes] == [60, 60, 30]
    assert sum(s.requests for s in minutes) == sum(s.requests for s in seconds) == 150 * 40
    assert sum(s.failures for s in minutes) == sum(s.failures for s in seconds) == 150 * 2
    assert minutes[-1].data["total_requests"] == seconds[-1].data["total_requests"]
    assert await count(session, RunHistogram, run) == 3 * (len(ENDPOINTS) + 1)  # + '*'
    for name in (*ENDPOINTS, "*"):
        after = merge_windows(await repo.histograms(run.id, name))
        assert np.array_equal(after.counts, before[name].counts)
        assert (after.total, after.min_ms, after.max_ms) == (
            before[name].total,
            before[name].min_ms,
            before[name].max_ms,
        )
    await session.refresh(run)
    assert run.samples_rolled_up_at is not None


@pytest.mark.parametrize(
    ("window_s", "skip"),
    [(10, frozenset()), (7, frozenset()), (120, frozenset()), (10, frozenset({33, 34, 95}))],
    ids=["10-s windows", "7-s windows", "2-min windows", "seconds k6 skipped"],
)
async def test_a_rolled_up_sample_has_the_percentiles_of_the_seconds_it_stands_for(
    session: AsyncSession, window_s: int, skip: frozenset[int]
) -> None:
    stored = live_records(150, window_s=window_s, skip=skip)
    fed = stored[2]
    run = await finished_run(session, stored)
    seconds = await RunRepository(session).sample_rows(run.id)

    await retention.roll_up(session, run.id, now=datetime.now(UTC))

    rolled = await RunRepository(session).sample_rows(run.id)
    assert sum(r.data["span_s"] for r in rolled) == len(seconds) == 150 - len(skip)
    starts = [r.data["elapsed_s"] for r in rolled] + [150]
    for minute, end in zip(rolled, starts[1:], strict=True):
        first = minute.data["elapsed_s"]
        for name in ENDPOINTS:
            figures = minute.data["endpoints"][name]
            values = np.concatenate(fed[name][first:end])
            assert figures["requests"] == sum(20 for s in range(first, end) if s not in skip)
            for sli, pct in (("p50", 50), ("p95", 95), ("p99", 99)):
                exact = float(np.percentile(values, pct))
                assert abs(figures["latency_ms"][sli] / exact - 1) < 0.005


async def test_two_attempts_roll_up_apart(session: AsyncSession) -> None:
    first = live_records(70)
    second = live_records(70, seed=5, attempt=2)
    records = first[0] + second[0]
    run = await finished_run(session, (records, second[1], second[2]))

    await retention.roll_up(session, run.id, now=datetime.now(UTC))

    rolled = await RunRepository(session).sample_rows(run.id)
    assert sorted((r.data["attempt"], r.data["elapsed_s"], r.data["span_s"]) for r in rolled) == [
        (1, 0, 60),
        (1, 60, 10),
        (2, 0, 60),
        (2, 60, 10),
    ]


async def test_a_minute_without_its_window_keeps_the_runs_seconds_and_says_why(
    session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    records, results, fed = live_records(90)
    lost = next(
        r for r in records if r["type"] == "histograms" and r["start_s"] == 20
    )  # a window the spool could not store
    damaged = await finished_run(session, ([r for r in records if r is not lost], results, fed))
    healthy = await finished_run(session, (records, results, fed), days_ago=29)
    await session.commit()

    rolled = await retention.roll_up_finished_runs(sessionmaker, retention_days=14, limit=5)

    assert healthy.id in rolled
    assert damaged.id not in rolled
    await session.refresh(damaged)
    assert damaged.samples_rolled_up_at is None
    assert "second 20 of attempt 1 is in no histogram window" in (damaged.samples_kept_reason or "")
    assert await count(session, RunSample, damaged) == 90
    events = await RunRepository(session).events(damaged.id)
    assert any(e.kind == "retention" for e in events)


async def test_a_run_whose_histograms_are_damaged_does_not_block_the_others(
    session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    stored = live_records(70)
    broken = await finished_run(session, stored, days_ago=31)
    window = (
        await session.scalars(select(RunHistogram).where(RunHistogram.run_id == broken.id))
    ).first()
    assert window is not None
    window.counts = b"\x02\x00not deflate"
    after = await finished_run(session, stored, days_ago=30)
    await session.commit()

    rolled = await retention.roll_up_finished_runs(sessionmaker, retention_days=14, limit=5)

    assert after.id in rolled
    await session.refresh(broken)
    assert "the roll-up failed" in (broken.samples_kept_reason or "")
    assert await count(session, RunSample, broken) == 70


async def test_only_runs_finished_longer_ago_than_the_retention_and_not_baselines_roll_up(
    session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    stored = live_records(70)
    old = await finished_run(session, stored, days_ago=30)
    recent = await finished_run(session, stored, days_ago=1)
    promoted = await finished_run(session, stored, days_ago=30)
    session.add(Baseline(plan_id=promoted.plan_id, run_id=promoted.id))
    await session.commit()

    rolled = await retention.roll_up_finished_runs(sessionmaker, retention_days=14, limit=50)
    again = await retention.roll_up_finished_runs(sessionmaker, retention_days=14, limit=50)
    never = await retention.roll_up_finished_runs(sessionmaker, retention_days=0, limit=50)

    assert old.id in rolled
    assert recent.id not in rolled
    assert promoted.id not in rolled
    assert old.id not in again
    assert never == []
    assert await count(session, RunSample, old) == 2
    assert await count(session, RunSample, recent) == 70


async def test_an_analysis_against_a_rolled_up_baseline_says_so_and_blames_nothing(
    client: AsyncClient, session: AsyncSession
) -> None:
    baseline = await finished_run(session, live_records(400))
    plan = await session.get(Plan, baseline.plan_id)
    candidate = await finished_run(session, live_records(400, seed=4), plan=plan)
    await session.commit()
    await retention.roll_up(session, baseline.id, now=datetime.now(UTC))
    await session.commit()

    response = await client.post(
        "/api/agents/performance-agent/analyse",
        json={"run_id": str(candidate.id), "baseline_run_ids": [str(baseline.id)]},
    )

    assert response.status_code == 201, response.text
    analysis = response.json()
    assert any("rolled up into minutes" in w for w in analysis["warnings"])
    comparisons = analysis["comparisons"]
    # Its per-minute values are not compared with the candidate's seconds.
    assert all(
        c["verdict"] == "insufficient_data" for c in comparisons if c["sli"] in ("p50", "p95")
    )
    assert not [c for c in comparisons if c["verdict"] == "regression"]
    kinds = {f["kind"] for f in analysis["findings"]}
    assert not kinds & {"own_work", "queueing", "tail_only", "slow_endpoint"}, kinds


async def test_a_rolled_up_run_cannot_be_promoted(
    client: AsyncClient, session: AsyncSession
) -> None:
    run = await finished_run(session, live_records(70))
    await retention.roll_up(session, run.id, now=datetime.now(UTC))
    await session.commit()

    response = await client.post(
        "/api/agents/performance-agent/baselines", json={"run_id": str(run.id)}
    )

    assert response.status_code == 409
    assert response.json()["code"] == "baseline.samples_rolled_up"


async def test_a_span_finer_than_a_rolled_up_runs_windows_is_refused_with_its_windows(
    client: AsyncClient, session: AsyncSession
) -> None:
    run = await finished_run(session, live_records(150))
    await retention.roll_up(session, run.id, now=datetime.now(UTC))
    await session.commit()
    base = f"/api/agents/performance-agent/runs/{run.id}/latency"

    minute = await client.get(base, params={"from_s": 60, "to_s": 120})
    finer = await client.get(base, params={"from_s": 30, "to_s": 90})

    assert minute.status_code == 200
    assert minute.json()["windows"] == 1
    assert finer.status_code == 404
    assert finer.json()["code"] == "run.no_histograms"
    assert "windows start at 0, 60, 120 s (60 s each)" in finer.json()["detail"]
