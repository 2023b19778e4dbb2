"""Which queries cost the time: PostgreSQL's ``pg_stat_statements`` over a window.

Two snapshots (:func:`snapshot`) taken at the window's ends and their difference
(:func:`delta`): calls, execution time, mean and rows per normalized query (``queryid`` and
its text with constants as ``$1``), the top N by time, and calls per request when the caller
knows how many requests the window served (an N+1 shows as ~N calls per request).

Read-only: the connection runs with ``default_transaction_read_only`` and a statement timeout,
only SELECTs, and never calls ``pg_stat_statements_reset()`` (that would wipe the statistics
for everyone else); the snapshot's own queries carry a marker comment and are left out.
The extension must be loaded (``shared_preload_libraries = 'pg_stat_statements'``, a restart)
and created in the target's database (``CREATE EXTENSION pg_stat_statements``); reading other
roles' query texts needs ``pg_read_all_stats``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Final

import psycopg
from psycopg import errors, sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row

from app.profiling.schemas import Profile, QueryShare, Status

SOURCE: Final = "pg_stat_statements"
MARKER = "/* perf-agent profiling snapshot */"
TOP_QUERIES = 10
CONNECT_TIMEOUT_S = 5
STATEMENT_TIMEOUT_MS = 5_000
REASON_CHARS = 300
QUERY_CHARS = 2_000
PRELOAD_HINT = (
    "shared_preload_libraries = 'pg_stat_statements' in postgresql.conf and a restart, "
    "then CREATE EXTENSION pg_stat_statements in the database"
)


@dataclass(frozen=True)
class Counters:
    queryid: int | None
    query: str
    calls: int
    total_ms: float
    rows: int


@dataclass(frozen=True)
class Snapshot:
    """``pg_stat_statements`` at one moment, per (userid, dbid, queryid, toplevel); or why
    it could not be read (``status`` and ``reason``)."""

    taken_at: float  # time.monotonic()
    statements: dict[tuple[Any, ...], Counters] = field(default_factory=dict)
    database: str = ""
    deallocations: int | None = None  # pg_stat_statements_info.dealloc (PostgreSQL 14+)
    status: Status = "ok"
    reason: str | None = None


def _conninfo(dsn: str) -> str:
    """The caller's DSN, read-only and with a statement timeout added to its options."""
    params = conninfo_to_dict(dsn)
    ours = (
        f"-c default_transaction_read_only=on -c statement_timeout={STATEMENT_TIMEOUT_MS} "
        "-c application_name=perf-agent-profiling"
    )
    params["options"] = f"{params.get('options') or ''} {ours}".strip()
    params.setdefault("connect_timeout", str(CONNECT_TIMEOUT_S))
    return make_conninfo("", **params)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:REASON_CHARS]


