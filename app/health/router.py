from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from app.core.auth import auth_enabled
from app.core.errors import ProblemError

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> dict[str, str]:
    """The process can serve: its database answers. `auth` says whether API keys are required
    (`on`) or every caller is an admin (`off`, local development only)."""
    auth = "on" if auth_enabled(request.app.state.settings) else "off"
    try:
        async with request.app.state.sessionmaker() as session:
            await session.execute(text("SELECT 1"))
    except Exception as exc:
        raise ProblemError(
            f"the database does not answer: {type(exc).__name__}",
            code="not_ready.database",
            status=503,
            title="Not ready",
            auth=auth,
        ) from exc
    return {"status": "ready", "database": "ok", "auth": auth}


@router.get("/metrics", response_class=Response)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
