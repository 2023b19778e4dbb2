"""Shared by the importer tests: the public fixtures and a plan → ``k6 inspect`` round trip."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from app.core.settings import Settings
from app.plans.k6script import render
from app.plans.schemas import PlanSpec, effective_slos

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures"
BASE_URL = "http://127.0.0.1:8080"


def script_for(doc: dict[str, Any]) -> str:
    spec = PlanSpec.model_validate(doc)
    return render(spec, slos=effective_slos(spec)[0])


def k6_inspect(script: str, tmp_path: Path) -> dict[str, Any]:
    """The options k6 reads from ``script``; fails the test when k6 rejects the script."""
    path = tmp_path / "script.js"
    path.write_text(script)
    done = subprocess.run(
        [Settings().k6_binary, "inspect", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": os.environ["PATH"], "K6_NO_USAGE_REPORT": "true"},
    )
    assert done.returncode == 0, done.stderr
    options: dict[str, Any] = json.loads(done.stdout)
    return options
