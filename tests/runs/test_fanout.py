"""The live fan-out: one reader per run however many viewers, woken by NOTIFY, resumable."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import Run, RunEvent, RunSample
from app.runs import fanout
from app.runs.fanout import Hub, Position
from tests.builders import make_plan, make_run

Maker = async_sessionmaker[AsyncSession]


async def running_run(committed: Maker) -> uuid.UUID:
    async with committed() as session, session.begin():
        run = await make_run(session, await make_plan(session), status="running")
    return run.id


async def store_second(committed: Maker, run_id: uuid.UUID, n: int) -> None:
    async with committed() as session, session.begin():
        session.add(RunSample(run_id=run_id, vus=2, requests=10 + n, failures=0, data={"n": n}))


async def finish(committed: Maker, run_id: uuid.UUID) -> None:
    async with committed() as session, session.begin():
        await session.execute(update(Run).where(Run.id == run_id).values(status="succeeded"))


def parsed(texts: list[str]) -> list[tuple[str, str | None, dict[str, object] | None]]:
    """(event, id, data) of each SSE block."""
    found = []
    for text in texts:
        fields = dict(line.split(": ", 1) for line in text.strip().splitlines() if ": " in line)
        if "event" in fields:
            data = json.loads(fields["data"]) if "data" in fields else None
            found.append((fields["event"], fields.get("id"), data))
    return found


async def watch_all(hub: Hub, run_id: uuid.UUID, after: Position = Position()) -> list[str]:
    return [text async for text in hub.watch(run_id, after)]


async def until_listening(*hubs: Hub) -> None:
    async with asyncio.timeout(10):
        while not all(hub.listening for hub in hubs):  # noqa: ASYNC110 - a flag, not an event
            await asyncio.sleep(0.02)


async def test_fifty_viewers_get_every_second_from_one_reader(
    committed: Maker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No safety-net polling within the test: what reaches the viewers came through NOTIFY.
    monkeypatch.setattr(fanout, "LISTENING_POLL_S", 600.0)
    run_id = await running_run(committed)
    hub = Hub(committed)
    viewers = [asyncio.create_task(watch_all(hub, run_id)) for _ in range(50)]
    await until_listening(hub)
    await asyncio.sleep(0.2)  # every viewer has joined the feed

    for n in range(5):
        await store_second(committed, run_id, n)
        await asyncio.sleep(0.05)
    await finish(committed, run_id)
    streams = await asyncio.wait_for(asyncio.gather(*viewers), timeout=30)
    await hub.close()

    for texts in streams:
        events = parsed(texts)
        assert [data["n"] for kind, _, data in events if kind == "sample" and data] == list(
            range(5)
        )
        assert events[-1][0] == "end"
    # One feed, woken per commit: a handful of reads, not one per viewer per second.
    assert hub.reads <= 10, hub.reads
    assert streams[0][0] == f"retry: {fanout.RETRY_MS}\n\n"


async def test_a_viewer_that_reconnects_with_last_event_id_resumes_after_it(
    committed: Maker,
) -> None:
    run_id = await running_run(committed)
    for n in range(3):
        await store_second(committed, run_id, n)
    async with committed() as session, session.begin():
        session.add(RunEvent(run_id=run_id, kind="k6_started", message="k6 started"))
    await finish(committed, run_id)
    hub = Hub(committed)
    first = parsed(await watch_all(hub, run_id))
    ids = [event_id for kind, event_id, _ in first if kind == "sample"]

    resumed = parsed(await watch_all(hub, run_id, Position.parse(ids[0])))
    await hub.close()

    assert [d["n"] for k, _, d in resumed if k == "sample" and d] == [1, 2]
    assert "event" not in [k for k, _, _ in resumed]  # sent before sample 0's id: not again
    assert resumed[-1][0] == "end"


async def test_two_processes_hear_the_same_commit(
    committed: Maker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fanout, "LISTENING_POLL_S", 600.0)
    run_id = await running_run(committed)
    hubs = [Hub(committed), Hub(committed)]  # two API processes: two LISTEN connections
    viewers = [asyncio.create_task(watch_all(hub, run_id)) for hub in hubs]
    await until_listening(*hubs)
    await asyncio.sleep(0.2)

    await store_second(committed, run_id, 7)
    await finish(committed, run_id)
    streams = await asyncio.wait_for(asyncio.gather(*viewers), timeout=30)
    for hub in hubs:
        await hub.close()

    for texts in streams:
        assert [d["n"] for k, _, d in parsed(texts) if k == "sample" and d] == [7]


def test_an_unreadable_last_event_id_starts_from_the_beginning() -> None:
    assert Position.parse("12.5") == Position(12, 5)
    assert Position.parse("12") == Position(12, 0)
    assert Position.parse("x.y") == Position()
    assert Position.parse(None) == Position()


async def store_seconds(committed: Maker, run_id: uuid.UUID, count: int) -> None:
    async with committed() as session, session.begin():
        session.add_all(
            RunSample(run_id=run_id, vus=2, requests=n, failures=0, data={"n": n})
            for n in range(count)
        )


async def test_a_long_running_run_replays_to_new_viewers_in_batches_without_a_drop(
    committed: Maker,
) -> None:
    """Opened 30 minutes in: 1,800 seconds, more than a viewer's queue holds. Each viewer gets
    every one once, in order, on its one connection (read at once, they overflowed the queue:
    the viewer was dropped and had to reconnect), the first before the last was read."""
    run_id = await running_run(committed)
    seconds = 3 * fanout.MAX_QUEUED
    await store_seconds(committed, run_id, seconds)
    hub = Hub(committed)

    first = asyncio.create_task(watch_all(hub, run_id))  # the feed's own replay
    await asyncio.sleep(0.3)
    late = asyncio.create_task(watch_all(hub, run_id))  # a catch-up of its own
    await asyncio.sleep(0.3)
    await store_second(committed, run_id, seconds)
    await finish(committed, run_id)
    streams = await asyncio.wait_for(asyncio.gather(first, late), timeout=60)
    reads = hub.reads
    await hub.close()

    for texts in streams:
        events = parsed(texts)
        got = [data["n"] for kind, _, data in events if kind == "sample" and data]
        assert got == list(range(seconds + 1))
        assert events[-1][0] == "end"  # ended by the run, not dropped
    # The feed read the replay in batches, each once for both viewers.
    assert reads >= seconds // fanout.CATCH_UP_BATCH
