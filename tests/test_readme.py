"""The README's curl walkthrough, run as written against a live service (ports adjusted)."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.conftest import running_live_service

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
    )

    assert done.returncode == 0, done.stderr
    assert "import http from 'k6/http';" in done.stdout  # the script
    assert '"fail"' in done.stdout  # the verdict: recent_orders is slow
    assert "### Performance Test Report: `demo-shop`" in done.stdout
