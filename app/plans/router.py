from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import PlainTextResponse

from app.core.db import SessionDep
from app.core.deps import SettingsDep
from app.core.openapi import problems
from app.models import Plan
from app.plans import dryrun, service
from app.plans.dryrun import DryRunOut
from app.plans.repository import PlanRepository
from app.plans.schemas import PlanOut, PlanSpec

router = APIRouter(tags=["plan"])


def get_repo(session: SessionDep) -> PlanRepository:
    return PlanRepository(session)


RepoDep = Annotated[PlanRepository, Depends(get_repo)]

_PLAN_SCHEMA = {"$ref": "#/components/schemas/PlanSpec"}


def plan_out(request: Request, plan: Plan) -> PlanOut:
    return PlanOut(
        id=plan.id,
        name=plan.name,
        version=plan.version,
        created_at=plan.created_at,
        spec=PlanSpec.model_validate(plan.spec),
        script_sha256=plan.script_sha256,
        script=plan.script,
        links={
            "self": str(request.url_for("get_plan", plan_id=plan.id).path),
            "script": str(request.url_for("get_plan_script", plan_id=plan.id).path),
            "execute": str(request.url_for("execute").path),
        },
    )


@router.post(
    "/plan",
    status_code=201,
    response_model=PlanOut,
    responses=problems(400, 413, 415, 422),
    summary="Store a test plan and generate its k6 script",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": _PLAN_SCHEMA},
                "application/yaml": {"schema": _PLAN_SCHEMA},
            },
        }
    },
)
async def create_plan(
    request: Request, response: Response, repo: RepoDep, settings: SettingsDep
) -> PlanOut:
    """Send the plan as JSON or YAML (`Content-Type: application/yaml`). The response carries
    the stored plan and the generated script; `Location` points at the plan."""
    plan = await service.create_plan(
        repo,
        body=await request.body(),
        content_type=request.headers.get("content-type"),
        settings=settings,
    )
    out = plan_out(request, plan)
    response.headers["Location"] = out.links["self"]
    return out


@router.post(
    "/plans/{plan_id}/dry-run",
    response_model=DryRunOut,
    responses=problems(404, 422),
    summary="Run the script once (1 VU × 1 iteration) and report each step",
)
async def dry_run_plan(plan_id: uuid.UUID, repo: RepoDep, settings: SettingsDep) -> DryRunOut:
    """Checks a plan against its target before a real run: every request's status and every
    check's result. It sends real requests, so the host guardrails apply."""
    return await dryrun.dry_run(await service.get_plan(repo, plan_id), settings)


@router.get("/plans", response_model=list[PlanOut])
async def list_plans(
    request: Request, repo: RepoDep, name: Annotated[str | None, Query(max_length=200)] = None
) -> list[PlanOut]:
    return [plan_out(request, p) for p in await service.list_plans(repo, name=name)]


@router.get("/plans/{plan_id}", response_model=PlanOut, responses=problems(404))
async def get_plan(request: Request, plan_id: uuid.UUID, repo: RepoDep) -> PlanOut:
    return plan_out(request, await service.get_plan(repo, plan_id))


@router.get(
    "/plans/{plan_id}/script",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/javascript": {}}}, **problems(404)},
)
async def get_plan_script(plan_id: uuid.UUID, repo: RepoDep) -> PlainTextResponse:
    """The k6 script exactly as the worker runs it (`k6 run script.js` works too)."""
    plan = await service.get_plan(repo, plan_id)
    return PlainTextResponse(
        plan.script,
        media_type="text/javascript",
        headers={
            "Content-Disposition": f'inline; filename="plan-{plan.id}.js"',
            "ETag": f'"{plan.script_sha256}"',
        },
    )
