"""Budgets: a target for one latency SLI, and the iterations that try to meet it.

An iteration is a finished run of the budget's plan. It is analysed against the previous
iteration's run (the first against the plan's usual baseline), so each pass says what changed
and whether that change is significant, with the analysis' own statistics.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.analysis import service as analysis_service
from app.analysis.schemas import Comparison, Finding
from app.budgets.repository import BudgetRepository
from app.core import slis
from app.core.errors import Conflict, InvalidInput, NotFound
from app.core.settings import Settings
from app.models import (
    FINISHED_STATUSES,
    BudgetIteration,
    BudgetStatus,
    PerformanceBudget,
    Plan,
    Run,
    RunResult,
)
from app.plans.schemas import PlanSpec
from app.runs.repository import RunRepository


async def create(
    session: AsyncSession,
    *,
    plan_id: uuid.UUID,
    sli: str,
    target_ms: float,
    endpoint: str | None,
    max_iterations: int,
    owner: str | None,
) -> PerformanceBudget:
    plan = await session.get(Plan, plan_id)
    if plan is None:
        raise NotFound(f"no plan {plan_id}", code="plan.not_found")
    if endpoint is not None:
        steps = PlanSpec.model_validate(plan.spec).step_names
        if endpoint not in steps:
            raise InvalidInput(
                f"the plan has no step {endpoint!r}"
                + (
                    f"; its steps: {', '.join(steps)}"
                    if steps
                    else "; a hand-written script is judged as a whole: leave endpoint out"
                ),
                code="budget.unknown_endpoint",
            )
    budget = PerformanceBudget(
        plan_id=plan.id,
        sli=sli,
        endpoint=endpoint,
        target_ms=target_ms,
        max_iterations=max_iterations,
        status=BudgetStatus.running,
        created_by=owner,
    )
    return await BudgetRepository(session).add(budget)


async def get(session: AsyncSession, budget_id: uuid.UUID) -> PerformanceBudget:
    budget = await BudgetRepository(session).get(budget_id)
    if budget is None:
        raise NotFound(f"no budget {budget_id}", code="budget.not_found")
    return budget


async def iterations(session: AsyncSession, budget_id: uuid.UUID) -> Sequence[BudgetIteration]:
    return await BudgetRepository(session).iterations(budget_id)


async def list_budgets(
    session: AsyncSession, *, plan_id: uuid.UUID | None, limit: int
) -> Sequence[PerformanceBudget]:
    return await BudgetRepository(session).list(plan_id=plan_id, limit=limit)


async def _check_iteration(
    session: AsyncSession, budget_id: uuid.UUID, run_id: uuid.UUID
) -> tuple[PerformanceBudget, int, uuid.UUID | None]:
    """The budget, the new iteration's number and the previous iteration's run."""
    repo = BudgetRepository(session)
    budget = await get(session, budget_id)
    if budget.status != BudgetStatus.running:
        raise Conflict(
            f"budget {budget_id} is {budget.status}; start a new budget to go on",
            code="budget.finished",
            budget_status=budget.status,
        )
    done = await repo.iterations(budget_id)
    if any(i.run_id == run_id for i in done):
        raise Conflict(
            f"run {run_id} is already an iteration of this budget", code="budget.same_run"
        )
    run = await session.get(Run, run_id)
    if run is None:
        raise NotFound(f"no run {run_id}", code="run.not_found")
    if not await repo.same_family(budget.plan_id, run.plan_id):
        raise InvalidInput(
            f"run {run_id} is not a run of the budget's plan", code="budget.other_plan"
        )
    if run.status not in FINISHED_STATUSES:
        raise Conflict(
            f"run {run_id} is still {run.status}; record it once it has finished",
            code="run.not_finished",
            run_status=run.status,
        )
    previous = done[-1].run_id if done else None
    return budget, len(done) + 1, previous


def _comparison(analysis_comparisons: list[dict[str, Any]], budget: PerformanceBudget) -> Any:
    scope = budget.endpoint or RunResult.ALL
    for raw in analysis_comparisons:
        c = Comparison.model_validate(raw)
        if c.endpoint == scope and c.sli == budget.sli:
            return c
    return None


async def record_iteration(
    transaction: analysis_service.Transaction,
    *,
    budget_id: uuid.UUID,
    run_id: uuid.UUID,
    settings: Settings | None,
    sessionmaker: async_sessionmaker[AsyncSession] | None,
) -> tuple[PerformanceBudget, BudgetIteration]:
    """Analyse the run against the previous iteration's, and record it as the next iteration
    with its value, change and top finding; the budget is met, exhausted or still running."""
    async with transaction() as session:
        budget, number, previous = await _check_iteration(session, budget_id, run_id)
    analysis = await analysis_service.analyse(
        transaction,
        run_id=run_id,
        baseline_run_ids=[previous] if previous else None,
        settings=settings,
        sessionmaker=sessionmaker,
    )
    column = slis.BY_NAME[budget.sli].column
    async with transaction() as session:
        repo = BudgetRepository(session)
        budget_now = await repo.get(budget_id, lock=True)
        assert budget_now is not None
        results = {r.endpoint: r for r in await RunRepository(session).results(run_id)}
        row = results.get(budget.endpoint or RunResult.ALL)
        value = getattr(row, column) if row is not None else None
        before = None
        if previous is not None:
            rows = {r.endpoint: r for r in await RunRepository(session).results(previous)}
            prev_row = rows.get(budget.endpoint or RunResult.ALL)
            before = getattr(prev_row, column) if prev_row is not None else None
        compared = _comparison(analysis.comparisons, budget) if previous else None
        findings = [Finding.model_validate(f) for f in analysis.findings]
        top = next((f for f in findings if f.severity != "info"), None)
        met = value is not None and value < budget.target_ms
        iteration = BudgetIteration(
            budget_id=budget_id,
            number=number,
            run_id=run_id,
            analysis_id=analysis.id,
            value_ms=value,
            met=met,
            verdict=analysis.verdict,
            change=(value - before) / before if value is not None and before else None,
            comparison=compared.model_dump(
                mode="json",
                include={"verdict", "p_value", "interval", "change", "baseline", "current"},
            )
            if compared is not None
            else None,
            top_finding=top.summary if top else None,
        )
        if budget_now.status != BudgetStatus.running:
            raise Conflict(
                f"budget {budget_id} finished while this run was analysed",
                code="budget.finished",
                budget_status=budget_now.status,
            )
        try:
            async with session.begin_nested():
                await repo.add_iteration(iteration)
        except IntegrityError:
            raise Conflict(
                f"iteration {number} of budget {budget_id} was recorded meanwhile",
                code="budget.iteration_taken",
            ) from None
        if met:
            budget_now.status = BudgetStatus.met
        elif number >= budget_now.max_iterations:
            budget_now.status = BudgetStatus.exhausted
        await session.flush()
        return budget_now, iteration


def report(budget: PerformanceBudget, iterations: Sequence[BudgetIteration]) -> str:
    """The loop's history in Markdown: the SLI per iteration, what changed, the outcome."""
    scope = budget.endpoint or "all requests"
    lines = [
        f"# Performance budget: {budget.sli} of {scope} < {budget.target_ms:g} ms",
        "",
        f"Status **{budget.status}** after {len(iterations)} of at most "
        f"{budget.max_iterations} iterations.",
        "",
        f"| # | {budget.sli} | vs previous | significance | verdict | top finding |",
        "|---|---|---|---|---|---|",
    ]
    for it in iterations:
        value = "no data" if it.value_ms is None else f"{it.value_ms:,.2f} ms"
        if it.met:
            value += " ✅"
        change = "–" if it.change is None else f"{it.change * 100:+.1f}%"
        significance = "–"
        if it.comparison:
            p = it.comparison.get("p_value")
            significance = it.comparison["verdict"].replace("_", " ") + (
                f" (p {p:.2g})" if p is not None else ""
            )
        finding = (it.top_finding or "–").replace("|", "\\|").replace("\n", " ")
        lines.append(
            f"| {it.number} | {value} | {change} | {significance} | {it.verdict or '–'} "
            f"| {finding} |"
        )
    return "\n".join(lines) + "\n"
