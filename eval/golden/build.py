"""Build the golden evaluation set: real k6 run pairs (baseline, candidate) through the service.

For each case the local target (``target.py``) is set to the case's noise level and its
baseline state (no fault, or for an improvement the slow "before" version) and the plan is run
once (the baseline); then the case's fault is switched on (or, for a load change, the plan's
next version with another closed-model load is used) and the plan is run again (the
candidate). The candidate is analysed with ``baseline_run_ids=[baseline]``. Labels come from
the case's design (which fault, where, expected regression / improvement, load change,
disturbed generator) and from k6's own end-of-test summary of the candidate (SLO breached or
not: k6's measured value against the target).

    .venv/bin/python eval/golden/build.py --at HEAD               # every case (104 pairs, ~25 min)
    .venv/bin/python eval/golden/build.py --per-family 1 --out /tmp/g   # one case of each family
    .venv/bin/python eval/golden/build.py --pairs 17              # the first 17 (every family)
    .venv/bin/python eval/golden/build.py --only stalls --only none
    .venv/bin/python eval/golden/build.py --seed 7 --list        # a draw's case list, no runs

The case list is drawn afresh on every build: without ``--seed`` a random seed is chosen,
printed and recorded in ``results.json`` ``meta.seed``; ``--seed N`` repeats a draw.

Writes ``cases.json`` (the cases and their labels) and ``results.json`` (per case: both runs'
stored results, k6's own summary figures, the CPU the machine spent outside this build during
each run, and the analysis JSON) next to this file, or into ``--out``. Uses
PERF_AGENT_DATABASE_URL, by default the local ``perf_agent_golden`` database (created when
missing). All load goes to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import operator
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/perf_agent_golden"
ENDPOINTS = ("catalog", "orders", "search", "profile")
PATHS = {
    "catalog": "/catalog",
    "orders": "/orders",
    "search": "/search?q=item",
    "profile": "/profile",
}
NOISE: dict[str, dict[str, Any]] = {
    "low": {"jitter_ms": 1},
    "medium": {"jitter_ms": 5},
    "high": {"jitter_ms": 12, "stall_p": 0.01, "stall_ms": [30, 80]},
}
# p95 (ms) of each endpoint at 40 iterations/s with no jitter, as measured on the target;
# only used to place SLO targets clearly above or below what a case should measure.
BASE_P95 = {"catalog": 4.5, "orders": 2.5, "search": 2.0, "profile": 4.0}
DOWNSTREAM_MS = {"catalog": 1.0, "profile": 1.5}
SLOW_QUERY_ADDS_MS = {100_000: 6.0, 200_000: 12.0}
OPEN_LOOP = {
    "profile": "constant-arrival",
    "rate": 40,
    "duration": "6s",
    "pre_allocated_vus": 20,
    "max_vus": 60,
}
STALLS_DURATION = "15s"
OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
# Run-level CPU the machine spent outside this build (cores) above which a run is flagged as
# possibly disturbed by something else (another user's tests, a compile).
OTHER_LOAD_FLAG = 0.25

# How many cases of each family a full build draws, in this order. "No change in the target":
# none, load_change, disturbed (58 of 104).
FAMILIES: dict[str, int] = {
    "none": 40,
    "load_change": 8,
    "disturbed": 10,
    "latency": 5,
    "slow_query": 3,
    "pool": 4,
    "errors": 4,
    "stalls": 4,
    "downstream": 4,
    "churn": 3,
    "lock": 4,
    "leak": 4,
    "slowdown": 6,
    "improvement": 5,
}
NO_CHANGE = ("none", "load_change", "disturbed")


# --- the cases -----------------------------------------------------------------------------


def _design(kind: str, rng: random.Random, n: int) -> dict[str, Any]:
    """The ``n``-th design of family ``kind``, its free parameters drawn from ``rng``."""
    noise = rng.choice(tuple(NOISE))
    design: dict[str, Any] = {"kind": kind, "fault": {"kind": "none"}, "noise": noise, "rate": 40}
    endpoint = rng.choice(ENDPOINTS)
    if kind == "none":
        design["rate"] = rng.choice((40, 40, 40, 60, 60, 100))
    elif kind == "latency":
        ms = rng.choice((15, 40))
        design["fault"] = {"kind": "latency", "endpoint": endpoint, "ms": ms}
        design["rate"] = 60 if ms == 40 else 40
    elif kind == "slow_query":
        design["fault"] = {
            "kind": "slow_query",
            "endpoint": "orders",
            "rows": rng.choice(tuple(SLOW_QUERY_ADDS_MS)),
        }
    elif kind == "pool":
        # A pool only matters where requests overlap: k6's arrival-rate executor spaces
        # iterations evenly, so each (size, noise, rate) comes from trial runs (size 2 at
        # medium noise and 80/s, or size 3 at high noise and 80/s, moved p95 by <= 10 %;
        # these raised it from 1.6x to 45x).
        size, design["noise"], design["rate"] = rng.choice(
            (
                (1, "low", 160),
                (1, "medium", 60),
                (1, "medium", 80),
                (2, "high", 60),
                (3, "high", 100),
            )
        )
        design["fault"] = {"kind": "pool", "size": size}
    elif kind == "errors":
        design["fault"] = {
            "kind": "errors",
            "endpoint": endpoint,
            "rate": rng.choice((0.05, 0.10)),
            "ramp": rng.random() < 0.4,
            "ramp_s": 6,
        }
    elif kind == "stalls":
        design["fault"] = {"kind": "stalls", "endpoint": endpoint, "every_s": 1.0, "ms": [50, 150]}
        # A tail-only fault is as many responses as it has stalls. Whatever the test, when
        # nothing changed the n slowest responses all fall in one run with probability ~2^-n,
        # so 6 stalls (6 s) can never reach p < 0.01 / 5 endpoints; 15 give room to spare.
        design["duration"] = STALLS_DURATION
    elif kind == "downstream":
        endpoint = rng.choice(tuple(DOWNSTREAM_MS))
        design["fault"] = {"kind": "downstream", "endpoint": endpoint, "ms": rng.choice((8, 20))}
    elif kind == "churn":
        design["fault"] = {"kind": "churn", "setup_ms": rng.choice((2, 3))}
        design["rate"] = rng.choice((40, 60))
    elif kind == "lock":
        pair = rng.choice(
            (
                ("orders", "profile"),
                ("catalog", "orders"),
                ("search", "profile"),
                ("catalog", "profile"),
            )
        )
        design["fault"] = {"kind": "lock", "endpoints": list(pair), "ms": rng.choice((3, 5))}
        design["rate"] = 60
    elif kind == "leak":
        design["fault"] = {"kind": "leak", "endpoint": endpoint, "kb": rng.choice((128, 256))}
    elif kind == "slowdown":
        factor = round(rng.uniform(0.15, 0.30), 2)
        design["fault"] = {"kind": "slowdown", "endpoint": endpoint, "factor": factor}
    elif kind == "improvement":
        # The baseline runs the slow "before" version; the candidate has it fixed.
        before = rng.choice(("latency", "latency", "slow_query"))
        if before == "slow_query":
            design["baseline_fault"] = {"kind": "slow_query", "endpoint": "orders", "rows": 200_000}
        else:
            design["baseline_fault"] = {
                "kind": "latency",
                "endpoint": endpoint,
                "ms": rng.choice((10, 25)),
            }
    elif kind == "load_change":
        # Closed model (constant VUs, a pause after each iteration) in both runs; the
        # candidate has other VUs or another pause. The service is the same.
        vus, think = rng.choice((2, 3)), rng.choice((50, 100))
        change = rng.choice(("vus x2", "vus x0.5", "think x2", "think x0.5"))
        cand_vus, cand_think = vus, think
        if change == "vus x2":
            cand_vus = vus * 2
        elif change == "vus x0.5":
            vus, cand_vus = vus * 2, vus  # e.g. 4 -> 2
        elif change == "think x2":
            cand_think = think * 2
        else:
            cand_think = think // 2
        design["load"] = closed_load(vus, think)
        design["candidate_load"] = closed_load(cand_vus, cand_think)
        design["load_change"] = change
        design["rate"] = None
    elif kind == "disturbed":
        design["hog"] = ("baseline", "candidate")[n % 2]
        design["rate"] = rng.choice((40, 60))
    else:
        raise ValueError(kind)
    return design


def closed_load(vus: int, think_ms: int) -> dict[str, Any]:
    return {"profile": "load", "vus": vus, "duration": "6s", "think_time": f"{think_ms}ms"}


def _expected_p95(endpoint: str, fault: dict[str, Any], noise: str) -> float | None:
    """What the design expects the candidate's p95 of ``endpoint`` to be, roughly (ms);
    None where the design cannot say (a small pool or a lock: depends on queueing; a leak:
    grows over the run)."""
    jitter = float(NOISE[noise]["jitter_ms"])
    p95 = BASE_P95[endpoint] + 0.95 * jitter
    kind = fault["kind"]
    if kind == "pool":
        return None
    if kind == "churn":
        return p95 + float(fault["setup_ms"]) + 1
    if kind == "lock" and endpoint in fault["endpoints"]:
        return None
    if fault.get("endpoint") == endpoint:
        if kind == "latency":
            p95 += float(fault["ms"])
        elif kind == "slow_query":
            p95 += SLOW_QUERY_ADDS_MS[int(fault["rows"])]
        elif kind == "downstream":
            p95 += 1.45 * float(fault["ms"]) - DOWNSTREAM_MS[endpoint]
        elif kind == "leak":
            return None
        elif kind == "slowdown":
            p95 *= 1 + float(fault["factor"])
    return p95


def _latency_target(expected: float | None, tight: bool, rng: random.Random) -> float:
    """A target clearly below (tight) or clearly above (loose) the expected p95."""
    if expected is None:
        return float(rng.choice((10, 100)) if tight else 150)
    if tight:
        return float(max(1.0, round(0.5 * expected)))
    return float(round(2.5 * expected + 15))


def _slo_text(sli: str, target: float) -> str:
    if sli == "error_rate":
        return f"error_rate < {target * 100:g}%"
    return f"{sli} < {target:g}ms"


def _interleave(designs: list[dict[str, Any]], rng: random.Random) -> list[dict[str, Any]]:
    """One case of every family first (in FAMILIES order), then the rest spread evenly, so any
    prefix of 14 or more covers every family and a longer one keeps the mix."""
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for design in designs:
        by_kind.setdefault(design["kind"], []).append(design)
    keyed: list[tuple[float, float, dict[str, Any]]] = []
    for order, (_kind, group) in enumerate(by_kind.items()):
        for i, design in enumerate(group):
            key = -1.0 + order / 100 if i == 0 else i / len(group)
            keyed.append((key, rng.random(), design))
    keyed.sort(key=lambda k: (k[0], k[1]))
    return [d for _, _, d in keyed]


def case_detail(design: dict[str, Any]) -> str:
    kind, fault = design["kind"], design["fault"]
    if kind == "none":
        return ""
    if kind == "latency":
        return f"-{fault['endpoint']}+{fault['ms']}ms"
    if kind == "slow_query":
        return f"-{fault['endpoint']}-{fault['rows'] // 1000}k"
    if kind == "pool":
        return f"-size{fault['size']}"
    if kind == "errors":
        return f"-{fault['endpoint']}-{fault['rate'] * 100:g}pct" + (
            "-ramp" if fault["ramp"] else ""
        )
    if kind == "stalls":
        return f"-{fault['endpoint']}-{fault['ms'][0]}-{fault['ms'][1]}ms"
    if kind == "downstream":
        return f"-{fault['endpoint']}-{fault['ms']}ms"
    if kind == "churn":
        return f"-setup{fault['setup_ms']}ms"
    if kind == "lock":
        return f"-{'+'.join(fault['endpoints'])}-{fault['ms']}ms"
    if kind == "leak":
        return f"-{fault['endpoint']}-{fault['kb']}kb"
    if kind == "slowdown":
        return f"-{fault['endpoint']}+{fault['factor'] * 100:.0f}pct"
    if kind == "improvement":
        before = design["baseline_fault"]
        what = f"{before['ms']}ms" if before["kind"] == "latency" else f"{before['rows'] // 1000}k"
        return f"-{before['endpoint']}-{before['kind']}{what}"
    if kind == "load_change":
        b, c = design["load"], design["candidate_load"]
        return f"-vu{b['vus']}t{b['think_time']}-to-vu{c['vus']}t{c['think_time']}"
    if kind == "disturbed":
        return f"-hog-{design['hog']}"
    raise ValueError(kind)


def new_seed() -> int:
    return random.SystemRandom().randrange(1, 2**31)


def generate_cases(seed: int, families: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """The case list drawn with ``seed``: the same seed gives the same cases, SLOs and order."""
    rng = random.Random(seed)
    designs = [
        _design(kind, rng, n)
        for kind, count in (families or FAMILIES).items()
        for n in range(count)
    ]
    cases = []
    for index, design in enumerate(_interleave(designs, rng), start=1):
        fault, noise, kind = design["fault"], design["noise"], design["kind"]
        before = design.get("baseline_fault")
        if kind in ("pool", "churn"):
            affected: str | None = "*"
            endpoints_affected = list(ENDPOINTS)
        elif kind == "lock":
            affected = fault["endpoints"][0]
            endpoints_affected = list(fault["endpoints"])
        elif kind == "improvement":
            affected = before["endpoint"]
            endpoints_affected = [affected]
        elif fault.get("endpoint"):
            affected = fault["endpoint"]
            endpoints_affected = [affected]
        else:
            affected, endpoints_affected = None, []
        focus = affected if affected not in (None, "*") else rng.choice(ENDPOINTS)
        # No-change pairs with another load or a disturbed generator get loose latency targets:
        # their verdict should turn on the comparison, not on an objective placed near the line.
        loose_only = kind in ("load_change", "disturbed")
        tight_focus = rng.random() < 0.35 and not loose_only
        tight_global = rng.random() < 0.3 and not loose_only
        expected = {e: _expected_p95(e, fault, noise) for e in ENDPOINTS}
        if kind == "load_change":
            expected = {e: None for e in ENDPOINTS}
        known = [v for v in expected.values() if v is not None]
        expected_global = max(known) if len(known) == len(ENDPOINTS) else None
        focus_target = _latency_target(expected[focus], tight_focus, rng)
        global_target = _latency_target(expected_global, tight_global, rng)
        error_share = float(fault.get("rate", 0.0)) if kind == "errors" else 0.0
        slos: list[dict[str, Any]] = [
            {"endpoint": None, "sli": "p95", "op": "<", "target": global_target},
            {"endpoint": None, "sli": "error_rate", "op": "<", "target": 0.01},
            {"endpoint": focus, "sli": "p95", "op": "<", "target": focus_target},
            {"endpoint": focus, "sli": "error_rate", "op": "<", "target": 0.02},
        ]
        for slo in slos:
            slo["objective"] = _slo_text(slo["sli"], slo["target"])
        # Design expectation of each SLO: True (breach), False (met), None (too close to call).
        design_breach: list[bool | None] = []
        for slo in slos:
            if slo["sli"] == "p95":
                exp = expected_global if slo["endpoint"] is None else expected[slo["endpoint"]]
                if exp is None:
                    design_breach.append(None)
                else:
                    design_breach.append(exp >= slo["target"])
            else:
                share = error_share if slo["endpoint"] in (affected,) else 0.0
                if slo["endpoint"] is None:
                    share = error_share / len(ENDPOINTS)
                ratio = share / slo["target"]
                design_breach.append(None if 0.6 <= ratio <= 1.6 else ratio > 1)
        rate = design.get("rate")
        load = design.get("load") or {
            **OPEN_LOOP,
            "rate": rate,
            "duration": design.get("duration", OPEN_LOOP["duration"]),
        }
        case_id = f"g{index:03d}-{kind}{case_detail(design)}-{noise}" + (
            f"-r{rate}" if rate else ""
        )
        case: dict[str, Any] = {
            "id": case_id,
            "kind": kind,
            "fault": fault,
            "baseline_fault": before or {"kind": "none"},
            "noise_level": noise,
            "noise": NOISE[noise],
            "load": load,
            "candidate_load": design.get("candidate_load"),
            "hog": design.get("hog"),
            "slos": slos,
            "labels": {
                "fault": kind,
                "endpoint_affected": affected,
                "endpoints_affected": endpoints_affected,
                "expected_regression": kind not in (*NO_CHANGE, "improvement"),
                "expected_improvement": kind == "improvement",
                "no_change_in_target": kind in NO_CHANGE,
                "load_change": kind == "load_change",
                "load_change_detail": design.get("load_change"),
                "disturbed": kind == "disturbed",
                "disturbed_run": design.get("hog"),
                "expected_verdict": "inconclusive" if kind == "disturbed" else None,
                "slo_breach_design": design_breach,
                # Filled in by the build from k6's own summary of the candidate run:
                "slo_breach_k6": None,
                "slo_measured_k6": None,
            },
        }
        cases.append(case)
    return cases


def plan_document(
    case: dict[str, Any], target: str, load: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "name": f"golden-{case['id']}",
        "description": "Golden evaluation set case (eval/golden).",
        "target": {"base_url": target, "environment": "local"},
        "endpoints": [
            {"name": name, "path": PATHS[name], "expect_status": 200} for name in ENDPOINTS
        ],
        "load": load or case["load"],
        "slos": [
            {"objective": s["objective"], "endpoint": s["endpoint"]}
            if s["endpoint"]
            else s["objective"]
            for s in case["slos"]
        ],
    }


# --- k6's own numbers ----------------------------------------------------------------------


def _metric(metrics: dict[str, Any], name: str) -> dict[str, Any]:
    value = metrics.get(name)
    if not isinstance(value, dict):
        return {}
    inner = value.get("values")
    return inner if isinstance(inner, dict) else value


def k6_figures(summary: dict[str, Any] | None) -> dict[str, Any] | None:
    """Per endpoint ('*': all), straight from k6's end-of-test summary; under '_run' the
    run-level figures (iterations, dropped iterations, VUs, connection set-up)."""
    from app.runs.summary import endpoint_result

    if not summary or not isinstance(summary.get("metrics"), dict):
        return None
    metrics = summary["metrics"]
    figures: dict[str, Any] = {}
    for endpoint in (None, *ENDPOINTS):
        row = endpoint_result(metrics, endpoint)
        figures[row["endpoint"]] = {
            k: row.get(k)
            for k in (
                "requests",
                "rps",
                "failures",
                "error_rate",
                "avg_ms",
                "p50_ms",
                "p90_ms",
                "p95_ms",
                "p99_ms",
                "max_ms",
            )
        }
    run: dict[str, Any] = {}
    for name, keys in (
        ("iterations", ("count", "rate")),
        ("dropped_iterations", ("count",)),
        ("vus_max", ("value", "max")),
        ("iteration_duration", ("avg", "med", "p(95)")),
        ("http_req_connecting", ("avg", "max")),
        ("http_req_blocked", ("avg", "p(95)")),
    ):
        values = _metric(metrics, name)
        for key in keys:
            if key in values:
                run[f"{name}.{key}"] = values[key]
    figures["_run"] = run
    return figures


def k6_slo_label(slo: dict[str, Any], figures: dict[str, Any] | None) -> tuple[bool | None, Any]:
    """(breached?, measured) for one SLO from k6's figures of the candidate run."""
    if figures is None:
        return None, None
    row = figures.get(slo["endpoint"] or "*")
    if row is None:
        return None, None
    measured = row["error_rate"] if slo["sli"] == "error_rate" else row[f"{slo['sli']}_ms"]
    if measured is None:
        return None, None
    return not OPS[slo["op"]](float(measured), float(slo["target"])), measured


