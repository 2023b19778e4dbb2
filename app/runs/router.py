from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime

from app.core import caching, pagination
from app.core.auth import Principal, Scope, requires
from app.core.db import SessionDep
from app.core.deps import SettingsDep, get_app_settings
from app.core.links import path_for
from app.core.openapi import problems
from app.identity.service import record
from app.k6.summary import check_results, failed_thresholds
from app.models import Run, RunStatus
from app.runs import fanout, service
from app.runs.repository import RunRepository, RunRow
from app.runs.schemas import (
    CheckResult,
    DistributionOut,
    EndpointResult,
    ExecuteIn,
    LatencyOut,
    RunEventOut,
    RunOut,
    RunSummary,
)

router = APIRouter(tags=["execute"])
Executor = Annotated[Principal, Depends(requires(Scope.execute))]
READ = [Depends(requires(Scope.read))]


async def run_out(request: Request, repo: RunRepository, run: Run) -> RunOut:
    results = await repo.results(run.id)
    events = await repo.events(run.id)
    queue = None
    if run.status == RunStatus.queued:
        queue = service.queue_state(
            run, await repo.running_on(run.target_host), get_app_settings(request)
        )
    return RunOut(
        id=run.id,
        plan_id=run.plan_id,
        plan_version=run.plan_version,
        script_sha256=run.script_sha256,
        status=run.status,
        created_at=run.created_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
        worker_id=run.worker_id,
        attempts=run.attempts,
        exit_code=run.exit_code,
        error=run.error,
        stderr_tail=run.stderr_tail,
        k6_version=run.k6_version,
        test_duration_s=run.test_duration_s,
        planned_duration_s=run.planned_duration_s,
        thresholds_failed=failed_thresholds(run.summary),
        results=[EndpointResult.model_validate(r) for r in results],
        checks=[CheckResult.model_validate(c) for c in check_results(run.summary)],
        events=[RunEventOut.model_validate(e) for e in events],
        seed=run.seed,
        load_factor=run.load_factor,
        abort_requested=run.abort_requested,
        heartbeat_at=run.heartbeat_at,
        queue=queue,
        links={
            "self": path_for(request, "get_run", run_id=run.id),
            "plan": path_for(request, "get_plan", plan_id=run.plan_id),
            "analyse": path_for(request, "analyse"),
        },
    )


@router.post(
    "/execute",
    status_code=202,
    response_model=RunOut,
    responses=problems(403, 404, 409, 422),
    summary="Queue a run of a plan's k6 script",
)
async def execute(
    body: ExecuteIn,
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    principal: Executor,
) -> RunOut:
    """Queue a run of an approved plan version. A worker picks it up; poll `Location` until
    `finished` is true. A caller whose key has `approve` as well as `execute` (a CI pipeline's)
    may run a draft with `"auto_approve": true`: the draft is approved by the key's owner."""
    run = await service.enqueue(
        session,
        plan_id=body.plan_id,
        settings=settings,
        auto_approve=body.auto_approve,
        actor=principal,
    )
    await record(
        session,
        principal,
        "run.queued",
        "run",
        run.id,
        plan_id=run.plan_id,
        plan_version=run.plan_version,
    )
    out = await run_out(request, RunRepository(session), run)
    response.headers["Location"] = out.links["self"]
    return out


@router.post(
    "/runs/{run_id}/abort",
    status_code=202,
    response_model=RunOut,
    responses=problems(404, 409),
    summary="Stop a run gracefully",
)
async def abort_run(
    request: Request, run_id: uuid.UUID, session: SessionDep, principal: Executor
) -> RunOut:
    """A queued run is aborted at once. A running one is stopped by its worker within a
    heartbeat (k6 gets SIGINT and still writes its summary): it ends `aborted` with the
    results measured so far."""
    run = await service.abort(session, run_id)
    await record(
        session,
        principal,
        "run.aborted" if run.status == RunStatus.aborted else "run.abort_requested",
        "run",
        run.id,
        plan_id=run.plan_id,
        status=run.status,
    )
    return await run_out(request, RunRepository(session), run)


