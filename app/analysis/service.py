"""Analyse a finished run: SLOs judged, findings drawn, the report written, all stored."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.analysis import ci, generator, notify, regression, saturation, signatures
from app.analysis import findings as findings_mod
from app.analysis import load as load_mod
from app.analysis import narrative as narrative_mod
from app.analysis import profile as profile_mod
from app.analysis import system as system_mod
from app.analysis.evaluate import evaluate, total_score
from app.analysis.html import render_html
from app.analysis.report import load_text, render_markdown
from app.analysis.repository import AnalysisRepository, Second
from app.analysis.schemas import (
    AcceptanceRate,
    Comparison,
    FeedbackIn,
    Finding,
    LoadComparison,
    LoadGenerator,
    RecommendationKPI,
    RunComparison,
    Score,
    SloResult,
)
from app.baselines import history
from app.baselines.repository import BaselineRepository
from app.baselines.service import history_series
from app.core import metrics, slis
from app.core.errors import Conflict, InvalidInput, NotFound
from app.core.settings import Settings
from app.models import (
    Analysis,
    LLMCall,
    Plan,
    RecommendationFeedback,
    Run,
    RunResult,
    RunStatus,
)
from app.plans.schemas import PLATFORM_DEFAULT_SLOS, SLO, PlanSpec, effective_slos
from app.runs.histogram import Histogram
from app.runs.repository import RunRepository

LAST_PASSING_RUNS = 3


async def choose_baselines(
    session: AsyncSession,
    run: Run,
    plan: Plan,
    spec: PlanSpec,
    requested: list[uuid.UUID] | None,
) -> tuple[list[Run], str | None]:
    """The runs to compare with, and why: requested, the promoted baseline, or the plan's
    last passing runs."""
    repo = AnalysisRepository(session)
    if requested:
        ids = list(dict.fromkeys(requested))
        if run.id in ids:
            raise InvalidInput("a run cannot be its own baseline", code="baseline.self")
        found = {r.id: r for r in await repo.runs(ids)}
        for run_id in ids:
            other = found.get(run_id)
            if other is None:
                raise InvalidInput(f"no run {run_id}", code="baseline.not_found")
            other_plan = await session.get(Plan, other.plan_id)
            if other_plan is None or other_plan.family_id != plan.family_id:
                raise InvalidInput(
                    f"run {run_id} ran another plan; a baseline must be a run of the same plan",
                    code="baseline.other_plan",
                )
            if other.status != RunStatus.succeeded:
                raise InvalidInput(
                    f"run {run_id} is {other.status}; only a succeeded run can be a baseline",
                    code="baseline.not_succeeded",
                )
        return [found[i] for i in ids], "requested"
    promoted = await BaselineRepository(session).current(
        plan.id, environment=spec.target.environment, excluding_run=run.id
    )
    if promoted is not None:
        baseline_run = await session.get(Run, promoted.run_id)
        if baseline_run is not None:
            return [baseline_run], "promoted"
    last = await repo.last_passing_runs(
        plan.family_id, before=run.created_at, excluding=run.id, limit=LAST_PASSING_RUNS
    )
    return list(last), ("last_passing" if last else None)


async def scenario_baselines(
    session: AsyncSession, run: Run, plan: Plan, spec: PlanSpec
) -> dict[str, Run]:
    """Each scenario's own promoted baseline run, for its steps."""
    promoted = await BaselineRepository(session).current_per_scenario(
        plan.id, environment=spec.target.environment, excluding_run=run.id
    )
    found = {}
    for scenario, baseline in promoted.items():
        baseline_run = await session.get(Run, baseline.run_id)
        if baseline_run is not None:
            found[scenario] = baseline_run
    return found


async def run_series(
    session: AsyncSession, run_ids: list[uuid.UUID]
) -> dict[uuid.UUID, dict[str, regression.RunSeries]]:
    """Per run, per endpoint: whole-run figures and per-second percentiles."""
    runs = RunRepository(session)
    seconds = await AnalysisRepository(session).per_second(run_ids)
    found: dict[uuid.UUID, dict[str, regression.RunSeries]] = {}
    for run_id in run_ids:
        found[run_id] = {
            row.endpoint: regression.RunSeries(
                whole={
                    sli: getattr(row, slis.BY_NAME[sli].column)
                    for sli in (*regression.LATENCY_SLIS, "error_rate")
                },
                requests=row.requests,
                failures=row.failures,
                per_second=regression.series_from_seconds(seconds[run_id].get(row.endpoint)),
            )
            for row in await runs.results(run_id)
        }
    return found