def summaries(db_url: str, run_ids: list[str]) -> dict[str, Any]:
    import psycopg

    libpq = db_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(libpq) as conn:
        rows = conn.execute(
            "SELECT id::text, summary FROM runs WHERE id = ANY(%s::uuid[])", (run_ids,)
        ).fetchall()
    return {run_id: summary for run_id, summary in rows}


def ensure_database(db_url: str) -> None:
    import psycopg

    libpq = db_url.replace("postgresql+psycopg://", "postgresql://")
    base, _, name = libpq.rpartition("/")
    name = name.split("?")[0]
    try:
        psycopg.connect(libpq).close()
    except psycopg.OperationalError:
        with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        print(f"created database {name}")


# --- the machine's other load --------------------------------------------------------------


def _tree_cpu() -> dict[tuple[int, float], float]:
    """CPU seconds (own + reaped children) of this process and every live descendant (the
    service's threads, k6, the target, a CPU hog), keyed by (pid, start time)."""
    import psutil

    me = psutil.Process()
    found = {}
    for proc in [me, *me.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            t = proc.cpu_times()
            found[(proc.pid, proc.create_time())] = (
                t.user + t.system + t.children_user + t.children_system
            )
    return found


def _machine_cpu() -> dict[str, float]:
    import psutil

    t = psutil.cpu_times()
    return {
        "busy": t.user + t.nice + t.system,  # guest time is already inside user
        "irq": getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0),
        "steal": getattr(t, "steal", 0.0),
    }


