"""perf-agent as MCP tools, for coding agents: plan, dry run, execute, wait, analyse, compare,
and the performance budget loop — each a call to the service's own HTTP API with the key the
server was given (or, over streamable HTTP, the caller's own bearer key), so an agent has the
same scopes and meets the same guardrails as anyone else. A refusal is a tool error whose text
starts with the problem's machine code (``guardrail.vu_ceiling: …``)."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

import httpx
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

from app.client import API, script_plan

INSTRUCTIONS = """\
perf-agent runs k6 load tests under guardrails (allowed hosts only, at most 1000 VUs, 30 minutes,
a cost budget) and judges them: SLOs, regressions against a baseline with statistics, findings.
The API Performance Budget loop: budget_start (a p95 target), then budget_next after each code
change until its status is "met" or "exhausted". Or step by step: plan_from_script,
plan_from_document or plan_from_openapi, then dry_run, execute, wait, analyse, compare.
Tool errors start with a machine code (e.g. guardrail.host_not_allowed) and say what to change."""

Ctx = Context[Any, Any] | None
Timeout = Annotated[float, Field(ge=1, le=3600, description="Seconds to wait at most")]


class PlanSummary(BaseModel):
    plan_id: str
    name: str
    version: int
    status: str = Field(description="draft (execute with auto_approve), approved or archived")
    target: str
    steps: list[str]
    slos: list[str]


class StepResult(BaseModel):
    step: str
    ok: bool
    status: int | None = None
    detail: str | None = None


class DryRunResult(BaseModel):
    ok: bool
    steps: list[StepResult]
    problems: list[str]


class RunSummary(BaseModel):
    run_id: str
    plan_id: str
    status: str = Field(description="queued, running, succeeded, partial, failed, aborted …")
    finished: bool
    error: str | None = None
    p95_ms: float | None = Field(default=None, description="All requests, when finished")
    rps: float | None = None
    error_rate: float | None = None
    endpoints: dict[str, dict[str, float | None]] = Field(
        default_factory=dict, description="Per step: p95_ms, rps, error_rate"
    )


class Objective(BaseModel):
    objective: str
    scope: str
    status: str
    measured: float | None
    target: float | None


class Change(BaseModel):
    scope: str
    sli: str
    baseline: float | None
    current: float | None
    change: float | None
    verdict: str
    p_value: float | None
    interval: list[float] | None


class AnalysisSummary(BaseModel):
    analysis_id: str
    run_id: str
    verdict: str = Field(description="pass, warning, fail or inconclusive (run it again)")
    score: float | None
    objectives: list[Objective]
    changes: list[Change] = Field(description="Regressions and improvements against the baseline")
    findings: list[str] = Field(description="Most important first")
    report: str = Field(description="Path of the HTML report on the service")


class Iteration(BaseModel):
    number: int
    run_id: str
    value_ms: float | None
    met: bool
    change: float | None
    significance: str | None
    top_finding: str | None


class BudgetState(BaseModel):
    budget_id: str
    plan_id: str
    sli: str
    scope: str
    target_ms: float
    status: str = Field(description="running (call budget_next), met or exhausted")
    max_iterations: int
    iterations: list[Iteration]


def _objective(slo: Any) -> str:
    if not isinstance(slo, dict):
        return str(slo)
    parts = []
    if slo.get("target") is not None:
        parts.append(f"{slo['sli']} {slo['op']} {slo['target']:g}")
    if slo.get("relative_change") is not None:
        parts.append(f"{slo['sli']} {slo.get('relative_op')} {slo['relative_change'] * 100:+g}%")
    return f"{slo.get('endpoint') or '*'}: " + " and ".join(parts)


def _plan(body: dict[str, Any]) -> PlanSummary:
    spec = body.get("spec") or {}
    steps = [s["name"] for sc in spec.get("scenarios") or [] for s in sc.get("steps") or []]
    steps = steps or [e["name"] for e in spec.get("endpoints") or []]
    return PlanSummary(
        plan_id=body["id"],
        name=body["name"],
        version=body["version"],
        status=body["status"],
        target=(spec.get("target") or {}).get("base_url", ""),
        steps=steps,
        slos=[_objective(s) for s in spec.get("slos") or []],
    )


def _run(body: dict[str, Any]) -> RunSummary:
    results = {r["endpoint"]: r for r in body.get("results") or []}
    overall = results.pop("*", {})
    return RunSummary(
        run_id=body["id"],
        plan_id=body["plan_id"],
        status=body["status"],
        finished=bool(body.get("finished")),
        error=body.get("error"),
        p95_ms=overall.get("p95_ms"),
        rps=overall.get("rps"),
        error_rate=overall.get("error_rate"),
        endpoints={
            name: {
                "p95_ms": r.get("p95_ms"),
                "rps": r.get("rps"),
                "error_rate": r.get("error_rate"),
            }
            for name, r in results.items()
        },
    )


def _analysis(body: dict[str, Any]) -> AnalysisSummary:
    return AnalysisSummary(
        analysis_id=body["id"],
        run_id=body["run_id"],
        verdict=body["verdict"],
        score=(body.get("score") or {}).get("value"),
        objectives=[
            Objective(
                objective=r["objective"],
                scope=r.get("endpoint") or "*",
                status=r["status"],
                measured=r.get("measured"),
                target=r.get("target"),
            )
            for r in body.get("slo_results") or []
        ],
        changes=[
            Change(
                scope=c["endpoint"],
                sli=c["sli"],
                baseline=c.get("baseline"),
                current=c.get("current"),
                change=c.get("change"),
                verdict=c["verdict"],
                p_value=c.get("p_value"),
                interval=c.get("interval"),
            )
            for c in body.get("comparisons") or []
            if c["verdict"] in ("regression", "improvement")
        ],
        findings=[f["summary"] for f in body.get("findings") or [] if f["severity"] != "info"],
        report=(body.get("links") or {}).get("report_html", ""),
    )


def _budget(body: dict[str, Any]) -> BudgetState:
    def significance(it: dict[str, Any]) -> str | None:
        c = it.get("comparison")
        if not c:
            return None
        p = c.get("p_value")
        return c["verdict"] + (f" (p {p:.2g})" if p is not None else "")

    return BudgetState(
        budget_id=body["id"],
        plan_id=body["plan_id"],
        sli=body["sli"],
        scope=body.get("endpoint") or "*",
        target_ms=body["target_ms"],
        status=body["status"],
        max_iterations=body["max_iterations"],
        iterations=[
            Iteration(
                number=it["number"],
                run_id=it["run_id"],
                value_ms=it.get("value_ms"),
                met=it["met"],
                change=it.get("change"),
                significance=significance(it),
                top_finding=it.get("top_finding"),
            )
            for it in body.get("iterations") or []
        ],
    )


def refusal(response: httpx.Response) -> ToolError:
    """The service's problem+json as an error an agent can act on: code, then detail."""
    try:
        body = response.json()
        code, detail = body.get("code", f"http_{response.status_code}"), body.get("detail", "")
        errors = body.get("errors") or []
        if errors:
            detail += " " + "; ".join(
                f"{e.get('loc', e.get('pointer', ''))}: {e.get('msg', e.get('detail', ''))}"
                for e in errors[:5]
            )
    except ValueError:
        code, detail = f"http_{response.status_code}", response.text[:500]
    return ToolError(f"{code}: {detail}".strip())


