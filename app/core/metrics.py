"""The service's Prometheus metrics, all of them (``GET /metrics``; README "Metrics").

Two kinds, and the HELP text of each says which:

- **process-local** counters and histograms, below: what *this* process saw (its HTTP
  requests, and what its workers did — claims, k6 points, refusals). With several API
  processes each is scraped on its own and Prometheus sums them; a standalone
  ``perf-agent worker`` serves no ``/metrics``, so its share is not exposed.
- **from the database at scrape time** (:func:`database_families`): runs by state, the queue,
  and the latest finished run's figures and verdict per plan — the same whichever process is
  scraped. ``app/health/router.py`` runs the queries and hands plain rows here; this module
  knows no model.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

LOCAL = "(this process only)"
LOCAL_WORKER = "(by this process's workers only)"
FROM_DB = "(from the database at scrape time: the same in every process)"

# --- counted where it happens -------------------------------------------------------------

RUNS_QUEUED = Counter("perf_agent_runs_queued_total", f"Runs queued for execution {LOCAL}")
RUNS_FINISHED = Counter(
    "perf_agent_runs_finished_total", f"Runs finished {LOCAL_WORKER}", ["status"]
)
ANALYSES = Counter("perf_agent_analyses_total", f"Analyses produced {LOCAL}", ["verdict"])
VERDICT_NOTIFICATIONS = Counter(
    "perf_agent_verdict_notifications_total",
    f"Verdict webhook calls {LOCAL}: sent, failed (the receiver), refused (the outbound policy)",
    ["outcome"],
)
BUDGET_ALERTS = Counter(
    "perf_agent_budget_alerts_total",
    f"Runs that reached 80 % of their cost budget {LOCAL_WORKER}",
    ["resource"],
)
BUDGET_STOPS = Counter(
    "perf_agent_budget_stops_total",
    f"Runs stopped at 100 % of their cost budget {LOCAL_WORKER}",
    ["resource"],
)
RECOMMENDATION_FEEDBACK = Counter(
    "perf_agent_recommendation_feedback_total",
    f"Engineers' verdicts on analysis recommendations {LOCAL}",
    ["verdict", "kind"],
)

# The route label is the route's template (``/runs/{run_id}``), never the raw path; a request
# no route matched is UNMATCHED. Measured to the response's start (its status and headers), so
# a server-sent-event stream counts the time to its first byte, not how long it stayed open.
UNMATCHED = "unmatched"
SHED = Counter(
    "perf_agent_http_shed_total",
    f"Requests answered 503 + Retry-After because this process was at capacity {LOCAL}",
    ["reason"],
)
HTTP_REQUEST_DURATION = Histogram(
    "perf_agent_http_request_duration_seconds",
    f"Seconds from a request's arrival to its response's start (status line) {LOCAL}",
    ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
CLAIM_LATENCY = Histogram(
    "perf_agent_run_claim_latency_seconds",
    f"Seconds from a run's queueing to a worker's claim of it {LOCAL_WORKER}",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
K6_POINTS = Counter(
    "perf_agent_k6_points_ingested_total",
    f"k6 metric points decoded from k6's live stream; rate() is the ingestion rate {LOCAL_WORKER}",
)
ANALYSIS_DURATION = Histogram(
    "perf_agent_analysis_duration_seconds",
    f"Seconds one analysis took, LLM narrative included {LOCAL}",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
LLM_CALLS = Counter(
    "perf_agent_llm_calls_total",
    "Model calls by provider and outcome (ok; not_configured, timeout, provider_error, "
    f"invalid_output: the caller fell back) {LOCAL}",
    ["provider", "outcome"],
)
LLM_CALL_DURATION = Histogram(
    "perf_agent_llm_call_duration_seconds",
    f"Seconds one model call took, by provider and outcome {LOCAL}",
    ["provider", "outcome"],
    buckets=(0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60),
)
GUARDRAIL_REFUSALS = Counter(
    "perf_agent_guardrail_refusals_total",
    "Guardrail refusals by code: at=request a 4xx problem answered, at=claim a run refused "
    f"when a worker claimed it {LOCAL}",
    ["code", "at"],
)
SANDBOX_FAILURES = Counter(
    "perf_agent_sandbox_failures_total",
    "Runs refused at claim for want of the k6 sandbox (sandbox.unavailable, "
    f"guardrail.unsandboxed_script) {LOCAL_WORKER}",
    ["code"],
)
EGRESS_BLOCKED = Counter(
    "perf_agent_egress_blocked_total",
    "Connection attempts of k6 outside the target refused by its address blacklist or the "
    f"sandbox {LOCAL_WORKER}",
)
FORWARDED_PUSHES = Counter(
    "perf_agent_forwarded_pushes_total",
    "k6 remote-write pushes forwarded to a configured Prometheus, by outcome (sent, failed, "
    f"dropped: the queue was full) {LOCAL_WORKER}",
    ["outcome"],
)
REMOTE_WRITE_PUSHES = Counter(
    "perf_agent_remote_write_pushes_total",
    f"k6 remote-write pushes the worker's receiver took in (live ingestion) {LOCAL_WORKER}",
)
SANDBOX_CODES = frozenset({"sandbox.unavailable", "guardrail.unsandboxed_script"})


def count_run_refusal(code: str) -> None:
    """A run refused when a worker claimed it (its ``refused`` event)."""
    GUARDRAIL_REFUSALS.labels(code=code, at="claim").inc()
    if code in SANDBOX_CODES:
        SANDBOX_FAILURES.labels(code=code).inc()


# --- read from the database at scrape time ------------------------------------------------

RUN_STATES = ("queued", "running", "succeeded", "failed", "aborted", "timed_out", "partial")
VERDICTS = ("pass", "warning", "fail", "inconclusive")  # analysis.schemas.Verdict
MAX_RESULT_SERIES = 2000  # (plan, environment, endpoint) rows exposed at most, newest first
RESULTS_WINDOW_DAYS = 7  # only plans with a run finished this recently


@dataclass(frozen=True)
class LatestResult:
    """One endpoint's figures in the latest finished run of a plan in an environment."""

    plan: str
    environment: str
    endpoint: str
    p95_ms: float | None
    p99_ms: float | None
    error_rate: float
    requests: int
    finished_at: float  # epoch seconds


