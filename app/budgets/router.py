from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import PlainTextResponse

from app.budgets import service
from app.budgets.schemas import BudgetIn, BudgetOut, IterationIn, IterationOut
from app.core.auth import Principal, Scope, requires
from app.core.db import SessionDep, TransactionsDep
from app.core.deps import SettingsDep
from app.core.links import path_for
from app.core.openapi import problems
from app.models import BudgetIteration, PerformanceBudget

router = APIRouter(tags=["budgets"])
READ = [Depends(requires(Scope.read))]
EXECUTE = [Depends(requires(Scope.execute))]


def budget_out(
    request: Request, budget: PerformanceBudget, iterations: list[BudgetIteration] | None = None
) -> BudgetOut:
    out = BudgetOut.model_validate(budget)
    out.iterations = [IterationOut.model_validate(i) for i in iterations or []]
    out.links = {
        "self": path_for(request, "get_budget", budget_id=budget.id),
        "iterations": path_for(request, "record_iteration", budget_id=budget.id),
        "report": path_for(request, "get_budget_report", budget_id=budget.id),
        "plan": path_for(request, "get_plan", plan_id=budget.plan_id),
    }
    return out


@router.post(
    "/budgets",
    status_code=201,
    response_model=BudgetOut,
    responses=problems(404, 422),
    summary="Start a performance budget loop for a plan",
)
async def create_budget(
    body: BudgetIn,
    request: Request,
    response: Response,
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Scope.execute))],
) -> BudgetOut:
    """A target for one latency SLI (overall or one step's), met by at most `max_iterations`
    runs of the plan: record each finished run with `POST /budgets/{id}/iterations`."""
    budget = await service.create(
        session,
        plan_id=body.plan_id,
        sli=body.sli,
        target_ms=body.target_ms,
        endpoint=body.endpoint,
        max_iterations=body.max_iterations,
        owner=principal.owner,
    )
    out = budget_out(request, budget)
    response.headers["Location"] = out.links["self"]
    return out


@router.get("/budgets", response_model=list[BudgetOut], dependencies=READ)
async def list_budgets(
    request: Request,
    session: SessionDep,
    plan_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[BudgetOut]:
    """Newest first; with `plan_id`, the budgets of any version of that plan. Without their
    iterations: `GET /budgets/{id}` has them."""
    budgets = await service.list_budgets(session, plan_id=plan_id, limit=limit)
    return [budget_out(request, b) for b in budgets]


@router.get(
    "/budgets/{budget_id}", response_model=BudgetOut, responses=problems(404), dependencies=READ
)
async def get_budget(request: Request, budget_id: uuid.UUID, session: SessionDep) -> BudgetOut:
    budget = await service.get(session, budget_id)
    return budget_out(request, budget, list(await service.iterations(session, budget_id)))


@router.get(
    "/budgets/{budget_id}/report.md",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/markdown": {}}}, **problems(404)},
    dependencies=READ,
)
async def get_budget_report(budget_id: uuid.UUID, session: SessionDep) -> PlainTextResponse:
    """The loop's history: the SLI per iteration, its change from the one before and that
    change's significance, the verdict and the top finding of each."""
    budget = await service.get(session, budget_id)
    text = service.report(budget, await service.iterations(session, budget_id))
    return PlainTextResponse(text, media_type="text/markdown; charset=utf-8")


@router.post(
    "/budgets/{budget_id}/iterations",
    status_code=201,
    response_model=BudgetOut,
    responses=problems(404, 409, 422),
    dependencies=EXECUTE,
    summary="Record a finished run as the budget's next iteration",
)
async def record_iteration(
    budget_id: uuid.UUID,
    body: IterationIn,
    request: Request,
    transactions: TransactionsDep,
    settings: SettingsDep,
) -> BudgetOut:
    """Analyses the run against the previous iteration's run and answers the budget with
    every iteration so far: the new one last, with its value, whether it met the target, its
    change from the one before (with the analysis' significance) and its top finding."""
    await service.record_iteration(
        transactions,
        budget_id=budget_id,
        run_id=body.run_id,
        settings=settings,
        sessionmaker=request.app.state.sessionmaker,
    )
    async with transactions() as session:
        budget = await service.get(session, budget_id)
        return budget_out(request, budget, list(await service.iterations(session, budget_id)))