def build_server(api: str, api_key: str | None) -> MCPServer:
    """The MCP server for the service at ``api``."""
    server: MCPServer = MCPServer("perf-agent", instructions=INSTRUCTIONS)
    base = api.rstrip("/") + API

    def headers(ctx: Ctx) -> dict[str, str]:
        # Over HTTP a caller's own key wins, so each agent acts with its own scopes (the
        # service checks it; the MCP server only passes it on).
        sent = None
        if ctx is not None:
            try:
                sent = (ctx.headers or {}).get("authorization")
            except ValueError:  # no request: called outside a session
                sent = None
        if sent:
            return {"Authorization": sent}
        return {"Authorization": f"Bearer {api_key}"} if api_key else {}

    async def call(
        ctx: Ctx,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: str | None = None,
        params: dict[str, Any] | None = None,
        content_type: str | None = None,
    ) -> Any:
        sent = headers(ctx)
        if content_type:
            sent["Content-Type"] = content_type
        try:
            async with httpx.AsyncClient(base_url=base, timeout=120) as client:
                response = await client.request(
                    method, path, json=json, content=content, params=params, headers=sent
                )
        except httpx.HTTPError as exc:
            raise ToolError(f"service.unreachable: perf-agent at {api}: {exc}") from None
        if response.is_error:
            raise refusal(response)
        return response.json()

    async def wait_for(ctx: Ctx, run_id: str, timeout_s: float) -> Any:
        deadline = time.monotonic() + timeout_s
        while True:
            run = await call(ctx, "GET", f"/runs/{run_id}")
            if run.get("finished") or time.monotonic() > deadline:
                return run
            await asyncio.sleep(1.0)

    @server.tool()
    async def plan_from_script(
        script: Annotated[
            str, Field(description="A k6 script, run as it is", max_length=1_000_000)
        ],
        name: Annotated[str, Field(max_length=200)] = "agent-script",
        target: Annotated[
            str | None, Field(description="Its target URL, if its URLs name more than one origin")
        ] = None,
        ctx: Ctx = None,
    ) -> PlanSummary:
        """Store a k6 script as a plan (a draft). Its target is checked against the allowed
        hosts; the script runs in the sandbox, confined to that target."""
        try:
            document = script_plan(script, name=name, target=target)
        except ValueError as exc:
            raise ToolError(f"plan.target_unclear: {exc}") from None
        return _plan(await call(ctx, "POST", "/plan", json=document))

    @server.tool()
    async def plan_from_document(
        document: Annotated[
            str, Field(description="A perf-agent plan in YAML or JSON", max_length=1_000_000)
        ],
        ctx: Ctx = None,
    ) -> PlanSummary:
        """Store a plan (endpoints or scenarios, load, SLOs) as a draft; its k6 script is
        generated. The plan language: GET /plans/schema."""
        body = await call(ctx, "POST", "/plan", content=document, content_type="application/yaml")
        return _plan(body)

    @server.tool()
    async def plan_from_openapi(
        document: Annotated[str, Field(description="An OpenAPI 3 document", max_length=1_000_000)],
        base_url: Annotated[str, Field(description="The target the plan will load")],
        ctx: Ctx = None,
    ) -> PlanSummary:
        """Draft a plan with one step per operation of an OpenAPI document."""
        body = await call(
            ctx,
            "POST",
            "/plans/import/openapi",
            content=document,
            params={"base_url": base_url},
            content_type="application/yaml",
        )
        return _plan(body)

    @server.tool()
    async def dry_run(plan_id: str, ctx: Ctx = None) -> DryRunResult:
        """Each step once, one VU, no load: does the plan work against its target?"""
        body = await call(ctx, "POST", f"/plans/{plan_id}/dry-run")
        steps = [
            StepResult(
                step=s["name"],
                ok=bool(s.get("expected")),
                status=s.get("status"),
                detail=f"k6 error code {s['error_code']}" if s.get("error_code") else None,
            )
            for s in body.get("steps") or []
        ]
        problems = [body["error"]] if body.get("error") else []
        problems += [
            f"check failed: {c['name']}" for c in body.get("checks") or [] if not c["passed"]
        ]
        return DryRunResult(ok=bool(body.get("ok")), steps=steps, problems=problems)

    @server.tool()
    async def execute(
        plan_id: str,
        auto_approve: Annotated[
            bool, Field(description="Approve a draft on the way (needs the approve scope)")
        ] = False,
        ctx: Ctx = None,
    ) -> RunSummary:
        """Queue a run of the plan under every guardrail; follow it with wait."""
        body = await call(
            ctx, "POST", "/execute", json={"plan_id": plan_id, "auto_approve": auto_approve}
        )
        return _run(body)

    @server.tool()
    async def wait(run_id: str, timeout_s: Timeout = 600, ctx: Ctx = None) -> RunSummary:
        """Wait until the run finishes (or the timeout passes; then `finished` is false)."""
        return _run(await wait_for(ctx, run_id, timeout_s))

    @server.tool()
    async def analyse(
        run_id: str,
        baseline_run_ids: list[str] | None = None,
        ctx: Ctx = None,
    ) -> AnalysisSummary:
        """Judge a finished run: its SLOs, regressions against the baseline (the given runs,
        else the plan's), findings. `inconclusive`: the load generator was unhealthy."""
        body: dict[str, Any] = {"run_id": run_id}
        if baseline_run_ids:
            body["baseline_run_ids"] = baseline_run_ids
        return _analysis(await call(ctx, "POST", "/analyse", json=body))

    @server.tool()
    async def compare(baseline_run_id: str, run_id: str, ctx: Ctx = None) -> AnalysisSummary:
        """Two runs of a plan side by side: `run_id` judged against `baseline_run_id`, per
        endpoint and SLI, with each change's significance."""
        body = {"run_id": run_id, "baseline_run_ids": [baseline_run_id]}
        return _analysis(await call(ctx, "POST", "/analyse", json=body))

    @server.tool()
    async def budget_start(
        plan_id: str,
        target_ms: Annotated[float, Field(gt=0, description="Met when p95 is below this")],
        endpoint: Annotated[str | None, Field(description="A step; null: all requests")] = None,
        sli: Annotated[str, Field(description="p95 (or p50, p90, p99, avg, max)")] = "p95",
        max_iterations: Annotated[int, Field(ge=1, le=50)] = 10,
        ctx: Ctx = None,
    ) -> BudgetState:
        """Start the API Performance Budget loop; then call budget_next once per change."""
        body = {
            "plan_id": plan_id,
            "target_ms": target_ms,
            "endpoint": endpoint,
            "sli": sli,
            "max_iterations": max_iterations,
        }
        return _budget(await call(ctx, "POST", "/budgets", json=body))

    @server.tool()
    async def budget_status(budget_id: str, ctx: Ctx = None) -> BudgetState:
        """The loop so far: each iteration's value, change and its significance, top finding."""
        return _budget(await call(ctx, "GET", f"/budgets/{budget_id}"))

    @server.tool()
    async def budget_next(
        budget_id: str,
        auto_approve: bool = False,
        timeout_s: Timeout = 900,
        ctx: Ctx = None,
    ) -> BudgetState:
        """The next iteration: run the budget's plan, wait, and record it (judged against the
        previous iteration). Stop when status is met or exhausted."""
        state = await call(ctx, "GET", f"/budgets/{budget_id}")
        if state["status"] != "running":
            raise ToolError(
                f"budget.finished: the budget is {state['status']}; start a new one to go on"
            )
        run = await call(
            ctx,
            "POST",
            "/execute",
            json={"plan_id": state["plan_id"], "auto_approve": auto_approve},
        )
        run = await wait_for(ctx, run["id"], timeout_s)
        if not run.get("finished"):
            raise ToolError(f"run.not_finished: run {run['id']} is still {run['status']}")
        if run["status"] == "failed":
            raise ToolError(f"run.failed: run {run['id']} failed: {run.get('error')}")
        body = await call(
            ctx, "POST", f"/budgets/{budget_id}/iterations", json={"run_id": run["id"]}
        )
        return _budget(body)

    return server
