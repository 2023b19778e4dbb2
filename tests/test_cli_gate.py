"""`perf-agent gate`: what a CI pipeline runs — plan, execute, analyse, reports, exit code."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from app.cli import GATE_ERROR, GATE_FAIL, GATE_PASS, app
from tests.conftest import running_live_service

pytestmark = pytest.mark.k6
TOKEN = "ci-secret"


@pytest.fixture
def service(
    database_url: str, tmp_path: Path, committed: async_sessionmaker[AsyncSession]
) -> Iterator[str]:
    # `committed` empties the tables afterwards: the service commits for real.
    with running_live_service(database_url, tmp_path / "service", PERF_AGENT_CI_TOKEN=TOKEN) as url:
        yield url


def plan_file(tmp_path: Path, target: str, p95: str) -> Path:
    path = tmp_path / f"plan-{p95.replace(' ', '')}.yaml"
    plan = {
        "name": "gate",
        "target": {"base_url": target, "environment": "local"},
        "endpoints": [{"name": "product", "path": "/api/products/1"}],
        "load": {"profile": "load", "vus": 2, "duration": "2s"},
        "slos": [f"p95 < {p95}", "error_rate < 1%"],
    }
    path.write_text(yaml.safe_dump(plan))
    return path


def gate(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["gate", *args])
    return result.exit_code, result.output


def test_a_passing_plan_passes_the_gate_and_later_runs_compare_with_it(
    service: str, demo_target: str, tmp_path: Path
) -> None:
    plan = plan_file(tmp_path, demo_target, "2000ms")
    out = tmp_path / "reports"

    code, output = gate(str(plan), "--api", service, "--ci-token", TOKEN, "--out", str(out))

    assert code == GATE_PASS, output
    assert "verdict PASS" in output
    first = json.loads((out / "analysis.json").read_text())
    assert (out / "report.html").read_text().count("<svg") >= 4
    assert "### Performance Test Report" in (out / "report.md").read_text()

    # The next version of the same plan: its last passing run is the baseline.
    code, output = gate(
        str(plan),
        "--api",
        service,
        "--ci-token",
        TOKEN,
        "--out",
        str(out),
        "--plan-id",
        _plan_of(service, first["run_id"]),
    )
    assert code == GATE_PASS, output
    second = json.loads((out / "analysis.json").read_text())
    assert second["baseline_run_ids"] == [first["run_id"]]
    assert second["baseline_source"] == "last_passing"


def _plan_of(service: str, run_id: str) -> str:
    import httpx

    run = httpx.get(f"{service}/api/agents/performance-agent/runs/{run_id}").json()
    return str(run["plan_id"])


def test_a_breached_objective_fails_the_gate(
    service: str, demo_target: str, tmp_path: Path
) -> None:
    plan = plan_file(tmp_path, demo_target, "0.001ms")

    code, output = gate(
        str(plan), "--api", service, "--ci-token", TOKEN, "--out", str(tmp_path / "r")
    )

    assert code == GATE_FAIL, output
    assert "verdict FAIL" in output
    assert "breaks p95 < 0.001ms" in output


def test_without_the_ci_token_the_gate_stops_with_the_services_reason(
    service: str, demo_target: str, tmp_path: Path
) -> None:
    import httpx

    code, output = gate(str(plan_file(tmp_path, demo_target, "2000ms")), "--api", service)

    assert code == GATE_ERROR
    assert f"perf-agent at {service} refused: 403 review.auto_approve_forbidden" in output
    # The draft it stored is not left behind for somebody to review: archived, with why.
    plans = httpx.get(f"{service}/api/agents/performance-agent/plans", params={"name": "gate"})
    [plan] = plans.json()
    assert plan["status"] == "archived"
    assert plan["reviewed_by"] == "perf-agent gate"
    assert "review.auto_approve_forbidden" in plan["review_comment"]


def test_a_run_that_fails_is_an_error_of_the_gate_not_a_verdict(
    service: str, demo_target: str, tmp_path: Path
) -> None:
    plan = yaml.safe_load(plan_file(tmp_path, demo_target, "2000ms").read_text())
    plan["target"]["auth"] = {"type": "bearer", "secret": "NOT_SET_FOR_THE_WORKER"}
    path = tmp_path / "secret.yaml"
    path.write_text(yaml.safe_dump(plan))

    code, output = gate(str(path), "--api", service, "--ci-token", TOKEN, "--out", str(tmp_path))

    assert code == GATE_ERROR, output
    assert " failed: " in output
    assert "NOT_SET_FOR_THE_WORKER" in output
    assert not (tmp_path / "analysis.json").exists()


def test_an_unreachable_service_is_one_line_naming_its_url(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text("name: x\n")

    code, output = gate(str(plan), "--api", "http://127.0.0.1:9")

    assert code == GATE_ERROR
    assert output.strip().splitlines() == [
        "cannot reach perf-agent at http://127.0.0.1:9 (ConnectError: [Errno 111] Connection "
        "refused)"
    ]


def test_a_missing_plan_file_is_one_line(tmp_path: Path) -> None:
    code, output = gate(str(tmp_path / "nope.yaml"), "--api", "http://127.0.0.1:9")

    assert code == GATE_ERROR
    assert output.strip().startswith("cannot read the plan:")
    assert "Traceback" not in output
