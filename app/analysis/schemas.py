from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.analysis.narrative import Narrative
from app.analysis.saturation import Saturation

# inconclusive: the measurement itself is in doubt (the load generator was saturated or
# disturbed); retry on a quieter machine rather than act on it.
Verdict = Literal["pass", "warning", "fail", "inconclusive"]


class AnalyseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_id: uuid.UUID
    baseline_run_ids: list[uuid.UUID] | None = Field(
        default=None,
        max_length=20,
        description="Runs of the same plan to compare with. Unset: the plan's promoted "
        "baseline for the run's environment, else its last 3 runs whose analysis passed.",
    )


Model = Literal["open", "closed", "unknown"]


class LoadSide(BaseModel):
    rps: float | None = Field(default=None, description="Requests per second (k6's http_reqs)")
    iterations_per_s: float | None = None
    dropped_iterations: int = 0
    vus_max: int | None = None
    offered: float | None = Field(
        default=None,
        description="What the plan asked for: peak VUs (closed model) or iterations/s (open)",
    )


class LoadComparison(BaseModel):
    """The run's load against its baselines' (their median)."""

    model: Model
    current: LoadSide
    baseline: LoadSide | None = None
    change: dict[str, float | None] = Field(
        default_factory=dict, description="Relative change of rps, iterations_per_s, offered"
    )
    changed: bool = Field(False, description="The load differs materially from the baseline's")
    offered_changed: bool = Field(False, description="The plan asked for a different load")
    reasons: list[str] = Field(default_factory=list)


Status = Literal["healthy", "saturated", "disturbed", "unknown"]


class LoadGenerator(BaseModel):
    """The generator's health over one run."""

    status: Status
    reasons: list[str] = Field(default_factory=list)
    seconds: int = Field(0, description="Steady seconds with a reading")
    cores: int | None = None
    k6_cpu_percent: dict[str, float] | None = Field(
        default=None, description="k6's CPU, percent of one core: median, p95, max"
    )
    other_cpu_percent: dict[str, float] | None = Field(
        default=None, description="Other processes' CPU, percent of one core: mean, p90, max"
    )
    machine_cpu_percent: dict[str, float] | None = Field(
        default=None, description="The machine's busy CPU, percent of all cores: median, p95"
    )
    k6_rss_mb_max: float | None = None
    k6_wait_ratio: float | None = Field(
        default=None,
        description="How long k6's threads waited for a CPU per second they ran (median)",
    )
    dropped_iterations: int | None = None
    k6_warnings: dict[str, int] = Field(default_factory=dict)

    @property
    def trustworthy(self) -> bool:
        return self.status in ("healthy", "unknown")


class SloResult(BaseModel):
    """One objective judged: which number was compared with which target, and how."""

    key: str
    objective: str = Field(description="e.g. 'p95 < 300ms', 'p95 <= +10%'")
    endpoint: str | None = Field(description="null: all requests")
    sli: str
    op: str
    target: float | None = Field(description="The absolute criterion's target; null if none")
    unit: str
    measured: float | None = Field(description="null: k6 measured nothing for this SLI")
    status: Literal["pass", "warning", "fail", "no_data"]
    source: str = Field(description="The k6 metric and statistic the measurement came from")
    k6_threshold_ok: bool | None = Field(description="k6's own verdict on the same threshold")
    baseline: float | None = Field(
        default=None, description="Median of the baseline runs' values, for a relative criterion"
    )
    change: float | None = Field(default=None, description="(measured − baseline) / baseline")
    warning: str | None = Field(default=None, description="The warning criterion, if any")
    weight: int = 1
    key_sli: bool = False
    score: float = Field(default=0, description="Points earned: weight, half on a warning")
    absolute_ok: bool | None = Field(
        default=None, description="Whether the absolute criterion held (k6 judged the same)"
    )
    note: str | None = None


class Score(BaseModel):
    """Keptn's total score over the objectives, with the plan's targets."""

    value: float = Field(description="Points earned / points possible × 100")
    pass_target: float
    warning_target: float
    result: Literal["pass", "warning", "fail"]
    failed_key_slis: list[str] = Field(default_factory=list)


class Finding(BaseModel):
    kind: str
    severity: Literal["info", "warning", "critical"]
    endpoint: str | None = None
    summary: str
    evidence: dict[str, float | int | str | None] = Field(default_factory=dict)
    recommendation: str | None = None
    recommendation_id: str | None = Field(
        default=None,
        description="Where engineers give feedback: "
        "POST /analyses/{id}/recommendations/{recommendation_id}/feedback",
    )