class CpuWindow:
    """CPU the machine spent during one run, split into this build's process tree (the
    service, its k6, the target), the deliberate CPU hog (by its pid: it is not in the
    tree), and everything else ("other": other
    users' processes, the database server). In cores (CPU seconds per wall second)."""

    def __init__(self, hog_pid: int | None = None) -> None:
        self.hog_pid = hog_pid

    def _hog_cpu(self) -> float:
        import psutil

        if self.hog_pid is None:
            return 0.0
        try:
            t = psutil.Process(self.hog_pid).cpu_times()
        except psutil.Error:
            return 0.0
        return float(t.user + t.system)

    def __enter__(self) -> CpuWindow:
        self.t0 = time.monotonic()
        self.machine0 = _machine_cpu()
        self.tree0 = _tree_cpu()
        self.hog0 = self._hog_cpu()
        return self

    def stop(self) -> dict[str, Any]:
        tree1 = _tree_cpu()
        hog = self._hog_cpu() - self.hog0
        machine1 = _machine_cpu()
        wall = max(time.monotonic() - self.t0, 1e-6)
        ours = sum(v - self.tree0.get(k, 0.0) for k, v in tree1.items())
        # A descendant that ended inside the window was reaped by its parent in the tree,
        # whose children_* now hold its whole life: take off what it had used before.
        ours -= sum(v for k, v in self.tree0.items() if k not in tree1)
        busy = machine1["busy"] - self.machine0["busy"]
        return {
            "wall_s": round(wall, 2),
            "machine_busy_cores": round(busy / wall, 3),
            "build_cores": round(ours / wall, 3),
            "hog_cores": round(hog / wall, 3),
            "other_cores": round(max(0.0, busy - ours - hog) / wall, 3),
            "irq_cores": round((machine1["irq"] - self.machine0["irq"]) / wall, 3),
            "steal_cores": round((machine1["steal"] - self.machine0["steal"]) / wall, 3),
        }

    def __exit__(self, *exc: object) -> None:
        pass


