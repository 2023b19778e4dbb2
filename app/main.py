"""The ASGI application: routers under /api/agents/performance-agent; health, docs at the root."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import RedirectResponse

from app.analysis.router import router as analysis_router
from app.baselines.router import router as baselines_router
from app.budgets.router import router as budgets_router
from app.console.router import UI_URL, install_console
from app.core import migrate
from app.core.auth import AUTH_OFF_OWNER, auth_enabled, dev_mode_refusal, install_auth
from app.core.body_limit import BodyLimit
from app.core.caching import ForgetPagesOnWrite
from app.core.db import Pools, create_sessionmaker, resolve_database_url
from app.core.errors import install_error_handlers
from app.core.http_metrics import HTTPMetricsMiddleware
from app.core.openapi import install_docs
from app.core.settings import Settings, get_settings
from app.core.shedding import LoadShedding
from app.datasets.router import router as datasets_router
from app.gates.router import router as gates_router
from app.health.router import router as health_router
from app.identity import service as identity
from app.identity.router import router as identity_router
from app.plans.router import router as plans_router
from app.runs.router import router as runs_router
from app.runs.worker import Worker

API_PREFIX = "/api/agents/performance-agent"
# Where `GET /` sends a person: the console (Swagger UI stays at /docs).
HOME_URL = UI_URL

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    refusal = dev_mode_refusal(settings)
    if refusal is not None:
        raise RuntimeError(refusal)
    if not auth_enabled(settings):
        log.warning(
            "authentication is OFF (PERF_AGENT_AUTH=off): every caller is an admin named %r; "
            "for local development on %s only",
            AUTH_OFF_OWNER,
            settings.host,
        )
    if os.environ.get("PERF_AGENT_CI_TOKEN"):
        log.warning(
            "PERF_AGENT_CI_TOKEN is no longer read: give CI an API key with the execute and "
            "approve scopes instead (perf-agent keys create)"
        )
    pools = None
    if getattr(app.state, "sessionmaker", None) is None:
        url = await asyncio.to_thread(resolve_database_url, settings)
        if settings.migrate_on_start:
            await asyncio.to_thread(migrate.upgrade, url)
        pools = Pools.create(url, settings)
        app.state.sessionmaker = create_sessionmaker(pools.api)
        app.state.worker_sessionmaker = create_sessionmaker(pools.worker)
        app.state.health_sessionmaker = create_sessionmaker(pools.health)
    else:  # given one (tests): it serves everything
        app.state.worker_sessionmaker = app.state.sessionmaker
        app.state.health_sessionmaker = app.state.sessionmaker
    stop = asyncio.Event()
    worker_task = None
    if settings.embedded_worker:
        worker = Worker(app.state.worker_sessionmaker, settings)
        worker_task = asyncio.create_task(worker.run_forever(stop), name="embedded-worker")
    try:
        yield
    finally:
        stop.set()
        if worker_task is not None:
            worker_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker_task
        hub = getattr(app.state, "live_hub", None)
        if hub is not None:
            await hub.close()
        if pools is not None:
            await pools.dispose()


def create_app(settings: Settings | None = None) -> FastAPI:
    app = FastAPI(
        title="perf-agent",
        version="0.1.0",
        summary="Plans load tests, runs them with k6 inside guardrails, and judges the results.",
        lifespan=lifespan,
        docs_url=None,  # install_docs serves both pages from local files instead of a CDN
        redoc_url=None,
    )
    app.state.settings = settings or get_settings()
    app.state.sessionmaker = None
    app.state.health_sessionmaker = None
    app.state.worker_sessionmaker = None
    install_error_handlers(app)
    install_auth(app, identity.authenticate)
    if app.state.settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=app.state.settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "Idempotency-Key",
                "If-None-Match",
                "Last-Event-ID",
            ],
            expose_headers=["Location", "Link", "ETag", "Retry-After"],
            max_age=600,
        )
    app.add_middleware(HTTPMetricsMiddleware)  # CORS and auth included
    app.add_middleware(BodyLimit)
    app.add_middleware(ForgetPagesOnWrite)
    app.add_middleware(  # outermost: a shed request costs no more than its refusal
        LoadShedding,
        limit=app.state.settings.max_in_flight,
        retry_after_s=app.state.settings.retry_after_s,
    )
    routers = (
        plans_router,
        datasets_router,
        analysis_router,  # before runs: its /runs/compare is not a /runs/{run_id}
        runs_router,
        baselines_router,
        budgets_router,
        gates_router,
    )
    for router in (*routers, identity_router):
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(health_router)
    install_docs(app)
    install_console(app, api_prefix=API_PREFIX)
    app.add_api_route("/", home, methods=["GET"], include_in_schema=False)
    return app


async def home(request: Request) -> RedirectResponse:
    """A person opening the service's address lands on its UI (307: the target will change)."""
    root = request.scope.get("root_path", "").rstrip("/")
    return RedirectResponse(root + HOME_URL, status_code=307)
