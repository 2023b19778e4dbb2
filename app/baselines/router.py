from __future__ import annotations

import uuid

from fastapi import APIRouter

from app.baselines import service
from app.baselines.schemas import BaselineOut, PromoteIn
from app.core.db import SessionDep
from app.core.openapi import problems

router = APIRouter(tags=["baselines"])


@router.post(
    "/baselines", status_code=201, response_model=BaselineOut, responses=problems(404, 409)
)
async def promote_baseline(body: PromoteIn, session: SessionDep) -> BaselineOut:
    """Make a succeeded run the current baseline of its plan; later analyses compare with it."""
    baseline = await service.promote(session, run_id=body.run_id, note=body.note)
    return BaselineOut.model_validate(baseline)


@router.get("/baselines", response_model=list[BaselineOut])
async def list_baselines(plan_id: uuid.UUID, session: SessionDep) -> list[BaselineOut]:
    return [BaselineOut.model_validate(b) for b in await service.list_for_plan(session, plan_id)]
