"""What the k6 sandbox costs and how fast the live VU ceiling acts.

1. **Cost**: paired closed-loop runs of the same script against nginx on loopback, k6 bare
   (the launcher, no sandbox) and k6 in the sandbox (bubblewrap + its nftables table),
   alternating; prints requests per second of each and the ratio sandboxed/bare per pair.
2. **Ceiling**: a script that reads 1 VU when inspected and runs 8 (its options depend on what
   it sees only when running) is run through a worker with the ceiling at 5; prints the time
   from the start of the first second k6 ran 8 VUs to the guardrail's event and to k6's end.

    .venv/bin/python bench/sandbox.py [--pairs 5] [--seconds 10] [--ceiling-runs 5]

Needs root, bubblewrap and nftables (as .ci/run installs them); nginx when installed, else a
Python target (then the cost figures are not meaningful and the script says so).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from targets import local_target

from app.core.settings import Settings
from app.k6 import sandbox
from app.k6.process import run_k6

SCRIPT = """import http from 'k6/http';
export const options = {{ vus: 20, duration: '{seconds}s' }};
export default function () {{ http.get('{url}/'); }}
export function handleSummary(data) {{
  return {{ [__ENV.PERF_AGENT_SUMMARY]: JSON.stringify(data) }};
}}
"""


async def one_run(settings: Settings, url: str, seconds: int, boxed: bool, work: Path) -> float:
    script = work / "script.js"
    script.write_text(SCRIPT.format(seconds=seconds, url=url))
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    egress = sandbox.Egress(parts.hostname, (ipaddress.ip_address(parts.hostname),), parts.port)
    confined: Any = (
        sandbox.confined(settings, settings.k6_binary, egress)
        if boxed
        else contextlib.nullcontext(None)
    )
    async with confined as box:
        outcome = await run_k6(
            binary=settings.k6_binary,
            script=script,
            workdir=work / ("boxed" if boxed else "bare"),
            timeout_s=seconds + 60,
            grace_s=10,
            box=box,
        )
    assert outcome.summary is not None, outcome.stderr_tail
    rate: float = outcome.summary["metrics"]["http_reqs"]["values"]["rate"]
    return rate


async def cost(settings: Settings, pairs: int, seconds: int) -> None:
    with contextlib.ExitStack() as stack:
        target = stack.enter_context(local_target(allow_python=True))
        if not target.measurable:
            print("nginx is not installed: the cost figures below are not meaningful")
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-sandbox-")))
        ratios = []
        print(f"cost: {pairs} pairs, 20 VUs x {seconds} s against {target.kind} on loopback")
        for pair in range(pairs):
            bare = await one_run(settings, target.base_url, seconds, False, work)
            boxed = await one_run(settings, target.base_url, seconds, True, work)
            ratios.append(boxed / bare)
            print(
                f"  pair {pair + 1}: bare {bare:,.0f} req/s, sandboxed {boxed:,.0f} req/s, "
                f"ratio {boxed / bare:.3f}"
            )
        print(f"  median ratio sandboxed/bare: {statistics.median(ratios):.3f}")


def ceiling(runs: int) -> None:
    """Through the red-team test that exercises it (a worker, the API, real k6 in the
    sandbox); the figures it records in its JUnit report are printed here."""
    import os
    import subprocess
    import xml.etree.ElementTree as ET

    print(f"ceiling: {runs} runs of the VU-ceiling case in tests/security/test_sandbox_attacks.py")
    events, ends = [], []
    with tempfile.TemporaryDirectory(prefix="bench-ceiling-") as tmp:
        for number in range(runs):
            report = Path(tmp) / f"run-{number}.xml"
            done = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                 "tests/security/test_sandbox_attacks.py", "-k", "more_vus",
                 f"--junitxml={report}"],
                capture_output=True, text=True, check=False, env=dict(os.environ),
                cwd=Path(__file__).resolve().parents[1],
            )  # fmt: skip
            found = (
                {
                    p.get("name"): float(p.get("value", "nan"))
                    for p in ET.parse(report).iter("property")
                }
                if report.exists()
                else {}
            )
            if "ceiling_event_s" not in found:
                print(f"  run {number + 1}: no figure (pytest exit {done.returncode})")
                continue
            events.append(found["ceiling_event_s"])
            ends.append(found["ceiling_run_end_s"])
            print(
                f"  run {number + 1}: guardrail event {found['ceiling_event_s']:.2f} s, "
                f"run over {found['ceiling_run_end_s']:.2f} s after the first 8-VU second began"
            )
    if ends:
        print(
            f"  median: event {statistics.median(events):.2f} s, run over "
            f"{statistics.median(ends):.2f} s; worst run over {max(ends):.2f} s (goal <= 2 s)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--ceiling-runs", type=int, default=5)
    args = parser.parse_args()
    settings = Settings()
    found = sandbox.status(settings)
    if not found.available:
        raise SystemExit(f"no sandbox here: {found.reason}")
    asyncio.run(cost(settings, args.pairs, args.seconds))
    ceiling(args.ceiling_runs)


if __name__ == "__main__":
    main()
