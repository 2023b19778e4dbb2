from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import HTMLResponse, PlainTextResponse

from app.analysis import service
from app.analysis.narrative import Narrative
from app.analysis.report import comparison_markdown
from app.analysis.saturation import Saturation
from app.analysis.schemas import (
    AnalyseIn,
    AnalysisBrief,
    AnalysisOut,
    Comparison,
    FeedbackIn,
    FeedbackOut,
    Finding,
    LoadComparison,
    LoadGenerator,
    RecommendationKPI,
    RunComparison,
    Score,
    SloResult,
)
from app.core import caching
from app.core.auth import Scope, requires
from app.core.db import SessionDep, TransactionsDep
from app.core.deps import SettingsDep
from app.core.links import path_for
from app.core.openapi import problems
from app.models import Analysis

router = APIRouter(tags=["analyse"])
READ = [Depends(requires(Scope.read))]


def analysis_out(request: Request, analysis: Analysis) -> AnalysisOut:
    return AnalysisOut(
        id=analysis.id,
        run_id=analysis.run_id,
        baseline_run_id=analysis.baseline_run_id,
        baseline_run_ids=analysis.baseline_run_ids,
        baseline_source=analysis.baseline_source,
        comparisons=[Comparison.model_validate(c) for c in analysis.comparisons],
        score=Score.model_validate(analysis.score) if analysis.score else None,
        history_shifts=analysis.history_shifts,
        system_metrics=analysis.system_metrics,
        saturation=Saturation.model_validate(analysis.saturation) if analysis.saturation else None,
        load=LoadComparison.model_validate(analysis.load) if analysis.load else None,
        profile=analysis.profile,
        load_generator=(
            LoadGenerator.model_validate(analysis.load_generator)
            if analysis.load_generator
            else None
        ),
        narrative=Narrative.model_validate(analysis.narrative) if analysis.narrative else None,
        narrative_meta=analysis.narrative_meta,
        created_at=analysis.created_at,
        verdict=analysis.verdict,
        slo_results=[SloResult.model_validate(r) for r in analysis.slo_results],
        findings=[Finding.model_validate(f) for f in analysis.findings],
        warnings=analysis.warnings,
        links={
            "self": path_for(request, "get_analysis", analysis_id=analysis.id),
            "report": path_for(request, "get_analysis_report", analysis_id=analysis.id),
            "report_html": path_for(request, "get_analysis_report_html", analysis_id=analysis.id),
            "run": path_for(request, "get_run", run_id=analysis.run_id),
        },
    )


@router.post(
    "/analyse",
    status_code=201,
    response_model=AnalysisOut,
    responses=problems(404, 409, 422),
    summary="Judge a finished run against its SLOs and baseline",
    # Judging is the last step of running a test (and may call a paid model): execute's.
    dependencies=[Depends(requires(Scope.execute))],
)
async def analyse(
    body: AnalyseIn,
    request: Request,
    response: Response,
    transactions: TransactionsDep,
    settings: SettingsDep,
) -> AnalysisOut:
    """`verdict` is `pass` only when every SLO passed and nothing regressed against the
    baseline runs (named in `baseline_run_ids`, each comparison in `comparisons`); CI can gate
    on it. With an LLM configured, `narrative` explains the findings (within
    `PERF_AGENT_LLM_TIMEOUT_S`); without one, or when it fails, the deterministic findings
    stand alone and `narrative_meta` says why."""
    analysis = await service.analyse(
        transactions,
        run_id=body.run_id,
        baseline_run_ids=body.baseline_run_ids,
        settings=settings,
        sessionmaker=request.app.state.sessionmaker,
    )
    out = analysis_out(request, analysis)
    response.headers["Location"] = out.links["self"]
    return out


