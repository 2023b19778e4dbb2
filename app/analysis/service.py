"""Analyse a finished run: SLOs judged, findings drawn, the report written, all stored."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from app.analysis import findings as findings_mod
from app.analysis.evaluate import evaluate
from app.analysis.report import render_markdown
from app.analysis.repository import AnalysisRepository
from app.baselines.repository import BaselineRepository
from app.core import metrics
from app.core.errors import Conflict, NotFound
from app.models import Analysis, Plan, RunResult, RunStatus
from app.plans.schemas import PLATFORM_DEFAULT_SLOS, PlanSpec, effective_slos
from app.runs.repository import RunRepository


async def analyse(session: AsyncSession, *, run_id: uuid.UUID) -> Analysis:
    runs = RunRepository(session)
    run = await runs.get(run_id)
    if run is None:
        raise NotFound(f"no run {run_id}", code="run.not_found")
    if run.status in (RunStatus.queued, RunStatus.running):
        raise Conflict(
            f"run {run_id} is still {run.status}; analyse it once it has finished",
            code="run.not_finished",
            run_status=run.status,
        )
    results = {row.endpoint: row for row in await runs.results(run.id)}
    if run.status == RunStatus.failed or not results:
        raise Conflict(
            f"run {run_id} is {run.status} ({run.error}); it has no results to analyse",
            code="run.not_analysable",
            run_status=run.status,
        )
    plan = await session.get(Plan, run.plan_id)
    assert plan is not None  # runs.plan_id is a RESTRICT foreign key
    spec = PlanSpec.model_validate(plan.spec)

    warnings: list[str] = []
    if run.status != RunStatus.succeeded:
        # Design spec §8: a run stopped early still reports what it measured, as partial.
        duration = f" after {run.test_duration_s:.0f}s" if run.test_duration_s else ""
        warnings.append(
            f"The run was {run.status.replace('_', ' ')}{duration}: these are partial results "
            "and the verdict is at most 'fail'."
        )
    if run.load_factor < 1:
        warnings.append(
            f"k6 crashed twice at full load; the run fell back to {run.load_factor:.0%} of it."
        )
    slos, defaulted = effective_slos(spec)
    if defaulted:
        warnings.append(
            "The plan defines no SLOs; it was judged against the platform defaults ("
            + ", ".join(PLATFORM_DEFAULT_SLOS)
            + "). Add SLOs to the plan to judge it against its own targets."
        )
    slo_results = evaluate(slos, results, run.summary)
    disagreements = [
        r.key
        for r in slo_results
        if r.k6_threshold_ok is not None and r.k6_threshold_ok != (r.status == "pass")
    ]
    if disagreements:
        warnings.append(
            "k6's own threshold verdict differs from this analysis for: " + ", ".join(disagreements)
        )

    baseline = await BaselineRepository(session).current(
        plan.id, environment=spec.target.environment, excluding_run=run.id
    )
    baseline_results: dict[str, RunResult] | None = None
    if baseline is not None:
        baseline_results = {row.endpoint: row for row in await runs.results(baseline.run_id)}

    found = findings_mod.all_findings(slo_results, results, baseline_results)
    complete = run.status == RunStatus.succeeded and run.load_factor == 1
    verdict = "pass" if complete and all(r.status == "pass" for r in slo_results) else "fail"
    report = render_markdown(
        plan=plan,
        spec=spec,
        run=run,
        results=results,
        slo_results=slo_results,
        findings=found,
        warnings=warnings,
        verdict=verdict,
        baseline_run_id=baseline.run_id if baseline else None,
    )
    analysis = Analysis(
        id=uuid.uuid4(),
        run_id=run.id,
        baseline_run_id=baseline.run_id if baseline else None,
        verdict=verdict,
        slo_results=[r.model_dump(mode="json") for r in slo_results],
        findings=[f.model_dump(mode="json") for f in found],
        warnings=warnings,
        report_md=report,
    )
    await AnalysisRepository(session).add(analysis)
    metrics.ANALYSES.labels(verdict=verdict).inc()
    return analysis


async def get_analysis(session: AsyncSession, analysis_id: uuid.UUID) -> Analysis:
    analysis = await AnalysisRepository(session).get(analysis_id)
    if analysis is None:
        raise NotFound(f"no analysis {analysis_id}", code="analysis.not_found")
    return analysis
