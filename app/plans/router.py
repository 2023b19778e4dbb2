from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import PlainTextResponse

from app.core import pagination
from app.core.auth import Principal, Scope, requires
from app.core.db import SessionDep
from app.core.deps import SettingsDep
from app.core.errors import Conflict, NotFound
from app.core.links import path_for
from app.core.openapi import problems
from app.identity.service import record
from app.models import Plan
from app.plans import dryrun, jmx, service
from app.plans.dryrun import DryRunOut
from app.plans.repository import PlanRepository
from app.plans.schemas import (
    PlanOut,
    PlanSpec,
    PlanSummary,
    ReviewIn,
    effective_slos,
    plan_json_schema,
)

router = APIRouter(tags=["plan"])


def get_repo(session: SessionDep) -> PlanRepository:
    return PlanRepository(session)


RepoDep = Annotated[PlanRepository, Depends(get_repo)]
Planner = Annotated[Principal, Depends(requires(Scope.plan))]
Reviewer = Annotated[Principal, Depends(requires(Scope.approve))]
READ = [Depends(requires(Scope.read))]

_PLAN_SCHEMA = {"$ref": "#/components/schemas/PlanSpec"}
_ANY_DOCUMENT = {"type": "object"}


def document_body(schema: dict[str, Any], *media_types: str) -> dict[str, Any]:
    """A request body read by hand (JSON or YAML), described for the OpenAPI document."""
    types = media_types or ("application/json", "application/yaml")
    return {"requestBody": {"required": True, "content": {t: {"schema": schema} for t in types}}}


def created(request: Request, response: Response, plan: Plan) -> PlanOut:
    out = plan_out(request, plan)
    response.headers["Location"] = out.links["self"]
    return out


Cursor = Annotated[str | None, Query(description="From a page's `next` link")]
Limit = Annotated[int, Query(ge=1, le=pagination.MAX_LIMIT)]


def summaries(
    request: Request, response: Response, rows: Sequence[Any], limit: int
) -> pagination.Page[PlanSummary]:
    def out(row: Any) -> PlanSummary:
        links = {"self": path_for(request, "get_plan", plan_id=row.id)}
        return PlanSummary.model_validate({**row._mapping, "links": links})

    return pagination.page(
        request, response, rows, limit=limit, key=lambda r: (r.created_at, r.id), out=out
    )


# A plan version's spec never changes (an edit is a new row): validated once per process.
_specs: dict[uuid.UUID, PlanSpec] = {}
MAX_CACHED_SPECS = 512


def spec_of(plan: Plan) -> PlanSpec:
    spec = _specs.get(plan.id)
    if spec is None:
        if len(_specs) >= MAX_CACHED_SPECS:
            _specs.clear()
        spec = _specs[plan.id] = PlanSpec.model_validate(plan.spec)
    return spec


def plan_out(request: Request, plan: Plan) -> PlanOut:
    return PlanOut(
        id=plan.id,
        family_id=plan.family_id,
        name=plan.name,
        version=plan.version,
        status=plan.status,
        reviewed_by=plan.reviewed_by,
        review_comment=plan.review_comment,
        reviewed_at=plan.reviewed_at,
        created_at=plan.created_at,
        spec=spec_of(plan),
        script_sha256=plan.script_sha256,
        script=plan.script,
        links={
            "self": path_for(request, "get_plan", plan_id=plan.id),
            "script": path_for(request, "get_plan_script", plan_id=plan.id),
            "execute": path_for(request, "execute"),
            "review": path_for(request, "review_plan", plan_id=plan.id),
            "versions": path_for(request, "list_plan_versions", plan_id=plan.id),
        },
    )


@router.post(
    "/plan",
    status_code=201,
    response_model=PlanOut,
    responses=problems(400, 413, 415, 422),
    summary="Store a test plan and generate its k6 script",
    openapi_extra=document_body(_PLAN_SCHEMA),
)
async def create_plan(
    request: Request, response: Response, repo: RepoDep, settings: SettingsDep, principal: Planner
) -> PlanOut:
    """Send the plan as JSON or YAML (`Content-Type: application/yaml`). The response carries
    the stored plan (a draft) and the generated script; `Location` points at the plan.

    Or send `{"intent": "checkout flow, 100 users, 10 minutes", "target": {...}}`: a language
    model drafts the plan in this same language, which is then validated like any other; if the
    model is missing, slow or wrong, the problem says so and nothing is stored."""
    plan = await service.create_plan(
        repo,
        body=await request.body(),
        content_type=request.headers.get("content-type"),
        settings=settings,
        sessionmaker=request.app.state.sessionmaker,
    )
    await service.record_stored(repo.session, principal, plan, via="plan")
    return created(request, response, plan)


