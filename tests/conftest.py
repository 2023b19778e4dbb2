"""Test fixtures: a real PostgreSQL built by the migrations, each test rolled back.

Database choice: ``DATABASE_URL``/``PERF_AGENT_DATABASE_URL`` if set, else the machine's server
at 127.0.0.1:5432 when it answers, else an embedded server. A fresh database is created on that
server for the session (when allowed) and dropped afterwards.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
from httpx import ASGITransport, AsyncClient
from psycopg.types.json import Jsonb
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.pool import NullPool

from app.core import migrate
from app.core.auth import Scope
from app.core.db import create_engine, normalise_url, start_embedded_postgres
from app.core.settings import Settings
from app.identity.service import key_row, new_key
from app.main import create_app
from tests.builders import TEST_KEY_OWNER, bearer, make_key
from tests.llm.fake_llm import fake_llm as fake_llm

REPOSITORY = Path(__file__).resolve().parents[1]
TEMPORARY = Path(tempfile.gettempdir()).resolve()
LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/test"
TABLES = (
    "audit_events",
    "api_keys",
    "llm_calls",
    "recommendation_feedback",
    "analyses",
    "baselines",
    "run_results",
    "runs",
    "plans",
)


def _refuse_siblings_of_the_repository(event: str, args: tuple[object, ...]) -> None:
    """A user's fresh clone has nothing beside it (no folder of fixtures): a test that opens a
    file in a sibling of the repository would pass here and fail there, so it fails here too."""
    if event != "open" or not isinstance(args[0], str | Path):
        return
    path = Path(os.path.abspath(args[0]))
    if not path.is_relative_to(REPOSITORY.parent) or path.is_relative_to(REPOSITORY):
        return
    # A clone made right in the temp dir has every temporary file (pytest's tmp_path) beside
    # it: only then are those allowed.
    if TEMPORARY.is_relative_to(REPOSITORY.parent) and path.is_relative_to(TEMPORARY):
        return
    raise PermissionError(f"tests may not read outside the repository: {path}")


sys.addaudithook(_refuse_siblings_of_the_repository)


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _server_url(tmp_root: Path) -> str:
    explicit = os.environ.get("PERF_AGENT_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if explicit:
        return explicit
    if _reachable("127.0.0.1", 5432):
        return LOCAL_SERVER
    return start_embedded_postgres(Settings(data_dir=tmp_root / "embedded"))


def _libpq(url: str) -> str:
    return make_url(normalise_url(url)).set(drivername="postgresql").render_as_string(False)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = _server_url(tmp_path_factory.mktemp("pg"))
    name = f"perf_agent_test_{uuid.uuid4().hex[:8]}"
    created = False
    try:
        with psycopg.connect(_libpq(server), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = normalise_url(
            make_url(normalise_url(server)).set(database=name).render_as_string(False)
        )
        created = True
    except psycopg.errors.InsufficientPrivilege:
        url = normalise_url(server)  # no CREATEDB: use the given database as it is
    migrate.upgrade(url)
    yield url
    if created:
        with psycopg.connect(_libpq(server), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        data_dir=tmp_path / "data",
        embedded_worker=False,
        migrate_on_start=False,
        worker_poll_interval_s=0.2,
        stop_grace_s=10,
        heartbeat_interval_s=0.2,
        stale_after_s=2.0,
        reaper_interval_s=0.5,
    )


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, poolclass=NullPool)
    yield engine
    await engine.dispose()


@pytest.fixture
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """One connection in an outer transaction that is rolled back after the test."""
    async with engine.connect() as conn:
        outer = await conn.begin()
        yield conn
        if outer.is_active:
            await outer.rollback()


@pytest.fixture
def sessionmaker(connection: AsyncConnection) -> async_sessionmaker[AsyncSession]:
    # Sessions commit to savepoints inside the outer transaction, so nothing outlives the test.
    return async_sessionmaker(
        bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
    )


@pytest.fixture
async def session(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    async with sessionmaker() as session:
        yield session


async def _client(settings: Settings, maker: async_sessionmaker[AsyncSession]) -> AsyncClient:
    """A client of the app that sends an admin key stored in the test's database."""
    app = create_app(settings)
    app.state.sessionmaker = maker
    async with maker() as session:
        key = await make_key(session)
        await session.commit()
    return AsyncClient(
        transport=ASGITransport(app=app), base_url="http://test", headers=bearer(key)
    )