async def judge_on_responses(
    session: AsyncSession, comparisons: list[Comparison], run_id: uuid.UUID, baselines: list[Run]
) -> list[Comparison]:
    """Every latency comparison judged again on the stored histograms (regression.
    judge_on_histograms): each run's windows of each endpoint merged, in one query."""
    tested = {
        index: c
        for index, c in enumerate(comparisons)
        if c.sli in regression.LATENCY_SLIS and c.baseline is not None
    }
    owners = {run_id, *(b.id for b in baselines)}
    for c in tested.values():
        owners.update(c.baseline_run_ids or ())
    merged = await RunRepository(session).merged_histograms(sorted(owners))

    def histogram(owner: uuid.UUID, endpoint: str) -> Histogram:
        return merged.get((owner, endpoint)) or Histogram()

    sides = {
        index: (
            histogram(run_id, c.endpoint),
            [histogram(b, c.endpoint) for b in c.baseline_run_ids or [b.id for b in baselines]],
        )
        for index, c in tested.items()
    }
    return regression.judge_on_histograms(comparisons, sides)


async def gather_system_metrics(
    spec: PlanSpec, seconds: list[Second], warnings: list[str], settings: Settings | None = None
) -> dict[str, Any] | None:
    gathered: dict[str, Any] = {}
    local = system_mod.from_samples([(s.system, s.requests, s.p95) for s in seconds])
    if local:
        gathered["local"] = local
    if spec.system_metrics is not None and seconds:
        # The window of the attempt the results come from: its first to its last second.
        remote, problems = await system_mod.from_prometheus(
            spec.system_metrics,
            seconds[0].epoch,
            seconds[-1].epoch + 1,
            [(float(s.elapsed), s.requests, s.p95) for s in seconds],
            settings,  # the outbound policy it is checked by
        )
        if remote:
            gathered["prometheus"] = remote
        if problems:
            warnings.append("System metrics incomplete: " + "; ".join(problems))
    return gathered or None


def find_knee(
    spec: PlanSpec, slos: list[SLO], seconds: list[Second]
) -> saturation.Saturation | None:
    def target(sli: str) -> float | None:
        for slo in slos:
            if slo.endpoint is None and slo.sli == sli and slo.op in ("<", "<="):
                return slo.target
        return None

    executor = str(spec.load_profile.executor().get("executor", ""))
    if executor == "constant-arrival-rate":
        # The planned load is constant: a varying throughput is the target falling behind,
        # which dropped_iterations reports, not a load level.
        return None
    open_model = "arrival" in executor
    return saturation.detect(
        [
            saturation.Second(vus=s.vus, requests=s.requests, failures=s.failures, p95_ms=s.p95)
            for s in seconds
        ],
        open_model=open_model,
        p95_target_ms=target("p95"),
        error_target=target("error_rate"),
    )


_SLO_FACTS = {"objective", "endpoint", "sli", "target", "measured", "status"}
_COMPARISON_FACTS = {
    "endpoint",
    "sli",
    "baseline",
    "current",
    "change",
    "p_value",
    "effect_size",
    "verdict",
}


def facts_for_narrative(
    *,
    plan: Plan,
    spec: PlanSpec,
    verdict: str,
    slo_results: list[SloResult],
    comparisons: list[Comparison],
    found: list[Finding],
    results: dict[str, RunResult],
    knee: saturation.Saturation | None,
    warnings: list[str],
) -> dict[str, Any]:
    """What the model may know and cite: the analysis' own numbers, nothing else."""
    return narrative_mod.round_floats(
        {
            "plan": plan.name,
            "load": load_text(spec),
            "verdict": verdict,
            "slo_results": [
                r.model_dump(
                    include={"objective", "endpoint", "sli", "target", "measured", "status"}
                )
                for r in slo_results
            ],
            "comparisons": [
                c.model_dump(include=_COMPARISON_FACTS)
                for c in comparisons
                if c.verdict in ("regression", "improvement")
            ],
            "findings": [
                f.model_dump(include={"kind", "severity", "endpoint", "summary", "evidence"})
                for f in found
            ],
            "results": [
                {
                    "endpoint": row.endpoint,
                    "requests": row.requests,
                    "failures": row.failures,
                    "error_rate": row.error_rate,
                    "rps": row.rps,
                    "p50_ms": row.p50_ms,
                    "p95_ms": row.p95_ms,
                    "p99_ms": row.p99_ms,
                    "max_ms": row.max_ms,
                }
                for row in results.values()
            ],
            "saturation": knee.model_dump(exclude={"levels"}) if knee else None,
            "warnings": warnings,
        }
    )


