"""Which queued run a worker claims next: turns shared fairly between plans, and no more runs
at once against one target host than ``max_runs_per_target``, however many workers claim."""

from __future__ import annotations

import asyncio
import uuid

from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.settings import Settings
from app.models import Run, RunStatus
from app.plans.schemas import PlanSpec
from app.runs.service import target_host_of
from app.runs.worker import Worker
from tests.builders import API, make_plan, make_run, plan_doc


def at(host: str) -> dict[str, object]:
    return {"target": {"base_url": f"http://{host}:8080", "environment": "local"}}


async def queue(
    maker: async_sessionmaker[AsyncSession], count: int, *, host: str = "127.0.0.1"
) -> list[uuid.UUID]:
    async with maker() as session, session.begin():
        plan = await make_plan(session, **at(host))
        return [(await make_run(session, plan, status=RunStatus.queued)).id for _ in range(count)]


def limited(settings: Settings, per_target: int) -> Settings:
    return settings.model_copy(update={"max_runs_per_target": per_target})


async def drain(worker: Worker) -> list[uuid.UUID]:
    claimed = []
    while (run_id := await worker.claim()) is not None:
        claimed.append(run_id)
    return claimed


def test_a_runs_target_host_is_spelled_as_the_guardrails_spell_it() -> None:
    spec = PlanSpec.model_validate(plan_doc(**at("Shop.Example.COM.")))

    assert target_host_of(spec) == "shop.example.com"


async def test_a_host_with_its_limit_running_gets_no_more_but_another_host_does(
    committed: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    busy = await queue(committed, 3, host="127.0.0.1")
    other = await queue(committed, 1, host="localhost")
    worker = Worker(committed, limited(settings, 2), worker_id="w")

    claimed = await drain(worker)

    assert claimed == [busy[0], other[0], busy[1]]  # the third of 127.0.0.1's waits
    async with committed() as session:
        waiting = await session.get(Run, busy[2])
    assert waiting is not None
    assert waiting.status == RunStatus.queued


async def test_a_finished_run_frees_its_hosts_slot(
    committed: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    first, second = await queue(committed, 2)
    worker = Worker(committed, limited(settings, 1), worker_id="w")
    assert await worker.claim() == first
    assert await worker.claim() is None

    async with committed() as session, session.begin():
        run = await session.get(Run, first)
        assert run is not None
        run.status = RunStatus.succeeded

    assert await worker.claim() == second


async def test_claims_take_turns_between_plans_instead_of_draining_the_oldest_first(
    committed: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    # A pipeline queued four runs, then another plan one; each on a host of its own.
    pipeline = await queue(committed, 4, host="a.test")
    single = await queue(committed, 1, host="b.test")
    worker = Worker(committed, limited(settings, 1000), worker_id="w")

    claimed = await drain(worker)

    assert claimed == [pipeline[0], single[0], *pipeline[1:]]


async def test_a_plan_with_runs_running_waits_behind_one_without(
    committed: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    pipeline = await queue(committed, 3, host="a.test")
    worker = Worker(committed, limited(settings, 1000), worker_id="w")
    assert [await worker.claim(), await worker.claim()] == pipeline[:2]  # both now running
    later = await queue(committed, 1, host="b.test")

    assert await worker.claim() == later[0]  # its first turn comes before the pipeline's third


async def test_many_claimers_at_once_never_exceed_the_per_target_limit(
    committed: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    run_ids = await queue(committed, 12)
    claimers = [Worker(committed, limited(settings, 3), worker_id=f"w{i}") for i in range(8)]

    # Each claimer tries several times: losing the host's lock to another is not the end.
    async def keep_claiming(worker: Worker) -> list[uuid.UUID]:
        claimed = []
        for _ in range(5):
            claimed += await drain(worker)
            await asyncio.sleep(0.01)
        return claimed

    claims = await asyncio.gather(*(keep_claiming(w) for w in claimers))

    every = [run_id for claimed in claims for run_id in claimed]
    assert len(every) == len(set(every)) == 3
    async with committed() as session:
        running = (
            await session.scalars(
                select(Run.id).where(Run.id.in_(run_ids), Run.status == RunStatus.running)
            )
        ).all()
    assert sorted(running) == sorted(every)


async def test_a_queued_run_says_it_waits_for_its_target_and_then_for_a_worker(
    committed: async_sessionmaker[AsyncSession], settings: Settings, committed_client: AsyncClient
) -> None:
    first, second = await queue(committed, 2)
    worker = Worker(committed, limited(settings, 1), worker_id="w")
    before = (await committed_client.get(f"{API}/runs/{second}")).json()
    assert await worker.claim() == first

    waiting = (await committed_client.get(f"{API}/runs/{second}")).json()
    running = (await committed_client.get(f"{API}/runs/{first}")).json()

    assert before["queue"]["reason"] == "waiting for a worker to claim it"
    assert waiting["queue"] == {
        "target_host": "127.0.0.1",
        "running_on_target": 1,
        "per_target_limit": 1,
        "reason": "waiting for 127.0.0.1: 1 run(s) loading it, at most 1 at once "
        "(PERF_AGENT_MAX_RUNS_PER_TARGET)",
    }
    assert running["queue"] is None
