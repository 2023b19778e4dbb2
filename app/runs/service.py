"""Queue runs, execute a claimed run with k6, and read runs back."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession

from app.core import metrics
from app.core.auth import Principal, Scope, ScopeMissing
from app.core.errors import Conflict, InvalidInput, NotFound
from app.core.settings import Settings
from app.guardrails.hosts import normalise_host
from app.guardrails.service import check_plan
from app.identity.service import record
from app.models import PlanStatus, Run, RunHistogram, RunStatus
from app.models.base import utcnow
from app.plans.repository import PlanRepository
from app.plans.schemas import PlanSpec
from app.runs.archive import WindowRow
from app.runs.histogram import GAMMA, Histogram
from app.runs.repository import RunRepository, RunRow
from app.runs.schemas import DistributionOut, EndpointDistribution, LatencyOut, QueueState

log = logging.getLogger(__name__)


async def enqueue(
    session: AsyncSession,
    *,
    plan_id: uuid.UUID,
    settings: Settings,
    auto_approve: bool = False,
    actor: Principal | None = None,
) -> Run:
    """``auto_approve`` approves a draft on the way when ``actor`` (the caller) may approve:
    its owner is recorded as the reviewer, and the approval is audited."""
    plan = await PlanRepository(session).get(plan_id)
    if plan is None:
        raise NotFound(f"no plan {plan_id}", code="plan.not_found")
    if plan.status == PlanStatus.draft and auto_approve:
        if actor is None or not actor.allows(Scope.approve):
            has = ", ".join(actor.scope_names) if actor else "none"
            raise ScopeMissing(
                Scope.approve,
                actor,
                "auto_approve approves the draft: the key needs the `approve` scope as well as "
                f"`execute` (it has: {has})",
            )
        plan.status = PlanStatus.approved
        plan.reviewed_by = actor.owner
        plan.review_comment = "auto-approved on execute"
        plan.reviewed_at = utcnow()
        await record(
            session,
            actor,
            "plan.approved",
            "plan",
            plan.id,
            family_id=plan.family_id,
            version=plan.version,
            auto_approve=True,
        )
    if plan.status != PlanStatus.approved:
        raise Conflict(
            f"plan {plan_id} version {plan.version} is {plan.status}; only an approved version "
            "runs (POST …/plans/{id}/review, or auto_approve from CI)",
            code=f"plan.{plan.status}",
            plan_status=plan.status,
        )
    # Limits may have tightened since the plan was stored: check again now and at claim time.
    spec = PlanSpec.model_validate(plan.spec)
    check_plan(spec, settings)
    run = Run(
        id=uuid.uuid4(),
        plan_id=plan.id,
        plan_version=plan.version,
        script_sha256=plan.script_sha256,
        target_host=target_host_of(spec),
        status=RunStatus.queued,
        attempts=0,
        seed=spec.seed,
        planned_duration_s=spec.load_profile.total_duration_s,
    )
    repo = RunRepository(session)
    await repo.add(run)
    await repo.add_event(
        run.id, "queued", f"queued plan version {plan.version}", {"seed": spec.seed}
    )
    metrics.RUNS_QUEUED.inc()
    return run


def queue_state(run: Run, running_on_target: int, settings: Settings) -> QueueState:
    """What a queued run waits for: its target host's slots, or a free worker."""
    limit = settings.max_runs_per_target
    host = run.target_host
    if host is not None and running_on_target >= limit:
        reason = (
            f"waiting for {host}: {running_on_target} run(s) loading it, at most {limit} at "
            "once (PERF_AGENT_MAX_RUNS_PER_TARGET)"
        )
    else:
        reason = "waiting for a worker to claim it"
    return QueueState(
        target_host=host,
        running_on_target=running_on_target,
        per_target_limit=limit,
        reason=reason,
    )


def target_host_of(spec: PlanSpec) -> str | None:
    """The host a run loads, as the guardrails spell it: the per-target limit counts by it."""
    host = urlsplit(spec.target.base_url).hostname
    return normalise_host(host) if host else None