@dataclass
class Evidence:
    """What the database holds about a run and its baselines, and the statistics drawn from it
    (phase 1 of ``analyse``: the only phase that reads)."""

    run: Run
    plan: Plan
    spec: PlanSpec
    results: dict[str, RunResult]
    slos: list[SLO]
    warnings: list[str]
    baselines: list[Run] = field(default_factory=list)
    baseline_source: str | None = None
    comparisons: list[Comparison] = field(default_factory=list)
    history_shifts: list[dict[str, Any]] = field(default_factory=list)
    slo_results: list[SloResult] = field(default_factory=list)
    score: Score | None = None
    seconds: list[Second] = field(default_factory=list)
    health: LoadGenerator | None = None
    doubt: str | None = None
    load: LoadComparison | None = None
    profile: dict[str, Any] | None = None
    cpu_now: float | None = None
    cpu_base: float | None = None
    knee: saturation.Saturation | None = None


@dataclass
class Judgement:
    system_metrics: dict[str, Any] | None
    findings: list[Finding]
    verdict: str


Transaction = Callable[[], contextlib.AbstractAsyncContextManager[AsyncSession]]


async def analyse(
    transaction: Transaction,
    *,
    run_id: uuid.UUID,
    baseline_run_ids: list[uuid.UUID] | None = None,
    settings: Settings | None = None,
    sessionmaker: async_sessionmaker[AsyncSession] | None = None,
) -> Analysis:
    """Judge a finished run. Reads in one transaction, writes in another, and holds none while
    it asks Prometheus for system metrics or a model for the narrative."""
    started = time.monotonic()
    async with transaction() as session:
        evidence = await gather(session, run_id=run_id, baseline_run_ids=baseline_run_ids)
    system_metrics = await gather_system_metrics(
        evidence.spec, evidence.seconds, evidence.warnings, settings
    )
    judged = judge(evidence, system_metrics)
    analysis_id = uuid.uuid4()
    story, story_meta = await narrate(evidence, judged, analysis_id, settings, sessionmaker)
    async with transaction() as session:
        analysis = await record(session, evidence, judged, analysis_id, story, story_meta, started)
    await notify.notify_verdict(analysis, evidence.plan, evidence.run, settings)
    return analysis


async def gather(
    session: AsyncSession,
    *,
    run_id: uuid.UUID,
    baseline_run_ids: list[uuid.UUID] | None,
    with_history: bool = True,
) -> Evidence:
    """``with_history=False``: the run against the given baselines only, without the plan's
    history (its shifts and the fallback comparison), as a comparison of two runs needs."""
    evidence = await _finished_run(session, run_id)
    await _compare_to_baselines(session, evidence, baseline_run_ids)
    if with_history:
        await _compare_to_history(session, evidence)
    await _judge_slos(session, evidence)
    await _assess_load(session, evidence)
    return evidence


async def _finished_run(session: AsyncSession, run_id: uuid.UUID) -> Evidence:
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
    return Evidence(run=run, plan=plan, spec=spec, results=results, slos=slos, warnings=warnings)