HOG_LAUNCHER = (
    "import subprocess, sys; "
    "hog = subprocess.Popen([sys.executable, '-c', 'while True: pass'], start_new_session=True, "
    "stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
    "print(hog.pid, flush=True)"
)


@contextlib.contextmanager
def cpu_hog(enabled: bool) -> Iterator[int | None]:
    """A separate process burning about one core for as long as the block runs.

    It is started through a launcher that exits at once, so the hog is nobody's child here:
    the service runs inside this process, and its generator sampler counts the service's own
    children as the service, not as a neighbour. It is killed by its pid afterwards."""
    if not enabled:
        yield None
        return
    import psutil

    launched = subprocess.run(
        [sys.executable, "-c", HOG_LAUNCHER], capture_output=True, text=True, check=True
    )
    pid = int(launched.stdout.split()[0])
    try:
        time.sleep(0.3)  # let it get going before the run starts
        yield pid
    finally:
        with contextlib.suppress(psutil.Error):
            hog = psutil.Process(pid)
            hog.kill()
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and hog.is_running():
                if hog.status() == psutil.STATUS_ZOMBIE:
                    break
                time.sleep(0.05)


# --- running -------------------------------------------------------------------------------


@contextlib.contextmanager
def running_target(port: int) -> Iterator[str]:
    from app.cli import running_server

    argv = [sys.executable, str(HERE / "target.py"), "--port", str(port)]
    with running_server(argv, port, stdout=subprocess.DEVNULL) as url:
        yield url


