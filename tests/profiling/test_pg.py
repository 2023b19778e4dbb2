"""pg_stat_statements deltas on a real cluster that preloads it, and the ways it is missing."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import psycopg
import pytest

from app.profiling import pg

LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def _reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@dataclass
class Workload:
    conn: psycopg.AsyncConnection[tuple[object, ...]]
    table: str

    async def execute(self, query: str, params: tuple[object, ...] | None = None) -> None:
        await self.conn.execute(query.replace("{table}", self.table), params)  # type: ignore[arg-type]


@pytest.fixture
async def workload(pg_stat_cluster: str) -> AsyncIterator[Workload]:
    table = f"items_{uuid.uuid4().hex[:8]}"
    async with await psycopg.AsyncConnection.connect(pg_stat_cluster, autocommit=True) as conn:
        await conn.execute(f"CREATE TABLE {table} (id serial, order_id int, qty int)")
        await conn.execute(
            f"INSERT INTO {table} (order_id, qty) SELECT g % 50, g FROM generate_series(1, 5000) g"
        )
        yield Workload(conn, table)
        await conn.execute(f"DROP TABLE {table}")


async def test_a_query_run_k_times_has_k_calls(pg_stat_cluster: str, workload: Workload) -> None:
    table = workload.table
    before = await pg.snapshot(pg_stat_cluster)
    assert before.status == "ok", before.reason
    requests, per_request = 7, 9  # an N+1: one list query and 9 item queries per "request"
    for request in range(requests):
        await workload.execute("SELECT order_id FROM {table} WHERE id < %s LIMIT 9", (request,))
        for order in range(per_request):
            await workload.execute("SELECT qty FROM {table} WHERE order_id = %s", (order,))
    await workload.execute("SELECT pg_sleep(0.2)")  # the slowest statement of the window
    after = await pg.snapshot(pg_stat_cluster)
    profile = pg.delta(before, after, requests=requests)

    assert profile.status == "ok", profile.reason
    assert profile.source == "pg_stat_statements"
    assert profile.seconds > 0.2
    items = next(q for q in profile.queries if q.query.startswith("SELECT qty FROM"))
    assert items.query == f"SELECT qty FROM {table} WHERE order_id = $1"
    assert items.calls == requests * per_request
    assert items.rows == requests * per_request * 100  # 5000 rows over 50 order ids
    assert items.calls_per_request == pytest.approx(per_request)
    assert items.mean_ms == pytest.approx(items.total_ms / items.calls, abs=1e-3)
    assert items.queryid is not None
    listing = next(q for q in profile.queries if q.query.startswith("SELECT order_id"))
    assert listing.calls == requests
    assert listing.calls_per_request == pytest.approx(1)
    assert profile.queries[0].query == "SELECT pg_sleep($1)"
    assert profile.queries[0].calls == 1
    assert profile.queries[0].total_ms >= 200
    assert sum(q.share for q in profile.queries) <= 1 + 1e-9
    assert profile.queries[0].share > 0.5
    assert not [q for q in profile.queries if "pg_stat_statements" in q.query]  # not ours


async def test_an_idle_window_has_no_queries(pg_stat_cluster: str) -> None:
    profile = await pg.measure(pg_stat_cluster, 0.1)
    assert profile.status == "ok"
    assert profile.queries == []
    assert "no query ran" in (profile.reason or "")


async def test_top_and_without_a_request_count(pg_stat_cluster: str, workload: Workload) -> None:
    before = await pg.snapshot(pg_stat_cluster)
    for n in range(3):
        await workload.execute(f"SELECT {n} + 1")  # constants are normalized: one query
        await workload.execute("SELECT 'a' || %s", (str(n),))
    profile = pg.delta(before, await pg.snapshot(pg_stat_cluster), top=1)
    assert len(profile.queries) == 1
    assert profile.queries[0].calls == 3
    assert profile.queries[0].calls_per_request is None
    assert profile.samples == 6  # every call in the window, not only the top


async def test_the_adapter_connection_is_read_only(pg_stat_cluster: str) -> None:
    async with await psycopg.AsyncConnection.connect(pg._conninfo(pg_stat_cluster)) as conn:
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            await conn.execute("CREATE TABLE nope (id int)")


async def test_extension_not_created_in_the_database(pg_stat_cluster: str) -> None:
    name = f"noext_{uuid.uuid4().hex[:8]}"
    async with await psycopg.AsyncConnection.connect(pg_stat_cluster, autocommit=True) as conn:
        await conn.execute(f"CREATE DATABASE {name}")
        try:
            dsn = pg_stat_cluster.rsplit("/", 1)[0] + f"/{name}"
            profile = await pg.measure(dsn, 0)
        finally:
            await conn.execute(f"DROP DATABASE {name}")
    assert profile.status == "unavailable"
    assert f"not installed in database '{name}'" in (profile.reason or "")
    assert "CREATE EXTENSION pg_stat_statements" in (profile.reason or "")
    assert "shared_preload_libraries" in (profile.reason or "")


@pytest.mark.skipif(not _reachable(5432), reason="no PostgreSQL at 127.0.0.1:5432")
async def test_extension_created_but_not_preloaded() -> None:
    """The machine's server does not preload pg_stat_statements: creating the extension
    works, reading it does not."""
    name = f"noload_{uuid.uuid4().hex[:8]}"
    async with await psycopg.AsyncConnection.connect(LOCAL_SERVER, autocommit=True) as conn:
        preloaded = await (await conn.execute("SHOW shared_preload_libraries")).fetchone()
        if preloaded and "pg_stat_statements" in preloaded[0]:
            pytest.skip("the machine's server preloads pg_stat_statements")
        await conn.execute(f"CREATE DATABASE {name}")
        try:
            dsn = LOCAL_SERVER.rsplit("/", 1)[0] + f"/{name}"
            async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as inside:
                await inside.execute("CREATE EXTENSION pg_stat_statements")
            snap = await pg.snapshot(dsn)
        finally:
            await conn.execute(f"DROP DATABASE {name} WITH (FORCE)")
    assert snap.status == "unavailable"
    assert "shared_preload_libraries" in (snap.reason or "")
    profile = pg.delta(snap, snap)
    assert (profile.status, profile.reason) == (snap.status, snap.reason)


async def test_nothing_listening() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: refused
        profile = await pg.measure(f"postgresql://postgres@127.0.0.1:{port}/postgres", 0)
    assert profile.status == "unavailable"
    assert "cannot connect" in (profile.reason or "")


async def test_a_bad_dsn() -> None:
    snap = await pg.snapshot("this is = not a dsn = at all")
    assert snap.status == "failed"
    assert "bad DSN" in (snap.reason or "")