async def _compare_to_baselines(
    session: AsyncSession, e: Evidence, baseline_run_ids: list[uuid.UUID] | None
) -> None:
    run, spec = e.run, e.spec
    baselines, e.baseline_source = await choose_baselines(
        session, run, e.plan, spec, baseline_run_ids
    )
    comparisons: list[Comparison] = []
    scenario_bases: dict[str, Run] = {}
    if baseline_run_ids is None:
        scenario_bases = await scenario_baselines(session, run, e.plan, spec)
    for rolled in [run, *baselines, *scenario_bases.values()]:
        if rolled.samples_rolled_up_at is not None:
            e.warnings.append(
                f"Run {rolled.id}'s per-second samples were rolled up into minutes on "
                f"{rolled.samples_rolled_up_at:%Y-%m-%d} (retention): they are left out of the "
                "per-second tests and charts, and its stored histograms stand in for it (a "
                "comparison with no per-second values left judges only p99)."
            )
    if baselines or scenario_bases:
        ids = list(
            dict.fromkeys(
                [run.id, *(b.id for b in baselines), *(b.id for b in scenario_bases.values())]
            )
        )
        series = await run_series(session, ids)
        if baselines:
            comparisons = regression.compare(series[run.id], [series[b.id] for b in baselines])
        for scenario in spec.scenarios:
            base_run = scenario_bases.get(scenario.name)
            if base_run is None:
                continue
            steps = {step.name for step in scenario.steps}
            own = {name: s for name, s in series[run.id].items() if name in steps}
            scoped = regression.compare(own, [series[base_run.id]])
            for comparison in scoped:
                comparison.baseline_run_ids = [base_run.id]
            comparisons = [c for c in comparisons if c.endpoint not in steps] + scoped
        if comparisons:  # scenario-scoped ones name their own baseline runs
            comparisons = await judge_on_responses(session, comparisons, run.id, baselines)
        comparisons.sort(key=lambda c: (c.endpoint != "*", c.endpoint))
        baselines = [*baselines, *(r for r in scenario_bases.values() if r not in baselines)]
        e.baseline_source = e.baseline_source or "promoted"
        if all(c.verdict == "insufficient_data" for c in comparisons):
            e.warnings.append(
                "The baseline comparison had too little data (fewer than "
                f"{regression.MIN_SECONDS} seconds with responses in the run or its baselines)."
            )
    e.baselines, e.comparisons = baselines, comparisons


async def _compare_to_history(session: AsyncSession, e: Evidence) -> None:
    """Without baselines, the run against the plan's history; with or without, the lasting
    shifts in that history once this run is its newest point."""
    run = e.run
    past = await history_series(
        session, e.plan, e.spec.target.environment, before=run.created_at, exclude_run=run.id
    )
    past_values = {key: [(at, value) for at, value, *_ in pts] for key, pts in past.items()}
    if not e.baselines:
        current = {
            endpoint: {sli: getattr(row, column) for sli, column in history.SLI_COLUMNS.items()}
            for endpoint, row in e.results.items()
        }
        comparisons = history.compare_to_history(current, past_values)
        if any(c.verdict != "insufficient_data" for c in comparisons):
            e.comparisons, e.baseline_source = comparisons, "history"
        else:
            e.warnings.append(
                "No baseline: promote a run (POST /baselines), pass baseline_run_ids, or import "
                f"the plan's history (at least {history.MIN_POINTS} past values); regressions "
                "were not looked for."
            )
    timeline = {key: list(points) for key, points in past_values.items()}
    now = run.started_at or run.created_at
    for endpoint, row in e.results.items():
        for sli in history.SHIFTED:
            value = getattr(row, history.SLI_COLUMNS[sli])
            if value is not None:
                timeline.setdefault((endpoint, sli), []).append((now, float(value)))
    e.history_shifts = await asyncio.to_thread(history.shifts, timeline)


async def _judge_slos(session: AsyncSession, e: Evidence) -> None:
    runs = RunRepository(session)
    baseline_results = [
        {row.endpoint: row for row in await runs.results(b.id)} for b in e.baselines
    ]
    e.slo_results = evaluate(e.slos, e.results, e.run.summary, baseline_results)
    e.score = total_score(e.slo_results, e.spec.scoring)
    disagreements = [
        r.key
        for r in e.slo_results
        if r.k6_threshold_ok is not None
        and r.absolute_ok is not None
        and r.k6_threshold_ok != r.absolute_ok
    ]
    if disagreements:
        e.warnings.append(
            "k6's own threshold verdict differs from this analysis for: " + ", ".join(disagreements)
        )


