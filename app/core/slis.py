"""The service-level indicators, in one table.

The plan schema (which SLIs an objective may name, and their aliases), the generated k6 script
(threshold expressions, ``summaryTrendStats``), the reading of k6's summary and of the live and
stored histograms into run results, SLO evaluation and the plan's history all derive from
``TABLE``. Adding an indicator is a row here (plus, for a new stored figure, its ``RunResult``
column and migration); ``tests/core/test_slis.py`` checks every consumer knows every row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import AfterValidator, WithJsonSchema

Kind = Literal["latency", "error_rate", "throughput"]


@dataclass(frozen=True)
class SLI:
    name: str
    kind: Kind
    # The ``RunResult`` column holding the run's (or an endpoint's) value.
    column: str
    # k6's statistic: the key in its summary and the left side of a threshold expression.
    stat: str
    # For a percentile: which one, as read from the live and stored histograms.
    percentile: float | None = None
    aliases: tuple[str, ...] = ()
    # Tracked over runs in the plan's history.
    history: bool = True
    # False for an indicator that reads another one's stored column (``med`` is ``p50``).
    stored: bool = True

    @property
    def unit(self) -> str:
        return {"latency": "ms", "error_rate": "%", "throughput": "/s"}[self.kind]


TABLE: tuple[SLI, ...] = (
    SLI("avg", "latency", "avg_ms", "avg"),
    SLI("min", "latency", "min_ms", "min", history=False),
    SLI("med", "latency", "p50_ms", "med", aliases=("median",), history=False, stored=False),
    SLI("p50", "latency", "p50_ms", "p(50)", 50.0, ("p(50)",)),
    SLI("p90", "latency", "p90_ms", "p(90)", 90.0, ("p(90)",)),
    SLI("p95", "latency", "p95_ms", "p(95)", 95.0, ("p(95)",)),
    SLI("p99", "latency", "p99_ms", "p(99)", 99.0, ("p(99)",)),
    SLI("max", "latency", "max_ms", "max"),
    SLI("error_rate", "error_rate", "error_rate", "rate", aliases=("errors", "error", "rate")),
    SLI("rps", "throughput", "rps", "rate", aliases=("throughput",)),
)

BY_NAME: dict[str, SLI] = {sli.name: sli for sli in TABLE}
NAMES: tuple[str, ...] = tuple(BY_NAME)
LATENCY: tuple[str, ...] = tuple(sli.name for sli in TABLE if sli.kind == "latency")
# Percentiles read from histograms, name → percentile.
PERCENTILES: dict[str, float] = {
    sli.name: sli.percentile for sli in TABLE if sli.percentile is not None
}
# Latency figures stored per run and endpoint, column → k6 statistic.
STORED_LATENCY: dict[str, str] = {
    sli.column: sli.stat for sli in TABLE if sli.kind == "latency" and sli.stored
}
# Latency figures stored per run and endpoint, column → SLI name (its histogram statistic).
STORED_LATENCY_SLI: dict[str, str] = {
    sli.column: sli.name for sli in TABLE if sli.kind == "latency" and sli.stored
}
# Series of a plan's history, name → RunResult column.
HISTORY: dict[str, str] = {sli.name: sli.column for sli in TABLE if sli.history}
ALIASES: dict[str, str] = {alias: sli.name for sli in TABLE for alias in sli.aliases}
# k6's --summary-trend-stats / summaryTrendStats: every latency statistic, plus the count.
TREND_STATS: list[str] = [
    *(sli.stat for sli in TABLE if sli.kind == "latency" and sli.percentile is None),
    *(sli.stat for sli in TABLE if sli.kind == "latency" and sli.percentile is not None),
    "count",
]


def canonical(name: str) -> str:
    """An SLI's name as written (``p(95)``, ``median``, ``errors`` …) → its name here."""
    return ALIASES.get(name, name)


def _known(names: tuple[str, ...]) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value not in names:
            raise ValueError(f"unknown indicator {value!r}; one of {', '.join(names)}")
        return value

    return check


# Pydantic field types: an SLI name (any, or one with a history), an enum in the JSON Schema.
SliName = Annotated[
    str, AfterValidator(_known(NAMES)), WithJsonSchema({"type": "string", "enum": list(NAMES)})
]
HistorySliName = Annotated[
    str,
    AfterValidator(_known(tuple(HISTORY))),
    WithJsonSchema({"type": "string", "enum": list(HISTORY)}),
]
