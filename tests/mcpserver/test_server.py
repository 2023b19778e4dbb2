"""The MCP tools, driven by the official SDK's own client: in process, over stdio as an agent
starts `perf-agent mcp`, and over streamable HTTP with each caller's key."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import httpx2
import pytest
import yaml
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.cli import stop_process
from app.core.auth import Scope
from app.mcpserver.server import build_server
from tests.conftest import free_port, live_key

TOOLS = {
    "plan_from_script", "plan_from_document", "plan_from_openapi", "dry_run", "execute", "wait",
    "analyse", "compare", "budget_start", "budget_status", "budget_next",
}  # fmt: skip


@pytest.fixture
def key(database_url: str, committed: async_sessionmaker[AsyncSession]) -> str:
    return live_key(database_url)


def shop_plan(target: str) -> str:
    return yaml.safe_dump(
        {
            "name": "agent-shop",
            "target": {"base_url": target, "environment": "local"},
            "endpoints": [
                {"name": "product", "path": "/api/products/1"},
                {"name": "recent_orders", "path": "/api/orders/recent"},
            ],
            "load": {"vus": 2, "duration": "6s"},
            "slos": ["p95 < 2000ms", "error_rate < 1%"],
        }
    )


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def refused(client: Client, tool: str, **arguments: Any) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error
    return " ".join(getattr(c, "text", "") for c in result.content)


@pytest.mark.k6
async def test_an_agent_plans_runs_analyses_compares_and_budgets_the_demo_shop(
    service: str, key: str, demo_target: str
) -> None:
    async with Client(build_server(service, key)) as client:
        listed = await client.list_tools()
        assert {t.name for t in listed.tools} == TOOLS
        assert all(t.output_schema for t in listed.tools)  # typed outputs, not just text

        plan = await call(client, "plan_from_document", document=shop_plan(demo_target))
        assert plan["status"] == "draft"
        assert plan["steps"] == ["product", "recent_orders"]
        checked = await call(client, "dry_run", plan_id=plan["plan_id"])
        assert checked["ok"], checked
        assert [s["step"] for s in checked["steps"]] == ["product", "recent_orders"]

        first = await call(client, "execute", plan_id=plan["plan_id"], auto_approve=True)
        done = await call(client, "wait", run_id=first["run_id"], timeout_s=120)
        assert done["finished"], done
        assert done["status"] == "succeeded", done
        assert done["p95_ms"] > 0
        assert set(done["endpoints"]) == {"product", "recent_orders"}
        judged = await call(client, "analyse", run_id=first["run_id"])
        assert judged["verdict"] in ("pass", "warning", "inconclusive"), judged
        assert {o["objective"] for o in judged["objectives"]} == {"p95 < 2000ms", "error_rate < 1%"}

        budget = await call(
            client, "budget_start", plan_id=plan["plan_id"], target_ms=5000, max_iterations=2
        )
        assert budget["status"] == "running"
        after = await call(client, "budget_next", budget_id=budget["budget_id"], timeout_s=120)
        assert after["status"] == "met"
        assert after["iterations"][0]["value_ms"] < 5000
        again = await refused(client, "budget_next", budget_id=budget["budget_id"])
        assert "budget.finished" in again

        second_run = after["iterations"][0]["run_id"]
        compared = await call(client, "compare", baseline_run_id=first["run_id"], run_id=second_run)
        assert compared["run_id"] == second_run


async def test_refusals_carry_the_services_code_and_reason(
    service: str, key: str, database_url: str
) -> None:
    reader = live_key(database_url, owner="reader@example.com", scopes=(Scope.read,))
    denied_host = shop_plan("http://api.prod.example.com")

    async with Client(build_server(service, key)) as client:
        text = await refused(client, "plan_from_document", document=denied_host)
        unclear = await refused(
            client,
            "plan_from_script",
            script="import http from 'k6/http';\nexport default () => http.get(__ENV.URL);\n",
        )
    async with Client(build_server(service, reader)) as client:
        scoped = await refused(client, "execute", plan_id="00000000-0000-0000-0000-000000000000")

    assert "guardrail.host_denied" in text
    assert "plan.target_unclear: give the target URL: the script names no http(s) URL" in unclear
    assert "auth.scope_missing" in scoped
    assert "execute" in scoped


async def test_perf_agent_mcp_serves_the_tools_over_stdio(service: str, key: str) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "app.cli", "mcp", "--api", service],
        env={"PERF_AGENT_API_KEY": key, "PATH": "/usr/bin:/bin"},
    )
    async with Client(params) as client:
        listed = await client.list_tools()
        unknown = await refused(
            client, "budget_status", budget_id="00000000-0000-0000-0000-000000000000"
        )

    assert {t.name for t in listed.tools} == TOOLS
    assert "budget.not_found" in unknown


@contextlib.contextmanager
def listening(argv: list[str], port: int) -> Iterator[str]:
    """A server subprocess, once it answers HTTP at all on 127.0.0.1:port."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/mcp", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)


async def test_over_http_each_caller_acts_with_its_own_key(service: str, database_url: str) -> None:
    reader = live_key(database_url, owner="reader@example.com", scopes=(Scope.read,))
    port = free_port()
    argv = [sys.executable, "-m", "app.cli", "mcp", "--api", service,
            "--transport", "streamable-http", "--port", str(port)]  # fmt: skip
    # No key of its own: what a caller may do is what the caller's key may do.
    with listening(argv, port) as url:
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {reader}"}, timeout=30)
        async with Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client:
            unknown = await refused(
                client, "budget_status", budget_id="00000000-0000-0000-0000-000000000000"
            )
            scoped = await refused(
                client, "execute", plan_id="00000000-0000-0000-0000-000000000000"
            )
        anonymous = httpx2.AsyncClient(timeout=30)
        async with Client(streamable_http_client(f"{url}/mcp", http_client=anonymous)) as client:
            nobody = await refused(
                client, "budget_status", budget_id="00000000-0000-0000-0000-000000000000"
            )

    assert "budget.not_found" in unknown  # the reader's key was accepted for reading
    assert "auth.scope_missing" in scoped
    assert "auth.missing_key" in nobody
