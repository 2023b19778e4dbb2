"""A gate: one run of a plan for one build, judged once. An idempotency key makes a retried CI
job get the same gate back — never a second load test."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.analysis import service as analysis_service
from app.core.auth import Principal, Scope, ScopeMissing
from app.core.errors import InvalidInput, NotFound, ProblemError
from app.core.settings import Settings
from app.gates.repository import GateRepository
from app.gates.schemas import GateIn, GateStatus
from app.models import FINISHED_STATUSES, Gate, Run, RunStatus
from app.plans import service as plans_service
from app.plans.repository import PlanRepository
from app.runs import service as runs_service

POLL_S = 1.0


def fingerprint(body: GateIn) -> str:
    document = body.model_dump(mode="json", exclude={"wait_s"})
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


async def open_gate(
    session: AsyncSession,
    body: GateIn,
    *,
    principal: Principal,
    settings: Settings,
    idempotency_key: str | None,
) -> tuple[Gate, bool]:
    """The gate for this request and whether it was there already (a retry): a new one queues
    its run in the same transaction, so a refused run leaves no gate and a duplicate key no run."""
    repo = GateRepository(session)
    printed = fingerprint(body)
    if idempotency_key is not None:
        earlier = await repo.by_key(principal.owner, idempotency_key)
        if earlier is not None:
            return _replay(earlier, printed), True
    gate = Gate(
        id=uuid.uuid4(),
        owner=principal.owner,
        idempotency_key=idempotency_key,
        fingerprint=printed,
        baseline_run_ids=[str(b) for b in body.baseline_run_ids or []],
        allow_warning=body.allow_warning,
        build=body.build.model_dump(mode="json"),
    )
    try:
        # A concurrent request with the same key waits here on the unique index, then fails,
        # and the plan version it stored goes with the savepoint.
        async with session.begin_nested():
            gate.plan_id = await _plan_to_run(session, body, principal, settings)
            await repo.add(gate)
    except IntegrityError:
        assert idempotency_key is not None
        earlier = await repo.by_key(principal.owner, idempotency_key)
        assert earlier is not None
        return _replay(earlier, printed), True
    run = await runs_service.enqueue(
        session,
        plan_id=gate.plan_id,
        settings=settings,
        auto_approve=body.auto_approve,
        actor=principal,
    )
    gate.run_id = run.id
    await session.flush()
    return gate, False


async def _plan_to_run(
    session: AsyncSession, body: GateIn, principal: Principal, settings: Settings
) -> uuid.UUID:
    """``plan_id``, or the plan (version) stored from the request's ``plan`` document."""
    if body.plan is None:
        assert body.plan_id is not None  # GateIn needs one of the two
        # Looked up here: left to the foreign key, an unknown plan was an integrity error taken
        # for a concurrent retry (a 500).
        return (await plans_service.get_plan(PlanRepository(session), body.plan_id)).id
    if not principal.allows(Scope.plan):
        raise ScopeMissing(Scope.plan, principal, "storing the gate's plan needs the `plan` scope")
    if isinstance(body.plan, str):
        document, content_type = body.plan.encode(), "application/yaml"  # YAML ⊃ JSON
    else:
        document, content_type = json.dumps(body.plan).encode(), "application/json"
    parsed, _ = await plans_service.read_document(document, content_type)
    if isinstance(parsed, dict) and "intent" in parsed:
        raise InvalidInput(
            "a gate runs a plan, not an intent: draft it first (POST /plan with intent)",
            code="gate.intent",
        )
    repo = PlanRepository(session)
    if body.plan_id is None:
        plan = await plans_service.create_plan(
            repo, body=document, content_type=content_type, settings=settings
        )
    else:
        plan = await plans_service.create_version(
            repo, body.plan_id, body=document, content_type=content_type, settings=settings
        )
    await plans_service.record_stored(session, principal, plan, via="gate")
    return plan.id


