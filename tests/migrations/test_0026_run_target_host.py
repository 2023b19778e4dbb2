"""Migration 0026 on a database that holds runs: the queued and running ones get their plan's
target host (the per-target limit counts them from the first claim after the upgrade); the
finished ones keep none (nothing counts them)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.types.json import Jsonb
from sqlalchemy.engine import make_url

from app.core.migrate import upgrade


@pytest.fixture
def database_at_0025(database_url: str) -> Iterator[str]:
    server = make_url(database_url)
    name = f"perf_agent_mig_{uuid.uuid4().hex[:8]}"
    admin = server.set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = server.set(database=name).render_as_string(False)
    upgrade(url, "0025")
    try:
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_queued_and_running_runs_get_their_plans_host(database_at_0025: str) -> None:
    libpq = make_url(database_at_0025).set(drivername="postgresql").render_as_string(False)
    plan = uuid.uuid4()
    runs = {status: uuid.uuid4() for status in ("queued", "running", "succeeded")}
    with psycopg.connect(libpq) as conn:
        conn.execute(
            "INSERT INTO plans (id, family_id, name, version, status, spec, source, "
            "source_format, script, script_sha256) "
            "VALUES (%s, %s, 'm', 1, 'approved', %s, '', 'yaml', '', 'x')",
            (plan, plan, Jsonb({"target": {"base_url": "http://Shop.Staging.Example:8080/api"}})),
        )
        for status, run in runs.items():
            conn.execute(
                "INSERT INTO runs (id, plan_id, plan_version, script_sha256, status, attempts) "
                "VALUES (%s, %s, 1, 'x', %s, 0)",
                (run, plan, status),
            )

    upgrade(database_at_0025, "0026")

    with psycopg.connect(libpq) as conn:
        hosts = dict(conn.execute("SELECT status, target_host FROM runs").fetchall())
    assert hosts == {"queued": "shop.staging.example", "running": "shop.staging.example",
                     "succeeded": None}  # fmt: skip
