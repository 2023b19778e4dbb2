"""A small client of perf-agent's own HTTP API: what the demo, the benchmarks and CI scripts do
(store a plan, approve it, run it, wait, analyse) in one place."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx

API = "/api/agents/performance-agent"
_ORIGIN = re.compile(r"""\bhttps?://[^\s'"`/?#]+""")


def script_origins(text: str) -> list[str]:
    """The origins (``http://host:port``) a k6 script's URL literals name."""
    return sorted({m.group(0).rstrip(".,;)") for m in _ORIGIN.finditer(text)})


def script_plan(text: str, *, name: str, target: str | None = None) -> dict[str, Any]:
    """A plan that runs a k6 script as it is. Its target (what the guardrails check and the
    sandbox lets k6 reach) is ``target``, else the one origin the script's URLs name."""
    origins = script_origins(text)
    if target is None and len(origins) != 1:
        raise ValueError(
            "give the target URL: the script names "
            + (f"several origins ({', '.join(origins)})" if origins else "no http(s) URL")
        )
    return {
        "name": name,
        "description": "a k6 script, run as written",
        "target": {"base_url": target or origins[0]},
        "script": text,
    }


class PerfAgentClient:
    """``api_key`` is sent as ``Authorization: Bearer <key>`` on every request."""

    def __init__(
        self, base_url: str, *, api_key: str | None = None, timeout_s: float = 60.0
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(
            base_url=base_url.rstrip("/") + API, headers=headers, timeout=timeout_s
        )

    def __enter__(self) -> PerfAgentClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def create_plan(self, document: dict[str, Any] | str) -> dict[str, Any]:
        """A plan from a dict (sent as JSON) or YAML text."""
        if isinstance(document, str):
            response = self.http.post(
                "/plan", content=document, headers={"Content-Type": "application/yaml"}
            )
        else:
            response = self.http.post("/plan", json=document)
        plan: dict[str, Any] = response.raise_for_status().json()
        return plan

    def review(
        self, plan_id: str, action: str, *, reviewer: str | None = None, comment: str | None = None
    ) -> None:
        """``approve`` or ``archive`` a plan version. The service records the key's owner as
        the reviewer; ``reviewer`` is accepted for older callers and not sent."""
        self.http.post(
            f"/plans/{plan_id}/review", json={"action": action, "comment": comment}
        ).raise_for_status()

    def approve(
        self, plan_id: str, *, reviewer: str | None = None, comment: str | None = None
    ) -> None:
        self.review(plan_id, "approve", comment=comment)

    def create_version(self, plan_id: str, document: str) -> dict[str, Any]:
        """The document (YAML or JSON text) as the next version of a plan, a draft."""
        response = self.http.post(
            f"/plans/{plan_id}/versions",
            content=document,
            headers={"Content-Type": "application/yaml"},
        )
        plan: dict[str, Any] = response.raise_for_status().json()
        return plan

    def execute(self, plan_id: str, *, auto_approve: bool = False) -> dict[str, Any]:
        """Queue a run; ``auto_approve`` approves a draft on the way (the key needs the
        ``approve`` scope as well as ``execute``)."""
        body = {"plan_id": plan_id, "auto_approve": auto_approve}
        run: dict[str, Any] = self.http.post("/execute", json=body).raise_for_status().json()
        return run

    def wait(
        self, run_id: str, *, poll_s: float = 0.5, timeout_s: float | None = None
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s if timeout_s else None
        while True:
            run = self.get_run(run_id)
            if run["finished"]:
                return run
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} still {run['status']} after {timeout_s:g}s")
            time.sleep(poll_s)

    def get_run(self, run_id: str) -> dict[str, Any]:
        run: dict[str, Any] = self.http.get(f"/runs/{run_id}").raise_for_status().json()
        return run

    def events(self, run_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """The run's server-sent events as (event, data) until its ``end`` event. The server
        sends a comment at least every 15 s, so a read that waits a minute means it is gone."""
        timeout = httpx.Timeout(self.http.timeout.connect, read=60.0)
        with self.http.stream("GET", f"/runs/{run_id}/stream", timeout=timeout) as response:
            response.raise_for_status()
            event, data = "message", ""
            for line in response.iter_lines():
                if not line:
                    if data:
                        yield event, json.loads(data)
                        if event == "end":
                            return
                    event, data = "message", ""
                elif line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data += ("\n" if data else "") + line[5:].strip()

    def run_approved(
        self, document: dict[str, Any] | str, *, reviewer: str | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Store, approve, execute and wait: (plan, finished run)."""
        plan = self.create_plan(document)
        self.approve(plan["id"])
        run = self.wait(self.execute(plan["id"])["id"])
        return plan, run

    def analyse(self, run_id: str, *, baseline_run_ids: list[str] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"run_id": run_id}
        if baseline_run_ids:
            body["baseline_run_ids"] = baseline_run_ids
        analysis: dict[str, Any] = self.http.post("/analyse", json=body).raise_for_status().json()
        return analysis

    def report(self, analysis_id: str, *, kind: str = "md") -> str:
        return self.http.get(f"/analyses/{analysis_id}/report.{kind}").raise_for_status().text

    # The CI formats an analysis is downloadable in: each file's name is its route's.
    CI_FILES = ("junit.xml", "summary.md", "load-performance.json")

    def ci_file(self, analysis_id: str, name: str) -> str:
        return self.http.get(f"/analyses/{analysis_id}/{name}").raise_for_status().text
