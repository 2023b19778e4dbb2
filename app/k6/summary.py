"""What k6's end-of-test summary (``handleSummary`` data) says whatever the script: its
threshold verdicts, the test's duration and every check."""

from __future__ import annotations

from typing import Any


def failed_thresholds(summary: dict[str, Any] | None) -> list[str]:
    """k6's own threshold verdicts, as ``metric: expression`` for each one that failed."""
    if not summary:
        return []
    failed = []
    for name, metric in summary.get("metrics", {}).items():
        for expression, verdict in (metric.get("thresholds") or {}).items():
            if not verdict.get("ok", True):
                failed.append(f"{name}: {expression}")
    return sorted(failed)


def test_duration_s(summary: dict[str, Any]) -> float | None:
    ms = summary.get("state", {}).get("testRunDurationMs")
    return float(ms) / 1000 if ms is not None else None


def check_results(summary: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Every check k6 counted, groups included, as {name, group, passes, fails}."""
    if not summary:
        return []
    found: list[dict[str, Any]] = []

    def walk(group: dict[str, Any], path: str) -> None:
        for chk in group.get("checks", []):
            found.append(
                {
                    "name": chk.get("name", ""),
                    "group": path or None,
                    "passes": int(chk.get("passes", 0)),
                    "fails": int(chk.get("fails", 0)),
                }
            )
        for sub in group.get("groups", []):
            walk(sub, f"{path}::{sub.get('name', '')}" if path else sub.get("name", ""))

    walk(summary.get("root_group", {}), "")
    return found
