"""Stored bytes per run at 10x more requests, same duration and endpoints: must stay flat.

Runs the same one-endpoint plan through the service twice, at an arrival rate of R and of
10 R requests per second for the same duration, then sums PostgreSQL's own size of every row
stored for each run (runs, run_results, run_samples, run_events, run_histograms).

    .venv/bin/python bench/storage.py [--rate 30] [--seconds 10]

Uses PERF_AGENT_DATABASE_URL / DATABASE_URL when set, else the embedded PostgreSQL.
"""

from __future__ import annotations

import argparse
from typing import Any

import psycopg

from app.cli import free_port, running_demo_target, running_service
from app.client import PerfAgentClient
from app.core.db import resolve_database_url
from app.core.settings import get_settings

TABLES = {
    "runs": "id = %(run)s",
    "run_results": "run_id = %(run)s",
    "run_samples": "run_id = %(run)s",
    "run_events": "run_id = %(run)s",
    "run_histograms": "run_id = %(run)s",
}


def plan(target: str, rate: int, seconds: int) -> dict[str, Any]:
    return {
        "name": f"storage-{rate}",
        "target": {"base_url": target, "environment": "local"},
        "endpoints": [{"name": "health", "path": "/health"}],
        "load": {
            "profile": "constant-arrival",
            "rate": rate,
            "duration": f"{seconds}s",
            "pre_allocated_vus": 20,
            "max_vus": 50,
        },
        "slos": ["p95 < 1000ms"],
    }


def stored_bytes(url: str, run_id: str) -> dict[str, int]:
    libpq = url.replace("postgresql+psycopg://", "postgresql://")
    sizes = {}
    with psycopg.connect(libpq) as conn:
        for table, where in TABLES.items():
            row = conn.execute(
                f"SELECT coalesce(sum(pg_column_size(t.*)), 0), count(*) FROM {table} t "
                f"WHERE {where}",
                {"run": run_id},
            ).fetchone()
            assert row is not None
            sizes[table] = int(row[0])
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=30, help="requests/s of the small run")
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    settings = get_settings()
    url = resolve_database_url(settings)
    results = []
    with (
        running_demo_target(free_port()) as target,
        running_service(settings, free_port()) as service,
        PerfAgentClient(service) as client,
    ):
        for rate in (args.rate, args.rate * 10):
            _, run = client.run_approved(plan(target, rate, args.seconds), reviewer="bench")
            if run["status"] != "succeeded":
                raise SystemExit(f"run {run['id']} {run['status']}: {run['error']}")
            total = next(r for r in run["results"] if r["endpoint"] == "*")
            sizes = stored_bytes(url, run["id"])
            results.append((rate, total["requests"], sizes))
    print(
        f"{'rate/s':>7} {'requests':>9} " + " ".join(f"{t:>12}" for t in TABLES) + f" {'total':>9}"
    )
    for rate, requests, sizes in results:
        cells = " ".join(f"{sizes[t]:>12,}" for t in TABLES)
        print(f"{rate:>7} {requests:>9,} {cells} {sum(sizes.values()):>9,}")
    small, large = (sum(s.values()) for _, _, s in results)
    ratio = large / small
    print(
        f"\n{results[1][1] / results[0][1]:.1f}x the requests -> {ratio:.3f}x the stored bytes "
        f"({'flat within 10 %' if abs(ratio - 1) <= 0.10 else 'NOT flat within 10 %'})"
    )


if __name__ == "__main__":
    main()