async def get_run(repo: RunRepository, run_id: uuid.UUID) -> Run:
    run = await repo.get(run_id)
    if run is None:
        raise NotFound(f"no run {run_id}", code="run.not_found")
    return run


async def list_runs(
    repo: RunRepository,
    *,
    plan_id: uuid.UUID | None,
    status: str | None,
    cursor: str | None,
    limit: int,
    environment: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Sequence[RunRow]:
    if since is not None and until is not None and since >= until:
        raise InvalidInput("since must be before until", code="runs.empty_window", field="since")
    return await repo.page(
        plan_id=plan_id,
        status=status,
        cursor=cursor,
        limit=limit,
        environment=environment,
        since=since,
        until=until,
    )


def merge_windows(windows: Sequence[RunHistogram | WindowRow]) -> Histogram:
    """Stored windows of one endpoint as one histogram: counts added, never percentiles."""
    merged = Histogram()
    for w in windows:
        merged.add_encoded(
            w.counts, count=w.count, sum_ms=w.sum_ms, min_ms=w.min_ms, max_ms=w.max_ms
        )
    return merged


async def latency(
    repo: RunRepository,
    run_id: uuid.UUID,
    *,
    endpoint: str,
    from_s: int,
    to_s: int | None,
) -> LatencyOut:
    """Merge the stored windows lying wholly within [from_s, to_s) seconds of the test."""
    await get_run(repo, run_id)
    stored = await repo.histograms(run_id, endpoint)
    windows = [
        w for w in stored if w.start_s >= from_s and (to_s is None or w.start_s + w.seconds <= to_s)
    ]
    if not windows:
        hint = ""
        if stored:
            # The span is finer than the windows (after the retention roll-up, minutes).
            starts = ", ".join(str(w.start_s) for w in stored[:4])
            hint = (
                f"; its windows start at {starts}{' …' if len(stored) > 4 else ''} s "
                f"({stored[0].seconds} s each), and a span holds whole windows only"
            )
        raise NotFound(
            f"run {run_id} has no stored latency for {endpoint!r} in that span{hint}",
            code="run.no_histograms",
        )
    merged = merge_windows(windows)
    return LatencyOut(
        endpoint=endpoint,
        attempt=windows[0].attempt,
        from_s=windows[0].start_s,
        to_s=max(w.start_s + w.seconds for w in windows),
        windows=len(windows),
        requests=sum(w.requests for w in windows),
        failures=sum(w.failures for w in windows),
        latency_ms=merged.stats(),
    )


async def distribution(repo: RunRepository, run_id: uuid.UUID, *, step: int) -> DistributionOut:
    """Every endpoint's whole-run histogram, coarsened ``step`` times for drawing."""
    await get_run(repo, run_id)
    merged = await repo.merged_histograms([run_id])
    endpoints = []
    for (_, endpoint), histogram in sorted(merged.items(), key=lambda item: item[0][1]):
        upper, counts = histogram.coarse(step)
        endpoints.append(
            EndpointDistribution(
                endpoint=endpoint, requests=histogram.total, upper_ms=upper, counts=counts
            )
        )
    return DistributionOut(run_id=run_id, bin_width=GAMMA**step - 1, endpoints=endpoints)


async def abort(session: AsyncSession, run_id: uuid.UUID) -> Run:
    """A queued run is aborted at once; a running one is stopped gracefully by its worker
    (k6 still writes its summary, so partial results are kept)."""
    run = await RunRepository(session).get(run_id, for_update=True)
    if run is None:
        raise NotFound(f"no run {run_id}", code="run.not_found")
    if RunStatus(run.status).finished:
        raise Conflict(
            f"run {run_id} already finished ({run.status})",
            code="run.finished",
            run_status=run.status,
        )
    repo = RunRepository(session)
    if run.status == RunStatus.queued:
        run.status = RunStatus.aborted
        run.finished_at = utcnow()
        await repo.add_event(run.id, "aborted", "aborted before it started")
        metrics.RUNS_FINISHED.labels(status=RunStatus.aborted).inc()
    elif not run.abort_requested:
        run.abort_requested = True
        await repo.add_event(run.id, "abort_requested", "abort requested; k6 will stop gracefully")
    await session.flush()
    return run
