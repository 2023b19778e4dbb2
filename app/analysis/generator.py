"""Was the load generator healthy? A k6 short of CPU measures its own queueing, not the target.

The worker samples, once a second, k6's own CPU and memory and the CPU every other process on
its machine took (``sample.generator``; see runs/system.py). Two conditions make a run's
latencies untrustworthy, whatever the target did:

- **disturbed**: other processes took a material share of the machine while k6 ran (a CI
  neighbour, a backup, another test) at a time CPU was scarce — k6's threads waited for a core
  (the kernel's run-queue wait, from schedstat) or the machine was mostly busy: k6's timers and
  the target shared the cores with them.
- **saturated**: the machine had no idle CPU for much of the run with k6 taking at least half
  of it, or k6 alone took nearly all of it: requests waited for k6 to be scheduled, and k6 may
  not have made the load the plan asked for (dropped iterations while short of CPU say so
  too). A machine kept busy by a target on the same machine is the target's result.

Either one, in the run or in a baseline it is compared with, makes the comparison
``inconclusive``: retry on a quieter machine. Dropped iterations and k6's "Insufficient VUs"
warnings with CPU to spare are the target falling behind, a result — not the generator's fault.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from app.analysis.repository import Second
from app.analysis.schemas import LoadGenerator, Status

# Other processes: mean share of one core over the steady seconds, or this share in at least
# DISTURBED_SECONDS of them. The machine's own background (the service, sshd, a shell) stays
# well under 10 % of a core.
DISTURBED_MEAN_PERCENT = 25.0
DISTURBED_PEAK_PERCENT = 50.0
DISTURBED_SECONDS = 0.25
# ... when CPU was scarce: k6's threads waited for a core this long per second they ran
# (median), or the machine was at least this busy (median, percent of all cores).
WAIT_RATIO = 0.5
CONTENDED_MACHINE_PERCENT = 75.0
# The machine had no idle CPU: busier than this (percent of all cores) in this share of seconds.
SATURATED_MACHINE_PERCENT = 95.0
SATURATED_SECONDS = 0.5
# ... while k6 itself took at least this share of all cores (else the target, on the same
# machine, is what kept it busy).
K6_SHARE_OF_BUSY = 0.5
# k6 alone, percent of all cores (median over the steady seconds).
SATURATED_K6_PERCENT = 90.0
# Dropped iterations count against the generator only while it was this busy (p95, % of all).
BUSY_K6_PERCENT = 70.0
MIN_SECONDS = 1  # a short test crowded for its one second is still crowded


def _steady(seconds: Sequence[Second]) -> list[dict[str, Any]]:
    """Readings of the seconds between k6's start-up and its teardown."""
    readings = [s.generator for s in seconds if s.generator]
    return readings[1:-1] if len(readings) > 4 else readings