def configure_target(target: str, fault: dict[str, Any], noise: dict[str, Any]) -> None:
    import httpx

    response = httpx.post(f"{target}/_admin/config", json={"fault": fault, "noise": noise})
    response.raise_for_status()


def warm_up(target: str) -> None:
    import httpx

    with httpx.Client(base_url=target) as http:
        for _ in range(50):
            for path in PATHS.values():
                http.get(path)


def wait_quiet(limit_s: float) -> dict[str, Any] | None:
    """Wait (at most ``limit_s``) until one second passes with other processes' CPU under
    OTHER_LOAD_FLAG; what was waited and seen, or None when not asked to wait."""
    if limit_s <= 0:
        return None
    started = time.monotonic()
    while True:
        with CpuWindow() as window:
            time.sleep(1.0)
            other = window.stop()["other_cores"]
        waited = time.monotonic() - started
        if other < OTHER_LOAD_FLAG or waited >= limit_s:
            return {
                "waited_s": round(waited, 1),
                "other_cores": other,
                "quiet": other < OTHER_LOAD_FLAG,
            }


def one_run(
    client: Any, plan_id: str, hog: bool, quiet_s: float = 0.0
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Execute the plan once and wait for it; the machine's CPU split over the run."""
    before = wait_quiet(quiet_s)
    with cpu_hog(hog) as hog_pid, CpuWindow(hog_pid) as window:
        run = client.wait(client.execute(plan_id)["id"])
        cpu = window.stop()
    if before is not None:
        cpu["quiet_wait"] = before
    return run, cpu


def run_case(
    client: Any, target: str, case: dict[str, Any], db_url: str, quiet_s: float = 0.0
) -> dict[str, Any]:
    started = time.monotonic()
    plan = client.create_plan(plan_document(case, target))
    client.approve(plan["id"], reviewer="eval/golden")
    candidate_plan = plan["id"]
    if case.get("candidate_load"):
        # The next version of the same plan (one family, so the baseline is accepted) with
        # the other closed-model load.
        version = client.create_version(
            plan["id"], json.dumps(plan_document(case, target, case["candidate_load"]))
        )
        client.approve(version["id"], reviewer="eval/golden")
        candidate_plan = version["id"]
    configure_target(target, case.get("baseline_fault") or {"kind": "none"}, case["noise"])
    baseline, baseline_cpu = one_run(
        client, plan["id"], hog=case.get("hog") == "baseline", quiet_s=quiet_s
    )
    configure_target(target, case["fault"], case["noise"])
    candidate, candidate_cpu = one_run(
        client, candidate_plan, hog=case.get("hog") == "candidate", quiet_s=quiet_s
    )
    configure_target(target, {"kind": "none"}, {})
    record: dict[str, Any] = {
        "plan_id": plan["id"],
        "candidate_plan_id": candidate_plan,
        "baseline_run": _run_view(baseline),
        "candidate_run": _run_view(candidate),
        "cpu": {"baseline": baseline_cpu, "candidate": candidate_cpu},
    }
    raw = summaries(db_url, [baseline["id"], candidate["id"]])
    record["k6"] = {
        "baseline": k6_figures(raw.get(baseline["id"])),
        "candidate": k6_figures(raw.get(candidate["id"])),
    }
    if baseline["status"] != "succeeded" or candidate["status"] not in ("succeeded", "partial"):
        record["error"] = (
            f"baseline {baseline['status']} ({baseline.get('error')}), "
            f"candidate {candidate['status']} ({candidate.get('error')})"
        )
    else:
        response = client.http.post(
            "/analyse", json={"run_id": candidate["id"], "baseline_run_ids": [baseline["id"]]}
        )
        if response.status_code != 201:
            record["error"] = f"analyse answered {response.status_code}: {response.text[:500]}"
        else:
            record["analysis"] = response.json()
    record["seconds"] = round(time.monotonic() - started, 1)
    return record


def _run_view(run: dict[str, Any]) -> dict[str, Any]:
    keep = ("id", "status", "error", "test_duration_s", "thresholds_failed", "results")
    return {k: run.get(k) for k in keep}


def label_case(case: dict[str, Any], record: dict[str, Any]) -> None:
    """Ground truth of each SLO from k6's own summary of the candidate run."""
    figures = (record.get("k6") or {}).get("candidate")
    breached, measured = [], []
    for slo in case["slos"]:
        b, m = k6_slo_label(slo, figures)
        breached.append(b)
        measured.append(m)
    case["labels"]["slo_breach_k6"] = breached
    case["labels"]["slo_measured_k6"] = measured


def one_line(case: dict[str, Any], record: dict[str, Any]) -> str:
    cpu = record.get("cpu") or {}
    other = "/".join(
        f"{(cpu.get(r) or {}).get('other_cores', 0):.2f}" for r in ("baseline", "candidate")
    )
    flag = (
        "!"
        if any(
            ((cpu.get(r) or {}).get("other_cores", 0) + (cpu.get(r) or {}).get("steal_cores", 0))
            >= OTHER_LOAD_FLAG
            for r in ("baseline", "candidate")
        )
        else " "
    )
    if "analysis" not in record:
        return f"other {other}{flag} ERROR {record.get('error')}"
    analysis = record["analysis"]
    regressions = [
        f"{c['endpoint']}:{c['sli']}"
        for c in analysis.get("comparisons") or []
        if c.get("verdict") == "regression"
    ]
    slo = "".join(
        {"pass": ".", "fail": "F", "no_data": "?"}.get(r.get("status"), "-")
        for r in analysis.get("slo_results") or []
    )
    truth = "".join(
        "F" if b else ("." if b is False else "?") for b in case["labels"]["slo_breach_k6"]
    )
    generator = (analysis.get("load_generator") or {}).get("status", "-")
    return (
        f"other {other}{flag} verdict {analysis.get('verdict')}, slo {slo} (k6 {truth}), "
        f"generator {generator}, regressions {','.join(regressions) or '-'}"
    )


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=False, default=str) + "\n")
    tmp.replace(path)


