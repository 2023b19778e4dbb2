"""The README's curl walkthrough, run as written against a live service (ports adjusted)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import RunStatus
from tests.builders import make_plan, make_run
from tests.conftest import live_key, running_live_service

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [
    pytest.mark.k6,
    pytest.mark.skipif(not (shutil.which("curl") and shutil.which("jq")), reason="needs curl, jq"),
]


def curl_walkthrough() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Plan → execute → analyse with curl", 1)[1]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match, "the README lost its curl walkthrough"
    return match[1]


@pytest.fixture
def live_service(database_url: str, tmp_path: Path) -> Iterator[str]:
    with running_live_service(database_url, tmp_path / "service") as url:
        yield url


def test_the_readme_curl_walkthrough_works(
    live_service: str,
    database_url: str,
    demo_target: str,
    tmp_path: Path,
    committed: async_sessionmaker[AsyncSession],
) -> None:
    plan = yaml.safe_load((ROOT / "app/demo/plan.yaml").read_text())
    plan["target"]["base_url"] = demo_target
    plan["load"] = {"vus": 3, "duration": "3s"}
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(yaml.safe_dump(plan))
    script = (
        curl_walkthrough()
        .replace("http://127.0.0.1:8000", live_service)
        .replace("@app/demo/plan.yaml", f"@{plan_file}")
    )

    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
        # Its `perf-agent keys create` stores the key where the live service looks.
        env={**os.environ, "PERF_AGENT_DATABASE_URL": database_url},
    )

    assert done.returncode == 0, done.stderr
    assert "import http from 'k6/http';" in done.stdout  # the script
    assert re.search(r"^true\n\[", done.stdout, re.M), "the dry run is not ok: " + done.stdout
    assert '"approved"\n"you@example.com"' in done.stdout  # the key's owner approved it
    assert '"fail"' in done.stdout  # the verdict: recent_orders is slow
    assert "### Performance Test Report: `demo-shop`" in done.stdout


def poll_loop() -> str:
    """The walkthrough's wait for a run: the one line that loops until the run has ended."""
    lines = [line for line in curl_walkthrough().splitlines() if line.startswith("until ")]
    assert len(lines) == 1, "the README's walkthrough should wait for a run in one loop"
    return lines[0]


def run_poll_loop(
    api: str, key: str, run_id: str, timeout_s: float = 30
) -> subprocess.CompletedProcess[str]:
    script = f"API={api}/api/agents/performance-agent\nKEY={key}\nRUN={run_id}\n{poll_loop()}"
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


async def test_the_readme_poll_loop_ends_for_every_finished_state(
    live_service: str, database_url: str, committed: async_sessionmaker[AsyncSession]
) -> None:
    key = live_key(database_url)
    finished = [status for status in RunStatus if status.finished]
    async with committed() as session:
        plan = await make_plan(session)
        runs = {status: await make_run(session, plan, status=status) for status in finished}
        await session.commit()

    for status, run in runs.items():
        done = run_poll_loop(live_service, key, str(run.id))  # a hang raises TimeoutExpired

        assert done.returncode == 0, (status, done.stderr)
    assert {"succeeded", "failed", "aborted", "timed_out", "partial"} <= set(runs)


def test_the_readme_poll_loop_ends_when_a_run_is_aborted(
    live_service: str,
    database_url: str,
    demo_target: str,
    tmp_path: Path,
    committed: async_sessionmaker[AsyncSession],
) -> None:
    import httpx

    plan = yaml.safe_load((ROOT / "app/demo/plan.yaml").read_text())
    plan["target"]["base_url"] = demo_target
    plan["load"] = {"vus": 1, "duration": "5m"}
    api = f"{live_service}/api/agents/performance-agent"
    key = live_key(database_url)
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=api, timeout=60, headers=auth) as http:
        stored = http.post("/plan", json=plan).raise_for_status().json()
        http.post(f"/plans/{stored['id']}/review", json={"action": "approve"}).raise_for_status()
        run = http.post("/execute", json={"plan_id": stored["id"]}).raise_for_status().json()
        script = f"API={api}\nKEY={key}\nRUN={run['id']}\n{poll_loop()}"
        loop = subprocess.Popen(
            ["bash", "-euo", "pipefail", "-c", script],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            http.post(f"/runs/{run['id']}/abort").raise_for_status()
            assert loop.wait(timeout=60) == 0, loop.stderr.read() if loop.stderr else ""
        finally:
            loop.kill()
            loop.wait()
        ended = http.get(f"/runs/{run['id']}").raise_for_status().json()

    assert ended["status"] == "aborted"
    assert ended["finished"] is True
