from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response

from app.core.auth import Principal, Scope, requires
from app.core.db import TransactionsDep
from app.core.deps import SettingsDep
from app.core.openapi import problems
from app.gates import service
from app.gates.schemas import Build, GateIn, GateOut
from app.models import Gate

router = APIRouter(tags=["gates"])
READ = [Depends(requires(Scope.read))]


async def gate_out(
    request: Request, transactions: TransactionsDep, gate_id: uuid.UUID, *, replayed: bool
) -> GateOut:
    async with transactions() as session:
        gate: Gate = await service.get(session, gate_id)
        status = await service.status_of(session, gate)
    return GateOut(
        id=gate.id,
        status=status,
        verdict=gate.verdict,
        passed=gate.passed,
        plan_id=gate.plan_id,
        run_id=gate.run_id,
        analysis_id=gate.analysis_id,
        build=Build.model_validate(gate.build),
        error=gate.error,
        replayed=replayed,
        created_at=gate.created_at,
        links=service.links(gate, request.url_for),
    )


@router.post(
    "/gate",
    status_code=200,
    response_model=GateOut,
    responses={202: {"model": GateOut}, **problems(403, 404, 409, 422)},
    summary="May this build ship? Run the plan and judge it, once per idempotency key",
)
async def open_gate(
    body: GateIn,
    request: Request,
    response: Response,
    transactions: TransactionsDep,
    settings: SettingsDep,
    principal: Annotated[Principal, Depends(requires(Scope.execute))],
    idempotency_key: Annotated[
        str | None,
        Header(
            max_length=200,
            description="A retried CI job sends the same key (e.g. the pipeline's job id) and "
            "gets the same gate: never a second load test",
        ),
    ] = None,
) -> GateOut:
    """What `perf-agent gate` does, over HTTP: queue a run of the plan, analyse it when it
    finishes, and answer `passed`. With `wait_s`, waits that long for the verdict (200); else,
    or when the run is not done in time, 202 with `Location` to poll (`GET /gates/{id}`)."""
    async with transactions() as session:
        gate, replayed = await service.open_gate(
            session,
            body,
            principal=principal,
            settings=settings,
            idempotency_key=idempotency_key,
        )
        gate_id = gate.id
    if body.wait_s > 0:
        await service.wait_and_settle(
            transactions,
            gate_id,
            wait_s=body.wait_s,
            settings=settings,
            sessionmaker=request.app.state.sessionmaker,
        )
    out = await gate_out(request, transactions, gate_id, replayed=replayed)
    response.headers["Location"] = out.links["self"]
    if out.status not in ("decided", "error"):
        response.status_code = 202
    return out


@router.get("/gates/{gate_id}", response_model=GateOut, responses=problems(404), dependencies=READ)
async def get_gate(
    gate_id: uuid.UUID,
    request: Request,
    transactions: TransactionsDep,
    settings: SettingsDep,
) -> GateOut:
    """The gate's state; once its run has finished, the first poll has it judged (once)."""
    await service.settle(
        transactions, gate_id, settings=settings, sessionmaker=request.app.state.sessionmaker
    )
    return await gate_out(request, transactions, gate_id, replayed=False)
