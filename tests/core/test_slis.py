"""Every consumer of the SLI table knows every row: a new indicator added to
``app/core/slis.py`` fails here, naming what lacks it, instead of a KeyError in a run."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import TypeAdapter, ValidationError

from app.analysis.evaluate import evaluate_slo
from app.baselines import history
from app.baselines.schemas import HistorySeries
from app.core import slis
from app.k6.process import TREND_STATS
from app.models import RunResult
from app.plans.k6script import slo_threshold
from app.plans.schemas import SLO, parse_slo_text
from app.runs.histogram import Histogram
from app.runs.live import LiveMetrics
from app.runs.summary import endpoint_result

TARGETS = {"latency": "< 300ms", "error_rate": "< 1%", "throughput": "> 5"}


def objective(sli: slis.SLI, name: str | None = None) -> str:
    return f"{name or sli.name} {TARGETS[sli.kind]}"


def full_result(endpoint: str = RunResult.ALL) -> RunResult:
    columns = {sli.column: 1.0 + i for i, sli in enumerate(slis.TABLE)}
    return RunResult(endpoint=endpoint, requests=100, failures=1, **columns)


def k6_trend(value: float = 12.5) -> dict[str, float]:
    return dict.fromkeys(TREND_STATS, value)


@pytest.mark.parametrize("sli", slis.TABLE, ids=lambda s: s.name)
def test_every_sli_and_alias_is_an_objective_a_plan_can_name(sli: slis.SLI) -> None:
    for name in (sli.name, *sli.aliases):
        parsed = parse_slo_text(objective(sli, name))
        assert parsed["sli"] == sli.name
        assert SLO.model_validate(parsed).unit == sli.unit


def test_the_plan_schema_lists_every_sli_and_refuses_others() -> None:
    schema = TypeAdapter(slis.SliName).json_schema()
    assert schema["enum"] == list(slis.NAMES)
    with pytest.raises(ValidationError, match="unknown indicator"):
        SLO.model_validate({"sli": "p99.9", "op": "<", "target": 5})


@pytest.mark.parametrize("sli", slis.TABLE, ids=lambda s: s.name)
def test_every_sli_has_a_stored_column_and_a_k6_threshold(sli: slis.SLI) -> None:
    assert sli.column in RunResult.__table__.columns
    metric, expression = slo_threshold(SLO.model_validate(parse_slo_text(objective(sli))))
    assert expression.startswith(sli.stat)
    if sli.kind == "latency":
        assert metric.startswith("http_req_duration")
        assert sli.stat in TREND_STATS  # else k6 leaves it out of its summary


@pytest.mark.parametrize("sli", slis.TABLE, ids=lambda s: s.name)
def test_every_sli_is_judged_from_a_runs_stored_figures(sli: slis.SLI) -> None:
    slo = SLO.model_validate(parse_slo_text(objective(sli)))
    judged = evaluate_slo(slo, {RunResult.ALL: full_result()}, summary=None)
    assert judged.measured == getattr(full_result(), sli.column)
    assert judged.status in ("pass", "fail")


def test_k6s_summary_fills_every_stored_latency_column() -> None:
    metrics = {
        "http_reqs": {"values": {"count": 10, "rate": 2.0}},
        "http_req_failed": {"values": {"passes": 0, "rate": 0.0}},
        "http_req_duration{expected_response:true}": {"values": k6_trend()},
    }
    row = endpoint_result(metrics, None)
    for column in slis.STORED_LATENCY:
        assert row[column] == 12.5, column


def test_histograms_and_live_results_give_every_stored_latency_figure() -> None:
    histogram = Histogram()
    histogram.record(np.array([1.0, 2.0, 3.0]))
    stats = histogram.stats()
    for name in slis.STORED_LATENCY_SLI.values():
        assert stats[name] is not None, name
    live = LiveMetrics(endpoints=[])
    row = live.results([], duration_s=1.0)[0]
    for column in slis.STORED_LATENCY:
        assert column in row


@pytest.mark.parametrize("name", list(slis.HISTORY))
def test_every_history_sli_reads_a_run_column_and_can_be_imported(name: str) -> None:
    assert slis.HISTORY[name] in RunResult.__table__.columns
    assert history.unit_of(name) in ("ms", "fraction", "req/s")
    HistorySeries.model_validate({"endpoint": "*", "sli": name, "points": []})


def test_history_refuses_an_sli_it_does_not_track() -> None:
    untracked = next(sli.name for sli in slis.TABLE if not sli.history)
    with pytest.raises(ValidationError, match="unknown indicator"):
        HistorySeries.model_validate({"endpoint": "*", "sli": untracked, "points": []})