def use_code(rev: str | None) -> dict[str, Any]:
    """Import the service from a snapshot of commit ``rev`` (git archive, no checkout), or
    from this working tree when None. Returns what was used, for the record."""
    git = ["git", "-C", str(ROOT)]
    if rev is None:
        head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True)
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "app", "migrations"], capture_output=True, text=True
        )
        return {
            "code": "working tree",
            "head": head.stdout.strip(),
            "uncommitted_changes_in_app": bool(dirty.stdout.strip()),
        }
    if "app" in sys.modules:
        raise RuntimeError("use_code() must run before the service is imported")
    commit = subprocess.run(
        [*git, "rev-parse", rev], capture_output=True, text=True, check=True
    ).stdout.strip()
    snapshot = Path(tempfile.mkdtemp(prefix=f"golden-code-{commit[:8]}-"))
    # Before 2026-12-06 the migrations sat beside app/, since then inside it.
    tree = subprocess.run(
        [*git, "ls-tree", "--name-only", commit], capture_output=True, text=True, check=True
    ).stdout.split()
    paths = [p for p in ("app", "migrations", "alembic.ini") if p in tree]
    archive = subprocess.run([*git, "archive", commit, *paths], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(snapshot)], input=archive.stdout, check=True)
    sys.path.insert(0, str(snapshot))
    atexit.register(shutil.rmtree, snapshot, ignore_errors=True)
    return {"code": f"commit {commit}", "head": commit, "snapshot": str(snapshot)}