async def _assess_load(session: AsyncSession, e: Evidence) -> None:
    """The load generator's health and the load against the baselines'; the CPU each request
    cost, the knee, the profile: what the findings weigh besides the comparisons."""
    run, baselines, comparisons = e.run, e.baselines, e.comparisons
    reads = AnalysisRepository(session)
    e.seconds = seconds = await reads.seconds(run.id)
    base_seconds = [await reads.seconds(b.id) for b in baselines]
    e.health = generator.assess(seconds, run.summary, await reads.k6_warnings(run.id))
    base_health = [
        generator.assess(secs, b.summary, await reads.k6_warnings(b.id))
        for b, secs in zip(baselines, base_seconds, strict=True)
    ]
    e.doubt = generator.describe(e.health, base_health)
    if baselines:
        model = load_mod.model_of([str(e.spec.load_profile.executor().get("executor", ""))])
        e.load = load_mod.compare_load(model, run.summary, [b.summary for b in baselines])
        throughput = load_mod.throughput_comparison(
            e.load,
            [s.requests for s in seconds[1:-1]],
            [s.requests for secs in base_seconds for s in secs[1:-1]],
        )
        if throughput is not None:
            comparisons.insert(sum(c.endpoint == "*" for c in comparisons), throughput)
        load_mod.explain(comparisons, e.load)
    if e.doubt is not None:
        for comparison in comparisons:
            if comparison.verdict in ("regression", "improvement", "explained_by_load"):
                comparison.verdict = "inconclusive"
        e.warnings.append(
            f"Inconclusive: {e.doubt}. No regression or root cause is claimed from this "
            "comparison; run it again on a quieter machine."
        )
    elif e.load is not None and e.load.changed:
        e.warnings.append("The load differs from the baseline's: " + "; ".join(e.load.reasons))
    e.profile = profile_mod.summarise(await reads.profile(run.id))
    e.cpu_now = signatures.cpu_per_request(seconds)
    cpu_bases = [c for secs in base_seconds if (c := signatures.cpu_per_request(secs)) is not None]
    e.cpu_base = statistics.median(cpu_bases) if cpu_bases else None
    e.knee = find_knee(e.spec, e.slos, seconds)


def judge(e: Evidence, system_metrics: dict[str, Any] | None) -> Judgement:
    """The findings and the verdict, from the evidence alone (no I/O)."""
    assert e.score is not None
    assert e.health is not None
    found = findings_mod.all_findings(
        e.slo_results,
        e.results,
        e.comparisons,
        e.knee,
        e.history_shifts,
        e.run.summary,
        system_metrics,
        generator=e.health,
        doubt=e.doubt,
        load=e.load,
        profiled=profile_mod.findings(e.profile, e.spec, e.results, e.slo_results, e.comparisons),
        signed=signatures.connection_churn(e.run.summary, [b.summary for b in e.baselines])
        + signatures.signatures(e.comparisons, e.load, e.cpu_now, e.cpu_base),
        cpu_relative=e.cpu_base is not None,
    )
    complete = e.run.status == RunStatus.succeeded and e.run.load_factor == 1
    regressed = [c for c in e.comparisons if c.verdict == "regression"]
    if not complete:
        verdict = "fail"
    elif e.doubt is not None:
        verdict = "inconclusive"
    elif regressed or e.score.result == "fail":
        verdict = "fail"
    else:
        verdict = e.score.result
    return Judgement(system_metrics=system_metrics, findings=found, verdict=verdict)


async def narrate(
    e: Evidence,
    judged: Judgement,
    analysis_id: uuid.UUID,
    settings: Settings | None,
    sessionmaker: async_sessionmaker[AsyncSession] | None,
) -> tuple[narrative_mod.Narrative | None, dict[str, Any]]:
    """The model's narrative, or why there is none. Its calls are recorded through
    ``sessionmaker`` in transactions of their own."""
    story, story_meta = None, {"status": "not_configured", "reason": "no settings given"}
    if settings is not None:
        facts = facts_for_narrative(
            plan=e.plan,
            spec=e.spec,
            verdict=judged.verdict,
            slo_results=e.slo_results,
            comparisons=e.comparisons,
            found=judged.findings,
            results=e.results,
            knee=e.knee,
            warnings=e.warnings,
        )
        story, story_meta = await narrative_mod.write(
            facts, settings=settings, sessionmaker=sessionmaker, analysis_id=analysis_id
        )
    if story is None and story_meta["status"] != "not_configured":
        e.warnings.append(
            f"No narrative ({story_meta['status'].replace('_', ' ')}: {story_meta['reason']}); "
            "the findings are the deterministic ones, from the raw metrics."
        )
    return story, story_meta


