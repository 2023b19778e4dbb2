"""Promote runs to baselines; the newest baseline of a plan and environment is current."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.baselines import history
from app.baselines.repository import BaselineRepository
from app.baselines.schemas import (
    ChangePoint,
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
    # Locked: the retention job rolls a run up under the same lock, so a run is never promoted
    # while its seconds are being replaced.
    run = await session.get(Run, run_id, with_for_update=True)
    if run is None:
        raise NotFound(f"no run {run_id}", code="run.not_found")
    if run.status != RunStatus.succeeded:
        raise Conflict(
            f"run {run_id} is {run.status}; only a succeeded run can be a baseline",
            code="baseline.run_not_succeeded",
        )
    if run.samples_rolled_up_at is not None:
        raise Conflict(
            f"run {run_id}'s per-second samples were rolled up into minutes on "
            f"{run.samples_rolled_up_at:%Y-%m-%d} (PERF_AGENT_SAMPLE_RETENTION_DAYS); a "
            "baseline is compared second by second: promote a newer run",
            code="baseline.samples_rolled_up",
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


Points = list[tuple[datetime, float, uuid.UUID | None, str | None]]

# Analysis reads at most this many past runs (and imported points per series): what it costs
# does not grow with the history, and the change-point search sees what matters, the newest.
ANALYSIS_WINDOW = history.MAX_POINTS_FOR_SHIFTS
EXPORT_DEFAULT = 100
EXPORT_MAX = 5000


@dataclass
class Window:
    """Up to ``limit`` runs and ``limit`` imported points per series, newest first, before a
    time; ``next_before`` is where the next (older) window starts, None when nothing is left."""

    series: dict[tuple[str, str], Points]
    next_before: datetime | None


async def history_window(
    session: AsyncSession,
    plan: Plan,
    environment: str,
    *,
    before: datetime | None = None,
    exclude_run: uuid.UUID | None = None,
    limit: int | None = None,
    slis: Sequence[str] | None = None,
) -> Window:
    """(endpoint, sli) → [(at, value, run id, label)], oldest first, from the family's newest
    runs and imports. Two streams are read, each bounded: when one was cut short, the window
    ends at its oldest time (what is older comes in the next window, from both streams).
    With ``slis``, only their series."""
    repo = BaselineRepository(session)
    columns = {
        sli: column for sli, column in history.SLI_COLUMNS.items() if not slis or sli in slis
    }
    limit = limit or ANALYSIS_WINDOW
    runs = [
        row
        for row in await repo.window_runs(
            plan.family_id, environment, before=before, limit=limit + 1
        )
        if row[0] != exclude_run
    ]
    points = await repo.history_points(
        plan.family_id, environment, before=before, per_series=limit + 1
    )
    cuts: list[datetime] = []
    if len(runs) > limit:
        runs = runs[:limit]
        cuts.append(runs[-1][2])
    by_series: dict[tuple[str, str], list[Any]] = {}
    for point in points:
        by_series.setdefault((point.endpoint, point.sli), []).append(point)
    for kept in by_series.values():
        if len(kept) > limit:
            del kept[0]  # oldest first: the one beyond the limit is the oldest
            cuts.append(kept[0].at)
    cut = max(cuts) if cuts else None
    when = {run_id: (at, created) for run_id, at, created in runs}
    series: dict[tuple[str, str], Points] = {}
    for row in await repo.results_of(list(when), list(columns.values())):
        run_id, endpoint, *values = tuple(row)
        at, created = when[run_id]
        if cut is not None and created < cut:
            continue
        for sli, value in zip(columns, values, strict=True):
            if value is not None:
                series.setdefault((endpoint, sli), []).append((at, float(value), run_id, None))
    for (endpoint, sli), kept in by_series.items():
        if sli not in columns:
            continue
        for point in kept:
            if cut is None or point.at >= cut:
                series.setdefault((endpoint, sli), []).append(
                    (point.at, point.value, None, point.label)
                )
    for found in series.values():
        found.sort(key=lambda p: p[0])
    return Window(series=series, next_before=cut)


async def history_series(
    session: AsyncSession,
    plan: Plan,
    environment: str,
    *,
    before: datetime | None = None,
    exclude_run: uuid.UUID | None = None,
) -> dict[tuple[str, str], Points]:
    """The newest window of the history: what analysis compares with and searches for shifts."""
    window = await history_window(
        session, plan, environment, before=before, exclude_run=exclude_run
    )
    return window.series


async def export_history(
    session: AsyncSession,
    plan_id: uuid.UUID,
    environment: str | None,
    *,
    before: datetime | None = None,
    limit: int = EXPORT_DEFAULT,
    slis: Sequence[str] | None = None,
) -> tuple[HistoryDocument, datetime | None]:
    """One window of the history (newest first across windows), and where the next starts;
    with ``slis``, only their series and change points."""
    plan = await _plan(session, plan_id)
    env = environment or environment_of(plan)
    window = await history_window(session, plan, env, before=before, limit=limit, slis=slis)
    # Built without the import's size limits: an import takes at most 50,000 points at once.
    document = HistoryDocument.model_construct(
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
            for (endpoint, sli), points in sorted(window.series.items())
        ],
        changes=[ChangePoint.model_validate(found) for found in await _changes(window.series)],
    )
    return document, window.next_before


async def _changes(series: dict[tuple[str, str], Points]) -> list[dict[str, Any]]:
    timeline = {key: [(at, value) for at, value, _, _ in points] for key, points in series.items()}
    return await asyncio.to_thread(history.shifts, timeline)


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
