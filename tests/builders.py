"""Small builders for test data (plans as documents; plans, runs and API keys as rows)."""

from __future__ import annotations

import contextlib
import copy
import random
import uuid
from collections.abc import Iterator
from typing import Any

from httpx import AsyncClient
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.core.auth import Scope
from app.identity.service import key_row, new_key
from app.models import Plan, PlanStatus, Run, RunResult, RunSample, RunStatus
from app.plans import k6script
from app.plans.schemas import PlanSpec, effective_slos
from app.runs.service import target_host_of

API = "/api/agents/performance-agent"
# The owner of the admin key the `client` fixtures send: the reviewer their approvals record.
TEST_KEY_OWNER = "tests@example.com"

_PLAN: dict[str, Any] = {
    "name": "orders-api",
    "target": {"base_url": "http://127.0.0.1:9", "environment": "local"},
    "endpoints": [
        {"name": "list_orders", "method": "GET", "path": "/orders"},
        {
            "name": "create_order",
            "method": "POST",
            "path": "/orders",
            "body": {"sku": "A-1", "qty": 2},
            "expect_status": 201,
        },
    ],
    "load": {"vus": 2, "duration": "2s"},
    "slos": ["p95 < 300ms", {"objective": "error_rate < 1%", "endpoint": "create_order"}],
}