async def record(
    session: AsyncSession,
    e: Evidence,
    judged: Judgement,
    analysis_id: uuid.UUID,
    story: narrative_mod.Narrative | None,
    story_meta: dict[str, Any],
    started: float,
) -> Analysis:
    """The report written and the analysis stored (the only phase that writes)."""
    assert e.score is not None
    assert e.health is not None
    if story_meta["status"] == "rejected":
        call = await session.get(LLMCall, uuid.UUID(story_meta["llm_call_id"]))
        if call is not None:
            call.outcome, call.error = "rejected", story_meta["reason"]
    report = render_markdown(
        plan=e.plan,
        spec=e.spec,
        run=e.run,
        results=e.results,
        slo_results=e.slo_results,
        findings=judged.findings,
        warnings=e.warnings,
        verdict=judged.verdict,
        baseline_run_ids=[b.id for b in e.baselines],
        comparisons=e.comparisons,
        knee=e.knee,
        narrative=story,
        narrative_meta=story_meta,
        load=e.load,
        generator=e.health,
        profile=e.profile,
    )
    analysis = Analysis(
        id=analysis_id,
        run_id=e.run.id,
        baseline_run_id=e.baselines[0].id if e.baselines else None,
        baseline_run_ids=[str(b.id) for b in e.baselines],
        baseline_source=e.baseline_source,
        comparisons=[c.model_dump(mode="json") for c in e.comparisons],
        score=e.score.model_dump(mode="json"),
        history_shifts=e.history_shifts,
        system_metrics=judged.system_metrics,
        saturation=e.knee.model_dump(mode="json") if e.knee else None,
        load=e.load.model_dump(mode="json") if e.load else None,
        load_generator=e.health.model_dump(mode="json"),
        profile=e.profile,
        narrative=story.model_dump(mode="json") if story else None,
        narrative_meta=story_meta,
        verdict=judged.verdict,
        slo_results=[r.model_dump(mode="json") for r in e.slo_results],
        findings=[f.model_dump(mode="json") for f in judged.findings],
        warnings=e.warnings,
        report_md=report,
    )
    await AnalysisRepository(session).add(analysis)
    metrics.ANALYSES.labels(verdict=judged.verdict).inc()
    metrics.ANALYSIS_DURATION.observe(time.monotonic() - started)
    return analysis


async def html_report(session: AsyncSession, analysis_id: uuid.UUID) -> str:
    analysis = await get_analysis(session, analysis_id)
    run = await session.get(Run, analysis.run_id)
    assert run is not None  # analyses.run_id cascades on delete
    plan = await session.get(Plan, run.plan_id)
    assert plan is not None
    repo = AnalysisRepository(session)
    runs = RunRepository(session)
    baseline = baseline_id = None
    if analysis.baseline_run_ids:
        baseline_id = uuid.UUID(analysis.baseline_run_ids[0])
        baseline = await repo.seconds(baseline_id)
    both = [run.id] if baseline_id is None else [run.id, baseline_id]
    timelines = await repo.endpoint_timelines(both)
    merged = await runs.merged_histograms(both)
    names = {endpoint for _, endpoint in merged}
    return render_html(
        analysis=analysis,
        plan=plan,
        run=run,
        results=await runs.results(run.id),
        series=await repo.seconds(run.id),
        baseline_series=baseline,
        timelines=timelines[run.id],
        baseline_timelines=timelines.get(baseline_id) if baseline_id else None,
        histograms={
            name: (
                merged.get((run.id, name)),
                merged.get((baseline_id, name)) if baseline_id else None,
            )
            for name in sorted(names)
        },
    )


async def compare_runs(session: AsyncSession, a: uuid.UUID, b: uuid.UUID) -> RunComparison:
    """Run ``b`` judged against run ``a`` (the same plan) as an analysis would, unstored."""
    # Both runs are given: the plan's history (a third of the time at 200 runs) says nothing.
    e = await gather(session, run_id=b, baseline_run_ids=[a], with_history=False)
    return RunComparison(
        a=a,
        b=b,
        plan_id=e.run.plan_id,
        regressions=sum(c.verdict == "regression" for c in e.comparisons),
        improvements=sum(c.verdict == "improvement" for c in e.comparisons),
        comparisons=e.comparisons,
        load=e.load,
        doubt=e.doubt,
        warnings=e.warnings,
    )