@dataclass(frozen=True)
class PlanVerdict:
    plan: str
    environment: str
    verdict: str
    # The saturation knee that analysis found, if the run's load varied enough to have one.
    knee_rps: float | None = None
    knee_load: float | None = None
    load_metric: str | None = None  # "vus" or "rps"


@dataclass(frozen=True)
class DatabaseSnapshot:
    runs_by_state: dict[str, int]
    oldest_queued_age_s: float | None
    results: Sequence[LatestResult]
    verdicts: Sequence[PlanVerdict]
    results_truncated: bool


def database_families(snapshot: DatabaseSnapshot | None) -> list[Metric]:
    """The database's figures as metric families (label values are escaped on output);
    ``None``: the database did not answer, and only that is said."""
    up = GaugeMetricFamily(
        "perf_agent_metrics_database_up",
        "1 when this scrape could read the database's figures, 0 when they are missing",
    )
    up.add_metric([], 0 if snapshot is None else 1)
    if snapshot is None:
        return [up]
    runs = GaugeMetricFamily("perf_agent_runs", f"Runs in each state {FROM_DB}", labels=["state"])
    for state in RUN_STATES:
        runs.add_metric([state], snapshot.runs_by_state.get(state, 0))
    queue = GaugeMetricFamily("perf_agent_queue_depth", f"Runs queued, not yet claimed {FROM_DB}")
    queue.add_metric([], snapshot.runs_by_state.get("queued", 0))
    oldest = GaugeMetricFamily(
        "perf_agent_queue_oldest_age_seconds",
        f"Age of the oldest queued run, 0 when none {FROM_DB}",
    )
    oldest.add_metric([], snapshot.oldest_queued_age_s or 0.0)

    window = f"in the last {RESULTS_WINDOW_DAYS} days"
    keys = ["plan", "environment", "endpoint"]
    p95 = GaugeMetricFamily(
        "perf_agent_latest_run_p95_seconds",
        f"p95 latency of the latest finished run of each plan {window}, per endpoint ('*': all "
        f"requests) {FROM_DB}",
        labels=keys,
    )
    p99 = GaugeMetricFamily(
        "perf_agent_latest_run_p99_seconds",
        f"p99 latency of the latest finished run of each plan {window}, per endpoint {FROM_DB}",
        labels=keys,
    )
    errors = GaugeMetricFamily(
        "perf_agent_latest_run_error_ratio",
        f"Failed requests / requests of the latest finished run of each plan {window}, per "
        f"endpoint {FROM_DB}",
        labels=keys,
    )
    requests = GaugeMetricFamily(
        "perf_agent_latest_run_requests",
        f"Requests of the latest finished run of each plan {window}, per endpoint {FROM_DB}",
        labels=keys,
    )
    finished = GaugeMetricFamily(
        "perf_agent_latest_run_finished_timestamp_seconds",
        f"When the run those figures come from finished (Unix time) {FROM_DB}",
        labels=keys,
    )
    for row in snapshot.results:
        labels = [row.plan, row.environment, row.endpoint]
        if row.p95_ms is not None:
            p95.add_metric(labels, row.p95_ms / 1000)
        if row.p99_ms is not None:
            p99.add_metric(labels, row.p99_ms / 1000)
        errors.add_metric(labels, row.error_rate)
        requests.add_metric(labels, row.requests)
        finished.add_metric(labels, row.finished_at)
    truncated = GaugeMetricFamily(
        "perf_agent_latest_run_series_truncated",
        f"1 when more than {MAX_RESULT_SERIES} (plan, environment, endpoint) series existed and "
        f"only the newest were exposed {FROM_DB}",
    )
    truncated.add_metric([], 1 if snapshot.results_truncated else 0)
    verdict = GaugeMetricFamily(
        "perf_agent_plan_verdict",
        f"The latest analysis verdict of each plan {window}: 1 for the verdict it has, 0 for "
        f"the others {FROM_DB}",
        labels=["plan", "environment", "verdict"],
    )
    knee_rps = GaugeMetricFamily(
        "perf_agent_plan_knee_rps",
        f"Throughput at the saturation knee the latest analysis of each plan found {window} "
        f"(absent: no knee, or the load did not vary) {FROM_DB}",
        labels=["plan", "environment"],
    )
    knee_load = GaugeMetricFamily(
        "perf_agent_plan_knee_load",
        f"Load (VUs, or requests/s offered: load_metric) at that knee {FROM_DB}",
        labels=["plan", "environment", "load_metric"],
    )
    for judged in snapshot.verdicts:
        for name in VERDICTS:
            verdict.add_metric([judged.plan, judged.environment, name], int(judged.verdict == name))
        if judged.knee_rps is not None:
            knee_rps.add_metric([judged.plan, judged.environment], judged.knee_rps)
        if judged.knee_load is not None:
            metric = judged.load_metric or ""
            knee_load.add_metric([judged.plan, judged.environment, metric], judged.knee_load)
    return [
        up, runs, queue, oldest, p95, p99, errors, requests, finished, truncated, verdict,
        knee_rps, knee_load,
    ]  # fmt: skip


class _Families(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self.families


def registry_of(families: Iterable[Metric]) -> CollectorRegistry:
    """A registry of one scrape's families, for ``generate_latest`` to render."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    return registry