class Comparison(BaseModel):
    """One endpoint's SLI against the baseline runs: the numbers, the test and its outcome."""

    endpoint: str = Field(description="'*': all requests")
    sli: str = Field(description="p50, p95, p99 (ms), error_rate (0–1) or rps (requests/s)")
    baseline: float | None = Field(description="Median over the baseline runs' whole-run values")
    current: float | None
    change: float | None = Field(description="(current − baseline) / baseline")
    p_value: float | None
    effect_size: float | None = Field(
        description="Cliff's δ of the per-second values (latency); the difference in rates "
        "(error_rate)"
    )
    verdict: Literal[
        "regression",
        "improvement",
        "unchanged",
        "insufficient_data",
        "explained_by_load",
        "inconclusive",
    ] = Field(
        description="explained_by_load: changed in the direction the load changed (see "
        "`load`); inconclusive: the load generator was unhealthy in one of the runs"
    )
    method: str
    n_current: int = Field(description="Seconds (latency) or requests (error_rate) of the run")
    n_baseline: int
    baseline_run_ids: list[uuid.UUID] | None = Field(
        default=None,
        description="Set when this endpoint was compared with its scenario's own baseline",
    )
    explained_by_load: bool = Field(
        default=False, description="The change follows the load's change between the runs"
    )
    interval: list[float] | None = Field(
        default=None,
        description="99 % interval of the relative change (block bootstrap over seconds)",
    )
    threshold: float | None = Field(
        default=None,
        description="The practical change this comparison needed (relative): the SLI's floor "
        "or the baselines' run-to-run spread",
    )
    watch: bool = Field(
        default=False,
        description="A change that is there but under the threshold or within the noise",
    )


class AnalysisBrief(BaseModel):
    """One analysis in a run's list; the whole of it at ``links.self``."""

    id: uuid.UUID
    run_id: uuid.UUID
    verdict: str
    created_at: datetime
    links: dict[str, str]


class AnalysisOut(BaseModel):
    id: uuid.UUID
    run_id: uuid.UUID
    baseline_run_id: uuid.UUID | None = Field(description="The first of baseline_run_ids")
    baseline_run_ids: list[uuid.UUID] = Field(
        default_factory=list, description="Every run this one was compared with"
    )
    baseline_source: str | None = Field(
        default=None,
        description="requested, promoted, last_passing, or history (imported or past values)",
    )
    comparisons: list[Comparison] = Field(default_factory=list)
    score: Score | None = None
    history_shifts: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Lasting shifts in the plan's history (p95, error rate), this run included",
    )
    system_metrics: dict[str, Any] | None = Field(
        default=None,
        description="The target's CPU and memory (psutil, when on the worker's machine) and the "
        "plan's Prometheus series over the run: median, p95, max, correlation with throughput "
        "and p95",
    )
    saturation: Saturation | None = Field(
        default=None, description="The knee of a run whose load varied (ramp, stress, …)"
    )
    load: LoadComparison | None = Field(
        default=None,
        description="The run's load (throughput, iterations, VUs) against its baselines'",
    )
    profile: dict[str, Any] | None = Field(
        default=None,
        description="What the worker's profilers found in the run's steady middle: per source "
        "(py-spy, pprof, pg_stat_statements) its status, top functions and queries, and the "
        "hot spots (function, file:line, the SQL it runs, whether a loop runs it)",
    )
    load_generator: LoadGenerator | None = Field(
        default=None,
        description="k6's own health during the run: saturated or disturbed makes the "
        "verdict 'inconclusive'",
    )
    narrative: Narrative | None = Field(
        default=None,
        description="A model's explanation of the findings; every number in it was checked "
        "against the data. Null when missing: see narrative_meta.status and .reason",
    )
    narrative_meta: dict[str, Any] | None = None
    created_at: datetime
    verdict: Verdict
    slo_results: list[SloResult]
    findings: list[Finding]
    warnings: list[str]
    links: dict[str, str]


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verdict: Literal["accepted", "rejected"]
    comment: str | None = Field(default=None, max_length=2000)
    author: str | None = Field(default=None, max_length=200)


class FeedbackOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    analysis_id: uuid.UUID
    recommendation_id: str
    kind: str
    verdict: str
    comment: str | None
    author: str | None
    created_at: datetime


class AcceptanceRate(BaseModel):
    accepted: int
    rejected: int
    acceptance_rate: float | None = Field(description="accepted / (accepted + rejected)")


class RecommendationKPI(AcceptanceRate):
    """How often engineers accept the analyses' recommendations (seed §7), overall and per
    finding kind; each recommendation counts once, with its latest verdict."""

    by_kind: dict[str, AcceptanceRate]


class RunComparison(BaseModel):
    """Run ``b`` against run ``a`` with the analysis' own statistics, nothing stored."""

    a: uuid.UUID = Field(description="The reference run")
    b: uuid.UUID = Field(description="The run compared with it")
    plan_id: uuid.UUID
    regressions: int
    improvements: int
    comparisons: list[Comparison] = Field(
        description="Per endpoint and SLI: a's value (baseline), b's (current), the change, "
        "its 99 % interval, p and verdict; throughput as the `rps` row"
    )
    load: LoadComparison | None = Field(description="The two runs' load: throughput, VUs …")
    doubt: str | None = Field(
        default=None,
        description="Why the comparison is inconclusive (the load generator was unhealthy in "
        "one of the runs); null when it can be trusted",
    )
    warnings: list[str] = Field(default_factory=list)
