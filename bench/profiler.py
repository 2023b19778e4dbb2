"""What py-spy costs the process it samples: requests/s and latency of the demo shop on
127.0.0.1 under the same k6 load, with and without app.profiling.pyspy.record attached.

Each round runs every condition once (rotated, so drift hits them alike): k6 drives one
endpoint for ``--seconds`` with ``--vus`` VUs and, for the py-spy conditions, the adapter
samples the target for the middle of that run. Printed per endpoint and condition: the median
requests/s over the rounds, its ratio to the unprofiled median, k6's median and p95 latency,
and the CPU py-spy itself used (getrusage of reaped children, k6 excluded).

    .venv/bin/python bench/profiler.py                     # ~3 min
    .venv/bin/python bench/profiler.py --rounds 5 --seconds 8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from app.profiling import pyspy

SCRIPT = """
import http from 'k6/http';
export const options = { discardResponseBodies: true };
export default function () { http.get(__ENV.URL); }
"""
ENDPOINTS = {
    # Python-heavy: routing, validation, serialisation, little SQL.
    "get_product": ("/api/products/7", 8),
    # The N+1: SQLite (C, GIL released) does most of the work.
    "recent_orders": ("/api/orders/recent", 4),
}


@dataclass(frozen=True)
class Condition:
    name: str
    rate: int = 0  # 0: no py-spy
    nonblocking: bool = False


CONDITIONS = [
    Condition("none"),
    Condition("py-spy 100/s", 100),
    Condition("py-spy 100/s nonblocking", 100, True),
    Condition("py-spy 20/s", 20),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(port: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"the demo target did not listen on {port}")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def one_run(
    k6: str, script: Path, url: str, vus: int, seconds: int, condition: Condition, pid: int
) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        summary = Path(tmp) / "summary.json"
        command = [
            k6, "run", "--quiet", "--no-usage-report", "--vus", str(vus),
            "--duration", f"{seconds}s", "--summary-export", str(summary), str(script),
        ]  # fmt: skip
        environment = {"PATH": os.environ.get("PATH", ""), "URL": url, "HOME": tmp}
        proc = await asyncio.create_subprocess_exec(
            *command, env=environment, stdout=subprocess.DEVNULL
        )
        pyspy_cpu = 0.0
        samples = 0
        try:
            if condition.rate:
                await asyncio.sleep(1)  # past k6's ramp-up
                before = children_cpu()
                profile = await pyspy.record(
                    pid, seconds - 2, rate=condition.rate, nonblocking=condition.nonblocking
                )
                pyspy_cpu = children_cpu() - before
                samples = profile.samples
                if profile.status != "ok":
                    print(f"  py-spy: {profile.status}: {profile.reason}", file=sys.stderr)
            await asyncio.wait_for(proc.wait(), seconds + 60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        metrics = json.loads(summary.read_text())["metrics"]
    duration = metrics["http_req_duration"]
    return {
        "rps": metrics["http_reqs"]["rate"],
        "med_ms": duration["med"],
        "p95_ms": duration["p(95)"],
        "pyspy_cpu_s": pyspy_cpu,
        "samples": samples,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--endpoints", default=",".join(ENDPOINTS))
    parser.add_argument("--results", type=Path, help="write every run as JSON here")
    args = parser.parse_args()
    k6 = shutil.which("k6", path=str(Path(sys.executable).parent)) or shutil.which("k6")
    if k6 is None or pyspy.find_binary() is None:
        raise SystemExit("needs k6 and py-spy (make venv)")
    port = free_port()
    target = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app.demo", "--port", str(port),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    runs: list[dict[str, object]] = []
    try:
        await asyncio.to_thread(wait_for, port)
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / "load.js"
            script.write_text(SCRIPT)
            for endpoint in args.endpoints.split(","):
                path, vus = ENDPOINTS[endpoint]
                url = f"http://127.0.0.1:{port}{path}"
                await one_run(k6, script, url, vus, 3, CONDITIONS[0], target.pid)  # warm-up
                for round_ in range(args.rounds):
                    shift = round_ % len(CONDITIONS)
                    for condition in CONDITIONS[shift:] + CONDITIONS[:shift]:
                        figures = await one_run(
                            k6, script, url, vus, args.seconds, condition, target.pid
                        )
                        runs.append({"endpoint": endpoint, "condition": condition.name, **figures})
                        print(
                            f"  {endpoint} round {round_ + 1} {condition.name}: "
                            f"{figures['rps']:.1f} req/s",
                            file=sys.stderr,
                        )
    finally:
        target.kill()
        await target.wait()
    if args.results:
        args.results.write_text(json.dumps(runs, indent=2))
    print(f"{os.cpu_count()} CPUs; {args.rounds} rounds × {args.seconds} s per condition; k6 load")
    header = "endpoint        condition                  req/s   ratio  med ms  p95 ms  py-spy CPU"
    print(header)
    for endpoint in args.endpoints.split(","):
        base = statistics.median(
            float(r["rps"])
            for r in runs  # type: ignore[arg-type]
            if r["endpoint"] == endpoint and r["condition"] == "none"
        )
        for condition in CONDITIONS:
            mine = [
                r for r in runs if r["endpoint"] == endpoint and r["condition"] == condition.name
            ]
            rps = statistics.median(float(r["rps"]) for r in mine)  # type: ignore[arg-type]
            med = statistics.median(float(r["med_ms"]) for r in mine)  # type: ignore[arg-type]
            p95 = statistics.median(float(r["p95_ms"]) for r in mine)  # type: ignore[arg-type]
            window = max(1, args.seconds - 2)
            cpu = statistics.median(float(r["pyspy_cpu_s"]) for r in mine) / window  # type: ignore[arg-type]
            print(
                f"{endpoint:15} {condition.name:25} {rps:7.1f} {rps / base:6.3f} "
                f"{med:7.1f} {p95:7.1f}  {cpu * 100:5.1f} % of a core"
            )


if __name__ == "__main__":
    asyncio.run(main())
