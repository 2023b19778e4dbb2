"""The run's profile, tied to the endpoints it explains (the seed's §5.6 drill-down).

The worker profiled the target in the run's steady middle (runs/profile.py): the functions
that took the samples, the source line of the hottest ones (with the SQL they run and
whether a loop runs it), and the queries that took the database's time. Here each hot spot
is tied to the endpoint it serves — by the words the handler's name shares with the
endpoint's name and path (``recent_orders`` ↔ ``GET /api/orders/recent``) — and becomes a
finding on that endpoint, first among its findings when the endpoint is the one in trouble.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from app.analysis.schemas import Comparison, Finding, SloResult
from app.models import RunResult
from app.plans.schemas import PlanSpec

MIN_SHARE = 0.15  # of the target's samples: a hot spot worth a finding
TOP = 8


def _words(text: str) -> set[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", text)
    return {w for w in re.split(r"[^a-z0-9]+", spaced.lower()) if len(w) > 2 and w != "api"}


def endpoint_words(spec: PlanSpec) -> dict[str, set[str]]:
    words: dict[str, set[str]] = {}
    for scenario in spec.scenarios:
        for step in scenario.steps:
            path = str(getattr(step, "path", "") or "")
            words[step.name] = _words(step.name) | _words(path.split("?", 1)[0])
    return words


def match(function: str, words: Mapping[str, set[str]]) -> str | None:
    """The endpoint whose name and path share the most words with ``function``."""
    own = _words(function.rsplit(".", 1)[-1])
    # The most words in common; of equals, the endpoint with the fewest words of its own.
    scored = [(len(own & theirs), -len(theirs), name) for name, theirs in words.items()]
    best = max(scored, default=(0, 0, None))
    return best[2] if best[0] > 0 else None


def summarise(data: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """What the analysis keeps of the worker's profile event: each source's status and its
    top functions and queries, and the hot spots."""
    if not data:
        return None
    sources = []
    for found in data.get("profiles") or []:
        sources.append(
            {
                "source": found.get("source"),
                "status": found.get("status"),
                "reason": found.get("reason"),
                "samples": found.get("samples"),
                "seconds": found.get("seconds"),
                "functions": (found.get("functions") or [])[:TOP],
                "queries": (found.get("queries") or [])[:TOP],
            }
        )
    return {
        "window": data.get("window"),
        "requests": data.get("requests"),
        "sources": sources,
        "hot_spots": data.get("hot_spots") or [],
    }


def _troubled(
    results: Mapping[str, RunResult],
    slo_results: Sequence[SloResult],
    comparisons: Sequence[Comparison],
) -> set[str]:
    names = {r.endpoint for r in slo_results if r.status != "pass" and r.endpoint}
    names |= {c.endpoint for c in comparisons if c.verdict == "regression"}
    return {n for n in names if n in results and n != RunResult.ALL}


def findings(
    profile: Mapping[str, Any] | None,
    spec: PlanSpec,
    results: Mapping[str, RunResult],
    slo_results: Sequence[SloResult],
    comparisons: Sequence[Comparison],
) -> list[Finding]:
    if not profile:
        return []
    words = endpoint_words(spec)
    troubled = _troubled(results, slo_results, comparisons)
    found: list[Finding] = []
    for spot in profile.get("hot_spots") or []:
        share = float(spot.get("self_share") or 0.0)
        if share < MIN_SHARE:
            continue
        endpoint = match(str(spot.get("function", "")), words)
        row = results.get(endpoint) if endpoint else None
        where = f"`{endpoint}`" if endpoint else "The target"
        slow = f" (p95 {row.p95_ms:.1f} ms)" if row is not None and row.p95_ms is not None else ""
        summary = (
            f"{where}{slow}: {share:.0%} of the target's profiled samples are in "
            f"`{spot['function']}` at {spot['location'].rsplit('/', 1)[-1]}"
        )
        recommendation = None
        if spot.get("sql") and spot.get("in_loop"):
            summary += (
                f", running `{spot['sql']}` inside a loop — one query per row of the loop: an "
                "N+1 query pattern"
            )
            recommendation = (
                f"Fetch the rows of `{spot['sql']}` for all items at once (one query with an IN "
                "list or a JOIN) instead of once per item, and index the column it filters on."
            )
        elif spot.get("sql"):
            summary += f", running `{spot['sql']}`"
            recommendation = "Look at this query's plan (EXPLAIN ANALYZE) and its indexes."
        elif spot.get("in_loop"):
            summary += f", in a loop (`{spot['code']}`)"
            recommendation = "The time is this loop's own work: make it do less per item."
        else:
            summary += f" (`{spot['code']}`)"
        found.append(
            Finding(
                kind="hot_path",
                severity="critical" if endpoint in troubled else "warning",
                endpoint=endpoint,
                summary=summary,
                evidence={
                    "function": spot.get("function"),
                    "location": spot.get("location"),
                    "self_share": share,
                    "sql": spot.get("sql"),
                    "in_loop": bool(spot.get("in_loop")),
                    "source": "py-spy",
                },
                recommendation=recommendation,
            )
        )
    requests = profile.get("requests") or 0
    for source in profile.get("sources") or []:
        if source.get("source") != "pg_stat_statements" or source.get("status") != "ok":
            continue
        for query in (source.get("queries") or [])[:3]:
            share = float(query.get("share") or 0.0)
            if share < MIN_SHARE:
                continue
            per_request = query.get("calls_per_request")
            found.append(
                Finding(
                    kind="hot_query",
                    severity="warning",
                    summary=f"`{' '.join(str(query['query']).split())[:200]}` took {share:.0%} "
                    f"of the database's time in the profiled window ({query['calls']} calls, "
                    f"{query['mean_ms']:.2f} ms each"
                    + (f", {per_request:.1f} per request of {requests}" if per_request else "")
                    + ")",
                    evidence={
                        "calls": query.get("calls"),
                        "mean_ms": query.get("mean_ms"),
                        "share": share,
                        "calls_per_request": per_request,
                        "source": "pg_stat_statements",
                    },
                    recommendation="Many calls per request: batch them; slow calls: look at "
                    "the query's plan and indexes.",
                )
            )
    return found
