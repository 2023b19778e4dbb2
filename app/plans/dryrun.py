"""Dry run: the plan's script, 1 VU × 1 iteration against the target, reported step by step."""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from app.core.settings import Settings
from app.guardrails.egress import egress_for, k6_args
from app.guardrails.service import check_plan, sandboxed
from app.k6 import sandbox
from app.k6.process import EXIT_MEANINGS, run_k6
from app.k6.summary import check_results
from app.models import Plan
from app.plans.schemas import PlanSpec
from app.plans.secrets import MissingSecret, plan_secrets

DRY_RUN_TIMEOUT_S = 60.0


class StepCall(BaseModel):
    name: str
    method: str | None
    status: int | None = Field(description="0: no response (connection refused, timeout …)")
    expected: bool
    duration_ms: float | None
    error_code: int | None = Field(description="k6's error_code tag, when there was an error")


class DryRunCheck(BaseModel):
    name: str
    group: str | None
    passed: bool


class DryRunOut(BaseModel):
    ok: bool = Field(description="Every request had its expected status and every check passed")
    exit_code: int
    error: str | None
    steps: list[StepCall]
    checks: list[DryRunCheck]


def _calls(lines: list[str]) -> list[StepCall]:
    calls: list[StepCall] = []
    for line in lines:
        try:
            point = json.loads(line)
        except json.JSONDecodeError:
            continue
        if point.get("type") != "Point" or point.get("metric") != "http_req_duration":
            continue
        tags: dict[str, Any] = point["data"].get("tags", {})
        error_code = tags.get("error_code")
        calls.append(
            StepCall(
                name=str(tags.get("name", "")),
                method=tags.get("method"),
                status=int(tags.get("status") or 0),
                expected=tags.get("expected_response") == "true",
                duration_ms=float(point["data"]["value"]),
                error_code=int(error_code) if error_code else None,
            )
        )
    return calls


async def dry_run(plan: Plan, settings: Settings) -> DryRunOut:
    spec = PlanSpec.model_validate(plan.spec)
    check_plan(spec, settings)
    egress = await egress_for(spec, settings)
    network_args = k6_args(egress)
    stream = bytearray()  # k6's metric points (--out json=-), one JSON object a line
    async with contextlib.AsyncExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="perf-agent-dry-run-"))
        workdir = Path(tmp)
        script = workdir / "script.js"
        await asyncio.to_thread(script.write_text, plan.script)
        try:
            secrets = plan_secrets(spec)
        except MissingSecret as exc:
            return DryRunOut(ok=False, exit_code=-1, error=str(exc), steps=[], checks=[])
        box = None
        if sandboxed(spec, settings):
            box = await stack.enter_async_context(
                sandbox.confined(settings, settings.k6_binary, egress)
            )
        outcome = await run_k6(
            binary=settings.k6_binary,
            script=script,
            workdir=workdir,
            timeout_s=DRY_RUN_TIMEOUT_S,
            grace_s=5.0,
            secrets=secrets,
            # CLI execution options replace the plan's scenarios: one VU, one iteration. The
            # SLO thresholds judge a load, not one iteration: a dry run checks that the steps
            # work, so a slow single request must not fail it (k6 would exit 99).
            extra_args=[*network_args, "--vus", "1", "--iterations", "1", "--no-thresholds"],
            on_metrics=stream.extend,
            box=box,
        )
    steps = _calls(stream.decode("utf-8", errors="replace").splitlines())
    checks = [
        DryRunCheck(name=c["name"], group=c["group"], passed=c["fails"] == 0)
        for c in check_results(outcome.summary)
    ]
    error = None
    if not outcome.completed:
        error = f"k6 exited with {outcome.exit_code} " + (
            f"({EXIT_MEANINGS.get(outcome.exit_code, 'unexpected exit')}): "
            + outcome.stderr_tail[-1000:]
        )
    elif outcome.script_errors:
        error = "the script threw during the iteration: " + (outcome.thrown or [""])[-1]
    ok = error is None and all(s.expected for s in steps) and all(c.passed for c in checks)
    return DryRunOut(ok=ok, exit_code=outcome.exit_code, error=error, steps=steps, checks=checks)
