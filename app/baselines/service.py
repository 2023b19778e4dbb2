"""Promote runs to baselines; the newest baseline of a plan and environment is current."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.baselines import history
from app.baselines.repository import BaselineRepository
from app.baselines.schemas import (
    HistoryDocument,
    HistoryImported,
    HistorySeries,
    HistoryValue,
)
from app.core.errors import Conflict, InvalidInput, NotFound
from app.models import Baseline, Plan, Run, RunStatus
from app.models.base import utcnow
from app.plans.schemas import PlanSpec


async def promote(
    session: AsyncSession, *, run_id: uuid.UUID, note: str | None, scenario: str | None = None
) -> Baseline:
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
    if scenario is not None:
        names = [s.name for s in PlanSpec.model_validate(plan.spec).scenarios]
        if scenario not in names:
            raise InvalidInput(
                f"the plan has no scenario {scenario!r}; it has {', '.join(names) or 'none'}",
                code="baseline.unknown_scenario",
            )
    baseline = Baseline(
        id=uuid.uuid4(),
        plan_id=run.plan_id,
        run_id=run.id,
        environment=environment,
        scenario=scenario,
        note=note,
    )
    return await BaselineRepository(session).add(baseline)


async def list_for_plan(session: AsyncSession, plan_id: uuid.UUID) -> Sequence[Baseline]:
    return await BaselineRepository(session).list_for_plan(plan_id)


def environment_of(plan: Plan) -> str:
    return str(plan.spec.get("target", {}).get("environment", "staging"))


async def _plan(session: AsyncSession, plan_id: uuid.UUID) -> Plan:
    plan = await session.get(Plan, plan_id)
    if plan is None:
        raise NotFound(f"no plan {plan_id}", code="plan.not_found")
    return plan


async def history_series(
    session: AsyncSession,
    plan: Plan,
    environment: str,
    *,
    before: datetime | None = None,
    exclude_run: uuid.UUID | None = None,
) -> dict[tuple[str, str], list[tuple[datetime, float, uuid.UUID | None, str | None]]]:
    """(endpoint, sli) → [(at, value, run id, label)] from the family's runs and imports."""
    repo = BaselineRepository(session)
    runs = {
        run.id: run
        for run, env in await repo.family_runs(plan.family_id, before=before)
        if env == environment and run.id != exclude_run
    }
    series: dict[tuple[str, str], list[tuple[datetime, float, uuid.UUID | None, str | None]]]
    series = {}
    for row in await repo.results_of(list(runs)):
        at = runs[row.run_id].started_at or runs[row.run_id].created_at
        for sli, column in history.SLI_COLUMNS.items():
            value = getattr(row, column)
            if value is not None:
                series.setdefault((row.endpoint, sli), []).append(
                    (at, float(value), row.run_id, None)
                )
    for point in await repo.history_points(plan.family_id, environment, before=before):
        series.setdefault((point.endpoint, point.sli), []).append(
            (point.at, point.value, None, point.label)
        )
    for points in series.values():
        points.sort(key=lambda p: p[0])
    return series


async def export_history(
    session: AsyncSession, plan_id: uuid.UUID, environment: str | None
) -> HistoryDocument:
    plan = await _plan(session, plan_id)
    env = environment or environment_of(plan)
    series = await history_series(session, plan, env)
    # Built without the import's size limits: a long history exports whole.
    return HistoryDocument.model_construct(
        format="perf-agent.history/v1",
        plan_id=plan.id,
        environment=env,
        series=[
            HistorySeries.model_construct(
                endpoint=endpoint,
                sli=sli,
                unit=history.unit_of(sli),
                points=[
                    HistoryValue.model_construct(at=at, value=value, run_id=run_id, label=label)
                    for at, value, run_id, label in points
                ],
            )
            for (endpoint, sli), points in sorted(series.items())
        ],
    )


async def import_history(
    session: AsyncSession, plan_id: uuid.UUID, document: HistoryDocument
) -> HistoryImported:
    plan = await _plan(session, plan_id)
    env = document.environment or environment_of(plan)
    steps = {"*", *PlanSpec.model_validate(plan.spec).step_names}
    unknown = sorted({s.endpoint for s in document.series} - steps)
    if unknown:
        raise InvalidInput(
            f"the plan has no endpoint {', '.join(map(repr, unknown))}; use '*' for all "
            f"requests or one of its steps: {', '.join(sorted(steps - {'*'}))}",
            code="history.unknown_endpoint",
        )
    now = utcnow()
    rows = {
        (s.endpoint, s.sli, p.at): {
            "family_id": plan.family_id,
            "environment": env,
            "endpoint": s.endpoint,
            "sli": s.sli,
            "at": p.at,
            "value": p.value,
            "label": p.label,
            "imported_at": now,
        }
        for s in document.series
        for p in s.points
        if p.run_id is None  # an export's own runs are runs already, not imports
    }
    await BaselineRepository(session).upsert_points(list(rows.values()))
    return HistoryImported(points=len(rows), series=len(document.series), environment=env)
