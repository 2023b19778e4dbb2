"""What ``/metrics`` reads from the database at each scrape: two queries, whatever the data."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.metrics import (
    MAX_RESULT_SERIES,
    RESULTS_WINDOW_DAYS,
    DatabaseSnapshot,
    LatestResult,
    PlanVerdict,
)
from app.models import FINISHED_STATUSES, Analysis, Plan, Run, RunResult, RunStatus
from app.models.base import utcnow


async def database_snapshot(session: AsyncSession) -> DatabaseSnapshot:
    now = utcnow()
    by_state: dict[str, int] = {}
    oldest_queued = None
    states = select(Run.status, func.count(), func.min(Run.created_at)).group_by(Run.status)
    for state, count, oldest in (await session.execute(states)).all():
        by_state[state] = count
        if state == RunStatus.queued:
            oldest_queued = max(0.0, (now - oldest).total_seconds())

    # Finished runs of the window, with their plan's name and environment (the labels; two
    # plans of the same name and environment are one series, the newest run's).
    when = func.coalesce(Run.finished_at, Run.created_at)
    recent = (
        select(
            Run.id.label("run_id"),
            when.label("at"),
            Plan.name.label("plan"),
            func.coalesce(Plan.spec["target"]["environment"].astext, "").label("environment"),
        )
        .join(Plan, Plan.id == Run.plan_id)
        .where(Run.status.in_(FINISHED_STATUSES), when >= now - timedelta(days=RESULTS_WINDOW_DAYS))
        .cte("recent")
    )
    # The newest run's figures per (plan, environment, endpoint) …
    latest = (
        select(
            recent.c.plan,
            recent.c.environment,
            recent.c.at,
            RunResult.endpoint,
            RunResult.p95_ms,
            RunResult.p99_ms,
            RunResult.error_rate,
            RunResult.requests,
        )
        .join(RunResult, RunResult.run_id == recent.c.run_id)
        .ext(distinct_on(recent.c.plan, recent.c.environment, RunResult.endpoint))
        .order_by(recent.c.plan, recent.c.environment, RunResult.endpoint, recent.c.at.desc())
        .cte("latest")
    )
    # … and the newest analysis's verdict per (plan, environment).
    verdicts = (
        select(
            recent.c.plan,
            recent.c.environment,
            Analysis.verdict,
            Analysis.saturation["knee_rps"].as_float().label("knee_rps"),
            Analysis.saturation["knee_load"].as_float().label("knee_load"),
            Analysis.saturation["load_metric"].astext.label("load_metric"),
        )
        .join(Analysis, Analysis.run_id == recent.c.run_id)
        .ext(distinct_on(recent.c.plan, recent.c.environment))
        .order_by(recent.c.plan, recent.c.environment, Analysis.created_at.desc())
        .cte("verdicts")
    )
    rows = (
        await session.execute(
            select(
                latest,
                verdicts.c.verdict,
                verdicts.c.knee_rps,
                verdicts.c.knee_load,
                verdicts.c.load_metric,
            )
            .outerjoin(
                verdicts,
                (verdicts.c.plan == latest.c.plan)
                & (verdicts.c.environment == latest.c.environment),
            )
            .order_by(latest.c.at.desc(), latest.c.plan, latest.c.environment, latest.c.endpoint)
            .limit(MAX_RESULT_SERIES + 1)
        )
    ).all()
    truncated = len(rows) > MAX_RESULT_SERIES
    results = []
    found: dict[tuple[str, str], PlanVerdict] = {}
    for row in rows[:MAX_RESULT_SERIES]:
        results.append(
            LatestResult(
                plan=row.plan,
                environment=row.environment,
                endpoint=row.endpoint,
                p95_ms=row.p95_ms,
                p99_ms=row.p99_ms,
                error_rate=row.error_rate,
                requests=row.requests,
                finished_at=row.at.timestamp(),
            )
        )
        if row.verdict is not None:
            found[(row.plan, row.environment)] = PlanVerdict(
                row.plan,
                row.environment,
                row.verdict,
                knee_rps=row.knee_rps,
                knee_load=row.knee_load,
                load_metric=row.load_metric,
            )
    return DatabaseSnapshot(
        runs_by_state=by_state,
        oldest_queued_age_s=oldest_queued,
        results=results,
        verdicts=list(found.values()),
        results_truncated=truncated,
    )
