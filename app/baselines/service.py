"""Promote runs to baselines; the newest baseline of a plan and environment is current."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from app.baselines.repository import BaselineRepository
from app.core.errors import Conflict, NotFound
from app.models import Baseline, Plan, Run, RunStatus


async def promote(session: AsyncSession, *, run_id: uuid.UUID, note: str | None) -> Baseline:
    run = await session.get(Run, run_id)
    if run is None:
        raise NotFound(f"no run {run_id}", code="run.not_found")
    if run.status != RunStatus.succeeded:
        raise Conflict(
            f"run {run_id} is {run.status}; only a succeeded run can be a baseline",
            code="baseline.run_not_succeeded",
        )
    plan = await session.get(Plan, run.plan_id)
    assert plan is not None  # runs.plan_id is a RESTRICT foreign key
    environment = str(plan.spec.get("target", {}).get("environment", "staging"))
    baseline = Baseline(
        id=uuid.uuid4(), plan_id=run.plan_id, run_id=run.id, environment=environment, note=note
    )
    return await BaselineRepository(session).add(baseline)


async def list_for_plan(session: AsyncSession, plan_id: uuid.UUID) -> Sequence[Baseline]:
    return await BaselineRepository(session).list_for_plan(plan_id)