CI_FORMATS = {
    "junit": "application/xml; charset=utf-8",
    "summary": "text/markdown; charset=utf-8",
    "gitlab": "application/json",
}


async def ci_report(
    session: AsyncSession, analysis_id: uuid.UUID, fmt: str, *, report_url: str | None
) -> str:
    """An analysis as JUnit XML, a Markdown step summary or GitLab's load-performance.json."""
    analysis = await get_analysis(session, analysis_id)
    run = await session.get(Run, analysis.run_id)
    assert run is not None  # analyses.run_id cascades on delete
    plan = await session.get(Plan, run.plan_id)
    assert plan is not None
    if fmt == "junit":
        return ci.junit(analysis, run, plan, report_url=report_url)
    if fmt == "summary":
        return ci.markdown_summary(analysis, run, plan, report_url=report_url)
    return ci.gitlab_json(run)


async def get_analysis(session: AsyncSession, analysis_id: uuid.UUID) -> Analysis:
    analysis = await AnalysisRepository(session).get(analysis_id)
    if analysis is None:
        raise NotFound(f"no analysis {analysis_id}", code="analysis.not_found")
    return analysis


async def analyses_of_run(
    session: AsyncSession, run_id: uuid.UUID, *, limit: int
) -> list[tuple[Any, ...]]:
    return await AnalysisRepository(session).of_run(run_id, limit=limit)


async def give_feedback(
    session: AsyncSession, analysis_id: uuid.UUID, recommendation_id: str, body: FeedbackIn
) -> tuple[RecommendationFeedback, bool]:
    """Record (or change) a verdict on one recommendation; True when it is new."""
    analysis = await get_analysis(session, analysis_id)
    finding = next(
        (f for f in analysis.findings if f.get("recommendation_id") == recommendation_id), None
    )
    if finding is None:
        raise NotFound(
            f"analysis {analysis_id} has no recommendation {recommendation_id!r}",
            code="recommendation.not_found",
        )
    repo = AnalysisRepository(session)
    feedback = await repo.feedback(analysis_id, recommendation_id)
    created = feedback is None
    if feedback is None:
        feedback = RecommendationFeedback(
            id=uuid.uuid4(),
            analysis_id=analysis_id,
            recommendation_id=recommendation_id,
            kind=finding["kind"],
            verdict=body.verdict,
        )
    feedback.verdict = body.verdict
    feedback.comment = body.comment
    feedback.author = body.author
    try:
        async with session.begin_nested():
            await repo.add_feedback(feedback)
    except IntegrityError:
        # Someone gave the first verdict at the same moment: this one replaces it.
        existing = await repo.feedback(analysis_id, recommendation_id)
        if existing is None:
            raise
        existing.verdict, existing.comment, existing.author = (
            body.verdict,
            body.comment,
            body.author,
        )
        feedback, created = existing, False
        await session.flush()
    metrics.RECOMMENDATION_FEEDBACK.labels(verdict=body.verdict, kind=finding["kind"]).inc()
    return feedback, created


def _rate(accepted: int, rejected: int) -> AcceptanceRate:
    total = accepted + rejected
    return AcceptanceRate(
        accepted=accepted, rejected=rejected, acceptance_rate=accepted / total if total else None
    )


async def recommendation_kpi(session: AsyncSession) -> RecommendationKPI:
    per_kind: dict[str, dict[str, int]] = {}
    for kind, verdict, count in await AnalysisRepository(session).feedback_counts():
        per_kind.setdefault(kind, {"accepted": 0, "rejected": 0})[verdict] = count
    accepted = sum(v["accepted"] for v in per_kind.values())
    rejected = sum(v["rejected"] for v in per_kind.values())
    return RecommendationKPI(
        **_rate(accepted, rejected).model_dump(),
        by_kind={k: _rate(v["accepted"], v["rejected"]) for k, v in sorted(per_kind.items())},
    )