def _replay(earlier: Gate, printed: str) -> Gate:
    if earlier.fingerprint != printed:
        raise InvalidInput(
            "this Idempotency-Key was used for another request; use a new key for a new gate",
            code="gate.idempotency_key_reused",
            gate_id=str(earlier.id),
        )
    return earlier


async def get(session: AsyncSession, gate_id: uuid.UUID) -> Gate:
    gate = await GateRepository(session).get(gate_id)
    if gate is None:
        raise NotFound(f"no gate {gate_id}", code="gate.not_found")
    return gate


async def status_of(session: AsyncSession, gate: Gate) -> GateStatus:
    if gate.error is not None:
        return "error"
    if gate.verdict is not None:
        return "decided"
    if gate.settling_at is not None:
        return "analysing"
    run = await session.get(Run, gate.run_id) if gate.run_id else None
    if run is None or run.status == RunStatus.queued:
        return "queued"
    return "running" if run.status not in FINISHED_STATUSES else "analysing"


async def settle(
    transaction: analysis_service.Transaction,
    gate_id: uuid.UUID,
    *,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession] | None,
) -> None:
    """Judge the gate's finished run, once: the first caller to claim it analyses, in its
    own transactions (none open across the analysis' model call)."""
    async with transaction() as session:
        gate = await get(session, gate_id)
        run = await session.get(Run, gate.run_id) if gate.run_id else None
        if gate.verdict is not None or gate.error is not None or run is None:
            return
        if run.status not in FINISHED_STATUSES:
            return
        if not await GateRepository(session).claim_settling(gate_id):
            return
        if run.status == RunStatus.failed:
            gate.error = f"run {run.id} failed: {run.error}"
            return
        baselines = [uuid.UUID(b) for b in gate.baseline_run_ids] or None
    verdict, analysis_id, error = None, None, None
    try:
        analysis = await analysis_service.analyse(
            transaction,
            run_id=run.id,
            baseline_run_ids=baselines,
            settings=settings,
            sessionmaker=sessionmaker,
        )
        verdict, analysis_id = analysis.verdict, analysis.id
    except ProblemError as exc:
        error = f"{exc.code}: {exc.detail}"
    async with transaction() as session:
        gate = await get(session, gate_id)
        gate.verdict, gate.analysis_id, gate.error = verdict, analysis_id, error
        if verdict is not None:
            gate.passed = verdict == "pass" or (verdict == "warning" and gate.allow_warning)
        await session.flush()


async def wait_and_settle(
    transaction: analysis_service.Transaction,
    gate_id: uuid.UUID,
    *,
    wait_s: float,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession] | None,
) -> None:
    """Poll the gate's run (a short transaction each time, none held while waiting) until it
    finishes or ``wait_s`` passes; settle it if it finished."""
    deadline = time.monotonic() + wait_s
    while True:
        async with transaction() as session:
            gate = await get(session, gate_id)
            run = await session.get(Run, gate.run_id) if gate.run_id else None
            finished = run is not None and run.status in FINISHED_STATUSES
        if finished:
            await settle(transaction, gate_id, settings=settings, sessionmaker=sessionmaker)
            return
        if time.monotonic() >= deadline:
            return
        await asyncio.sleep(min(POLL_S, max(deadline - time.monotonic(), 0)))


def links(gate: Gate, url_for: Any) -> dict[str, str]:
    found = {"self": url_for("get_gate", gate_id=gate.id).path}
    if gate.run_id:
        found["run"] = url_for("get_run", run_id=gate.run_id).path
    if gate.analysis_id:
        for name, route in (
            ("analysis", "get_analysis"),
            ("report", "get_analysis_report_html"),
            ("junit", "get_analysis_junit"),
            ("summary", "get_analysis_summary"),
            ("gitlab", "get_analysis_gitlab"),
        ):
            found[name] = url_for(route, analysis_id=gate.analysis_id).path
    return found