@router.get(
    "/analyses",
    response_model=list[AnalysisBrief],
    responses=problems(422),
    summary="A run's analyses, newest first",
    dependencies=READ,
)
async def list_analyses(
    request: Request,
    session: SessionDep,
    run_id: Annotated[uuid.UUID, Query(description="The run analysed")],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> list[AnalysisBrief]:
    """How a client that knows a run finds its verdicts (an empty list: not analysed yet;
    `POST /analyse` judges it)."""
    rows = await service.analyses_of_run(session, run_id, limit=limit)
    return [
        AnalysisBrief(
            id=analysis_id,
            run_id=of,
            verdict=verdict,
            created_at=created_at,
            links={"self": path_for(request, "get_analysis", analysis_id=analysis_id)},
        )
        for analysis_id, of, verdict, created_at in rows
    ]


@router.get(
    "/analyses/{analysis_id}",
    response_model=AnalysisOut,
    responses=problems(404),
    dependencies=READ,
)
async def get_analysis(request: Request, analysis_id: uuid.UUID, session: SessionDep) -> Response:
    """Stored once, never changed: with an `ETag` and cacheable for a day (and answered from
    this process's memory after the first time)."""
    bodies = caching.bodies_of(request)
    body = bodies.get(("analysis", analysis_id))
    if body is None:
        analysis = analysis_out(request, await service.get_analysis(session, analysis_id))
        body = analysis.model_dump_json(by_alias=True).encode()
        bodies.put(("analysis", analysis_id), body)
    return caching.conditional(request, body, media_type="application/json", immutable=True)


@router.get(
    "/analyses/{analysis_id}/report.md",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/markdown": {}}}, **problems(404)},
    dependencies=READ,
)
async def get_analysis_report(
    request: Request, analysis_id: uuid.UUID, session: SessionDep
) -> Response:
    analysis = await service.get_analysis(session, analysis_id)
    return caching.conditional(
        request,
        analysis.report_md.encode(),
        media_type="text/markdown; charset=utf-8",
        immutable=True,
    )


@router.get(
    "/analyses/{analysis_id}/report.html",
    response_class=HTMLResponse,
    responses={200: {"content": {"text/html": {}}}, **problems(404)},
    dependencies=READ,
)
async def get_analysis_report_html(
    request: Request, analysis_id: uuid.UUID, session: SessionDep
) -> Response:
    """One self-contained page that opens offline: latency percentiles, RPS, errors and VUs
    second by second, the baseline's p95 and RPS dashed, the knee marked, as interactive
    charts (uPlot, inlined: hover, zoom) with each endpoint's seconds and latency
    distribution; the static SVG charts for print and without scripting."""
    page = await service.html_report(session, analysis_id)
    return caching.conditional(
        request, page.encode(), media_type="text/html; charset=utf-8", immutable=True
    )


@router.get(
    "/runs/compare",
    response_model=RunComparison,
    responses={200: {"content": {"text/markdown": {}}}, **problems(404, 409, 422)},
    dependencies=READ,
    summary="Two runs of a plan side by side",
)
async def compare_runs(
    request: Request,
    session: SessionDep,
    a: Annotated[uuid.UUID, Query(description="The reference run")],
    b: Annotated[uuid.UUID, Query(description="The run compared with it")],
    format: Annotated[Literal["json", "markdown"], Query()] = "json",
) -> Any:
    """Run `b` against run `a` with the analysis' own statistics — per endpoint and SLI both
    values, the change, its 99 % interval, p and verdict; throughput and load — without
    storing an analysis. `a` must be a succeeded run of the same plan. Both runs are finished,
    so the answer never changes: with an `ETag`, and answered from this process's memory
    after the first time."""
    if format == "markdown":
        compared = await service.compare_runs(session, a, b)
        return PlainTextResponse(
            comparison_markdown(compared),
            media_type="text/markdown; charset=utf-8",
            headers={"Perf-Agent-Regressions": str(compared.regressions)},
        )
    bodies = caching.bodies_of(request)
    body = bodies.get(("compare", a, b))
    if body is None:
        compared = await service.compare_runs(session, a, b)
        body = compared.model_dump_json(by_alias=True).encode()
        bodies.put(("compare", a, b), body)
    return caching.conditional(request, body, media_type="application/json", immutable=True)


def _ci_route(path: str, fmt: str, summary: str, doc: str) -> None:
    media = service.CI_FORMATS[fmt]

    async def get_ci_report(
        request: Request, analysis_id: uuid.UUID, session: SessionDep
    ) -> Response:
        report = str(request.url_for("get_analysis_report_html", analysis_id=analysis_id))
        body = await service.ci_report(session, analysis_id, fmt, report_url=report)
        return Response(body, media_type=media)

    get_ci_report.__doc__ = doc
    router.add_api_route(
        path,
        get_ci_report,
        methods=["GET"],
        name=f"get_analysis_{fmt}",
        summary=summary,
        response_class=Response,
        responses={200: {"content": {media.split(";")[0]: {}}}, **problems(404)},
        dependencies=READ,
    )


_ci_route(
    "/analyses/{analysis_id}/junit.xml",
    "junit",
    "The analysis as a JUnit report",
    "One test case per objective and scope (failed objectives fail, with measured, target and "
    "baseline in the message) and one per baseline comparison (a regression fails; a "
    "comparison without a decision is skipped). An inconclusive analysis adds an error.",
)
_ci_route(
    "/analyses/{analysis_id}/summary.md",
    "summary",
    "The analysis as a CI step summary or pull-request comment (Markdown)",
    "Verdict, failed objectives, significant changes against the baseline with their "
    "interval, top findings and a link to the HTML report; fit for `$GITHUB_STEP_SUMMARY`. "
    "Its first line is a marker a CI step can find its own earlier comment by.",
)
_ci_route(
    "/analyses/{analysis_id}/load-performance.json",
    "gitlab",
    "The run as GitLab's Load Performance report",
    "k6's `--summary-export` JSON of the analysed run, as GitLab's merge request widget reads "
    "it (`artifacts: reports: load_performance:`).",
)


@router.post(
    "/analyses/{analysis_id}/recommendations/{recommendation_id}/feedback",
    status_code=201,
    response_model=FeedbackOut,
    responses={200: {"model": FeedbackOut}, **problems(404, 422)},
    summary="Accept or reject one recommendation of an analysis",
    dependencies=[Depends(requires(Scope.plan))],
)
async def recommendation_feedback(
    analysis_id: uuid.UUID,
    recommendation_id: str,
    body: FeedbackIn,
    response: Response,
    session: SessionDep,
) -> FeedbackOut:
    """201 for a first verdict, 200 when it replaces an earlier one (the latest counts in
    `GET /recommendations/kpi`)."""
    feedback, created = await service.give_feedback(session, analysis_id, recommendation_id, body)
    if not created:
        response.status_code = 200
    return FeedbackOut.model_validate(feedback)


@router.get("/recommendations/kpi", response_model=RecommendationKPI, dependencies=READ)
async def recommendations_kpi(session: SessionDep) -> RecommendationKPI:
    """The acceptance rate of recommendations, overall and per kind of finding."""
    return await service.recommendation_kpi(session)
