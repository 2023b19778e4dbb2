"""Score the service's analyses of the golden set against its labels.

    .venv/bin/python eval/golden/score.py                 # score cases.json + results.json
    .venv/bin/python eval/golden/score.py --run --at HEAD # build first (a new draw), then score
    .venv/bin/python eval/golden/score.py --run --per-family 1 --out /tmp/golden
    .venv/bin/python eval/golden/score.py -v              # one line per case as well

Figures (targets beside them; the exit status is 1 when one is missed, 2 when there is
nothing to score):

- SLO breaches: each SLO's status in the analysis against the ground truth, i.e. k6's own
  end-of-test summary value of the candidate run compared with the SLO's target (100 %).
- Regression recall: pairs with a change for the worse in the target whose analysis has a
  "regression" comparison or finding on an affected endpoint or on all requests ('*'), of the
  right SLI type (error_rate for the errors fault, a latency SLI otherwise); for faults that
  hit every endpoint (pool, churn) any endpoint (>= 95 %).
- False alarms: pairs with no change in the target (none, a closed-model load change, a
  disturbed generator) with any "regression" comparison or finding (<= 2 %).
- Root cause named: fault pairs with a root-cause finding (any kind except slo_breach and
  slo_no_data, which only restate the plan's own objective) whose ``endpoint`` is the injected
  one; per family: pool → saturation / pool / queue / concurrency / knee; churn → keep-alive /
  reconnect / churn / new connections; stalls → a finding on the endpoint saying tail / stall /
  p99 / intermittent; lock → a finding naming either endpoint and saying queue / lock /
  contention / concurrency / pool (>= 80 %).
- Disturbed generator: pairs where a CPU hog ran beside k6 in one run must be judged
  ``inconclusive``, and none judged a regression (all of them).

Information: load-change pairs not called a regression / labelled as a load change
(``analysis.load.changed``), improvements detected, ``load_generator.status`` per kind of
pair, per-family recall and root cause, pairs whose runs had other processes' CPU load on
the machine, and a design check of every family against k6's own numbers.

Fields the analysis lacks (``comparisons``, ``load_generator``, ``load``) are reported as
missing, never as a crash.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ENDPOINTS = ("catalog", "orders", "search", "profile")
TARGETS = {
    "slo": ("SLO breaches detected (status vs k6)", ">=", 1.00),
    "recall": ("regression recall (endpoint, SLI, direction)", ">=", 0.95),
    "false_alarms": ("false-alarm rate (no-change pairs)", "<=", 0.02),
    "root_cause": ("root cause named", ">=", 0.80),
    "disturbed": ("disturbed pairs judged inconclusive", ">=", 1.00),
}
RESTATES_OBJECTIVE = {"slo_breach", "slo_no_data"}
LATENCY_SLIS = {"avg", "min", "med", "p50", "p90", "p95", "p99", "max"}
POOL_WORDS = ("saturat", "pool", "queue", "concurren", "knee")
CHURN_WORDS = (
    "keep-alive",
    "keepalive",
    "reconnect",
    "churn",
    "connection reuse",
    "new connection",
    "connections closed",
    "connection: close",
)
TAIL_WORDS = ("tail", "stall", "p99", "intermittent")
LOCK_WORDS = ("queue", "queuing", "lock", "contention", "concurren", "pool")
EVERY_ENDPOINT = ("pool", "churn")
OTHER_LOAD_FLAG = 0.25


def pct(x: float | None) -> str:
    return "  n/a" if x is None else f"{x * 100:5.1f} %"


def num(x: Any, digits: int = 1) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def ratio(hits: int, total: int) -> float | None:
    return hits / total if total else None


def frac(hits: int, total: int) -> str:
    return f"{hits}/{total}"


# --- labels, with defaults for sets built before the new families -------------------------


def affected_set(case: dict[str, Any]) -> list[str]:
    labels = case["labels"]
    found = labels.get("endpoints_affected")
    if found:
        return list(found)
    affected = labels.get("endpoint_affected")
    if affected == "*":
        return list(ENDPOINTS)
    return [affected] if affected else []


def no_change(case: dict[str, Any]) -> bool:
    labels = case["labels"]
    if "no_change_in_target" in labels:
        return bool(labels["no_change_in_target"])
    return not labels.get("expected_regression") and not labels.get("expected_improvement")


def is_improvement(case: dict[str, Any]) -> bool:
    return bool(case["labels"].get("expected_improvement"))


def is_fault(case: dict[str, Any]) -> bool:
    return bool(case["labels"].get("expected_regression"))


def expected_verdict(case: dict[str, Any]) -> str | None:
    """From the design and k6's truth: inconclusive for a disturbed generator, fail for a
    regression or a breached SLO, else pass; None when an SLO's truth is unknown."""
    labels = case["labels"]
    if labels.get("expected_verdict"):
        return str(labels["expected_verdict"])
    truths = labels.get("slo_breach_k6") or []
    if None in truths:
        return None
    return "fail" if labels.get("expected_regression") or any(truths) else "pass"


