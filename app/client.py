"""A small client of perf-agent's own HTTP API: what the demo, the benchmarks and CI scripts do
(store a plan, approve it, run it, wait, analyse) in one place."""

from __future__ import annotations

import time
from typing import Any

import httpx

API = "/api/agents/performance-agent"
FINISHED = ("succeeded", "failed", "aborted", "timed_out", "partial")


class PerfAgentClient:
    def __init__(self, base_url: str, *, timeout_s: float = 60.0) -> None:
        self.http = httpx.Client(base_url=base_url.rstrip("/") + API, timeout=timeout_s)

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

    def approve(self, plan_id: str, *, reviewer: str, comment: str | None = None) -> None:
        self.http.post(
            f"/plans/{plan_id}/review",
            json={"action": "approve", "reviewer": reviewer, "comment": comment},
        ).raise_for_status()

    def execute(self, plan_id: str) -> dict[str, Any]:
        run: dict[str, Any] = (
            self.http.post("/execute", json={"plan_id": plan_id}).raise_for_status().json()
        )
        return run

    def wait(self, run_id: str, *, poll_s: float = 0.5) -> dict[str, Any]:
        while True:
            run: dict[str, Any] = self.http.get(f"/runs/{run_id}").raise_for_status().json()
            if run["status"] in FINISHED:
                return run
            time.sleep(poll_s)

    def run_approved(
        self, document: dict[str, Any] | str, *, reviewer: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Store, approve, execute and wait: (plan, finished run)."""
        plan = self.create_plan(document)
        self.approve(plan["id"], reviewer=reviewer)
        run = self.wait(self.execute(plan["id"])["id"])
        return plan, run

    def analyse(self, run_id: str) -> dict[str, Any]:
        analysis: dict[str, Any] = (
            self.http.post("/analyse", json={"run_id": run_id}).raise_for_status().json()
        )
        return analysis

    def report(self, analysis_id: str) -> str:
        return self.http.get(f"/analyses/{analysis_id}/report.md").raise_for_status().text
