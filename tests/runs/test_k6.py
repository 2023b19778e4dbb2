from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.settings import Settings
from app.k6.process import EXIT_STOPPED_BY_SIGNAL, run_k6
from app.models import Run, RunStatus
from app.runs.worker import Worker
from tests.builders import make_plan, make_run

pytestmark = pytest.mark.k6


def write_script(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "script.js"
    script.write_text(
        "import http from 'k6/http';\nimport { sleep } from 'k6';\n" + body + "\n"
        "export function handleSummary(data) {\n"
        "  return { [__ENV.PERF_AGENT_SUMMARY]: JSON.stringify(data) };\n}\n"
    )
    return script


async def test_a_run_past_its_time_limit_is_stopped_gracefully_with_its_summary(
    tmp_path: Path, settings: Settings, demo_target: str
) -> None:
    script = write_script(
        tmp_path,
        "export const options = { vus: 1, duration: '60s' };\n"
        f"export default function () {{ http.get('{demo_target}/health'); sleep(0.1); }}",
    )
    started = time.monotonic()

    outcome = await run_k6(
        binary=settings.k6_binary, script=script, workdir=tmp_path / "w", timeout_s=2, grace_s=10
    )

    assert outcome.timed_out
    assert outcome.exit_code == EXIT_STOPPED_BY_SIGNAL
    assert outcome.summary is not None
    assert outcome.summary["metrics"]["http_reqs"]["values"]["count"] > 0
    assert time.monotonic() - started < 15


async def test_k6_that_does_not_stop_in_its_grace_period_is_killed(
    tmp_path: Path, settings: Settings
) -> None:
    # teardown() runs after the graceful SIGINT; a slow one outlasts the grace period.
    script = write_script(
        tmp_path,
        "export const options = { vus: 1, duration: '60s', teardownTimeout: '120s' };\n"
        "export default function () { sleep(0.5); }\n"
        "export function teardown() { sleep(60); }",
    )
    started = time.monotonic()

    outcome = await run_k6(
        binary=settings.k6_binary, script=script, workdir=tmp_path / "w", timeout_s=2, grace_s=1
    )

    assert outcome.timed_out
    assert outcome.exit_code < 0  # killed by a signal
    assert outcome.summary is None
    assert time.monotonic() - started < 15


async def test_a_missing_k6_binary_fails_the_run_with_a_clear_error(
    committed: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    async with committed() as session, session.begin():
        run = await make_run(session, await make_plan(session), status=RunStatus.queued)
    settings.k6_binary = "/nonexistent/k6"

    assert await Worker(committed, settings).run_once() == run.id

    async with committed() as session:
        stored = await session.get(Run, run.id)
    assert stored is not None
    assert stored.status == RunStatus.failed
    assert stored.error is not None
    assert "could not start k6" in stored.error
    assert stored.finished_at is not None


async def test_a_script_error_fails_the_run_and_keeps_k6s_stderr(
    committed: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    async with committed() as session, session.begin():
        plan = await make_plan(session)
        plan.script = "import http from 'k6/http';\nthrow new Error('broken on purpose');\n"
        run = await make_run(session, plan, status=RunStatus.queued)

    await Worker(committed, settings).run_once()

    async with committed() as session:
        stored = await session.get(Run, run.id)
    assert stored is not None
    assert stored.status == RunStatus.failed
    assert stored.exit_code == 107
    assert stored.error is not None
    assert "script exception" in stored.error
    assert stored.stderr_tail is not None
    assert "broken on purpose" in stored.stderr_tail


async def test_exceptions_inside_iterations_are_counted_though_k6_exits_0(
    tmp_path: Path, settings: Settings
) -> None:
    script = write_script(
        tmp_path,
        "export const options = { vus: 1, iterations: 3 };\n"
        "export default function () { throw new Error('boom'); }",
    )

    outcome = await run_k6(
        binary=settings.k6_binary, script=script, workdir=tmp_path / "w", timeout_s=30, grace_s=5
    )

    assert outcome.exit_code == 0
    assert outcome.script_errors == 3
    assert "boom" in outcome.stderr_tail


async def test_a_crossed_threshold_is_a_result_not_a_script_error(
    tmp_path: Path, settings: Settings
) -> None:
    # k6 logs "thresholds on metrics … have been crossed" at level=error and exits 99.
    script = write_script(
        tmp_path,
        "export const options = { vus: 1, iterations: 2,"
        " thresholds: { iterations: ['count<1'] } };\n"
        "export default function () {}",
    )

    outcome = await run_k6(
        binary=settings.k6_binary, script=script, workdir=tmp_path / "w", timeout_s=30, grace_s=5
    )

    assert outcome.exit_code == 99
    assert "have been crossed" in outcome.stderr_tail
    assert outcome.script_errors == 0
    assert outcome.thrown == []
