"""Queue runs, execute a claimed run with k6, and read runs back."""

from __future__ import annotations

import hmac
import logging
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core import metrics
from app.core.errors import Conflict, NotFound, ProblemError
from app.core.settings import Settings
from app.guardrails.service import check_plan
from app.models import Plan, PlanStatus, Run, RunResult, RunStatus
from app.models.base import utcnow
from app.plans.repository import PlanRepository
from app.plans.schemas import PlanSpec
from app.runs import summary as k6summary
from app.runs.k6 import K6Outcome, k6_version, run_k6
from app.runs.repository import RunRepository

log = logging.getLogger(__name__)

# Time k6 may need beyond the load profile: start-up, gracefulStop/gracefulRampDown, summary.
RUN_SLACK_S = 60.0


async def enqueue(
    session: AsyncSession,
    *,
    plan_id: uuid.UUID,
    settings: Settings,
    auto_approve: bool = False,
    ci_token: str | None = None,
) -> Run:
    plan = await PlanRepository(session).get(plan_id)
    if plan is None:
        raise NotFound(f"no plan {plan_id}", code="plan.not_found")
    if plan.status == PlanStatus.draft and auto_approve:
        expected = settings.ci_token.get_secret_value() if settings.ci_token else None
        if not expected or not ci_token or not hmac.compare_digest(ci_token, expected):
            raise ProblemError(
                "auto-approval needs the CI token (X-Perf-Agent-CI-Token)"
                + ("" if expected else "; none is configured (PERF_AGENT_CI_TOKEN)"),
                code="review.auto_approve_forbidden",
                status=403,
                title="Forbidden",
            )
        plan.status = PlanStatus.approved
        plan.reviewed_by = "ci"
        plan.review_comment = "auto-approved by a CI caller on execute"
        plan.reviewed_at = utcnow()
    if plan.status != PlanStatus.approved:
        raise Conflict(
            f"plan {plan_id} version {plan.version} is {plan.status}; only an approved version "
            "runs (POST …/plans/{id}/review, or auto_approve from CI)",
            code=f"plan.{plan.status}",
            plan_status=plan.status,
        )
    # Limits may have tightened since the plan was stored: check again at run time.
    check_plan(PlanSpec.model_validate(plan.spec), settings)
    run = Run(
        id=uuid.uuid4(),
        plan_id=plan.id,
        plan_version=plan.version,
        script_sha256=plan.script_sha256,
        status=RunStatus.queued,
        attempts=0,
    )
    await RunRepository(session).add(run)
    metrics.RUNS_QUEUED.inc()
    return run


async def get_run(repo: RunRepository, run_id: uuid.UUID) -> Run:
    run = await repo.get(run_id)
    if run is None:
        raise NotFound(f"no run {run_id}", code="run.not_found")
    return run


async def list_runs(
    repo: RunRepository, *, plan_id: uuid.UUID | None, status: str | None, limit: int
) -> Sequence[Run]:
    return await repo.list_runs(plan_id=plan_id, status=status, limit=limit)


class MissingSecret(LookupError):
    pass


def plan_secrets(spec: PlanSpec) -> dict[str, str]:
    """The secrets a plan references, read from this process's environment."""
    auth = spec.target.auth
    if auth is None:
        return {}
    value = os.environ.get(auth.env_var)
    if not value:
        raise MissingSecret(
            f"the plan authenticates with secret {auth.secret!r}, but {auth.env_var} is not "
            "set for the worker"
        )
    return {auth.env_var: value}


def run_timeout_s(spec: PlanSpec, settings: Settings) -> float:
    return min(spec.load.total_duration_s, float(settings.max_duration_s)) + RUN_SLACK_S


async def execute_claimed_run(
    sessionmaker: async_sessionmaker[AsyncSession], run_id: uuid.UUID, settings: Settings
) -> str:
    """Run k6 for a run this worker has claimed and store what k6 measured.

    No transaction is held while k6 runs; the job opens its own sessions around it.
    """
    async with sessionmaker() as session:
        run = await session.get(Run, run_id)
        plan = await session.get(Plan, run.plan_id) if run else None
        if run is None or plan is None:
            raise LookupError(f"run {run_id} or its plan vanished")
        spec = PlanSpec.model_validate(plan.spec)
        script = plan.script
    workdir = (settings.runs_dir / str(run_id)).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    script_path = workdir / "script.js"
    script_path.write_text(script)

    outcome: K6Outcome | None = None
    error: str | None = None
    try:
        outcome = await run_k6(
            binary=settings.k6_binary,
            script=script_path,
            workdir=workdir,
            timeout_s=run_timeout_s(spec, settings),
            grace_s=settings.stop_grace_s,
            secrets=plan_secrets(spec),
        )
    except MissingSecret as exc:
        error = str(exc)
    except OSError as exc:
        error = f"could not start k6 ({settings.k6_binary}): {exc}"
    return await _record_outcome(
        sessionmaker, run_id, spec, outcome, error, k6_version(settings.k6_binary)
    )


async def _record_outcome(
    sessionmaker: async_sessionmaker[AsyncSession],
    run_id: uuid.UUID,
    spec: PlanSpec,
    outcome: K6Outcome | None,
    error: str | None,
    version: str | None,
) -> str:
    rows: list[RunResult] = []
    if outcome is not None:
        if outcome.summary is not None:
            try:
                parsed = k6summary.parse_results(outcome.summary, spec.step_names)
                rows = [RunResult(run_id=run_id, **row) for row in parsed]
            except k6summary.SummaryError as exc:
                error = str(exc)
        if outcome.timed_out:
            error = f"k6 passed the run's time limit and was stopped; {outcome.describe()}"
        elif not outcome.completed:
            error = outcome.describe()
        elif outcome.summary is None:
            error = f"{outcome.describe()} but wrote no summary"
    status = RunStatus.succeeded if error is None and rows else RunStatus.failed
    async with sessionmaker() as session, session.begin():
        repo = RunRepository(session)
        run = await repo.get(run_id, for_update=True)
        if run is None:
            raise LookupError(f"run {run_id} vanished")
        run.status = status
        run.finished_at = utcnow()
        run.error = error
        run.k6_version = version
        if outcome is not None:
            run.exit_code = outcome.exit_code
            run.stderr_tail = outcome.stderr_tail or None
            run.summary = outcome.summary
            if outcome.summary is not None:
                run.test_duration_s = k6summary.test_duration_s(outcome.summary)
        # Partial figures (a run stopped early) are kept: they are still k6's measurement.
        await repo.replace_results(run_id, rows)
    metrics.RUNS_FINISHED.labels(status=status).inc()
    log.info("run %s finished: %s%s", run_id, status, f" ({error})" if error else "")
    return str(status)


async def fail_run(
    sessionmaker: async_sessionmaker[AsyncSession], run_id: uuid.UUID, error: str
) -> None:
    """Last resort for a job that crashed: a run is never left 'running' by a live worker."""
    async with sessionmaker() as session, session.begin():
        run = await session.get(Run, run_id, with_for_update=True)
        if run is not None and run.status == RunStatus.running:
            run.status = RunStatus.failed
            run.finished_at = utcnow()
            run.error = error
    metrics.RUNS_FINISHED.labels(status=RunStatus.failed).inc()


def run_dir(settings: Settings, run_id: uuid.UUID) -> Path:
    return settings.runs_dir / str(run_id)
