"""Build the golden evaluation set: real k6 run pairs (baseline, candidate) through the service.

For each case the local target (``target.py``) is set to the case's noise level with no fault
and the plan is run once (the baseline); then the case's fault is switched on and the same
plan is run again (the candidate). The candidate is analysed with
``baseline_run_ids=[baseline]``. Labels come from the case's design (which fault, where,
expected regression) and from k6's own end-of-test summary of the candidate (SLO breached or
not: k6's measured value against the target).

    .venv/bin/python eval/golden/build.py                      # every case (~45 pairs, ~12 min)
    .venv/bin/python eval/golden/build.py --pairs 6            # the first 6 (all fault kinds)
    .venv/bin/python eval/golden/build.py --only latency --only none

Writes ``cases.json`` (the cases and their labels) and ``results.json`` (per case: both runs'
stored results, k6's own summary figures, and the analysis JSON) next to this file, or into
``--out``. Uses PERF_AGENT_DATABASE_URL, by default the local ``perf_agent_golden`` database
(created when missing). All load goes to 127.0.0.1.
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
SEED = 20240611
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
SLOW_QUERY_ADDS_MS = {100_000: 6.0, 200_000: 12.0}
OPEN_LOOP = {
    "profile": "constant-arrival",
    "rate": 40,
    "duration": "6s",
    "pre_allocated_vus": 20,
    "max_vus": 60,
}
OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


# --- the cases -----------------------------------------------------------------------------


def _designs() -> list[dict[str, Any]]:
    """(kind, fault, noise) of every case, in a fixed order."""
    designs: list[dict[str, Any]] = []
    for noise in NOISE:
        for rate in (40, 40, 40, 60, 60, 100):
            designs.append(
                {"kind": "none", "fault": {"kind": "none"}, "noise": noise, "rate": rate}
            )
    for endpoint, ms, noise in (
        ("catalog", 15, "low"),
        ("orders", 40, "low"),
        ("search", 15, "medium"),
        ("profile", 40, "medium"),
        ("orders", 15, "high"),
        ("catalog", 40, "high"),
        ("search", 40, "low"),
        ("profile", 15, "high"),
    ):
        designs.append(
            {
                "kind": "latency",
                "fault": {"kind": "latency", "endpoint": endpoint, "ms": ms},
                "noise": noise,
                "rate": 60 if ms == 40 else 40,
            }
        )
    for rows in SLOW_QUERY_ADDS_MS:
        for noise in NOISE:
            designs.append(
                {
                    "kind": "slow_query",
                    "fault": {"kind": "slow_query", "endpoint": "orders", "rows": rows},
                    "noise": noise,
                }
            )
    # A pool only matters where requests overlap: k6's arrival-rate executor spaces iterations
    # evenly, so the rate is set per case (trial runs: size 2 at medium noise and 80/s, or size
    # 3 at high noise and 80/s, moved p95 by <= 10 %; these five raise it from 1.6x to 45x).
    for size, noise, rate in (
        (1, "low", 160),
        (1, "medium", 60),
        (1, "medium", 80),
        (2, "high", 60),
        (3, "high", 100),
    ):
        designs.append(
            {
                "kind": "pool",
                "fault": {"kind": "pool", "size": size},
                "noise": noise,
                "rate": rate,
            }
        )
    for endpoint, share, ramp, noise in (
        ("search", 0.05, False, "low"),
        ("catalog", 0.10, False, "medium"),
        ("orders", 0.05, True, "high"),
        ("profile", 0.10, True, "low"),
        ("search", 0.05, True, "medium"),
        ("catalog", 0.05, False, "high"),
    ):
        designs.append(
            {
                "kind": "errors",
                "fault": {
                    "kind": "errors",
                    "endpoint": endpoint,
                    "rate": share,
                    "ramp": ramp,
                    "ramp_s": 6,
                },
                "noise": noise,
            }
        )
    return designs


def _expected_p95(endpoint: str, fault: dict[str, Any], noise: str) -> float | None:
    """What the design expects the candidate's p95 of ``endpoint`` to be, roughly (ms);
    None where the design cannot say (a small pool: depends on queueing)."""
    jitter = float(NOISE[noise]["jitter_ms"])
    p95 = BASE_P95[endpoint] + 0.95 * jitter
    if fault["kind"] == "pool":
        return None
    if fault.get("endpoint") == endpoint:
        if fault["kind"] == "latency":
            p95 += float(fault["ms"])
        elif fault["kind"] == "slow_query":
            p95 += SLOW_QUERY_ADDS_MS[int(fault["rows"])]
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


def generate_cases(seed: int = SEED) -> list[dict[str, Any]]:
    """The case list: deterministic for a seed; kinds interleaved so any prefix covers all."""
    rng = random.Random(seed)
    designs = _designs()
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for design in designs:
        by_kind.setdefault(design["kind"], []).append(design)
    for group in by_kind.values():
        rng.shuffle(group)
    ordered: list[dict[str, Any]] = []
    # Round robin, with "none" taking two slots per round (it is ~40 % of the set).
    pattern = ["none", "latency", "none", "slow_query", "pool", "errors"]
    while any(by_kind.values()):
        for kind in pattern:
            if by_kind.get(kind):
                ordered.append(by_kind[kind].pop())
    cases = []
    for index, design in enumerate(ordered, start=1):
        fault, noise, kind = design["fault"], design["noise"], design["kind"]
        affected = "*" if kind == "pool" else (fault.get("endpoint") if kind != "none" else None)
        focus = affected if affected not in (None, "*") else rng.choice(ENDPOINTS)
        tight_focus = rng.random() < 0.35
        tight_global = rng.random() < 0.3
        expected = {e: _expected_p95(e, fault, noise) for e in ENDPOINTS}
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
        detail = {
            "none": "",
            "latency": f"-{fault.get('endpoint')}+{fault.get('ms')}ms",
            "slow_query": f"-{fault.get('endpoint')}-{fault.get('rows', 0) // 1000}k",
            "pool": f"-size{fault.get('size')}",
            "errors": (
                f"-{fault.get('endpoint')}-{float(fault.get('rate', 0)) * 100:g}pct"
                + ("-ramp" if fault.get("ramp") else "")
            ),
        }[kind]
        rate = design.get("rate", OPEN_LOOP["rate"])
        case_id = f"g{index:02d}-{kind}{detail}-{noise}-r{rate}"
        cases.append(
            {
                "id": case_id,
                "kind": kind,
                "fault": fault,
                "noise_level": noise,
                "noise": NOISE[noise],
                "load": {**OPEN_LOOP, "rate": rate},
                "slos": slos,
                "labels": {
                    "fault": kind,
                    "endpoint_affected": affected,
                    "expected_regression": kind != "none",
                    "slo_breach_design": design_breach,
                    # Filled in by the build from k6's own summary of the candidate run:
                    "slo_breach_k6": None,
                    "slo_measured_k6": None,
                },
            }
        )
    return cases


def plan_document(case: dict[str, Any], target: str) -> dict[str, Any]:
    return {
        "name": f"golden-{case['id']}",
        "description": "Golden evaluation set case (eval/golden).",
        "target": {"base_url": target, "environment": "local"},
        "endpoints": [
            {"name": name, "path": PATHS[name], "expect_status": 200} for name in ENDPOINTS
        ],
        "load": case["load"],
        "slos": [
            {"objective": s["objective"], "endpoint": s["endpoint"]}
            if s["endpoint"]
            else s["objective"]
            for s in case["slos"]
        ],
    }


# --- k6's own numbers ----------------------------------------------------------------------


def k6_figures(summary: dict[str, Any] | None) -> dict[str, Any] | None:
    """Per endpoint ('*': all), straight from k6's end-of-test summary."""
    from app.runs.summary import endpoint_result

    if not summary or not isinstance(summary.get("metrics"), dict):
        return None
    figures = {}
    for endpoint in (None, *ENDPOINTS):
        row = endpoint_result(summary["metrics"], endpoint)
        figures[row["endpoint"]] = {
            k: row[k] for k in ("requests", "failures", "error_rate", "p50_ms", "p95_ms", "p99_ms")
        }
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