def _values(readings: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    return np.array([float(r[key]) for r in readings if r.get(key) is not None], dtype=float)


def _dropped(summary: Mapping[str, Any] | None) -> int | None:
    metric = ((summary or {}).get("metrics") or {}).get("dropped_iterations")
    if not metric:
        return None
    count = (metric.get("values") or {}).get("count")
    return int(count) if count is not None else None


def assess(
    seconds: Sequence[Second],
    summary: Mapping[str, Any] | None = None,
    k6_warnings: Mapping[str, int] | None = None,
) -> LoadGenerator:
    readings = _steady(seconds)
    dropped = _dropped(summary)
    warnings = dict(k6_warnings or {})
    if len(readings) < MIN_SECONDS:
        return LoadGenerator(
            status="unknown",
            reasons=["the worker did not sample the load generator during this run"],
            seconds=len(readings),
            dropped_iterations=dropped,
            k6_warnings=warnings,
        )
    cores = int(readings[-1].get("cores") or 1)
    k6 = _values(readings, "k6_cpu_percent")
    other = _values(readings, "other_cpu_percent")
    machine = _values(readings, "machine_cpu_percent")
    rss = _values(readings, "k6_rss_mb")
    all_cores = 100.0 * cores

    reasons: list[str] = []
    status: Status = "healthy"
    other_mean = float(other.mean()) if other.size else 0.0
    other_peaks = float((other >= DISTURBED_PEAK_PERCENT).mean()) if other.size else 0.0
    wait = _values(readings, "k6_wait_percent")
    wait_ratio = float(np.median(wait) / max(np.median(k6), 1.0)) if wait.size and k6.size else 0.0
    # Others busy only matter when the CPU was scarce for it: k6 waited for a core, or the
    # machine was mostly busy. A neighbour on an otherwise idle machine disturbs nothing.
    scarce = wait_ratio >= WAIT_RATIO or (
        machine.size > 0 and float(np.median(machine)) >= CONTENDED_MACHINE_PERCENT
    )
    crowded = other_mean >= DISTURBED_MEAN_PERCENT or other_peaks >= DISTURBED_SECONDS
    if crowded and scarce:
        status = "disturbed"
        reasons.append(
            f"other processes took {other_mean / 100:.2f} cores on average (up to "
            f"{float(other.max()) / 100:.2f}) of the generator's {cores} while k6 ran"
            + (f", and k6 waited for a CPU {wait_ratio:.0%} as long as it ran" if wait.size else "")
        )
    busy_share = float((machine >= SATURATED_MACHINE_PERCENT).mean()) if machine.size else 0.0
    k6_median = float(np.median(k6)) if k6.size else 0.0
    k6_p95 = float(np.percentile(k6, 95)) if k6.size else 0.0
    saturated: list[str] = []
    # A machine kept busy by a local target is the target's result; by k6, the generator's.
    if busy_share >= SATURATED_SECONDS and k6_median >= K6_SHARE_OF_BUSY * all_cores:
        saturated.append(
            f"the machine had no idle CPU in {busy_share:.0%} of the seconds (k6 "
            f"{k6_median / 100:.2f} of {cores} cores)"
        )
    if k6_median >= SATURATED_K6_PERCENT / 100 * all_cores:
        saturated.append(f"k6 alone used {k6_median / 100:.2f} of {cores} cores")
    if dropped and k6_p95 >= BUSY_K6_PERCENT / 100 * all_cores:
        saturated.append(f"k6 dropped {dropped} iterations while short of CPU")
    if saturated:
        status = "saturated" if status == "healthy" else status
        reasons.extend(saturated)
    return LoadGenerator(
        status=status,
        reasons=reasons,
        seconds=len(readings),
        cores=cores,
        k6_cpu_percent={
            "median": round(k6_median, 1),
            "p95": round(k6_p95, 1),
            "max": round(float(k6.max()), 1) if k6.size else 0.0,
        },
        other_cpu_percent={
            "mean": round(other_mean, 1),
            "p90": round(float(np.percentile(other, 90)), 1) if other.size else 0.0,
            "max": round(float(other.max()), 1) if other.size else 0.0,
        },
        machine_cpu_percent={
            "median": round(float(statistics.median(machine)), 1) if machine.size else 0.0,
            "p95": round(float(np.percentile(machine, 95)), 1) if machine.size else 0.0,
        },
        k6_rss_mb_max=round(float(rss.max()), 1) if rss.size else None,
        k6_wait_ratio=round(wait_ratio, 3) if wait.size else None,
        dropped_iterations=dropped,
        k6_warnings=warnings,
    )


def describe(run: LoadGenerator, baselines: Sequence[LoadGenerator]) -> str | None:
    """Why the comparison cannot be trusted, or None when it can."""
    if not run.trustworthy:
        return f"the load generator was {run.status} during this run: " + "; ".join(run.reasons)
    for number, base in enumerate(baselines, start=1):
        if not base.trustworthy:
            which = "its baseline" if len(baselines) == 1 else f"baseline {number}"
            return f"the load generator was {base.status} during {which}: " + "; ".join(
                base.reasons
            )
    return None