def plan_doc(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(_PLAN)
    doc.update(changes)
    return doc


async def make_plan(
    session: AsyncSession, *, status: str = PlanStatus.approved, **changes: Any
) -> Plan:
    spec = PlanSpec.model_validate(plan_doc(**changes))
    slos, _ = effective_slos(spec)
    script = k6script.render(spec, slos=slos)
    plan_id = uuid.uuid4()
    plan = Plan(
        id=plan_id,
        family_id=plan_id,
        name=spec.name,
        version=1,
        status=status,
        spec=spec.model_dump(mode="json", by_alias=True),
        source="{}",
        source_format="json",
        script=script,
        script_sha256=k6script.sha256(script),
    )
    session.add(plan)
    await session.flush()
    return plan


async def make_key(
    session: AsyncSession, *, owner: str = TEST_KEY_OWNER, scopes: Any = (Scope.admin,)
) -> str:
    """An API key stored as ``perf-agent keys create`` stores it (without its audit event)."""
    key = new_key()
    session.add(key_row(key, owner=owner, scopes=scopes))
    await session.flush()
    return key


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def approve(client: AsyncClient, plan: dict[str, Any]) -> None:
    response = await client.post(f"{API}/plans/{plan['id']}/review", json={"action": "approve"})
    assert response.status_code == 200, response.text


def result(
    endpoint: str,
    *,
    p95: float | None,
    requests: int = 100,
    failures: int = 0,
    p50: float | None = None,
    p99: float | None = None,
) -> dict[str, Any]:
    p50 = p50 if p50 is not None else (p95 / 2 if p95 is not None else None)
    p99 = p99 if p99 is not None else (p95 * 1.2 if p95 is not None else None)
    return {
        "endpoint": endpoint,
        "requests": requests,
        "failures": failures,
        "rps": requests / 10,
        "error_rate": failures / requests if requests else 0.0,
        "avg_ms": p50,
        "min_ms": None if p50 is None else p50 / 2,
        "p50_ms": p50,
        "p90_ms": None if p95 is None else p95 * 0.9,
        "p95_ms": p95,
        "p99_ms": p99,
        "max_ms": None if p99 is None else p99 * 1.5,
    }


async def make_run(
    session: AsyncSession,
    plan: Plan,
    *,
    status: str = RunStatus.succeeded,
    results: list[dict[str, Any]] | None = None,
) -> Run:
    run = Run(
        id=uuid.uuid4(),
        plan_id=plan.id,
        plan_version=plan.version,
        script_sha256=plan.script_sha256,
        target_host=target_host_of(PlanSpec.model_validate(plan.spec)),
        status=status,
        attempts=1 if status != RunStatus.queued else 0,
    )
    session.add(run)
    await session.flush()
    for row in results or []:
        session.add(RunResult(run_id=run.id, **row))
    await session.flush()
    return run


def noisy(center: float, seed: int = 1, *, seconds: int = 30) -> list[float]:
    """Per-second values around ``center`` (5 % spread), the same for the same seed."""
    rng = random.Random(seed)
    return [rng.gauss(center, center * 0.05) for _ in range(seconds)]


def _second(p95: float, requests: int, failures: int) -> dict[str, Any]:
    return {
        "requests": requests,
        "failures": failures,
        "latency_ms": {"p50": p95 / 2, "p90": p95 * 0.9, "p95": p95, "p99": p95 * 1.2},
    }


# The worker's reading of k6 and its machine in a quiet second (runs/system.py
# GeneratorSampler); a test overrides what it is about.
QUIET_GENERATOR: dict[str, Any] = {
    "k6_cpu_percent": 30.0,
    "k6_wait_percent": 1.5,
    "k6_rss_mb": 80.0,
    "service_cpu_percent": 2.0,
    "other_cpu_percent": 1.0,
    "machine_cpu_percent": 25.0,
    "cores": 2,
}


async def add_seconds(
    session: AsyncSession,
    run: Run,
    p95s: dict[str, list[float]],
    *,
    requests: int = 20,
    failures: int = 0,
    vus: list[int] | None = None,
    cpu: list[float] | None = None,
    generator: dict[str, Any] | None = None,
) -> None:
    """Per-second samples as the live path stores them: one p95 per endpoint per second (the
    overall '*' figures are the first endpoint's)."""
    from datetime import UTC, datetime, timedelta

    start = datetime(2026, 11, 25, tzinfo=UTC)
    first = next(iter(p95s))
    for i in range(len(p95s[first])):
        data = {
            "elapsed_s": i,
            "vus": vus[i] if vus else 2,
            **_second(p95s[first][i], requests * len(p95s), failures),
            "endpoints": {name: _second(v[i], requests, failures) for name, v in p95s.items()},
            "total_requests": requests * len(p95s) * (i + 1),
        }
        if generator is not None:
            data["generator"] = {**QUIET_GENERATOR, **generator}
        if cpu:
            data["system"] = {
                "cpu_percent": cpu[i],
                "rss_mb": 100.0,
                "threads": 4,
                "processes": 1,
                "cores": 2,
            }
        session.add(
            RunSample(
                run_id=run.id,
                at=start + timedelta(seconds=i),
                vus=data["vus"],
                requests=data["requests"],
                failures=failures,
                data=data,
            )
        )
    await session.flush()


@contextlib.contextmanager
def counted_queries(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SQL statements sent through ``engine`` while the block runs (savepoints left out)."""
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not statement.lstrip().upper().startswith(("SAVEPOINT", "RELEASE", "ROLLBACK")):
            statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        yield statements
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", seen)


async def explain(session: AsyncSession, statement: Any) -> str:
    """PostgreSQL's plan for ``statement`` as text, sequential scans and sorts discouraged: on
    a test's handful of rows a scan and a sort are cheapest, and the question is whether an
    index serves the query in its order, as it must with 10,000 rows."""
    connection = await session.connection()
    await connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
    await connection.exec_driver_sql("SET LOCAL enable_sort = off")
    compiled = statement.compile(dialect=connection.dialect)
    rows = await connection.exec_driver_sql(f"EXPLAIN {compiled}", compiled.params)
    return "\n".join(row[0] for row in rows)


# What the CLI prints when analysis found the load generator short of CPU (this machine's
# other processes, or its host's: a virtual machine's steal). Then `inconclusive` is the right
# verdict, and a test that needs a pass or a fail cannot get one from this machine now.
HOST_DISTURBED = ("the load generator was not healthy", "the load generator was disturbed")


def host_disturbed(output: str) -> bool:
    return any(phrase in output for phrase in HOST_DISTURBED)


def skip_if_host_disturbed(output: str) -> None:
    """Skip (saying why) a verdict test whose run the analysis rightly could not trust."""
    import pytest

    if host_disturbed(output):
        reason = next(line for line in output.splitlines() if host_disturbed(line))
        pytest.skip(f"the machine could not give k6 its CPU, so no verdict: {reason.strip()}")


def disturbance(analysis: dict[str, Any]) -> str | None:
    """Why an analysis is inconclusive for want of CPU for k6, or None when it is not."""
    if analysis.get("verdict") != "inconclusive":
        return None
    reasons = [w for w in analysis.get("warnings", []) if host_disturbed(w)]
    findings = analysis.get("findings", [])
    reasons += [f.get("summary", "") for f in findings if f.get("kind") == "load_generator"]
    return reasons[0] if reasons else None


def skip_if_analysis_disturbed(analysis: dict[str, Any]) -> None:
    """The API's form of ``skip_if_host_disturbed``."""
    import pytest

    if (reason := disturbance(analysis)) is not None:
        pytest.skip(f"the machine could not give k6 its CPU, so no verdict: {reason}")
