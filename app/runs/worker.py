"""The worker: claims queued runs from PostgreSQL and executes them.

It runs inside ``perf-agent serve`` or on its own (``perf-agent worker``); any number of
workers can share one database because claiming uses ``FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.settings import Settings
from app.models.base import utcnow
from app.runs import service
from app.runs.repository import RunRepository

log = logging.getLogger(__name__)


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        *,
        worker_id: str | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.id = worker_id or default_worker_id()
        self.executed: list[uuid.UUID] = []

    async def claim(self) -> uuid.UUID | None:
        async with self.sessionmaker() as session, session.begin():
            return await RunRepository(session).claim_next(worker_id=self.id, now=utcnow())

    async def run_once(self) -> uuid.UUID | None:
        """Claim and execute one queued run; ``None`` when the queue is empty."""
        run_id = await self.claim()
        if run_id is None:
            return None
        log.info("worker %s claimed run %s", self.id, run_id)
        self.executed.append(run_id)
        try:
            await service.execute_claimed_run(self.sessionmaker, run_id, self.settings)
        except asyncio.CancelledError:
            await asyncio.shield(
                service.fail_run(self.sessionmaker, run_id, "the worker shut down during the run")
            )
            raise
        except Exception as exc:
            log.exception("run %s crashed the job", run_id)
            await service.fail_run(self.sessionmaker, run_id, f"internal error: {exc!r}")
        return run_id

    async def run_forever(self, stop: asyncio.Event) -> None:
        log.info("worker %s started", self.id)
        while not stop.is_set():
            try:
                got = await self.run_once()
            except Exception:
                # The database may be briefly unreachable; keep polling rather than die.
                log.exception("worker %s could not poll for runs", self.id)
                got = None
            if got is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.settings.worker_poll_interval_s)
        log.info("worker %s stopped", self.id)