# --- per-case judgements -------------------------------------------------------------------


def match_slo(slo: dict[str, Any], slo_results: list[dict[str, Any]]) -> dict[str, Any] | None:
    for res in slo_results:
        if (
            res.get("endpoint") == slo["endpoint"]
            and res.get("sli") == slo["sli"]
            and abs(float(res.get("target", -1)) - float(slo["target"])) < 1e-9
        ):
            return res
    return None


def regressions(analysis: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    comparisons = [c for c in analysis.get("comparisons") or [] if c.get("verdict") == "regression"]
    findings = [f for f in analysis.get("findings") or [] if f.get("kind") == "regression"]
    return comparisons, findings


def finding_slis(finding: dict[str, Any]) -> set[str] | None:
    evidence = finding.get("evidence") or {}
    slis = evidence.get("slis") or evidence.get("sli")
    if not slis:
        return None
    if isinstance(slis, str):
        return {s.strip() for s in slis.split(",") if s.strip()}
    return {str(s) for s in slis}


def right_type(sli: str | None, want_error: bool) -> bool:
    return sli == "error_rate" if want_error else sli in LATENCY_SLIS


def on_endpoint(item_endpoint: str | None, affected: list[str], every: bool) -> bool:
    """A comparison ('*' = all) or finding (None = all) on an affected endpoint or on all."""
    if item_endpoint in ("*", None):
        return True
    return every or item_endpoint in affected


def recall_hit(case: dict[str, Any], analysis: dict[str, Any]) -> tuple[bool, bool]:
    """(flagged with the right endpoint, SLI type and direction; flagged at all on it)."""
    affected = affected_set(case)
    every = case["kind"] in EVERY_ENDPOINT
    want_error = case["kind"] == "errors"
    comps, finds = regressions(analysis)
    comps = [c for c in comps if on_endpoint(c.get("endpoint"), affected, every)]
    finds = [f for f in finds if on_endpoint(f.get("endpoint"), affected, every)]
    strict = any(right_type(c.get("sli"), want_error) for c in comps) or any(
        (slis := finding_slis(f)) is None or any(right_type(s, want_error) for s in slis)
        for f in finds
    )
    return strict, bool(comps or finds)


def text_of(finding: dict[str, Any]) -> str:
    return f"{finding.get('kind', '')} {finding.get('summary', '')}".lower()


def root_cause(case: dict[str, Any], analysis: dict[str, Any]) -> tuple[bool, bool, list[str]]:
    """(named by a root-cause finding, named by any finding, other endpoints blamed)."""
    kind = case["kind"]
    affected = affected_set(case)
    findings = analysis.get("findings") or []
    causes = [f for f in findings if f.get("kind") not in RESTATES_OBJECTIVE]

    def words(f: dict[str, Any], vocabulary: tuple[str, ...]) -> bool:
        return any(w in text_of(f) for w in vocabulary)

    def names(f: dict[str, Any]) -> bool:
        summary = str(f.get("summary") or "")
        return f.get("endpoint") in affected or any(f"`{e}`" in summary for e in affected)

    if kind == "pool":
        return (
            any(words(f, POOL_WORDS) for f in causes),
            any(words(f, POOL_WORDS) for f in findings),
            [],
        )
    if kind == "churn":
        return (
            any(words(f, CHURN_WORDS) for f in causes),
            any(words(f, CHURN_WORDS) for f in findings),
            [],
        )
    if kind == "lock":
        hit = [f for f in findings if names(f) and words(f, LOCK_WORDS)]
        return any(f.get("kind") not in RESTATES_OBJECTIVE for f in hit), bool(hit), []
    if kind == "stalls":
        hit = [f for f in findings if f.get("endpoint") in affected and words(f, TAIL_WORDS)]
        named = any(f.get("kind") not in RESTATES_OBJECTIVE for f in hit)
    else:
        named = any(f.get("endpoint") in affected for f in causes)
        hit = [f for f in findings if f.get("endpoint") in affected]
    others = sorted(
        {
            f"{f.get('kind')}:{f.get('endpoint')}"
            for f in findings
            if f.get("kind") in ("regression", "slow_endpoint", "errors")
            and f.get("endpoint") not in (None, *affected)
        }
    )
    return named, bool(hit), others


def improvement_hit(case: dict[str, Any], analysis: dict[str, Any]) -> bool:
    affected = affected_set(case)
    comps = [
        c
        for c in analysis.get("comparisons") or []
        if c.get("verdict") == "improvement"
        and c.get("endpoint") in (*affected, "*")
        and c.get("sli") in LATENCY_SLIS
    ]
    finds = [
        f
        for f in analysis.get("findings") or []
        if f.get("kind") == "improvement" and f.get("endpoint") in (*affected, None)
    ]
    return bool(comps or finds)


# --- k6's own numbers ----------------------------------------------------------------------


def k6_row(record: dict[str, Any], run: str, endpoint: str) -> dict[str, Any]:
    return ((record.get("k6") or {}).get(run) or {}).get(endpoint) or {}


def rel(base: Any, cand: Any) -> float | None:
    if base is None or cand is None or not base:
        return None
    return (float(cand) - float(base)) / float(base)


def k6_change(record: dict[str, Any], endpoint: str, sli: str) -> str:
    base = k6_row(record, "baseline", endpoint).get(sli)
    cand = k6_row(record, "candidate", endpoint).get(sli)
    if base is None or cand is None:
        return f"{endpoint} {sli} -"
    if sli == "error_rate":
        return f"{endpoint} error_rate {base * 100:.2f}% -> {cand * 100:.2f}%"
    if sli == "rps":
        return f"{endpoint} rps {base:.1f} -> {cand:.1f} ({(cand - base) / base * 100:+.0f}%)"
    change = f" ({(cand - base) / base * 100:+.0f}%)" if base else ""
    return f"{endpoint} {sli.removesuffix('_ms')} {base:.1f} -> {cand:.1f} ms{change}"


def rise(record: dict[str, Any], endpoint: str, keys: tuple[str, ...]) -> float | None:
    changes = [
        c
        for k in keys
        if (
            c := rel(
                k6_row(record, "baseline", endpoint).get(k),
                k6_row(record, "candidate", endpoint).get(k),
            )
        )
        is not None
    ]
    return max(changes) if changes else None


def design_check(case: dict[str, Any], record: dict[str, Any]) -> tuple[str, float | None, bool]:
    """What k6 itself measured of the case's design: (text, value, moved as designed)."""
    kind = case["kind"]
    affected = affected_set(case)
    focus = "*" if kind in EVERY_ENDPOINT else (affected[0] if affected else "*")
    if kind == "errors":
        base = k6_row(record, "baseline", focus).get("error_rate")
        cand = k6_row(record, "candidate", focus).get("error_rate")
        if base is None or cand is None:
            return "-", None, False
        value = cand - base
        return f"{focus} error rate {value * 100:+.2f} points", value, value >= 0.01
    if kind == "stalls":
        value = rise(record, focus, ("p99_ms",))
        median = rise(record, focus, ("p50_ms",))
        ok = value is not None and value >= 0.40 and (median is None or median < 0.15)
        return (
            f"{focus} p99 {pct_s(value)}, p50 {pct_s(median)}",
            value,
            ok,
        )
    if kind == "slowdown":
        value = rise(record, focus, ("p50_ms",))
        factor = (case.get("fault") or {}).get("factor")
        return (
            f"{focus} p50 {pct_s(value)} (designed {pct_s(factor)})",
            value,
            value is not None and value >= 0.10,
        )
    if kind == "lock":
        values = [v for e in affected if (v := rise(record, e, ("p50_ms", "p95_ms"))) is not None]
        value = max(values) if values else None
        return f"{'/'.join(affected)} p50/p95 up to {pct_s(value)}", value, (value or 0) >= 0.15
    if kind == "improvement":
        falls = [
            c
            for k in ("p50_ms", "p95_ms")
            if (
                c := rel(
                    k6_row(record, "baseline", focus).get(k),
                    k6_row(record, "candidate", focus).get(k),
                )
            )
            is not None
        ]
        value = min(falls) if falls else None
        return f"{focus} p50/p95 down to {pct_s(value)}", value, (value or 0) <= -0.15
    if kind == "load_change":
        value = rel(
            k6_row(record, "baseline", "*").get("rps"), k6_row(record, "candidate", "*").get("rps")
        )
        p95 = rise(record, "*", ("p95_ms",))
        return (
            f"* rps {pct_s(value)} (p95 {pct_s(p95)})",
            value,
            value is not None and abs(value) >= 0.20,
        )
    if kind == "disturbed":
        run = case["labels"].get("disturbed_run") or case.get("hog") or "candidate"
        hog = ((record.get("cpu") or {}).get(run) or {}).get("hog_cores")
        p50 = rise(record, "*", ("p50_ms",))
        return (
            f"hog {num(hog, 2)} cores in the {run}; * p50 {pct_s(p50)} (candidate vs baseline)",
            hog,
            hog is not None and hog >= 0.5,
        )
    if kind == "none":
        value = rise(record, "*", ("p95_ms",))
        return f"* p95 {pct_s(value)}", value, True
    value = rise(record, focus, ("p50_ms", "p95_ms"))
    return f"{focus} p50/p95 up to {pct_s(value)}", value, (value or 0) >= 0.15


def pct_s(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:+.0f}%"


def comparison_text(c: dict[str, Any]) -> str:
    def val(x: Any) -> str:
        if x is None:
            return "-"
        return f"{x * 100:.2f}%" if c.get("sli") == "error_rate" else f"{x:.1f}"

    change = c.get("change")
    return (
        f"{c.get('endpoint')}:{c.get('sli')} {val(c.get('baseline'))}->{val(c.get('current'))}"
        f"{'' if change is None else f' ({change * 100:+.0f}%)'} "
        f"p={num(c.get('p_value'), 3)} d={num(c.get('effect_size'), 2)} {c.get('verdict')}"
        + (" explained_by_load" if c.get("explained_by_load") else "")
    )


def other_load(record: dict[str, Any]) -> tuple[float | None, float | None]:
    """Other processes' CPU plus the hypervisor's steal, per run (cores)."""
    cpu = record.get("cpu") or {}

    def one(run: str) -> float | None:
        row = cpu.get(run) or {}
        if row.get("other_cores") is None:
            return None
        return float(row["other_cores"]) + float(row.get("steal_cores") or 0.0)

    return one("baseline"), one("candidate")


def busy_note(record: dict[str, Any], flag: float) -> str:
    base, cand = other_load(record)
    if base is None and cand is None:
        return ""
    mark = " OTHER LOAD" if max(base or 0, cand or 0) >= flag else ""
    return f" [other CPU + steal {num(base, 2)}/{num(cand, 2)} cores{mark}]"


# --- scoring -------------------------------------------------------------------------------


def score(cases: list[dict[str, Any]], results: dict[str, Any], verbose: bool) -> int:
    records = results.get("cases", {})
    meta = results.get("meta", {})
    flag = float(meta.get("other_load_flag_cores") or OTHER_LOAD_FLAG)
    missing_analysis = [c["id"] for c in cases if "analysis" not in records.get(c["id"], {})]
    scored = [c for c in cases if c["id"] not in missing_analysis]
    print(f"seed {meta.get('seed')}" + (" (drawn at random)" if meta.get("seed_drawn") else ""))
    if not scored:
        print("nothing to score: no case has an analysis")
        return 2
    missing_fields: Counter[str] = Counter()
    for case in scored:
        analysis = records[case["id"]]["analysis"]
        for field in (
            "verdict",
            "slo_results",
            "comparisons",
            "findings",
            "baseline_run_ids",
            "load_generator",
            "load",
        ):
            if field not in analysis or analysis[field] is None:
                missing_fields[field] += 1
        baseline_id = records[case["id"]]["baseline_run"]["id"]
        if "baseline_run_ids" in analysis and analysis["baseline_run_ids"] != [baseline_id]:
            missing_fields["baseline_run_ids == [requested baseline]"] += 1
    busy = {c["id"] for c in scored if max(x or 0 for x in other_load(records[c["id"]])) >= flag}

    # SLO status vs k6's own numbers.
    slo_total = slo_right = 0
    slo_by_truth: dict[bool, list[int]] = {True: [0, 0], False: [0, 0]}
    slo_misses: list[str] = []
    k6_threshold_agree = k6_threshold_total = 0
    design_agree = design_total = 0
    measure_gaps: list[float] = []
    for case in scored:
        analysis = records[case["id"]]["analysis"]
        truths = case["labels"].get("slo_breach_k6") or [None] * len(case["slos"])
        measured_k6 = case["labels"].get("slo_measured_k6") or [None] * len(case["slos"])
        designs = case["labels"].get("slo_breach_design") or [None] * len(case["slos"])
        for slo, truth, k6_value, design in zip(
            case["slos"], truths, measured_k6, designs, strict=True
        ):
            if truth is None:
                continue
            if design is not None:
                design_total += 1
                design_agree += design == truth
            res = match_slo(slo, analysis.get("slo_results") or [])
            slo_total += 1
            slo_by_truth[truth][1] += 1
            got = None if res is None else res.get("status")
            right = (got == "fail") if truth else (got == "pass")
            slo_right += right
            slo_by_truth[truth][0] += right
            if (
                res is not None
                and slo["sli"] != "error_rate"
                and k6_value
                and res.get("measured") is not None
            ):
                measure_gaps.append(abs(float(res["measured"]) - k6_value) / k6_value)
            if res is not None and res.get("k6_threshold_ok") is not None:
                k6_threshold_total += 1
                k6_threshold_agree += res["k6_threshold_ok"] == (not truth)
            if not right:

                def shown(v: float, sli: str = slo["sli"]) -> str:
                    return f"{v * 100:.3f}%" if sli == "error_rate" else f"{v:.2f} ms"

                slo_misses.append(
                    f"{case['id']}: {slo['endpoint'] or '*'} {slo['objective']}: k6 "
                    f"{shown(k6_value)} ({'breached' if truth else 'met'}), analysis "
                    f"{got or 'missing'} (measured "
                    f"{shown(res['measured']) if res and res.get('measured') is not None else '-'})"
                )

    # Verdict vs the design and vs k6's truth.
    verdict_truth = [0, 0]
    verdict_misses: list[str] = []
    verdicts_by_kind: dict[str, Counter[str]] = defaultdict(Counter)
    for case in scored:
        verdict = records[case["id"]]["analysis"].get("verdict")
        verdicts_by_kind[case["kind"]][str(verdict)] += 1
        expected = expected_verdict(case)
        if expected is None:
            continue
        verdict_truth[1] += 1
        verdict_truth[0] += verdict == expected
        if verdict != expected:
            verdict_misses.append(
                f"{case['id']}: verdict {verdict}, expected {expected}"
                + busy_note(records[case["id"]], flag)
            )

    has_comparisons = all("comparisons" in records[c["id"]]["analysis"] for c in scored)
    fault_cases = [c for c in scored if is_fault(c)]
    quiet_cases = [c for c in scored if no_change(c)]
    better_cases = [c for c in scored if is_improvement(c)]

    # Regression recall and root cause, per family.
    recall_hits = recall_loose = 0
    recall_by_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    recall_misses: list[str] = []
    root_hits = root_any_hits = 0
    root_by_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    root_misses: list[str] = []
    collateral: list[str] = []
    for case in fault_cases:
        record = records[case["id"]]
        analysis = record["analysis"]
        strict, loose = recall_hit(case, analysis)
        recall_hits += strict
        recall_loose += loose
        recall_by_kind[case["kind"]][0] += strict
        recall_by_kind[case["kind"]][1] += 1
        if not strict:
            affected = affected_set(case)
            focus = "*" if case["kind"] in EVERY_ENDPOINT else affected[0]
            want_error = case["kind"] == "errors"
            relevant = [
                comparison_text(c)
                for c in analysis.get("comparisons") or []
                if c.get("endpoint") in (*affected, "*")
                and right_type(c.get("sli"), want_error)
                and c.get("verdict") != "unchanged"
            ]
            k6_slis = ("error_rate",) if want_error else ("p50_ms", "p95_ms", "p99_ms")
            recall_misses.append(
                f"{case['id']}: no regression on {'/'.join(affected)} or *"
                + busy_note(record, flag)
                + "; k6 "
                + ", ".join(k6_change(record, focus, s) for s in k6_slis)
                + "\n      "
                + ("\n      ".join(relevant) or "(no comparison other than 'unchanged')")
            )
        named, named_any, others = root_cause(case, analysis)
        root_hits += named
        root_any_hits += named_any
        root_by_kind[case["kind"]][0] += named
        root_by_kind[case["kind"]][1] += 1
        if not named:
            kinds = ", ".join(
                f"{f.get('kind')}:{f.get('endpoint')}" for f in analysis.get("findings") or []
            )
            root_misses.append(f"{case['id']}: findings [{kinds or 'none'}]")
        if others:
            collateral.append(f"{case['id']}: also blamed {', '.join(others)}")

    # False alarms over every pair with no change in the target.
    false_alarms = 0
    alarms_by_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    alarms_by_noise: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    alarm_lines: list[str] = []
    alarmed: set[str] = set()
    for case in quiet_cases:
        record = records[case["id"]]
        comps, finds = regressions(record["analysis"])
        alarm = bool(comps or finds)
        false_alarms += alarm
        if alarm:
            alarmed.add(case["id"])
        alarms_by_kind[case["kind"]][0] += alarm
        alarms_by_kind[case["kind"]][1] += 1
        alarms_by_noise[case["noise_level"]][0] += alarm
        alarms_by_noise[case["noise_level"]][1] += 1
        if alarm:
            details = [comparison_text(c) for c in comps] or [
                f"finding {f.get('endpoint')}: {f.get('summary')}" for f in finds
            ]
            alarm_lines.append(
                f"{case['id']}{busy_note(record, flag)}:\n      " + "\n      ".join(details)
            )

    # Disturbed generator: inconclusive, never a regression.
    disturbed = [c for c in scored if c["labels"].get("disturbed")]
    disturbed_ok = disturbed_inconclusive = disturbed_regression = 0
    disturbed_lines: list[str] = []
    for case in disturbed:
        analysis = records[case["id"]]["analysis"]
        inconclusive = analysis.get("verdict") == "inconclusive"
        regression = case["id"] in alarmed
        disturbed_inconclusive += inconclusive
        disturbed_regression += regression
        disturbed_ok += inconclusive and not regression
        if not (inconclusive and not regression):
            generator = analysis.get("load_generator")
            status = (
                (generator or {}).get("status", "missing")
                if isinstance(generator, dict)
                else "missing"
            )
            disturbed_lines.append(
                f"{case['id']}: verdict {analysis.get('verdict')}, load_generator {status}"
                + (", a regression" if regression else "")
                + busy_note(records[case["id"]], flag)
            )

    # Load change under a closed model.
    load_cases = [c for c in scored if c["labels"].get("load_change")]
    load_not_regression = load_labelled = load_missing = load_explained = 0
    load_lines: list[str] = []
    for case in load_cases:
        record = records[case["id"]]
        analysis = record["analysis"]
        not_reg = case["id"] not in alarmed
        load = analysis.get("load")
        if not isinstance(load, dict):
            load_missing += 1
            labelled = False
        else:
            labelled = load.get("changed") is True
        load_not_regression += not_reg
        load_labelled += labelled
        load_explained += any(c.get("explained_by_load") for c in analysis.get("comparisons") or [])
        if not (not_reg and labelled):
            said = (
                "missing"
                if not isinstance(load, dict)
                else ("changed" if labelled else "not changed")
            )
            load_lines.append(
                f"{case['id']}: {'a regression' if not not_reg else 'not a regression'}, "
                f"load {said}"
                f"; k6 {k6_change(record, '*', 'rps')}, {k6_change(record, '*', 'p95_ms')}"
            )

    # Improvements.
    better_hits = better_regressions = 0
    better_lines: list[str] = []
    for case in better_cases:
        analysis = records[case["id"]]["analysis"]
        hit = improvement_hit(case, analysis)
        better_hits += hit
        comps, finds = regressions(analysis)
        better_regressions += bool(comps or finds)
        if not hit or comps or finds:
            better_lines.append(
                f"{case['id']}: improvement {'found' if hit else 'not found'}"
                + (f", regressions {', '.join(comparison_text(c) for c in comps)}" if comps else "")
                + f"; k6 {k6_change(records[case['id']], affected_set(case)[0], 'p50_ms')}"
            )

    # Improvements claimed where nothing changed, and inconclusive verdicts nobody designed.
    quiet_improvements = [
        c["id"]
        for c in quiet_cases
        if any(
            x.get("verdict") == "improvement"
            for x in records[c["id"]]["analysis"].get("comparisons") or []
        )
    ]
    undesigned_inconclusive = [
        c["id"]
        for c in scored
        if records[c["id"]]["analysis"].get("verdict") == "inconclusive"
        and not c["labels"].get("disturbed")
    ]

    # Load-generator health as the analysis reports it.
    generator_status: dict[str, Counter[str]] = defaultdict(Counter)
    for case in scored:
        analysis = records[case["id"]]["analysis"]
        generator = analysis.get("load_generator")
        status = generator.get("status", "unknown") if isinstance(generator, dict) else "missing"
        if case["labels"].get("disturbed"):
            group = f"disturbed ({case['labels'].get('disturbed_run') or '?'})"
        elif case["id"] in busy:
            group = "other CPU load"
        else:
            group = "undisturbed"
        generator_status[group][status] += 1

    # Design check: did k6 itself see each family's designed effect?
    design_lines: dict[str, list[tuple[str, str, float | None, bool]]] = defaultdict(list)
    for case in scored:
        text, value, ok = design_check(case, records[case["id"]])
        design_lines[case["kind"]].append((case["id"], text, value, ok))

    figures = {
        "slo": ratio(slo_right, slo_total),
        "recall": ratio(recall_hits, len(fault_cases)) if has_comparisons else None,
        "false_alarms": ratio(false_alarms, len(quiet_cases)) if has_comparisons else None,
        "root_cause": ratio(root_hits, len(fault_cases)),
        "disturbed": ratio(disturbed_ok, len(disturbed)),
    }
    counts = {
        "slo": frac(slo_right, slo_total),
        "recall": frac(recall_hits, len(fault_cases)),
        "false_alarms": frac(false_alarms, len(quiet_cases)),
        "root_cause": frac(root_hits, len(fault_cases)),
        "disturbed": frac(disturbed_ok, len(disturbed)),
    }

    # --- print -----------------------------------------------------------------------------
    kind_counts = Counter(c["kind"] for c in scored)
    print(
        f"golden set: {len(scored)} pairs scored — {len(fault_cases)} with a fault, "
        f"{len(better_cases)} improvements, {len(quiet_cases)} without a change in the target "
        f"({len(quiet_cases) / len(scored) * 100:.0f} %)"
    )
    print("  " + ", ".join(f"{k} {n}" for k, n in sorted(kind_counts.items())))
    if meta.get("wall_seconds"):
        print(
            f"built in {meta['wall_seconds'] / 60:.1f} min (service code: {meta.get('code', '?')}"
            + (", with uncommitted changes" if meta.get("uncommitted_changes_in_app") else "")
            + ")"
        )
    if missing_analysis:
        print(
            f"MISSING: {len(missing_analysis)} cases without an analysis (run or analyse failed):"
        )
        for case_id in missing_analysis:
            print(f"  {case_id}: {records.get(case_id, {}).get('error', 'not built')}")
    for field, n in sorted(missing_fields.items()):
        print(f"MISSING: {n}/{len(scored)} analyses lack {field}")
    if verbose:
        print()
        for case in scored:
            record = records[case["id"]]
            analysis = record["analysis"]
            comps, _ = regressions(analysis)
            moved = ",".join(sorted({f"{c.get('endpoint')}:{c.get('sli')}" for c in comps}))
            found = ",".join(
                f"{f.get('kind')}:{f.get('endpoint')}" for f in analysis.get("findings") or []
            )
            generator = analysis.get("load_generator")
            status = generator.get("status") if isinstance(generator, dict) else "-"
            print(
                f"  {case['id']:<54} verdict {analysis.get('verdict')!s:<12} generator "
                f"{status!s:<9} regressions {moved or '-'}; findings {found or '-'}"
                + busy_note(record, flag)
            )
    print()
    print(f"{'figure':<46} {'measured':>9}   {'target':>8}   {'':>6} count")
    failed = []
    for key, (label, op, target) in TARGETS.items():
        value = figures[key]
        if key == "disturbed" and not disturbed:
            print(f"{label:<46} {'n/a':>9}   (no disturbed pairs in this set)")
            continue
        ok = value is not None and (value >= target if op == ">=" else value <= target)
        if not ok:
            failed.append(label)
        print(
            f"{label:<46} {pct(value):>9}   {op} {target * 100:g} %{'':<3} "
            f"{'ok' if ok else 'MISSED':>6} {counts[key]}"
        )
    print()
    print("details")
    print(
        f"  SLO breaches caught (k6 breached -> fail): "
        f"{slo_by_truth[True][0]}/{slo_by_truth[True][1]}; met SLOs passed: "
        f"{slo_by_truth[False][0]}/{slo_by_truth[False][1]}"
    )
    print(
        f"  k6's own threshold verdict agrees with the k6-summary label: "
        f"{k6_threshold_agree}/{k6_threshold_total}"
    )
    if measure_gaps:
        measure_gaps.sort()
        print(
            f"  latency SLIs, the analysis's measured value vs k6's summary: median "
            f"{measure_gaps[len(measure_gaps) // 2] * 100:.2f} %, "
            f"max {measure_gaps[-1] * 100:.2f} % apart ({len(measure_gaps)} values)"
        )
    print(
        f"  SLO design expectation agrees with k6: {design_agree}/{design_total} "
        "(how well the case design placed its targets)"
    )
    print(
        f"  verdict matches k6 truth + design (inconclusive for a disturbed generator): "
        f"{pct(ratio(*verdict_truth))} ({verdict_truth[0]}/{verdict_truth[1]})"
    )
    print(
        "  verdicts by family: "
        + "; ".join(
            f"{k} " + " ".join(f"{v}:{n}" for v, n in sorted(c.items()))
            for k, c in sorted(verdicts_by_kind.items())
        )
    )
    print(
        "  recall by family (endpoint, SLI, direction): "
        + ", ".join(f"{k} {h}/{n}" for k, (h, n) in sorted(recall_by_kind.items()))
    )
    print(f"  recall counting any SLI on the endpoint: {recall_loose}/{len(fault_cases)}")
    print(
        "  root cause by family: "
        + ", ".join(f"{k} {h}/{n}" for k, (h, n) in sorted(root_by_kind.items()))
        + f"; counting slo_breach findings too: {root_any_hits}/{len(fault_cases)}"
    )
    print(
        "  false alarms by family: "
        + ", ".join(f"{k} {h}/{n}" for k, (h, n) in sorted(alarms_by_kind.items()))
        + "; by noise: "
        + ", ".join(f"{k} {h}/{n}" for k, (h, n) in sorted(alarms_by_noise.items()))
    )
    if disturbed:
        print(
            f"  disturbed-generator pairs judged inconclusive: {disturbed_inconclusive}/"
            f"{len(disturbed)} (target: all); judged a regression: {disturbed_regression}/"
            f"{len(disturbed)} (target: none)"
        )
    if load_cases:
        print(
            f"  load-change pairs (closed model, same service): not called a regression "
            f"{load_not_regression}/{len(load_cases)}; labelled as a load change "
            f"(load.changed) {load_labelled}/{len(load_cases)}"
            + (f" ({load_missing} analyses have no 'load')" if load_missing else "")
            + f"; with a comparison explained_by_load {load_explained}/{len(load_cases)}"
        )
    if better_cases:
        print(
            f"  improvements detected (info): {better_hits}/{len(better_cases)}; "
            f"improvement pairs with a regression call: {better_regressions}/{len(better_cases)}"
        )
    print(
        f"  no-change pairs with an 'improvement' comparison (info): {len(quiet_improvements)}/"
        f"{len(quiet_cases)}"
    )
    print(
        f"  pairs judged inconclusive without a deliberate disturbance: "
        f"{len(undesigned_inconclusive)}/{len(scored) - len(disturbed)} (with other processes' "
        f"CPU load: {sum(i in busy for i in undesigned_inconclusive)}; fault pairs: "
        f"{sum(i in {c['id'] for c in fault_cases} for i in undesigned_inconclusive)})"
    )
    print(
        "  load_generator.status: "
        + "; ".join(
            f"{g} " + " ".join(f"{s}:{n}" for s, n in sorted(c.items()))
            for g, c in sorted(generator_status.items())
        )
    )
    others = [x for c in scored for x in other_load(records[c["id"]]) if x is not None]
    if not others:
        print("  other processes' CPU per run: not recorded in this set")
    else:
        clean_quiet = [c for c in quiet_cases if c["id"] not in busy]
        clean_faults = [c for c in fault_cases if c["id"] not in busy]
        print(
            f"  pairs with other processes' CPU + steal >= {flag:g} cores in either run: "
            f"{len(busy)}/{len(scored)}; without them: false alarms "
            f"{sum(c['id'] in alarmed for c in clean_quiet)}/{len(clean_quiet)}, recall "
            f"{sum(recall_hit(c, records[c['id']]['analysis'])[0] for c in clean_faults)}/"
            f"{len(clean_faults)}"
        )
        busy_alarms = sum(c["id"] in alarmed for c in quiet_cases if c["id"] in busy)
        print(
            f"  false alarms among no-change pairs with other CPU load: {busy_alarms}/"
            f"{sum(c['id'] in busy for c in quiet_cases)}"
        )
        others.sort()
        print(
            f"  other processes' CPU + steal per run (cores): median "
            f"{statistics.median(others):.2f}, p90 {others[int(0.9 * (len(others) - 1))]:.2f}, "
            f"max {others[-1]:.2f} "
            f"({len(others)} runs)"
        )

    print("\ndesign check: what k6 itself measured of each family's design")
    weak_families = []
    weak_cases: list[str] = []
    for kind, rows in sorted(design_lines.items()):
        moved = sum(ok for _, _, _, ok in rows)
        values = [v for _, _, v, _ in rows if v is not None]
        median = statistics.median(values) if values else None
        shown = (
            num(median, 2)
            if kind == "disturbed"
            else (
                f"{median * 100:+.2f} points"
                if kind == "errors" and median is not None
                else pct_s(median)
            )
        )
        mark = ""
        if kind != "none" and moved * 2 < len(rows):
            weak_families.append(kind)
            mark = "  <- FAMILY DOES NOT MOVE k6's NUMBERS AS DESIGNED"
        print(f"  {kind:<12} {moved}/{len(rows)} as designed, median {shown}{mark}")
        for case_id, text, _, ok in rows:
            if not ok:
                weak_cases.append(f"{case_id}: k6 {text}")
    for title, lines in (
        ("SLO status misses", slo_misses),
        ("regression misses", recall_misses),
        ("false alarms (no change in the target)", alarm_lines),
        ("disturbed pairs not judged inconclusive", disturbed_lines),
        ("load-change pairs", load_lines),
        ("root cause not named", root_misses),
        ("improvements (info)", better_lines),
        ("other endpoints blamed in fault pairs (info)", collateral),
        ("cases whose design k6 barely measured (design check, info)", weak_cases),
        ("verdict vs k6 truth + design (info)", verdict_misses),
    ):
        if lines:
            print(f"\n{title}:")
            for line in lines:
                print(f"  {line}")
    print()
    if weak_families:
        print("DESIGN CHECK: k6 barely measured the families " + ", ".join(weak_families))
    print(f"seed {meta.get('seed')}")
    if failed:
        print("TARGETS MISSED: " + "; ".join(failed))
        return 1
    print("all targets met")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=str(HERE), help="where cases.json, results.json are")
    parser.add_argument("--run", action="store_true", help="build the set first (build.py)")
    parser.add_argument("--pairs", type=int, default=None, help="with --run: first N cases")
    parser.add_argument("--per-family", type=int, default=None, help="with --run: N per family")
    parser.add_argument("--only", action="append", help="with --run: only this family")
    parser.add_argument("--seed", type=int, default=None, help="with --run: the draw to repeat")
    parser.add_argument("--out", default=None, help="with --run: output directory")
    parser.add_argument("--at", metavar="REV", help="with --run: the service as committed at REV")
    parser.add_argument("--wait-quiet", type=float, default=0.0, help="with --run: see build.py")
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per case")
    args = parser.parse_args()
    directory = Path(args.out or args.dir)
    if args.run:
        sys.path.insert(0, str(HERE))
        import build

        build_args = build.parser().parse_args(
            [*(["--pairs", str(args.pairs)] if args.pairs else [])]
            + (["--per-family", str(args.per_family)] if args.per_family else [])
            + (["--seed", str(args.seed)] if args.seed is not None else [])
            + [x for kind in args.only or [] for x in ("--only", kind)]
            + (["--at", args.at] if args.at else [])
            + (["--wait-quiet", str(args.wait_quiet)] if args.wait_quiet else [])
            + ["--out", str(directory)]
        )
        build.build(build_args)
        print()
    cases_path, results_path = directory / "cases.json", directory / "results.json"
    if not cases_path.exists() or not results_path.exists():
        print(f"no {cases_path} / {results_path}: run build.py (or score.py --run) first")
        return 2
    cases = json.loads(cases_path.read_text())
    results = json.loads(results_path.read_text())
    return score(cases, results, args.verbose)


if __name__ == "__main__":
    raise SystemExit(main())
