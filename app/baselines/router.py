from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from app.baselines import service
from app.baselines.schemas import BaselineOut, HistoryDocument, HistoryImported, PromoteIn
from app.core import slis
from app.core.auth import Scope, requires
from app.core.db import SessionDep
from app.core.openapi import problems

router = APIRouter(tags=["baselines"])
READ = [Depends(requires(Scope.read))]
PLAN = [Depends(requires(Scope.plan))]


@router.post(
    "/baselines",
    status_code=201,
    response_model=BaselineOut,
    responses=problems(404, 409, 422),
    dependencies=PLAN,
)
async def promote_baseline(body: PromoteIn, session: SessionDep) -> BaselineOut:
    """Make a succeeded run the current baseline of its plan and environment (or, with
    `scenario`, of that scenario's steps only); later analyses compare with it."""
    baseline = await service.promote(
        session, run_id=body.run_id, note=body.note, scenario=body.scenario
    )
    return BaselineOut.model_validate(baseline)


@router.get("/baselines", response_model=list[BaselineOut], dependencies=READ)
async def list_baselines(plan_id: uuid.UUID, session: SessionDep) -> list[BaselineOut]:
    return [BaselineOut.model_validate(b) for b in await service.list_for_plan(session, plan_id)]


@router.get(
    "/plans/{plan_id}/history",
    response_model=HistoryDocument,
    responses=problems(404, 422),
    dependencies=READ,
)
async def export_history(
    request: Request,
    response: Response,
    plan_id: uuid.UUID,
    session: SessionDep,
    environment: str | None = None,
    before: Annotated[
        datetime | None, Query(description="Only what is older: from the `next` link")
    ] = None,
    limit: Annotated[
        int,
        Query(ge=1, le=service.EXPORT_MAX, description="Runs, and imported points per series"),
    ] = service.EXPORT_DEFAULT,
    sli: Annotated[
        list[slis.HistorySliName] | None,
        Query(description="Only these SLIs (repeat it); unset: all of them"),
    ] = None,
) -> HistoryDocument:
    """The plan's history as a JSON time series: per endpoint and SLI, one point per past
    run (its own succeeded runs, with `run_id`, and imported points) — the newest `limit` runs
    and imported points per series. `next` (and the `Link` header) is the older window."""
    document, next_before = await service.export_history(
        session, plan_id, environment, before=before, limit=limit, slis=sli
    )
    if next_before is not None:
        url = request.url.remove_query_params(["before", "limit"]).include_query_params(
            before=next_before.isoformat(), limit=limit
        )
        document.next = f"{url.path}?{url.query}"
        response.headers["Link"] = f'<{document.next}>; rel="next"'
    return document


@router.post(
    "/plans/{plan_id}/history",
    status_code=201,
    response_model=HistoryImported,
    responses=problems(404, 422),
    dependencies=PLAN,
)
async def import_history(
    plan_id: uuid.UUID, body: HistoryDocument, session: SessionDep
) -> HistoryImported:
    """Import past figures (e.g. exported from another tool) in the export's shape, so that
    history-based regression detection works from the plan's first run. A point at the same
    time of the same series replaces the earlier value."""
    return await service.import_history(session, plan_id, body)
