"""Prometheus metrics of this process (``GET /metrics``)."""

from __future__ import annotations

from prometheus_client import Counter

RUNS_QUEUED = Counter("perf_agent_runs_queued_total", "Runs queued for execution")
RUNS_FINISHED = Counter(
    "perf_agent_runs_finished_total", "Runs finished by this process's workers", ["status"]
)
ANALYSES = Counter("perf_agent_analyses_total", "Analyses produced", ["verdict"])