@router.get(
    "/runs/{run_id}/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}, **problems(404)},
    summary="Live samples, events and state of a run (server-sent events)",
    dependencies=READ,
)
async def stream_run(
    request: Request,
    run_id: uuid.UUID,
    session: SessionDep,
    last_event_id: Annotated[
        str | None,
        Header(description="Resume after this event (browsers send it when they reconnect)"),
    ] = None,
) -> StreamingResponse:
    """`event: sample` once a second while k6 runs (that second's VUs, iterations, requests,
    failures and latency p50/p90/p95/p99/max, over all requests and per endpoint, with running
    totals), `event: event` for each run event, `event: status` on each change and
    `event: end` when the run finishes. Samples and events carry an `id`: reconnect with
    `Last-Event-ID` and the stream resumes after it. `curl -N` shows them as they come."""
    await service.get_run(RunRepository(session), run_id)  # a 404 before the stream starts
    hub = fanout.hub_of(request.app)
    return StreamingResponse(
        hub.watch(run_id, fanout.Position.parse(last_event_id)),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get(
    "/runs/{run_id}/latency",
    response_model=LatencyOut,
    responses=problems(404, 422),
    summary="An endpoint's latency over a span of a run, from its stored histograms",
    dependencies=READ,
)
async def run_latency(
    run_id: uuid.UUID,
    session: SessionDep,
    endpoint: str = "*",
    from_s: Annotated[int, Query(ge=0, description="Seconds into the test")] = 0,
    to_s: Annotated[int | None, Query(ge=1, description="Exclusive; unset: the end")] = None,
) -> LatencyOut:
    """Percentiles over any span of whole windows (`PERF_AGENT_HISTOGRAM_WINDOW_S`, 10 s by
    default; minutes once retention has rolled the run up), e.g. the steady state without the
    ramp-up: the windows' histograms are merged, not their percentiles averaged."""
    return await service.latency(
        RunRepository(session), run_id, endpoint=endpoint, from_s=from_s, to_s=to_s
    )


@router.get(
    "/runs/{run_id}/distribution",
    response_model=DistributionOut,
    responses=problems(404, 422),
    summary="Each endpoint's latency distribution over the whole run, from its histograms",
    dependencies=READ,
)
async def run_distribution(
    run_id: uuid.UUID,
    session: SessionDep,
    step: Annotated[
        int,
        Query(ge=1, le=200, description="Stored buckets (0.5 % wide) per bin: 10 gives ~10 %"),
    ] = 10,
) -> DistributionOut:
    """Per endpoint (and `*`, all requests), the non-empty bins of the run's merged latency
    histogram: upper bounds and counts. An empty list while the run has stored none yet."""
    return await service.distribution(RunRepository(session), run_id, step=step)


@router.get(
    "/runs/{run_id}",
    response_model=RunOut,
    responses={304: {"description": "Unchanged since the ETag sent"}, **problems(404)},
    dependencies=READ,
)
async def get_run(request: Request, run_id: uuid.UUID, session: SessionDep) -> Response:
    """With an `ETag`; send it back as `If-None-Match` and an unchanged run is an empty 304.
    A finished run never changes again: this process answers it from memory afterwards."""
    bodies = caching.bodies_of(request)
    body = bodies.get(("run", run_id))
    if body is None:
        repo = RunRepository(session)
        out = await run_out(request, repo, await service.get_run(repo, run_id))
        body = out.model_dump_json(by_alias=True).encode()
        if out.finished:
            bodies.put(("run", run_id), body)
    return caching.conditional(request, body, media_type="application/json")


@router.get(
    "/runs",
    response_model=pagination.Page[RunSummary],
    responses=problems(422),
    dependencies=READ,
    summary="Runs, newest first, a page at a time",
)
async def list_runs(
    request: Request,
    response: Response,
    session: SessionDep,
    plan_id: uuid.UUID | None = None,
    status: RunStatus | None = None,
    environment: Annotated[
        str | None,
        Query(max_length=100, description="The plan's target.environment (e.g. staging)"),
    ] = None,
    since: Annotated[
        AwareDatetime | None, Query(description="Queued at or after (ISO 8601 with a zone)")
    ] = None,
    until: Annotated[AwareDatetime | None, Query(description="Queued before")] = None,
    cursor: Annotated[str | None, Query(description="From a page's `next` link")] = None,
    limit: Annotated[int, Query(ge=1, le=pagination.MAX_LIMIT)] = pagination.DEFAULT_LIMIT,
) -> pagination.Page[RunSummary]:
    """Summaries (state, verdict, requests, RPS, p95, error rate); the whole run is at each
    item's `links.self`. Follow `next` (or the `Link` header) for older runs: every run can be
    reached, and a page costs the same however many runs are stored. The same page asked
    again within `PERF_AGENT_LIST_CACHE_S` (1 s) is answered from this process's memory; a
    write through this process clears that at once."""

    def out(row: RunRow) -> RunSummary:
        return RunSummary.model_validate(
            {
                **row.__dict__,
                "links": {"self": path_for(request, "get_run", run_id=row.id)},
            }
        )

    async def build() -> pagination.Page[RunSummary]:
        rows = await service.list_runs(
            RunRepository(session),
            plan_id=plan_id,
            status=status,
            cursor=cursor,
            limit=limit,
            environment=environment,
            since=since,
            until=until,
        )
        return pagination.page(
            request, response, rows, limit=limit, key=lambda r: (r.created_at, r.id), out=out
        )

    page: pagination.Page[RunSummary] = await caching.recent_page(request, response, build)
    return page