async def _read(conn: psycopg.AsyncConnection[dict[str, Any]], all_databases: bool) -> Snapshot:
    async with conn.cursor() as cur:
        await cur.execute(
            f"{MARKER} SELECT current_database() AS db, "
            "(SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
            " WHERE e.extname = 'pg_stat_statements') AS schema, "
            "(SELECT count(*) FROM pg_available_extensions"
            " WHERE name = 'pg_stat_statements') AS available"
        )
        head = await cur.fetchone()
        assert head is not None
        database = str(head["db"])
        if head["schema"] is None:
            if not head["available"]:
                return Snapshot(
                    time.monotonic(), database=database, status="unavailable",
                    reason="the server has no pg_stat_statements extension (PostgreSQL's contrib)",
                )  # fmt: skip
            return Snapshot(
                time.monotonic(), database=database, status="unavailable",
                reason=f"pg_stat_statements is not installed in database {database!r}: "
                f"{PRELOAD_HINT}",
            )  # fmt: skip
        view = sql.Identifier(str(head["schema"]), "pg_stat_statements")
        where = sql.SQL(
            "" if all_databases else
            " WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )  # fmt: skip
        query = sql.SQL("{marker} SELECT s.* FROM {view} s{where}").format(
            marker=sql.SQL(MARKER), view=view, where=where
        )
        await cur.execute(query)
        taken_at = time.monotonic()
        statements: dict[tuple[Any, ...], Counters] = {}
        for row in await cur.fetchall():
            text = str(row.get("query") or "")
            if MARKER in text:
                continue
            total = row.get("total_exec_time", row.get("total_time")) or 0.0
            key = (row.get("userid"), row.get("dbid"), row.get("queryid"), row.get("toplevel"))
            statements[key] = Counters(
                queryid=row.get("queryid"),
                query=text[:QUERY_CHARS],
                calls=int(row.get("calls") or 0),
                total_ms=float(total),
                rows=int(row.get("rows") or 0),
            )
        deallocations = None
        info = sql.Identifier(str(head["schema"]), "pg_stat_statements_info")
        try:
            await cur.execute(sql.SQL("{} SELECT dealloc FROM {}").format(sql.SQL(MARKER), info))
            dealloc = await cur.fetchone()
            deallocations = int(dealloc["dealloc"]) if dealloc else None
        except errors.UndefinedTable:  # before PostgreSQL 14
            pass
    return Snapshot(taken_at, statements, database, deallocations)


async def snapshot(dsn: str, *, all_databases: bool = False, timeout_s: float = 10.0) -> Snapshot:
    """Read ``pg_stat_statements`` (the DSN's database only, unless ``all_databases``).
    Never raises for what the server does: the reason is in the snapshot."""
    try:
        conninfo = _conninfo(dsn)
    except psycopg.Error as exc:
        return Snapshot(time.monotonic(), status="failed", reason=f"bad DSN: {_short(exc)}")

    async def read() -> Snapshot:
        conn = await psycopg.AsyncConnection.connect(
            conninfo, autocommit=True, row_factory=dict_row
        )
        async with conn:
            return await _read(conn, all_databases)

    try:
        return await asyncio.wait_for(read(), timeout_s)
    except TimeoutError:
        return Snapshot(
            time.monotonic(), status="failed",
            reason=f"reading pg_stat_statements took over {timeout_s:.0f} s",
        )  # fmt: skip
    except errors.ObjectNotInPrerequisiteState as exc:  # created but not preloaded
        return Snapshot(
            time.monotonic(), status="unavailable",
            reason=f"{_short(exc)}: {PRELOAD_HINT}",
        )  # fmt: skip
    except errors.InsufficientPrivilege as exc:
        return Snapshot(
            time.monotonic(), status="unavailable",
            reason=f"may not read pg_stat_statements: {_short(exc)} (grant pg_read_all_stats)",
        )  # fmt: skip
    except psycopg.OperationalError as exc:
        return Snapshot(
            time.monotonic(), status="unavailable",
            reason=f"cannot connect to the database: {_short(exc)}",
        )  # fmt: skip
    except psycopg.Error as exc:
        return Snapshot(
            time.monotonic(), status="failed",
            reason=f"reading pg_stat_statements failed: {_short(exc)}",
        )  # fmt: skip


def delta(
    before: Snapshot,
    after: Snapshot,
    *,
    requests: int | None = None,
    top: int = TOP_QUERIES,
    toplevel_only: bool = True,
) -> Profile:
    """What ran between two snapshots, the top ``top`` queries by execution time.
    ``requests``: how many requests the window served (calls per request). Statements run
    inside functions (``toplevel`` false, with ``pg_stat_statements.track = all``) are left
    out by default: their time is already in the statement that called them."""
    seconds = max(0.0, after.taken_at - before.taken_at)
    for side in (before, after):
        if side.status != "ok":
            return Profile(source=SOURCE, status=side.status, reason=side.reason, seconds=seconds)
    notes: list[str] = []
    by_query: dict[tuple[Any, str], list[float]] = {}
    reset = False
    for key, now in after.statements.items():
        if toplevel_only and key[3] is False:
            continue
        then = before.statements.get(key)
        if then is not None and now.calls < then.calls:
            reset, then = True, None  # statistics were reset in between: count from zero
        calls = now.calls - (then.calls if then else 0)
        if calls <= 0:
            continue
        total_ms = now.total_ms - (then.total_ms if then else 0.0)
        rows = now.rows - (then.rows if then else 0)
        sums = by_query.setdefault((now.queryid, now.query), [0, 0.0, 0])
        sums[0] += calls
        sums[1] += max(0.0, total_ms)
        sums[2] += max(0, rows)
    if reset:
        notes.append("the statistics were reset during the window: some counts start later")
    if (
        before.deallocations is not None
        and after.deallocations is not None
        and after.deallocations > before.deallocations
    ):
        evicted = after.deallocations - before.deallocations
        notes.append(
            f"pg_stat_statements evicted entries {evicted} times during the window "
            "(pg_stat_statements.max): rarer queries may be missing"
        )
    all_ms = sum(s[1] for s in by_query.values())
    all_calls = int(sum(s[0] for s in by_query.values()))
    ranked = sorted(by_query.items(), key=lambda item: (-item[1][1], -item[1][0], item[0][1]))
    queries = [
        QueryShare(
            query=query,
            queryid=queryid,
            calls=int(calls),
            total_ms=round(total_ms, 3),
            mean_ms=round(total_ms / calls, 3),
            rows=int(rows),
            share=(total_ms / all_ms) if all_ms > 0 else 0.0,
            calls_per_request=(calls / requests) if requests else None,
        )
        for (queryid, query), (calls, total_ms, rows) in ranked[:top]
    ]
    if any(q.query == "<insufficient privilege>" for q in queries):
        notes.append("some query texts are hidden: the role needs pg_read_all_stats")
    if not queries:
        return Profile(
            source=SOURCE, status="ok", seconds=seconds,
            reason="; ".join([*notes, "no query ran in the window"]),
        )  # fmt: skip
    return Profile(
        source=SOURCE, status="ok", reason="; ".join(notes) or None,
        samples=all_calls, seconds=seconds, queries=queries,
    )  # fmt: skip


async def measure(
    dsn: str, seconds: float, *, requests: int | None = None, top: int = TOP_QUERIES
) -> Profile:
    """Snapshot, wait ``seconds``, snapshot, and the difference (a caller that knows the
    window's request count only afterwards takes the two snapshots itself)."""
    before = await snapshot(dsn)
    if before.status != "ok":
        return Profile(source=SOURCE, status=before.status, reason=before.reason)
    await asyncio.sleep(seconds)
    return delta(before, await snapshot(dsn), requests=requests, top=top)
