"""Re-analyse a golden build's stored runs with this working tree's analysis: no k6 runs.

    .venv/bin/python eval/golden/reanalyse.py /tmp/golden-fresh /tmp/golden-fresh-re
    .venv/bin/python eval/golden/score.py --dir /tmp/golden-fresh-re

Each pair's candidate is analysed again against its baseline (``POST /analyse`` through the
ASGI app, auth off, no worker), from the runs the build stored in PERF_AGENT_DATABASE_URL
(default: the local ``perf_agent_golden`` database); the new analyses replace the old in a
copy of ``results.json``. For iterating on the analysis only: a change to what the worker
records (samples, profiles) needs a new build.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from app.core.migrate import upgrade
from app.core.settings import get_settings
from app.main import create_app

DEFAULT_DB = "postgresql+psycopg://postgres@127.0.0.1:5432/perf_agent_golden"
ANALYSE = "/api/agents/performance-agent/analyse"


async def reanalyse(results: dict[str, Any]) -> int:
    """Replace each case's analysis; the number of pairs that could not be analysed."""
    database = os.environ.get("PERF_AGENT_DATABASE_URL", DEFAULT_DB)
    settings = get_settings().model_copy(
        update={"auth": "off", "database_url": database, "embedded_worker": False}
    )
    await asyncio.to_thread(upgrade, database)
    app = create_app(settings)
    failed = 0
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://golden") as client:
            for case_id, case in results["cases"].items():
                body = {
                    "run_id": case["candidate_run"]["id"],
                    "baseline_run_ids": [case["baseline_run"]["id"]],
                }
                response = await client.post(ANALYSE, json=body)
                if response.status_code != 201:
                    failed += 1
                    print(f"{case_id}: {response.status_code} {response.text[:200]}")
                    continue
                case["analysis"] = response.json()
    return failed


def main(source: Path, target: Path) -> None:
    results = json.loads((source / "results.json").read_text())
    failed = asyncio.run(reanalyse(results))
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(source / "cases.json", target / "cases.json")
    results.setdefault("meta", {})["reanalysed_from"] = str(source)
    (target / "results.json").write_text(json.dumps(results))
    print(f"{len(results['cases']) - failed} pairs re-analysed into {target}; {failed} failed")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("source", type=Path, help="a build's directory (cases.json, results.json)")
    parser.add_argument("target", type=Path, help="where the re-analysed copy goes")
    args = parser.parse_args()
    main(args.source, args.target)