@router.post(
    "/plans/{plan_id}/versions",
    status_code=201,
    response_model=PlanOut,
    responses=problems(400, 404, 413, 415, 422),
    summary="Edit a plan: the document becomes its next version, as a draft",
    openapi_extra=document_body(_PLAN_SCHEMA),
)
async def create_plan_version(
    plan_id: uuid.UUID,
    request: Request,
    response: Response,
    repo: RepoDep,
    settings: SettingsDep,
    principal: Planner,
) -> PlanOut:
    plan = await service.create_version(
        repo,
        plan_id,
        body=await request.body(),
        content_type=request.headers.get("content-type"),
        settings=settings,
    )
    await service.record_stored(repo.session, principal, plan, via="versions")
    return created(request, response, plan)


@router.get(
    "/plans/{plan_id}/versions",
    response_model=pagination.Page[PlanSummary],
    responses=problems(404, 422),
    dependencies=READ,
)
async def list_plan_versions(
    request: Request,
    response: Response,
    plan_id: uuid.UUID,
    repo: RepoDep,
    cursor: Cursor = None,
    limit: Limit = pagination.DEFAULT_LIMIT,
) -> pagination.Page[PlanSummary]:
    """Every version of this plan's family, newest first, a page at a time (follow `next`)."""
    rows = await service.versions(repo, plan_id, cursor=cursor, limit=limit)
    return summaries(request, response, rows, limit)


@router.post(
    "/plans/{plan_id}/review",
    response_model=PlanOut,
    responses=problems(404, 409, 422),
    summary="Approve or archive a plan version",
)
async def review_plan(
    request: Request, plan_id: uuid.UUID, body: ReviewIn, repo: RepoDep, principal: Reviewer
) -> PlanOut:
    """draft → approved → archived (a draft can be archived too). Only approved versions run,
    unless a caller with `execute` and `approve` auto-approves (see `POST /execute`). The
    reviewer recorded is the API key's owner; a `reviewer` in the body is ignored."""
    plan = await service.review(
        repo, plan_id, action=body.action, reviewer=principal.owner, comment=body.comment
    )
    await record(
        repo.session,
        principal,
        f"plan.{plan.status}",
        "plan",
        plan.id,
        family_id=plan.family_id,
        version=plan.version,
        comment=body.comment,
    )
    return plan_out(request, plan)


@router.post(
    "/plans/{plan_id}/dry-run",
    response_model=DryRunOut,
    responses=problems(404, 422),
    summary="Run the script once (1 VU × 1 iteration) and report each step",
    dependencies=[Depends(requires(Scope.plan))],
)
async def dry_run_plan(plan_id: uuid.UUID, repo: RepoDep, settings: SettingsDep) -> DryRunOut:
    """Checks a plan against its target before a real run: every request's status and every
    check's result. It sends real requests, so the host guardrails apply."""
    return await dryrun.dry_run(await service.get_plan(repo, plan_id), settings)


@router.post(
    "/plans/import/openapi",
    status_code=201,
    response_model=PlanOut,
    responses=problems(400, 413, 415, 422),
    summary="Draft a plan from an OpenAPI 3 document",
    openapi_extra=document_body(_ANY_DOCUMENT),
)
async def import_openapi(
    request: Request,
    response: Response,
    repo: RepoDep,
    settings: SettingsDep,
    principal: Planner,
    base_url: Annotated[str, Query(description="The target; the document's servers are ignored")],
    tag: Annotated[list[str] | None, Query(description="Keep operations with these tags")] = None,
    operation_id: Annotated[list[str] | None, Query(description="Keep these operations")] = None,
    name: Annotated[str | None, Query(max_length=200)] = None,
) -> PlanOut:
    """One step per chosen operation, parameters and bodies from examples or schemas, a smoke
    load profile. The result is a draft: review, tune (a new version) and approve it."""
    plan = await service.import_plan(
        repo,
        kind="openapi",
        body=await request.body(),
        content_type=request.headers.get("content-type"),
        settings=settings,
        options={"base_url": base_url, "tags": tag, "operation_ids": operation_id, "name": name},
    )
    await service.record_stored(repo.session, principal, plan, via="import/openapi")
    return created(request, response, plan)