def run_case(client: Any, target: str, case: dict[str, Any], db_url: str) -> dict[str, Any]:
    document = plan_document(case, target)
    started = time.monotonic()
    plan = client.create_plan(document)
    client.approve(plan["id"], reviewer="eval/golden")
    configure_target(target, {"kind": "none"}, case["noise"])
    baseline = client.wait(client.execute(plan["id"])["id"])
    configure_target(target, case["fault"], case["noise"])
    candidate = client.wait(client.execute(plan["id"])["id"])
    configure_target(target, {"kind": "none"}, {})
    record: dict[str, Any] = {
        "plan_id": plan["id"],
        "baseline_run": _run_view(baseline),
        "candidate_run": _run_view(candidate),
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
    if "analysis" not in record:
        return f"ERROR {record.get('error')}"
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
    return (
        f"verdict {analysis.get('verdict')}, slo {slo} (k6 {truth}), regressions "
        f"{','.join(regressions) or '-'}"
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
    archive = subprocess.run(
        [*git, "archive", commit, "app", "migrations", "alembic.ini"],
        capture_output=True,
        check=True,
    )
    subprocess.run(["tar", "-x", "-C", str(snapshot)], input=archive.stdout, check=True)
    sys.path.insert(0, str(snapshot))
    atexit.register(shutil.rmtree, snapshot, ignore_errors=True)
    return {"code": f"commit {commit}", "head": commit, "snapshot": str(snapshot)}


def build(args: argparse.Namespace) -> int:
    code = use_code(args.at)
    os.environ.setdefault("PERF_AGENT_DATABASE_URL", DEFAULT_DB)
    db_url = os.environ["PERF_AGENT_DATABASE_URL"]
    ensure_database(db_url)

    from app.cli import free_port, running_service
    from app.client import PerfAgentClient
    from app.core.settings import get_settings

    code["app_imported_from"] = str(Path(sys.modules["app"].__file__ or "").parent)
    cases = generate_cases(args.seed)
    if args.only:
        cases = [c for c in cases if c["kind"] in args.only]
    if args.pairs:
        cases = cases[: args.pairs]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = get_settings().model_copy(update={"worker_poll_interval_s": 0.2})
    results: dict[str, Any] = {
        "meta": {
            "seed": args.seed,
            "database": db_url.rsplit("@", 1)[-1],
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "k6_binary": settings.k6_binary,
            **code,
        },
        "cases": {},
    }
    started = time.monotonic()
    print(
        f"{len(cases)} pairs ({sum(c['kind'] == 'none' for c in cases)} without a fault); "
        f"service code: {code['code']}"
    )
    with (
        running_target(free_port()) as target,
        running_service(settings, free_port()) as service,
        PerfAgentClient(service, timeout_s=120) as client,
    ):
        warm_up(target)
        for n, case in enumerate(cases, start=1):
            record = run_case(client, target, case, db_url)
            label_case(case, record)
            results["cases"][case["id"]] = record
            print(
                f"[{n:>2}/{len(cases)}] {case['id']:<40} {record['seconds']:>5.1f}s  "
                f"{one_line(case, record)}",
                flush=True,
            )
            write_json(out / "cases.json", cases[:n])
            write_json(out / "results.json", results)
    elapsed = time.monotonic() - started
    results["meta"]["wall_seconds"] = round(elapsed, 1)
    write_json(out / "cases.json", cases)
    write_json(out / "results.json", results)
    print(f"built {len(cases)} pairs in {elapsed / 60:.1f} min -> {out}/cases.json, results.json")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=None, help="only the first N cases")
    p.add_argument(
        "--only",
        action="append",
        choices=("none", "latency", "slow_query", "pool", "errors"),
        help="only cases of this fault kind (repeatable)",
    )
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--out", default=str(HERE), help="directory for cases.json, results.json")
    p.add_argument(
        "--at",
        metavar="REV",
        default=None,
        help="run the service as committed at REV (e.g. HEAD; a git archive snapshot) "
        "instead of this working tree",
    )
    p.add_argument("--list", action="store_true", help="print the case list and exit")
    return p


def main() -> int:
    args = parser().parse_args()
    if args.list:
        for case in generate_cases(args.seed):
            slos = "; ".join(f"{s['endpoint'] or '*'}:{s['objective']}" for s in case["slos"])
            print(f"{case['id']:<40} {slos}  design-breach {case['labels']['slo_breach_design']}")
        return 0
    return build(args)


if __name__ == "__main__":
    raise SystemExit(main())