@pytest.fixture
async def client(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[AsyncClient]:
    async with await _client(settings, sessionmaker) as client:
        yield client


class Clients:
    """Clients of one app (the test's settings and database), each sending a key of its own
    scopes, a given key, or none."""

    def __init__(self, settings: Settings, maker: async_sessionmaker[AsyncSession]) -> None:
        self.app = create_app(settings)
        self.app.state.sessionmaker = maker
        self.maker = maker
        self.opened: list[AsyncClient] = []

    async def key(self, *scopes: Scope, owner: str = "someone@example.com") -> str:
        async with self.maker() as session:
            key = await make_key(session, owner=owner, scopes=scopes)
            await session.commit()
        return key

    def using(self, key: str | None, **headers: str) -> AsyncClient:
        transport = ASGITransport(app=self.app)
        sent = {**(bearer(key) if key else {}), **headers}
        client = AsyncClient(transport=transport, base_url="http://test", headers=sent)
        self.opened.append(client)
        return client

    def anonymous(self) -> AsyncClient:
        return self.using(None)

    async def scoped(self, *scopes: Scope, owner: str = "someone@example.com") -> AsyncClient:
        return self.using(await self.key(*scopes, owner=owner))


@pytest.fixture
async def clients(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Clients]:
    made = Clients(settings, sessionmaker)
    yield made
    for client in made.opened:
        await client.aclose()


@pytest.fixture
async def committed(engine: AsyncEngine) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """For tests that need real commits across connections (workers): emptied afterwards."""
    yield async_sessionmaker(engine, expire_on_commit=False)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {', '.join(TABLES)} CASCADE"))


@pytest.fixture
async def committed_client(
    settings: Settings, committed: async_sessionmaker[AsyncSession]
) -> AsyncIterator[AsyncClient]:
    async with await _client(settings, committed) as client:
        yield client


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def demo_target() -> Iterator[str]:
    """The demo shop on 127.0.0.1, the system under test for k6 runs."""
    import subprocess
    import sys
    import time

    import httpx

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.demo", "--port", str(port)], stdin=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def live_key(
    database_url: str, *, owner: str = TEST_KEY_OWNER, scopes: tuple[Scope, ...] = (Scope.admin,)
) -> str:
    """An API key committed to the tests' database, for a live service (``perf-agent serve``)
    to accept; the ``committed`` fixture empties the table afterwards."""
    key = new_key()
    row = key_row(key, owner=owner, scopes=scopes)
    with psycopg.connect(_libpq(database_url)) as conn:
        conn.execute(
            "INSERT INTO api_keys (id, owner, prefix, key_hash, scopes) "
            "VALUES (%s, %s, %s, %s, %s)",
            (row.id, row.owner, row.prefix, row.key_hash, Jsonb(row.scopes)),
        )
    return key


@pytest.fixture
def service(
    database_url: str, tmp_path: Path, committed: async_sessionmaker[AsyncSession]
) -> Iterator[str]:
    """``perf-agent serve`` on the tests' database; it commits for real, so ``committed``
    empties the tables afterwards."""
    with running_live_service(database_url, tmp_path / "service") as url:
        yield url


@contextlib.contextmanager
def running_live_service(database_url: str, data_dir: Path, **env: str) -> Iterator[str]:
    """``perf-agent serve`` as a user starts it (API + worker), on the tests' database."""
    from app.cli import running_server

    port = free_port()
    environment = {
        **os.environ,
        "PERF_AGENT_DATABASE_URL": database_url,
        "PERF_AGENT_DATA_DIR": str(data_dir),
        "PERF_AGENT_WORKER_POLL_INTERVAL_S": "0.2",
        **env,
    }
    argv = [sys.executable, "-m", "app.cli", "serve", "--port", str(port)]
    with running_server(
        argv,
        port,
        health="/readyz",
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    ) as url:
        yield url