@router.post(
    "/plans/import/har",
    status_code=201,
    response_model=PlanOut,
    responses=problems(400, 413, 415, 422),
    summary="Draft a workflow plan from a HAR 1.2 recording",
    openapi_extra=document_body(_ANY_DOCUMENT, "application/json"),
)
async def import_har(
    request: Request,
    response: Response,
    repo: RepoDep,
    settings: SettingsDep,
    principal: Planner,
    base_url: Annotated[
        str | None, Query(description="The target; default: the recording's first host")
    ] = None,
    name: Annotated[str | None, Query(max_length=200)] = None,
) -> PlanOut:
    """The recording's requests in order, with its think times; static assets dropped; tokens
    a response returned and later requests reused are extracted and passed on."""
    plan = await service.import_plan(
        repo,
        kind="har",
        body=await request.body(),
        content_type=request.headers.get("content-type"),
        settings=settings,
        options={"base_url": base_url, "name": name},
    )
    await service.record_stored(repo.session, principal, plan, via="import/har")
    return created(request, response, plan)


@router.get("/plans/schema", summary="JSON Schema of the plan language", dependencies=READ)
async def plan_schema() -> dict[str, Any]:
    """The same schema as `docs/plan-schema.json`; editors can validate YAML plans with it."""
    return plan_json_schema()


@router.get(
    "/plans",
    response_model=pagination.Page[PlanSummary],
    responses=problems(422),
    dependencies=READ,
)
async def list_plans(
    request: Request,
    response: Response,
    repo: RepoDep,
    name: Annotated[str | None, Query(max_length=200)] = None,
    cursor: Cursor = None,
    limit: Limit = pagination.DEFAULT_LIMIT,
) -> pagination.Page[PlanSummary]:
    """Plan versions, newest first, without spec or script (each at its `links.self`)."""
    rows = await service.list_plans(repo, name=name, cursor=cursor, limit=limit)
    return summaries(request, response, rows, limit)


@router.get("/plans/{plan_id}", response_model=PlanOut, responses=problems(404), dependencies=READ)
async def get_plan(request: Request, plan_id: uuid.UUID, repo: RepoDep) -> PlanOut:
    return plan_out(request, await service.get_plan(repo, plan_id))


@router.get(
    "/plans/{plan_id}/script",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/javascript": {}}}, **problems(404)},
    dependencies=READ,
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


@router.get(
    "/plans/{plan_id}/script.jmx",
    response_class=PlainTextResponse,
    responses={200: {"content": {"application/xml": {}}}, **problems(404)},
    summary="The same plan as an Apache JMeter test plan",
    dependencies=READ,
)
async def get_plan_jmx(plan_id: uuid.UUID, repo: RepoDep) -> PlainTextResponse:
    """What core JMeter cannot express exactly (ramping rates, iteration weights …) is
    approximated and listed in the Test Plan's comments. Data sets are separate CSV files:
    `…/plans/{id}/jmeter/{file}` for each `…csv` the plan names."""
    plan = await service.get_plan(repo, plan_id)
    spec = PlanSpec.model_validate(plan.spec)
    if spec.is_raw:
        raise Conflict(
            "this plan is a hand-written k6 script; it has no JMeter form",
            code="plan.no_jmeter_form",
        )
    document = jmx.render_jmx(spec, slos=effective_slos(spec)[0])
    return PlainTextResponse(
        document,
        media_type="application/xml",
        headers={"Content-Disposition": f'attachment; filename="plan-{plan.id}.jmx"'},
    )


@router.get(
    "/plans/{plan_id}/jmeter/{file_name}",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/csv": {}}}, **problems(404)},
    dependencies=READ,
)
async def get_plan_jmeter_file(
    plan_id: uuid.UUID, file_name: str, repo: RepoDep
) -> PlainTextResponse:
    """A CSV data file the .jmx reads; save it next to the .jmx."""
    plan = await service.get_plan(repo, plan_id)
    files = jmx.jmx_data_files(PlanSpec.model_validate(plan.spec))
    if file_name not in files:
        raise NotFound(
            f"plan {plan_id} has no JMeter file {file_name!r}; "
            f"it has: {', '.join(files) or 'none'}",
            code="plan.jmeter_file_not_found",
        )
    return PlainTextResponse(files[file_name], media_type="text/csv; charset=utf-8")