def select(cases: list[dict[str, Any]], args: argparse.Namespace) -> list[dict[str, Any]]:
    if args.only:
        cases = [c for c in cases if c["kind"] in args.only]
    if args.per_family:
        seen: dict[str, int] = {}
        kept = []
        for case in cases:
            seen[case["kind"]] = seen.get(case["kind"], 0) + 1
            if seen[case["kind"]] <= args.per_family:
                kept.append(case)
        cases = kept
    if args.pairs:
        cases = cases[: args.pairs]
    return cases


def build(args: argparse.Namespace) -> int:
    seed = args.seed if args.seed is not None else new_seed()
    print(f"seed {seed}" + ("" if args.seed is not None else " (drawn; --seed repeats it)"))
    code = use_code(args.at)
    os.environ.setdefault("PERF_AGENT_DATABASE_URL", DEFAULT_DB)
    db_url = os.environ["PERF_AGENT_DATABASE_URL"]
    ensure_database(db_url)

    from app.cli import free_port, running_service
    from app.client import PerfAgentClient
    from app.core.settings import get_settings

    code["app_imported_from"] = str(Path(sys.modules["app"].__file__ or "").parent)
    cases = select(generate_cases(seed), args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = get_settings().model_copy(update={"worker_poll_interval_s": 0.2})
    results: dict[str, Any] = {
        "meta": {
            "seed": seed,
            "seed_drawn": args.seed is None,
            "selection": {"only": args.only, "per_family": args.per_family, "pairs": args.pairs},
            "database": db_url.rsplit("@", 1)[-1],
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "k6_binary": settings.k6_binary,
            "cpu_count": os.cpu_count(),
            "other_load_flag_cores": OTHER_LOAD_FLAG,
            "wait_quiet_s": args.wait_quiet,
            **code,
        },
        "cases": {},
    }
    started = time.monotonic()
    quiet = sum(c["labels"]["no_change_in_target"] for c in cases)
    print(
        f"{len(cases)} pairs ({quiet} without a change in the target); service code: {code['code']}"
    )
    with (
        running_target(free_port()) as target,
        running_service(settings, free_port()) as service,
        PerfAgentClient(service, timeout_s=120) as client,
    ):
        warm_up(target)
        for n, case in enumerate(cases, start=1):
            record = run_case(client, target, case, db_url, quiet_s=args.wait_quiet)
            label_case(case, record)
            results["cases"][case["id"]] = record
            print(
                f"[{n:>3}/{len(cases)}] {case['id']:<52} {record['seconds']:>5.1f}s  "
                f"{one_line(case, record)}",
                flush=True,
            )
            write_json(out / "cases.json", cases[:n])
            write_json(out / "results.json", results)
    elapsed = time.monotonic() - started
    results["meta"]["wall_seconds"] = round(elapsed, 1)
    write_json(out / "cases.json", cases)
    write_json(out / "results.json", results)
    print(
        f"built {len(cases)} pairs in {elapsed / 60:.1f} min (seed {seed}) -> "
        f"{out}/cases.json, results.json"
    )
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=None, help="only the first N cases")
    p.add_argument(
        "--only",
        action="append",
        choices=tuple(FAMILIES),
        help="only cases of this family (repeatable)",
    )
    p.add_argument("--per-family", type=int, default=None, help="at most N cases of each family")
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="the draw of cases (default: a new random seed, printed and stored in meta.seed)",
    )
    p.add_argument("--out", default=str(HERE), help="directory for cases.json, results.json")
    p.add_argument(
        "--at",
        metavar="REV",
        default=None,
        help="run the service as committed at REV (e.g. HEAD; a git archive snapshot) "
        "instead of this working tree",
    )
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="S",
        help=f"before each run wait up to S seconds for a second in which other processes "
        f"use under {OTHER_LOAD_FLAG} cores (default 0: do not wait)",
    )
    p.add_argument("--list", action="store_true", help="print the case list and exit")
    return p


def main() -> int:
    args = parser().parse_args()
    if args.list:
        seed = args.seed if args.seed is not None else new_seed()
        cases = select(generate_cases(seed), args)
        print(
            f"seed {seed}: {len(cases)} cases, "
            f"{sum(c['labels']['no_change_in_target'] for c in cases)} without a change"
        )
        for case in cases:
            slos = "; ".join(f"{s['endpoint'] or '*'}:{s['objective']}" for s in case["slos"])
            print(f"{case['id']:<52} {slos}  design-breach {case['labels']['slo_breach_design']}")
        return 0
    return build(args)


if __name__ == "__main__":
    raise SystemExit(main())
