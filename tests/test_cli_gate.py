"""`perf-agent gate`: what a CI pipeline runs — plan, execute, analyse, reports, exit code."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from app.cli import GATE_ERROR, GATE_FAIL, GATE_INCONCLUSIVE, GATE_PASS, app
from app.core.auth import Scope
from tests.builders import skip_if_host_disturbed
from tests.conftest import live_key

pytestmark = pytest.mark.k6
CI = "ci-checkout"  # a pipeline's key: what it needs to store, run and judge a new draft
CI_SCOPES = (Scope.read, Scope.plan, Scope.execute, Scope.approve)


@pytest.fixture
def key(database_url: str, committed: async_sessionmaker[AsyncSession]) -> str:
    return live_key(database_url, owner=CI, scopes=CI_SCOPES)


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
    service: str, key: str, demo_target: str, tmp_path: Path
) -> None:
    plan = plan_file(tmp_path, demo_target, "2000ms")
    out = tmp_path / "reports"

    code, output = gate(str(plan), "--api", service, "--api-key", key, "--out", str(out))

    if code == GATE_INCONCLUSIVE:
        skip_if_host_disturbed(output)
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
        "--api-key",
        key,
        "--out",
        str(out),
        "--plan-id",
        _plan_of(service, key, first["run_id"]),
    )
    if code == GATE_INCONCLUSIVE:
        skip_if_host_disturbed(output)
    # What is tested here is the baseline the second gate chose. Two identical runs on a
    # machine whose host takes its CPUs now and then can differ for real (p99 +84 %, p 4e-5,
    # seen in .ci/run here): then the gate rightly fails, and names the baseline it used.
    assert code == GATE_PASS or (
        code == GATE_FAIL and "regressed against the baseline" in output
    ), output
    second = json.loads((out / "analysis.json").read_text())
    assert second["baseline_run_ids"] == [first["run_id"]]
    assert second["baseline_source"] == "last_passing"


def _plan_of(service: str, key: str, run_id: str) -> str:
    import httpx

    run = httpx.get(
        f"{service}/api/agents/performance-agent/runs/{run_id}",
        headers={"Authorization": f"Bearer {key}"},
    ).json()
    return str(run["plan_id"])


def test_a_breached_objective_fails_the_gate(
    service: str, key: str, demo_target: str, tmp_path: Path
) -> None:
    plan = plan_file(tmp_path, demo_target, "0.001ms")
    out, step_summary = tmp_path / "r", tmp_path / "step-summary.md"
    step_summary.write_text("earlier step\n")

    code, output = gate(
        str(plan), "--api", service, "--api-key", key, "--out", str(out),
        "--step-summary", str(step_summary),
    )  # fmt: skip

    if code == GATE_INCONCLUSIVE:
        skip_if_host_disturbed(output)
    assert code == GATE_FAIL, output
    assert "verdict FAIL" in output
    assert "breaks p95 < 0.001ms" in output
    # What CI reads: a failed JUnit case naming the objective, the step summary, GitLab's report.
    junit = ET.fromstring((out / "junit.xml").read_text())
    failures = [f.get("message") or "" for f in junit.iter("failure")]
    assert any(m.startswith("all requests: p95 < 0.001ms: measured") for m in failures)
    summary = step_summary.read_text()
    assert summary.startswith("earlier step\n<!-- perf-agent:")
    assert "**FAIL**" in summary
    assert "| p95 < 0.001ms | all requests |" in summary
    gitlab = json.loads((out / "load-performance.json").read_text())["metrics"]
    assert gitlab["http_reqs"]["rate"] > 0
    assert gitlab["http_req_waiting"]["p(90)"] > 0
    assert "p(95)" in gitlab["http_req_waiting"]


def test_without_a_key_the_gate_stops_with_the_services_reason(
    service: str, demo_target: str, tmp_path: Path
) -> None:
    code, output = gate(str(plan_file(tmp_path, demo_target, "2000ms")), "--api", service)

    assert code == GATE_ERROR
    assert f"perf-agent at {service} refused: 401 auth.missing_key" in output


def test_a_refused_run_archives_the_draft_the_gate_stored_or_says_it_stays(
    service: str, database_url: str, demo_target: str, tmp_path: Path
) -> None:
    import httpx

    api = f"{service}/api/agents/performance-agent"
    path = plan_file(tmp_path, demo_target, "2000ms")
    reader = {"Authorization": f"Bearer {live_key(database_url, scopes=(Scope.read,))}"}
    # A key that may not approve cannot auto-approve the draft, nor archive it.
    runner = live_key(database_url, owner="runner", scopes=(Scope.read, Scope.plan, Scope.execute))

    code, output = gate(str(path), "--api", service, "--api-key", runner)

    assert code == GATE_ERROR
    assert f"perf-agent at {service} refused: 403 auth.scope_missing" in output
    assert "stays a draft: 403 auth.scope_missing" in output
    [draft] = httpx.get(f"{api}/plans", params={"name": "gate"}, headers=reader).json()["items"]
    assert draft["status"] == "draft"

    # A key that may archive but not execute: the refused draft is not left behind.
    planner = live_key(database_url, owner="planner", scopes=(Scope.plan, Scope.approve))
    code, output = gate(str(path), "--api", service, "--api-key", planner)

    assert code == GATE_ERROR, output
    assert "refused: 403 auth.scope_missing: this needs the `execute` scope" in output
    stored = httpx.get(f"{api}/plans", params={"name": "gate"}, headers=reader).json()["items"]
    [listed] = [p for p in stored if p["status"] == "archived"]
    archived = httpx.get(f"{service}{listed['links']['self']}", headers=reader).json()
    assert archived["reviewed_by"] == "planner"
    assert "stored by a CI gate whose run was refused" in archived["review_comment"]


def test_a_gate_on_a_crowded_machine_retries_then_says_inconclusive(
    service: str, key: str, demo_target: str, tmp_path: Path
) -> None:
    # Two processes keep both cores of the machine busy while the gate runs: the load
    # generator shares its CPU, so neither run can be trusted, pass or fail.
    burn = "import time\nend = time.monotonic() + 90\nwhile time.monotonic() < end: pass\n"
    hogs = [subprocess.Popen([sys.executable, "-c", burn]) for _ in range(2)]
    try:
        plan = plan_file(tmp_path, demo_target, "2000ms")
        code, output = gate(
            str(plan), "--api", service, "--api-key", key, "--out", str(tmp_path / "r"),
            "--retries", "1",
        )  # fmt: skip
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()

    assert code == GATE_INCONCLUSIVE, output
    assert output.count("verdict INCONCLUSIVE") >= 2  # the first run and its retry
    assert "running it again (1 of 1)" in output
    assert "other processes took" in output
    analysis = json.loads((tmp_path / "r" / "analysis.json").read_text())
    assert analysis["load_generator"]["status"] == "disturbed"


def test_a_run_that_fails_is_an_error_of_the_gate_not_a_verdict(
    service: str, key: str, demo_target: str, tmp_path: Path
) -> None:
    plan = yaml.safe_load(plan_file(tmp_path, demo_target, "2000ms").read_text())
    plan["target"]["auth"] = {"type": "bearer", "secret": "NOT_SET_FOR_THE_WORKER"}
    path = tmp_path / "secret.yaml"
    path.write_text(yaml.safe_dump(plan))

    code, output = gate(str(path), "--api", service, "--api-key", key, "--out", str(tmp_path))

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
