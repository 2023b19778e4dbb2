"""The service's cost on k6: the same plan run bare (`k6 run`) and through perf-agent, alternating.

Closed loop at saturation against nginx on 127.0.0.1: k6's throughput through the service
(launcher, address blacklist, summary export, and the live path: `--out json=-` read into
per-second, per-endpoint histograms, stored each second and window) divided by the bare run's.
Open loop at half that rate: achieved rate and p95 of both. Every throughput figure is k6's
own measurement of its run; for each service run the results read from the histograms are
also compared with that run's own k6 summary (p95, p99).

    .venv/bin/python bench/fidelity.py [--pairs 5] [--seconds 10] [--vus 20]

Needs nginx (apt-get install -y nginx-light); PERF_AGENT_DATABASE_URL / DATABASE_URL or the
embedded PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from targets import local_target

from app.cli import free_port, running_service
from app.client import PerfAgentClient
from app.core.settings import get_settings
from app.k6.process import k6_env


def plan(target: str, load: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "fidelity",
        "target": {"base_url": target, "environment": "local"},
        "endpoints": [{"name": "root", "path": "/"}],
        "load": load,
        "slos": ["p95 < 1000ms"],
    }


def through_service(
    client: PerfAgentClient, document: dict[str, Any], runs_dir: Path
) -> tuple[dict[str, Any], str]:
    plan, run = client.run_approved(document, reviewer="bench")
    if run["status"] != "succeeded":
        raise SystemExit(f"run {run['id']} {run['status']}: {run['error']}")
    total = next(r for r in run["results"] if r["endpoint"] == "*")
    summary = json.loads((runs_dir / run["id"] / "attempt-1" / "summary.json").read_text())
    own = summary["metrics"]["http_req_duration{expected_response:true}"]["values"]
    total["p95_err"] = total["p95_ms"] / own["p(95)"] - 1
    total["p99_err"] = total["p99_ms"] / own["p(99)"] - 1
    total["source"] = total.get("source")
    return total, plan["script"]


def bare(binary: str, script: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="fidelity-") as tmp:
        work = Path(tmp)
        (work / "script.js").write_text(script)
        summary = work / "summary.json"
        subprocess.run(
            [
                binary,
                "run",
                "--quiet",
                "--no-color",
                "--address",
                "127.0.0.1:0",
                "--summary-trend-stats",
                "avg,min,med,max,p(50),p(90),p(95),p(99),count",
                "script.js",
            ],
            cwd=work,
            env=k6_env({}),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
            timeout=600,
        )
        metrics = json.loads(summary.read_text())["metrics"]
    reqs = metrics["http_reqs"]["values"]
    duration = metrics["http_req_duration{expected_response:true}"]["values"]
    return {"requests": reqs["count"], "rps": reqs["rate"], "p95_ms": duration["p(95)"]}


def pairs(
    client: PerfAgentClient, binary: str, document: dict[str, Any], count: int, runs_dir: Path
) -> list[Any]:
    results = []
    for i in range(count):
        service, script = through_service(client, document, runs_dir)
        alone = bare(binary, script)
        results.append((alone, service))
        print(
            f"  pair {i + 1}: bare {alone['rps']:>9,.0f} req/s p95 {alone['p95_ms']:.3f} ms | "
            f"service {service['rps']:>9,.0f} req/s p95 {service['p95_ms']:.3f} ms "
            f"(histograms vs its k6 summary: p95 {service['p95_err']:+.3%}, "
            f"p99 {service['p99_err']:+.3%})"
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--vus", type=int, default=20)
    args = parser.parse_args()
    settings = get_settings()
    with (
        local_target(allow_python=False) as target,
        running_service(settings, free_port()) as service,
        PerfAgentClient(service) as client,
    ):
        print(f"closed loop: {args.vus} VUs x {args.seconds}s against {target.kind}")
        closed = pairs(
            client,
            settings.k6_binary,
            plan(target.base_url, {"vus": args.vus, "duration": f"{args.seconds}s"}),
            args.pairs,
            settings.runs_dir,
        )
        ratios = [s["rps"] / b["rps"] for b, s in closed]
        saturation = statistics.median(b["rps"] for b, _ in closed)
        rate = int(saturation / 2)
        print(f"open loop: {rate:,} iterations/s (half of the bare median)")
        load = {
            "profile": "constant-arrival",
            "rate": rate,
            "duration": f"{args.seconds}s",
            "pre_allocated_vus": 50,
            "max_vus": 200,
        }
        opened = pairs(
            client, settings.k6_binary, plan(target.base_url, load), args.pairs, settings.runs_dir
        )
    print(
        f"\nclosed-loop throughput ratio service/bare: median {statistics.median(ratios):.3f} "
        f"(min {min(ratios):.3f}, max {max(ratios):.3f}; goal >= 0.97)"
    )
    rate_ratio = statistics.median(s["rps"] / b["rps"] for b, s in opened)
    p95_ratio = statistics.median(s["p95_ms"] / b["p95_ms"] for b, s in opened)
    print(
        f"open loop at {rate:,}/s: achieved rate ratio {rate_ratio:.4f}, p95 ratio {p95_ratio:.3f}"
        " (goal: both within 1 %)"
    )
    errors = [abs(s[key]) for _, s in closed + opened for key in ("p95_err", "p99_err")]
    print(
        f"service runs: histogram p95/p99 vs the run's own k6 summary: worst {max(errors):.3%} "
        f"over {len(closed + opened)} runs (goal: within 1 %)"
    )


if __name__ == "__main__":
    main()
