"""Run lifecycle with real k6: abort, time limit, retry and fallback, dead workers."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.settings import Settings
from app.models import Run, RunEvent, RunHistogram, RunSample, RunStatus
from app.models.base import utcnow
from app.runs.worker import Worker
from tests.builders import API, make_plan, make_run

pytestmark = pytest.mark.k6


def slow_plan(target: str, *, duration: str = "30s", vus: int = 2) -> dict[str, Any]:
    return {
        "target": {"base_url": target, "environment": "local"},
        "endpoints": [{"name": "product", "path": "/api/products/1", "think_time": 0.05}],
        "load": {"profile": "load", "vus": vus, "duration": duration},
        "slos": ["p95 < 1000ms"],
    }


async def queue(maker: async_sessionmaker[AsyncSession], **plan: Any) -> uuid.UUID:
    async with maker() as session, session.begin():
        run = await make_run(session, await make_plan(session, **plan), status=RunStatus.queued)
        return run.id


async def load_run(maker: async_sessionmaker[AsyncSession], run_id: uuid.UUID) -> Run:
    async with maker() as session:
        run = await session.get(Run, run_id)
        assert run is not None
        return run


async def event_kinds(maker: async_sessionmaker[AsyncSession], run_id: uuid.UUID) -> list[str]:
    async with maker() as session:
        query = select(RunEvent.kind).where(RunEvent.run_id == run_id).order_by(RunEvent.id)
        return list((await session.scalars(query)).all())


async def wait_for_event(
    maker: async_sessionmaker[AsyncSession], run_id: uuid.UUID, kind: str, timeout_s: float = 30
) -> None:
    deadline = time.monotonic() + timeout_s
    while kind not in await event_kinds(maker, run_id):
        assert time.monotonic() < deadline, f"no {kind} event"
        await asyncio.sleep(0.1)


async def test_a_queued_run_is_aborted_at_once(
    committed_client: AsyncClient, committed: async_sessionmaker[AsyncSession]
) -> None:
    run_id = await queue(committed)

    response = await committed_client.post(f"{API}/runs/{run_id}/abort")
    again = await committed_client.post(f"{API}/runs/{run_id}/abort")

    assert response.status_code == 202
    assert response.json()["status"] == "aborted"
    assert again.status_code == 409
    assert again.json()["code"] == "run.finished"


async def test_aborting_a_running_run_stops_k6_gracefully_and_keeps_its_results(
    committed_client: AsyncClient,
    committed: async_sessionmaker[AsyncSession],
    settings: Settings,
    demo_target: str,
) -> None:
    run_id = await queue(committed, **slow_plan(demo_target))
    worker = asyncio.create_task(Worker(committed, settings).run_once())
    await wait_for_event(committed, run_id, "k6_started")
    await asyncio.sleep(1.5)
    started = time.monotonic()

    response = await committed_client.post(f"{API}/runs/{run_id}/abort")
    await asyncio.wait_for(worker, 20)

    assert response.status_code == 202
    run = (await committed_client.get(f"{API}/runs/{run_id}")).json()
    assert run["status"] == "aborted"
    assert run["exit_code"] == 105  # k6: stopped by a signal, summary written
    assert time.monotonic() - started < 15
    assert next(r for r in run["results"] if r["endpoint"] == "*")["requests"] > 0
    kinds = [e["kind"] for e in run["events"]]
    assert kinds == ["claimed", "k6_started", "abort_requested", "finished"]


async def test_a_run_past_its_time_limit_ends_timed_out_with_partial_results(
    committed_client: AsyncClient,
    committed: async_sessionmaker[AsyncSession],
    settings: Settings,
    demo_target: str,
) -> None:
    # Iterations pause 20s, so k6 would wait out its 10s gracefulStop; the limit comes first.
    plan = slow_plan(demo_target, duration="2s", vus=2)
    plan["endpoints"][0]["think_time"] = 20
    run_id = await queue(committed, **plan)
    settings.run_slack_s = 2

    started = time.monotonic()
    await Worker(committed, settings).run_once()

    run = (await committed_client.get(f"{API}/runs/{run_id}")).json()
    assert run["status"] == "timed_out", run["error"]
    assert time.monotonic() - started < 12
    assert next(r for r in run["results"] if r["endpoint"] == "*")["requests"] >= 2


def flaky_k6(tmp_path: Path, real_k6: str, failures: int) -> str:
    """A k6 that crashes (exit 255) on its first ``failures`` starts, then is the real one: the
    infrastructure failure the fallback exists for."""
    # A shell wrapper with a counter file outside: it runs unsandboxed (the sandbox holds only
    # the k6 binary); these tests are about the retry, not the confinement.
    counter = tmp_path / "starts"
    wrapper = tmp_path / "flaky-k6"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'n=$(cat "{counter}" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "{counter}"\n'
        f'if [ "$n" -le {failures} ]; then echo "simulated k6 crash $n" >&2; exit 255; fi\n'
        f'exec "{real_k6}" "$@"\n'
    )
    wrapper.chmod(0o755)
    return str(wrapper)


async def test_a_crash_is_retried_once(
    committed_client: AsyncClient,
    committed: async_sessionmaker[AsyncSession],
    settings: Settings,
    demo_target: str,
    tmp_path: Path,
) -> None:
    run_id = await queue(committed, **slow_plan(demo_target, duration="1s"))
    settings.k6_binary = flaky_k6(tmp_path, settings.k6_binary, failures=1)
    settings.sandbox = "off"

    await Worker(committed, settings).run_once()

    run = (await committed_client.get(f"{API}/runs/{run_id}")).json()
    assert run["status"] == "succeeded"
    assert run["load_factor"] == 1.0
    kinds = [e["kind"] for e in run["events"]]
    assert kinds.count("k6_started") == 2
    assert "retry" in kinds
    assert "fallback" not in kinds


async def test_a_second_crash_falls_back_to_half_the_load(
    committed_client: AsyncClient,
    committed: async_sessionmaker[AsyncSession],
    settings: Settings,
    demo_target: str,
    tmp_path: Path,
) -> None:
    run_id = await queue(committed, **slow_plan(demo_target, duration="1s", vus=4))
    settings.k6_binary = flaky_k6(tmp_path, settings.k6_binary, failures=2)
    settings.sandbox = "off"

    await Worker(committed, settings).run_once()

    run = (await committed_client.get(f"{API}/runs/{run_id}")).json()
    assert run["status"] == "succeeded"
    assert run["load_factor"] == 0.5
    fallback = next(e for e in run["events"] if e["kind"] == "fallback")
    assert fallback["data"]["peak_vus"] == 2
    assert "simulated k6 crash 2" in fallback["data"]["stderr_tail"]
    assert next(r for r in run["results"] if r["endpoint"] == "*")["requests"] > 0


async def test_a_stale_run_is_requeued_then_failed_when_claimed_too_often(
    committed: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    async with committed() as session, session.begin():
        plan = await make_plan(session)
        first = await make_run(session, plan, status=RunStatus.running)
        second = await make_run(session, plan, status=RunStatus.running)
        first.heartbeat_at = second.heartbeat_at = utcnow() - timedelta(minutes=5)
        first.attempts, second.attempts = 1, 2
        first.worker_id = second.worker_id = "dead-worker"

    reaped = await Worker(committed, settings).reap()

    assert set(reaped) == {first.id, second.id}
    assert (await load_run(committed, first.id)).status == RunStatus.queued
    failed = await load_run(committed, second.id)
    assert failed.status == RunStatus.failed
    assert "stopped heartbeating" in (failed.error or "")
    assert await event_kinds(committed, first.id) == ["requeued"]


async def test_a_requeued_run_numbers_its_attempts_after_the_dead_workers(
    committed: async_sessionmaker[AsyncSession], settings: Settings, demo_target: str
) -> None:
    run_id = await queue(committed, **slow_plan(demo_target, duration="2s"))
    async with committed() as session, session.begin():
        run = await session.get(Run, run_id)
        assert run is not None
        run.attempts = 1  # a worker claimed it once and died; the reaper re-queued it
    settings.sandbox = "off"

    await Worker(committed, settings).run_once()

    async with committed() as session:
        attempts = {
            int(sample.data.get("attempt") or 0)
            for sample in await session.scalars(select(RunSample).where(RunSample.run_id == run_id))
        }
        windows = set(
            await session.scalars(select(RunHistogram.attempt).where(RunHistogram.run_id == run_id))
        )
    assert (await load_run(committed, run_id)).status == RunStatus.succeeded
    assert attempts == windows == {4}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead, waiting for its (dead) parent to be reaped by init
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


async def test_a_worker_killed_mid_run_is_detected_and_its_k6_stops(
    committed: async_sessionmaker[AsyncSession],
    settings: Settings,
    database_url: str,
    demo_target: str,
    tmp_path: Path,
) -> None:
    run_id = await queue(committed, **slow_plan(demo_target, duration="60s"))
    env = {
        **os.environ,
        "PERF_AGENT_DATABASE_URL": database_url,
        "PERF_AGENT_DATA_DIR": str(tmp_path / "worker"),
        "PERF_AGENT_WORKER_POLL_INTERVAL_S": "0.2",
        "PERF_AGENT_HEARTBEAT_INTERVAL_S": "0.5",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app.cli", "worker", env=env, stdin=asyncio.subprocess.DEVNULL
    )
    try:
        await wait_for_event(committed, run_id, "k6_started")
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    async with committed() as session:
        started = await session.scalar(
            select(RunEvent).where(RunEvent.run_id == run_id, RunEvent.kind == "k6_started")
        )
    assert started is not None
    assert started.data is not None
    k6_pid = started.data["pid"]
    killed_at = time.monotonic()

    # The orphaned k6 got SIGTERM from the kernel (parent-death signal) and stops by itself.
    for _ in range(75):
        if not _alive(k6_pid):
            break
        await asyncio.sleep(0.2)
    assert not _alive(k6_pid)

    # Another worker notices the missing heartbeat; with one claim allowed, the run fails.
    settings.max_claims = 1
    watcher = Worker(committed, settings)
    while (await load_run(committed, run_id)).status == RunStatus.running:
        assert time.monotonic() - killed_at < 60, "the dead worker's run was never reaped"
        await watcher.reap()
        await asyncio.sleep(0.5)
    run = await load_run(committed, run_id)
    assert run.status == RunStatus.failed
    assert "stopped heartbeating" in (run.error or "")
