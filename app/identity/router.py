from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from app.core.auth import Principal, Scope, auth_enabled, requires
from app.core.db import SessionDep
from app.core.openapi import problems
from app.identity import service
from app.identity.schemas import AuditEventOut, WhoAmI

router = APIRouter(tags=["identity"])


@router.get(
    "/audit",
    response_model=list[AuditEventOut],
    responses=problems(422),
    summary="The audit trail: who changed what, newest first",
    dependencies=[Depends(requires(Scope.admin))],
)
async def list_audit(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before: Annotated[
        int | None, Query(ge=1, description="Only events older than this id (the last you got)")
    ] = None,
) -> list[AuditEventOut]:
    """Plans stored and versioned, reviews (approve/archive, auto-approvals on execute), runs
    queued and aborted, keys created and revoked: each with the key and owner that did it."""
    events = await service.audit_page(session, limit=limit, before=before)
    return [AuditEventOut.model_validate(event) for event in events]


@router.get(
    "/whoami",
    response_model=WhoAmI,
    summary="The calling key: its owner and scopes",
)
async def whoami(
    request: Request, principal: Annotated[Principal, Depends(requires(Scope.read))]
) -> WhoAmI:
    """What the console shows as the signed-in identity (and whose name an approval records)."""
    return WhoAmI(
        owner=principal.owner,
        key_id=principal.key_id,
        scopes=principal.scope_names,
        auth=auth_enabled(request.app.state.settings),
    )
