from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.settings import Settings
from app.models import Run, RunResult, RunStatus
from app.runs.worker import Worker
from tests.builders import make_plan, make_run

QUICK_LOAD = {"vus": 1, "duration": "1s"}


def quick_plan(target: str) -> dict[str, object]:
    return {
        "target": {"base_url": target, "environment": "local"},
        "endpoints": [{"name": "product", "method": "GET", "path": "/api/products/1"}],
        "load": QUICK_LOAD,
        "slos": ["p95 < 1000ms"],
    }


async def queue_runs(
    maker: async_sessionmaker[AsyncSession], count: int, **plan: object
) -> list[uuid.UUID]:
    async with maker() as session, session.begin():
        stored = await make_plan(session, **plan)
        runs = [await make_run(session, stored, status=RunStatus.queued) for _ in range(count)]
        return [r.id for r in runs]


async def test_concurrent_claims_take_each_run_exactly_once(
    committed: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    run_ids = await queue_runs(committed, 40)
    unlimited = settings.model_copy(update={"max_runs_per_target": 1000})
    claimers = [Worker(committed, unlimited, worker_id=f"claimer-{i}") for i in range(8)]
    claimed: dict[str, list[uuid.UUID]] = {w.id: [] for w in claimers}

    async def drain(worker: Worker) -> None:
        while (run_id := await worker.claim()) is not None:
            claimed[worker.id].append(run_id)

    await asyncio.gather(*(drain(w) for w in claimers))

    every_claim = [r for ids in claimed.values() for r in ids]
    assert sorted(every_claim) == sorted(run_ids)  # all claimed, none twice
    async with committed() as session:
        runs = (await session.scalars(select(Run).where(Run.id.in_(run_ids)))).all()
    assert {r.status for r in runs} == {RunStatus.running}
    assert {r.attempts for r in runs} == {1}
    assert all(r.id in claimed[r.worker_id or ""] for r in runs)


@pytest.mark.k6
async def test_two_workers_in_one_loop_execute_each_run_once(
    committed: async_sessionmaker[AsyncSession], settings: Settings, demo_target: str
) -> None:
    run_ids = await queue_runs(committed, 4, **quick_plan(demo_target))
    first, second = Worker(committed, settings), Worker(committed, settings)

    async def drain(worker: Worker) -> None:
        while await worker.run_once() is not None:
            pass

    await asyncio.gather(drain(first), drain(second))

    assert sorted(first.executed + second.executed) == sorted(run_ids)
    assert not set(first.executed) & set(second.executed)
    async with committed() as session:
        runs = (await session.scalars(select(Run).where(Run.id.in_(run_ids)))).all()
        result_runs = set(await session.scalars(select(RunResult.run_id).distinct()))
    assert {r.status for r in runs} == {RunStatus.succeeded}, [r.error for r in runs]
    assert {r.attempts for r in runs} == {1}
    assert result_runs == set(run_ids)


@pytest.mark.k6
async def test_two_worker_processes_share_the_queue_without_overlap(
    committed: async_sessionmaker[AsyncSession],
    settings: Settings,
    database_url: str,
    demo_target: str,
    tmp_path: Path,
) -> None:
    env = {
        **os.environ,
        "PERF_AGENT_DATABASE_URL": database_url,
        "PERF_AGENT_DATA_DIR": str(tmp_path / "workers"),
        "PERF_AGENT_WORKER_POLL_INTERVAL_S": "0.2",
        "PERF_AGENT_MAX_RUNS_PER_TARGET": "2",  # both may load the demo shop at once
    }
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "app.cli",
            "worker",
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    try:
        # Queue only once both are polling, so that both can take part.
        for proc in workers:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            assert b"polling for runs" in line
        run_ids = await queue_runs(committed, 4, **quick_plan(demo_target))
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            async with committed() as session:
                runs = (await session.scalars(select(Run).where(Run.id.in_(run_ids)))).all()
            if all(r.status in (RunStatus.succeeded, RunStatus.failed) for r in runs):
                break
            await asyncio.sleep(0.5)
    finally:
        for proc in workers:
            proc.terminate()
        for proc in workers:
            await asyncio.wait_for(proc.wait(), 30)

    assert {r.status for r in runs} == {RunStatus.succeeded}, [r.error for r in runs]
    assert {r.attempts for r in runs} == {1}
    worker_ids = {r.worker_id for r in runs}
    # Both processes took part (each claims one run at a time and k6 takes ~1s per run).
    assert len(worker_ids) == 2
    assert all(proc.returncode == 0 for proc in workers)


async def test_a_standalone_worker_serves_its_own_counters_for_prometheus(
    committed: async_sessionmaker[AsyncSession],
    database_url: str,
    demo_target: str,
    tmp_path: Path,
) -> None:
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    from tests.conftest import free_port

    port = free_port()
    env = {
        **os.environ,
        "PERF_AGENT_DATABASE_URL": database_url,
        "PERF_AGENT_DATA_DIR": str(tmp_path / "worker"),
        "PERF_AGENT_WORKER_POLL_INTERVAL_S": "0.2",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app.cli", "worker", "--metrics-port", str(port),
        env=env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert f"worker metrics on http://127.0.0.1:{port}/metrics".encode() in first
        [run_id] = await queue_runs(committed, 1, **quick_plan(demo_target))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            async with committed() as session:
                run = await session.get(Run, run_id)
            if run is not None and RunStatus(run.status).finished:
                break
            await asyncio.sleep(0.5)
        async with httpx.AsyncClient() as http:
            text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)

    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("perf_agent_run_claim_latency_seconds_count", ())] >= 1
    assert samples[("perf_agent_k6_points_ingested_total", ())] > 0
