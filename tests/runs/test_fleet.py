"""Several processes on one database, as a deployment runs them: three standalone workers and
two API processes (no worker of their own) share twenty queued runs of real k6 against two
hosts. Each run is executed exactly once, never more than ``max_runs_per_target`` load one host
at once, and a viewer on one API process follows, live, a run that was queued through the
other and executed by a worker process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import Run, RunStatus
from tests.builders import API
from tests.conftest import live_key, running_live_service

pytestmark = pytest.mark.k6

PER_TARGET = 2
RUNS_PER_PLAN = 5


def plan_for(base_url: str, name: str) -> str:
    return yaml.safe_dump(
        {
            "name": name,
            "target": {"base_url": base_url, "environment": "fleet"},
            "endpoints": [{"name": "product", "path": "/api/products/1"}],
            "load": {"vus": 1, "duration": "1s"},
            "slos": ["p95 < 1000ms"],
        }
    )


def most_at_once(spans: list[tuple[datetime, datetime]]) -> int:
    """The most spans open at one moment (each trimmed by 50 ms at its start: a claim's time
    is taken just before the transaction that counts the host's running runs)."""
    edges = []
    for start, end in spans:
        edges += [(start + timedelta(milliseconds=50), 1), (end, -1)]
    open_now = peak = 0
    for _, step in sorted(edges, key=lambda e: (e[0], e[1])):
        open_now += step
        peak = max(peak, open_now)
    return peak


async def follow(client: httpx.AsyncClient, run_id: str) -> list[tuple[str, Any]]:
    """The run's live stream from its start until its end event."""
    seen: list[tuple[str, Any]] = []
    kind = "message"
    async with client.stream("GET", f"/runs/{run_id}/stream", timeout=120) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                seen.append((kind, json.loads(line.removeprefix("data: "))))
                if kind == "end":
                    break
    return seen


async def test_three_workers_and_two_api_processes_run_each_run_once_within_the_target_limit(
    committed: async_sessionmaker[AsyncSession],
    database_url: str,
    demo_target: str,
    tmp_path: Path,
) -> None:
    key = live_key(database_url)
    shared = {
        "PERF_AGENT_WORKER_POLL_INTERVAL_S": "0.2",
        "PERF_AGENT_MAX_RUNS_PER_TARGET": str(PER_TARGET),
        "PERF_AGENT_WORKER_CONCURRENCY": "2",  # 6 slots in all: the host limit is what binds
    }
    hosts = [demo_target, demo_target.replace("127.0.0.1", "localhost")]
    with (
        running_live_service(
            database_url, tmp_path / "api-a", PERF_AGENT_EMBEDDED_WORKER="false", **shared
        ) as api_a,
        running_live_service(
            database_url, tmp_path / "api-b", PERF_AGENT_EMBEDDED_WORKER="false", **shared
        ) as api_b,
    ):
        env = {
            **os.environ,
            "PERF_AGENT_DATABASE_URL": database_url,
            "PERF_AGENT_DATA_DIR": str(tmp_path / "workers"),
            **shared,
        }
        argv = [sys.executable, "-m", "app.cli", "worker"]
        workers = [
            await asyncio.create_subprocess_exec(
                *argv, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE
            )
            for _ in range(3)
        ]
        headers = {"Authorization": f"Bearer {key}"}
        try:
            for proc in workers:
                assert proc.stdout is not None
                line = await asyncio.wait_for(proc.stdout.readline(), 60)
                assert b"polling for runs" in line
            async with (
                httpx.AsyncClient(base_url=api_a + API, headers=headers, timeout=30) as a,
                httpx.AsyncClient(base_url=api_b + API, headers=headers, timeout=30) as b,
            ):
                plans = []
                for i, host in enumerate(hosts * 2):
                    created = await b.post(
                        "/plan",
                        content=plan_for(host, f"fleet-{i}"),
                        headers={"Content-Type": "application/yaml"},
                    )
                    assert created.status_code == 201, created.text
                    plans.append(created.json()["id"])
                # Queued through B, plan after plan; the first one followed through A.
                run_ids: list[str] = []
                for _ in range(RUNS_PER_PLAN):
                    for plan_id in plans:
                        queued = await b.post(
                            "/execute", json={"plan_id": plan_id, "auto_approve": True}
                        )
                        assert queued.status_code == 202, queued.text
                        run_ids.append(queued.json()["id"])
                watched = asyncio.create_task(follow(a, run_ids[0]))
                peak: dict[str, int] = defaultdict(int)
                deadline = time.monotonic() + 240
                ids = [uuid.UUID(r) for r in run_ids]
                while time.monotonic() < deadline:
                    async with committed() as session:
                        running = await session.execute(
                            select(Run.target_host, func.count())
                            .where(Run.id.in_(ids), Run.status == RunStatus.running)
                            .group_by(Run.target_host)
                        )
                        for host, count in running:
                            peak[host] = max(peak[host], count)
                        left = await session.scalar(
                            select(func.count()).where(
                                Run.id.in_(ids),
                                Run.status.in_((RunStatus.queued, RunStatus.running)),
                            )
                        )
                    if not left:
                        break
                    await asyncio.sleep(0.05)
                seen = await asyncio.wait_for(watched, 60)
        finally:
            for proc in workers:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
            for proc in workers:
                await asyncio.wait_for(proc.wait(), 30)

    async with committed() as session:
        runs = (await session.scalars(select(Run).where(Run.id.in_(ids)))).all()
    assert len(runs) == 20
    assert {r.status for r in runs} == {RunStatus.succeeded}, [r.error for r in runs]
    assert {r.attempts for r in runs} == {1}  # each claimed once
    assert len({r.worker_id for r in runs}) >= 2  # more than one worker took part
    assert all(proc.returncode == 0 for proc in workers)
    by_host: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    for r in runs:
        assert r.started_at is not None
        assert r.finished_at is not None
        by_host[r.target_host or ""].append((r.started_at, r.finished_at))
    assert set(by_host) == {"127.0.0.1", "localhost"}
    assert max(peak.values()) == PER_TARGET, peak  # reached (6 slots), never passed
    assert {host: most_at_once(spans) <= PER_TARGET for host, spans in by_host.items()} == {
        "127.0.0.1": True,
        "localhost": True,
    }
    # The viewer on A saw the run's seconds as they came, and its end.
    samples = [data for kind, data in seen if kind == "sample"]
    assert samples
    assert seen[-1][0] == "end"
    followed = next(r for r in runs if str(r.id) == run_ids[0])
    assert followed.worker_id is not None
