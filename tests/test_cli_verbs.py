"""The CLI verbs for people — plan, run, runs, analyse, report, compare — against a live
service and the demo shop, with real k6, as an engineer would type them."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from app.cli import app
from tests.builders import skip_if_host_disturbed
from tests.conftest import live_key

pytestmark = pytest.mark.k6
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


@pytest.fixture
def live(service: str, database_url: str) -> tuple[str, str]:
    """The live service and an admin key of it."""
    return service, live_key(database_url)


def cli(live: tuple[str, str], *args: str) -> tuple[int, str]:
    url, key = live
    result = CliRunner().invoke(app, [*args, "--api", url, "--api-key", key])
    return result.exit_code, result.output


def test_plan_run_runs_analyse_report_and_compare(
    live: tuple[str, str], demo_target: str, tmp_path: Path
) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "verbs",
                "target": {"base_url": demo_target, "environment": "local"},
                "endpoints": [{"name": "product", "path": "/api/products/1"}],
                "load": {"vus": 2, "duration": "5s"},
                "slos": ["p95 < 2000ms"],
            }
        )
    )

    code, stored = cli(live, "plan", str(path), "--approve")
    assert code == 0, stored
    match = re.search(rf"plan ({UUID}) v1 \(approved\): verbs", stored)
    assert match, stored
    plan_id = match.group(1)

    code, first = cli(live, "run", plan_id, "--analyse")
    if code != 0:
        skip_if_host_disturbed(first)
    assert code == 0, first
    assert "verdict: PASS" in first
    code, second = cli(live, "run", plan_id)
    assert code == 0, second
    run_ids = re.findall(rf"run ({UUID}) succeeded", first + second)
    assert len(set(run_ids)) == 2

    code, listed = cli(live, "runs", "--plan-id", plan_id)
    assert code == 0, listed
    assert "2 run(s)" in listed
    assert listed.count("succeeded") >= 2

    code, judged = cli(live, "analyse", run_ids[-1], "--baseline", run_ids[0])
    assert code == 0, judged
    analysis_id = re.search(rf"analysis ({UUID})", judged)
    assert analysis_id, judged
    junit_file = tmp_path / "junit.xml"
    code, wrote = cli(
        live, "report", analysis_id.group(1), "--format", "junit", "-o", str(junit_file)
    )
    assert code == 0, wrote
    assert ET.parse(junit_file).getroot().tag == "testsuites"
    code, markdown = cli(live, "report", analysis_id.group(1))
    assert code == 0
    assert "### Performance Test Report" in markdown

    code, compared = cli(live, "compare", run_ids[0], run_ids[-1])
    assert code in (0, 1), compared  # 1 only if the second run regressed
    assert f"# Run {run_ids[-1]} against run {run_ids[0]}" in compared
    assert "| product | p95 |" in compared


def test_a_report_format_must_be_known(live: tuple[str, str]) -> None:
    code, output = cli(live, "report", "00000000-0000-0000-0000-000000000000", "--format", "pdf")

    assert code == 2
    assert "--format is one of md, html, junit, summary, gitlab" in output
