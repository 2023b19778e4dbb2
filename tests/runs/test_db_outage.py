"""The database goes away for a few seconds during a run: nothing the run measured is lost."""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import make_url, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.pool import NullPool

from app.core.db import create_engine
from app.core.settings import Settings
from app.models import Run, RunEvent, RunSample, RunStatus
from app.runs.worker import Worker
from tests.builders import make_plan, make_run
from tests.runs.tcp_proxy import TcpProxy

pytestmark = pytest.mark.k6


async def test_a_database_outage_mid_run_loses_no_second_of_data(
    committed: async_sessionmaker[AsyncSession],
    settings: Settings,
    database_url: str,
    demo_target: str,
) -> None:
    url = make_url(database_url)
    if not url.host:
        pytest.skip("needs PostgreSQL over TCP to put a proxy in front of it")
    proxy = TcpProxy(url.host, url.port or 5432)
    await proxy.up()
    engine = create_engine(url.set(port=proxy.port).render_as_string(False), poolclass=NullPool)
    through_proxy = async_sessionmaker(engine, expire_on_commit=False)
    plan = {
        "target": {"base_url": demo_target, "environment": "local"},
        "endpoints": [{"name": "product", "path": "/api/products/1", "think_time": 0.05}],
        "load": {"profile": "load", "vus": 2, "duration": "8s"},
        "slos": ["p95 < 1000ms"],
    }
    async with committed() as session, session.begin():
        run = await make_run(session, await make_plan(session, **plan), status="queued")
    worker = asyncio.create_task(Worker(through_proxy, settings).run_once())
    try:
        deadline = time.monotonic() + 30
        while True:  # until k6 is running and a first sample is stored
            async with committed() as session:
                if await session.scalar(select(RunSample.id).where(RunSample.run_id == run.id)):
                    break
            assert time.monotonic() < deadline
            await asyncio.sleep(0.2)

        await proxy.down()
        await asyncio.sleep(4)
        await proxy.up()
        await asyncio.wait_for(worker, 60)
    finally:
        await proxy.down()
        await engine.dispose()

    async with committed() as session:
        finished = await session.get(Run, run.id)
        samples = list(
            await session.scalars(
                select(RunSample).where(RunSample.run_id == run.id).order_by(RunSample.at)
            )
        )
        kinds = list(
            await session.scalars(
                select(RunEvent.kind).where(RunEvent.run_id == run.id).order_by(RunEvent.id)
            )
        )
    assert finished is not None
    assert finished.status == RunStatus.succeeded, finished.error
    times: list[datetime] = [s.at for s in samples]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    assert len(samples) >= 7  # an 8 s test, a sample a second, the outage included
    assert max(gaps) < 1.6, gaps  # no hole where the database was away
    assert kinds[-1] == "finished"


async def test_a_record_the_database_refuses_is_dropped_not_spooled_ahead_of_the_rest(
    committed: async_sessionmaker[AsyncSession], settings: Settings, tmp_path: Path
) -> None:
    from app.runs.spool import Spool

    async with committed() as session, session.begin():
        run = await make_run(session, await make_plan(session), status="running")
    spool = Spool(tmp_path / "spool.jsonl", run.id)
    refused = {
        "type": "event",
        "at": "2026-11-25T00:00:00+00:00",
        "kind": "x" * 500,
        "message": "too long a kind for its column",
        "data": None,
    }
    fine = {
        "type": "event",
        "at": "2026-11-25T00:00:01+00:00",
        "kind": "ok",
        "message": "stored",
        "data": None,
    }

    assert await spool.write(committed, refused) is False
    assert await spool.write(committed, fine) is True

    assert not spool.path.exists()
    async with committed() as session:
        kinds = list(await session.scalars(select(RunEvent.kind).where(RunEvent.run_id == run.id)))
    assert kinds.count("ok") == 1
    assert all(len(kind) < 100 for kind in kinds)
