"""Prometheus metrics of this process (``GET /metrics``)."""

from __future__ import annotations

from prometheus_client import Counter

RUNS_QUEUED = Counter("perf_agent_runs_queued_total", "Runs queued for execution")
RUNS_FINISHED = Counter(
    "perf_agent_runs_finished_total", "Runs finished by this process's workers", ["status"]
)
ANALYSES = Counter("perf_agent_analyses_total", "Analyses produced", ["verdict"])
BUDGET_ALERTS = Counter(
    "perf_agent_budget_alerts_total", "Runs that reached 80 % of their cost budget", ["resource"]
)
BUDGET_STOPS = Counter(
    "perf_agent_budget_stops_total", "Runs stopped at 100 % of their cost budget", ["resource"]
)
RECOMMENDATION_FEEDBACK = Counter(
    "perf_agent_recommendation_feedback_total",
    "Engineers' verdicts on analysis recommendations",
    ["verdict", "kind"],
)
