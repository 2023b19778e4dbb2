from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from app.core import metrics as vocabulary
from app.core.auth import auth_enabled
from app.core.errors import ProblemError
from app.health.repository import database_snapshot
from app.k6 import sandbox

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


def health_sessions(request: Request) -> Any:
    """The health checks' own pool; the app's when it was given one (tests) without it."""
    state = request.app.state
    return getattr(state, "health_sessionmaker", None) or state.sessionmaker


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> dict[str, Any]:
    """The process can serve: its database answers. `auth` says whether API keys are required
    (`on`) or every caller is an admin (`off`, local development only); `sandbox` whether k6
    runs in the kernel sandbox here (`mode`: `kernel` or `none`, with why) and what that means
    for hand-written scripts."""
    settings = request.app.state.settings
    auth = "on" if auth_enabled(settings) else "off"
    confinement = sandbox.status(settings).describe(settings)
    try:
        # Its own one-connection pool, never waiting behind requests: busy is not "not ready".
        async with asyncio.timeout(2.0), health_sessions(request)() as session:
            await session.execute(text("SELECT 1"))
    except Exception as exc:
        raise ProblemError(
            f"the database does not answer: {type(exc).__name__}",
            code="not_ready.database",
            status=503,
            title="Not ready",
            auth=auth,
            sandbox=confinement,
        ) from exc
    return {"status": "ready", "database": "ok", "auth": auth, "sandbox": confinement}


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus text: this process's counters, then what the database holds now (runs by
    state, the queue, the latest finished run and verdict of each recent plan); see README
    "Metrics"."""
    snapshot = None
    try:
        async with health_sessions(request)() as session:
            snapshot = await database_snapshot(session)
    except Exception:
        # This process's own counters are still worth a scrape.
        log.warning("/metrics: the database's figures could not be read", exc_info=True)
    scraped = vocabulary.registry_of(vocabulary.database_families(snapshot))
    return Response(generate_latest() + generate_latest(scraped), media_type=CONTENT_TYPE_LATEST)
