"""The worker: claims queued runs from PostgreSQL and executes them.

It runs inside ``perf-agent serve`` or on its own (``perf-agent worker``); any number of
workers can share one database because claiming uses ``FOR UPDATE SKIP LOCKED``. Every worker
also reaps: a running run whose worker stopped heartbeating (it died) is re-queued, or failed
once it has been claimed ``max_claims`` times; and once a minute rolls up the seconds of one run
finished more than ``sample_retention_days`` ago (app/runs/retention.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core import metrics
from app.core.settings import Settings
from app.k6 import sandbox
from app.models import Run, RunStatus
from app.models.base import utcnow
from app.runs import execution, retention
from app.runs.repository import RunRepository

log = logging.getLogger(__name__)

ROLL_UP_INTERVAL_S = 60.0


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
        now = utcnow()
        async with self.sessionmaker() as session, session.begin():
            run_id = await RunRepository(session).claim_next(
                worker_id=self.id, now=now, per_target=self.settings.max_runs_per_target
            )
            if run_id is not None:
                queued_at = await session.scalar(select(Run.created_at).where(Run.id == run_id))
                if queued_at is not None:
                    metrics.CLAIM_LATENCY.observe(max(0.0, (now - queued_at).total_seconds()))
            return run_id

    async def execute(self, run_id: uuid.UUID) -> None:
        log.info("worker %s claimed run %s", self.id, run_id)
        self.executed.append(run_id)
        try:
            await execution.execute_claimed_run(self.sessionmaker, run_id, self.settings, self.id)
        except asyncio.CancelledError:
            await asyncio.shield(
                execution.fail_run(self.sessionmaker, run_id, "the worker shut down during the run")
            )
            raise
        except Exception as exc:
            log.exception("run %s crashed the job", run_id)
            await execution.fail_run(self.sessionmaker, run_id, f"internal error: {exc!r}")

    async def run_once(self) -> uuid.UUID | None:
        """Claim and execute one queued run; ``None`` when the queue is empty."""
        run_id = await self.claim()
        if run_id is not None:
            await self.execute(run_id)
        return run_id

    async def reap(self) -> list[uuid.UUID]:
        """Re-queue (or fail) running runs whose worker stopped heartbeating."""
        cutoff = utcnow() - timedelta(seconds=self.settings.stale_after_s)
        reaped = []
        async with self.sessionmaker() as session, session.begin():
            repo = RunRepository(session)
            for run in await repo.take_stale(cutoff=cutoff):
                lost = run.worker_id
                if run.attempts < self.settings.max_claims:
                    run.status = RunStatus.queued
                    run.worker_id = None
                    kind, message = "requeued", f"worker {lost} stopped heartbeating; re-queued"
                else:
                    run.status = RunStatus.failed
                    run.finished_at = utcnow()
                    run.error = (
                        f"worker {lost} stopped heartbeating, and the run was already claimed "
                        f"{run.attempts} times"
                    )
                    kind, message = "finished", f"failed: {run.error}"
                    metrics.RUNS_FINISHED.labels(status=RunStatus.failed).inc()
                await repo.add_event(run.id, kind, message, {"lost_worker": lost})
                log.warning("run %s: %s", run.id, message)
                reaped.append(run.id)
        return reaped

    async def run_forever(self, stop: asyncio.Event) -> None:
        found = sandbox.status(self.settings)
        log.info(
            "worker %s started (up to %s runs at once); k6 sandbox: %s",
            self.id,
            self.settings.worker_concurrency,
            found.reason if found.available else f"none ({found.reason})",
        )
        if found.available:
            # Rules a crashed worker left behind on this machine (their uid is free again).
            await asyncio.to_thread(sandbox.sweep, self.settings)
        running: set[asyncio.Task[None]] = set()
        next_reap = 0.0
        # One run a minute, the first a minute after start: rolling up costs ~0.1 s of CPU on
        # the loop that also reads k6's stream (and, embedded, serves the API).
        next_roll_up = time.monotonic() + ROLL_UP_INTERVAL_S
        next_archive = 0.0
        try:
            while not stop.is_set():
                try:
                    if time.monotonic() >= next_reap:
                        next_reap = time.monotonic() + self.settings.reaper_interval_s
                        await self.reap()
                    if time.monotonic() >= next_archive:
                        next_archive = time.monotonic() + self.settings.reaper_interval_s
                        await retention.archive_finished_runs(
                            self.sessionmaker, self.settings.archive_after_s
                        )
                    if time.monotonic() >= next_roll_up:
                        next_roll_up = time.monotonic() + ROLL_UP_INTERVAL_S
                        await retention.roll_up_finished_runs(
                            self.sessionmaker, self.settings.sample_retention_days
                        )
                    run_id = None
                    if len(running) < self.settings.worker_concurrency:
                        run_id = await self.claim()
                except Exception:
                    # The database may be briefly unreachable; keep polling rather than die.
                    log.exception("worker %s could not poll for runs", self.id)
                    run_id = None
                if run_id is not None:
                    task = asyncio.create_task(self.execute(run_id), name=f"run-{run_id}")
                    running.add(task)
                    task.add_done_callback(running.discard)
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.settings.worker_poll_interval_s)
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
        log.info("worker %s stopped", self.id)
