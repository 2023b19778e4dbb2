"""Server-sent events for a run: its live samples (about one a second), events and state.

It reads what the worker stored, so the API process streams runs executed by any worker.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import Run, RunEvent, RunSample, RunStatus

POLL_S = 1.0
KEEPALIVE_POLLS = 15


def sse(event: str, data: dict[str, Any], event_id: str | None = None) -> str:
    lines = [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append("data: " + json.dumps(data, default=str, separators=(",", ":")))
    return "\n".join(lines) + "\n\n"


async def _news(
    maker: async_sessionmaker[AsyncSession], run_id: uuid.UUID, after_sample: int, after_event: int
) -> tuple[Run | None, list[RunSample], list[RunEvent]]:
    async with maker() as session:
        run = await session.get(Run, run_id)
        samples = await session.scalars(
            select(RunSample)
            .where(RunSample.run_id == run_id, RunSample.id > after_sample)
            .order_by(RunSample.id)
        )
        events = await session.scalars(
            select(RunEvent)
            .where(RunEvent.run_id == run_id, RunEvent.id > after_event)
            .order_by(RunEvent.id)
        )
        return run, list(samples), list(events)


async def run_events(
    maker: async_sessionmaker[AsyncSession],
    run_id: uuid.UUID,
    disconnected: Callable[[], Awaitable[bool]],
    *,
    poll_s: float = POLL_S,
) -> AsyncIterator[str]:
    after_sample = after_event = 0
    status: str | None = None
    quiet = 0
    while not await disconnected():
        run, samples, events = await _news(maker, run_id, after_sample, after_event)
        if run is None:
            return
        for event in events:
            after_event = event.id
            yield sse(
                "event",
                {"at": event.at, "kind": event.kind, "message": event.message, "data": event.data},
            )
        for sample in samples:
            after_sample = sample.id
            yield sse("sample", {"at": sample.at, **sample.data}, event_id=str(sample.id))
        if run.status != status:
            status = run.status
            yield sse("status", {"status": status})
        if RunStatus(run.status).finished:
            yield sse("end", {"status": run.status, "error": run.error})
            return
        quiet = 0 if samples or events else quiet + 1
        if quiet >= KEEPALIVE_POLLS:
            quiet = 0
            yield ": keep-alive\n\n"
        await asyncio.sleep(poll_s)
