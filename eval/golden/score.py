"""Score the service's analyses of the golden set against its labels.

    .venv/bin/python eval/golden/score.py                 # score cases.json + results.json
    .venv/bin/python eval/golden/score.py --run           # build first (all cases), then score
    .venv/bin/python eval/golden/score.py --run --pairs 6 --out /tmp/golden
    .venv/bin/python eval/golden/score.py -v              # one line per case as well

Figures (targets beside them; the exit status is 1 when one is missed, 2 when there is
nothing to score):

- SLO breaches: each SLO's status in the analysis against the ground truth, i.e. k6's own
  end-of-test summary value of the candidate run compared with the SLO's target (100 %).
- Regression recall: fault pairs whose analysis has a "regression" comparison or finding on
  the injected endpoint or on all requests ('*'; for the pool fault, which hits every
  endpoint, any endpoint) (>= 95 %).
- False alarms: no-change pairs with any "regression" comparison or finding (<= 2 %).
- Root cause named: fault pairs with a root-cause finding (any kind except slo_breach and
  slo_no_data, which only restate the plan's own objective) whose ``endpoint`` is the injected
  one; for the pool fault a saturation / pool / queueing finding (>= 80 %).

Fields the analysis lacks (e.g. ``comparisons`` before regression detection landed) are
reported as missing, never as a crash.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TARGETS = {
    "slo": ("SLO breaches detected (status vs k6)", ">=", 1.00),
    "recall": ("regression recall", ">=", 0.95),
    "false_alarms": ("false-alarm rate", "<=", 0.02),
    "root_cause": ("root cause named", ">=", 0.80),
}
RESTATES_OBJECTIVE = {"slo_breach", "slo_no_data"}
POOL_WORDS = ("saturat", "pool", "queue", "concurren", "knee")


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


def on_endpoint(item_endpoint: str | None, affected: str | None) -> bool:
    """A comparison ('*' = all) or finding (None = all) on the affected endpoint or on all."""
    if item_endpoint in ("*", None):
        return True
    return affected == "*" or item_endpoint == affected


def root_cause(case: dict[str, Any], analysis: dict[str, Any]) -> tuple[bool, bool, list[str]]:
    """(named by a root-cause finding, named by any finding, other endpoints blamed)."""
    affected = case["labels"]["endpoint_affected"]
    findings = analysis.get("findings") or []
    if case["kind"] == "pool":

        def pooled(f: dict[str, Any]) -> bool:
            text = f"{f.get('kind', '')} {f.get('summary', '')}".lower()
            return any(word in text for word in POOL_WORDS)

        named = any(pooled(f) for f in findings if f.get("kind") not in RESTATES_OBJECTIVE)
        return named, any(pooled(f) for f in findings), []
    named = any(
        f.get("endpoint") == affected for f in findings if f.get("kind") not in RESTATES_OBJECTIVE
    )
    named_any = any(f.get("endpoint") == affected for f in findings)
    others = sorted(
        {
            f"{f.get('kind')}:{f.get('endpoint')}"
            for f in findings
            if f.get("kind") in ("regression", "slow_endpoint", "errors")
            and f.get("endpoint") not in (None, affected)
        }
    )
    return named, named_any, others


def k6_change(record: dict[str, Any], endpoint: str, sli: str) -> str:
    k6 = record.get("k6") or {}
    base = ((k6.get("baseline") or {}).get(endpoint) or {}).get(sli)
    cand = ((k6.get("candidate") or {}).get(endpoint) or {}).get(sli)
    if base is None or cand is None:
        return f"{endpoint} {sli} -"
    if sli == "error_rate":
        return f"{endpoint} error_rate {base * 100:.2f}% -> {cand * 100:.2f}%"
    change = f" ({(cand - base) / base * 100:+.0f}%)" if base else ""
    return f"{endpoint} {sli.removesuffix('_ms')} {base:.1f} -> {cand:.1f} ms{change}"


def k6_effect(record: dict[str, Any], endpoint: str, errors: bool) -> float | None:
    """The injected fault's size as k6 measured it: the error-rate rise (points), or the
    larger relative rise of p50 and p95."""
    k6 = record.get("k6") or {}
    base = (k6.get("baseline") or {}).get(endpoint) or {}
    cand = (k6.get("candidate") or {}).get(endpoint) or {}
    if errors:
        if base.get("error_rate") is None or cand.get("error_rate") is None:
            return None
        return float(cand["error_rate"] - base["error_rate"])
    changes = [
        (cand[k] - base[k]) / base[k]
        for k in ("p50_ms", "p95_ms")
        if base.get(k) and cand.get(k) is not None
    ]
    return max(changes) if changes else None


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
    )


# --- scoring -------------------------------------------------------------------------------


def score(cases: list[dict[str, Any]], results: dict[str, Any], verbose: bool) -> int:
    records = results.get("cases", {})
    missing_analysis = [c["id"] for c in cases if "analysis" not in records.get(c["id"], {})]
    scored = [c for c in cases if c["id"] not in missing_analysis]
    if not scored:
        print("nothing to score: no case has an analysis")
        return 2
    missing_fields: Counter[str] = Counter()
    for case in scored:
        analysis = records[case["id"]]["analysis"]
        for field in ("verdict", "slo_results", "comparisons", "findings", "baseline_run_ids"):
            if field not in analysis:
                missing_fields[field] += 1
        baseline_id = records[case["id"]]["baseline_run"]["id"]
        if "baseline_run_ids" in analysis and analysis["baseline_run_ids"] != [baseline_id]:
            missing_fields["baseline_run_ids == [requested baseline]"] += 1

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

    # Verdict vs the design (expected regression or a designed SLO breach) and vs k6's truth.
    verdict_design = [0, 0]
    verdict_truth = [0, 0]
    verdict_misses: list[str] = []
    for case in scored:
        verdict = records[case["id"]]["analysis"].get("verdict")
        designs = case["labels"].get("slo_breach_design") or []
        truths = case["labels"].get("slo_breach_k6") or []
        expect_reg = case["labels"]["expected_regression"]
        if expect_reg or any(d is True for d in designs):
            expected_design: str | None = "fail"
        elif all(d is False for d in designs):
            expected_design = "pass"
        else:
            expected_design = None
        if expected_design is not None:
            verdict_design[1] += 1
            verdict_design[0] += verdict == expected_design
        if None not in truths:
            expected_truth = "fail" if expect_reg or any(truths) else "pass"
            verdict_truth[1] += 1
            verdict_truth[0] += verdict == expected_truth
            if verdict != expected_truth:
                verdict_misses.append(f"{case['id']}: verdict {verdict}, expected {expected_truth}")

    # Regression recall, false alarms, root cause.
    fault_cases = [c for c in scored if c["labels"]["expected_regression"]]
    quiet_cases = [c for c in scored if not c["labels"]["expected_regression"]]
    has_comparisons = all("comparisons" in records[c["id"]]["analysis"] for c in scored)
    recall_hits = 0
    recall_sli_hits = 0
    recall_by_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    recall_misses: list[str] = []
    root_hits = root_any_hits = 0
    root_by_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    root_misses: list[str] = []
    collateral: list[str] = []
    weak: list[str] = []
    for case in fault_cases:
        record = records[case["id"]]
        analysis = record["analysis"]
        affected = case["labels"]["endpoint_affected"]
        comps, finds = regressions(analysis)
        hit_comps = [c for c in comps if on_endpoint(c.get("endpoint"), affected)]
        hit_finds = [f for f in finds if on_endpoint(f.get("endpoint"), affected)]
        hit = bool(hit_comps or hit_finds)
        want_error = case["kind"] == "errors"
        sli_hit = any((c.get("sli") == "error_rate") == want_error for c in hit_comps)
        recall_hits += hit
        recall_sli_hits += sli_hit
        recall_by_kind[case["kind"]][0] += hit
        recall_by_kind[case["kind"]][1] += 1
        if not hit:
            focus = "*" if affected == "*" else affected
            relevant = [
                comparison_text(c)
                for c in analysis.get("comparisons") or []
                if c.get("endpoint") in (focus, "*")
                and ((c.get("sli") == "error_rate") == want_error)
            ]
            k6_sli = "error_rate" if want_error else "p50_ms"
            recall_misses.append(
                f"{case['id']}: no regression on {affected} or *; k6 "
                f"{k6_change(record, focus, k6_sli)}"
                + ("" if want_error else f", {k6_change(record, focus, 'p95_ms')}")
                + "\n      "
                + ("\n      ".join(relevant) or "(no comparisons)")
            )
        effect = k6_effect(record, "*" if affected == "*" else affected, want_error)
        if effect is not None and effect < (0.01 if want_error else 0.15):
            weak.append(
                f"{case['id']}: k6 measured {'+' if effect >= 0 else ''}"
                + (f"{effect * 100:.2f} points" if want_error else f"{effect * 100:.0f} %")
                + " on the affected endpoint"
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

    false_alarms = 0
    alarms_by_noise: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    alarm_lines: list[str] = []
    for case in quiet_cases:
        record = records[case["id"]]
        comps, finds = regressions(record["analysis"])
        alarm = bool(comps or finds)
        false_alarms += alarm
        alarms_by_noise[case["noise_level"]][0] += alarm
        alarms_by_noise[case["noise_level"]][1] += 1
        if alarm:
            details = [comparison_text(c) for c in comps] or [
                f"finding {f.get('endpoint')}: {f.get('summary')}" for f in finds
            ]
            alarm_lines.append(f"{case['id']}:\n      " + "\n      ".join(details))

    figures = {
        "slo": ratio(slo_right, slo_total),
        "recall": ratio(recall_hits, len(fault_cases)) if has_comparisons else None,
        "false_alarms": ratio(false_alarms, len(quiet_cases)) if has_comparisons else None,
        "root_cause": ratio(root_hits, len(fault_cases)),
    }

    # --- print -----------------------------------------------------------------------------
    meta = results.get("meta", {})
    kind_counts = Counter(c["kind"] for c in scored)
    print(
        f"golden set: {len(scored)} pairs scored ({len(fault_cases)} with a fault, "
        f"{len(quiet_cases)} without = {len(quiet_cases) / len(scored) * 100:.0f} %) — "
        + ", ".join(f"{k} {n}" for k, n in sorted(kind_counts.items()))
    )
    if meta.get("wall_seconds"):
        print(
            f"built in {meta['wall_seconds'] / 60:.1f} min (seed {meta.get('seed')}; service "
            f"code: {meta.get('code', '?')}"
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
            analysis = records[case["id"]]["analysis"]
            comps, _ = regressions(analysis)
            moved = ",".join(sorted({f"{c.get('endpoint')}:{c.get('sli')}" for c in comps}))
            found = ",".join(
                f"{f.get('kind')}:{f.get('endpoint')}" for f in analysis.get("findings") or []
            )
            print(
                f"  {case['id']:<42} verdict {analysis.get('verdict')!s:<4} regressions "
                f"{moved or '-'}; findings {found or '-'}"
            )
    print()
    print(f"{'figure':<40} {'measured':>9}   {'target':>8}   {'':>6} count")
    failed = []
    counts = {
        "slo": f"{slo_right}/{slo_total}",
        "recall": f"{recall_hits}/{len(fault_cases)}",
        "false_alarms": f"{false_alarms}/{len(quiet_cases)}",
        "root_cause": f"{root_hits}/{len(fault_cases)}",
    }
    for key, (label, op, target) in TARGETS.items():
        value = figures[key]
        ok = value is not None and (value >= target if op == ">=" else value <= target)
        if not ok:
            failed.append(label)
        print(
            f"{label:<40} {pct(value):>9}   {op} {target * 100:g} %{'':<3} "
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
        f"  verdict matches the fault design: {pct(ratio(*verdict_design))} "
        f"({verdict_design[0]}/{verdict_design[1]}, cases whose design decides the verdict)"
    )
    print(
        f"  verdict matches k6 truth + injected fault: {pct(ratio(*verdict_truth))} "
        f"({verdict_truth[0]}/{verdict_truth[1]})"
    )
    print(
        "  recall by fault: "
        + ", ".join(f"{k} {h}/{n}" for k, (h, n) in sorted(recall_by_kind.items()))
        + f"; with the right SLI type (error_rate for errors, latency otherwise): "
        f"{recall_sli_hits}/{len(fault_cases)}"
    )
    print(
        "  false alarms by noise: "
        + ", ".join(f"{k} {h}/{n}" for k, (h, n) in sorted(alarms_by_noise.items()))
    )
    print(
        "  root cause by fault: "
        + ", ".join(f"{k} {h}/{n}" for k, (h, n) in sorted(root_by_kind.items()))
        + f"; counting slo_breach findings too: {root_any_hits}/{len(fault_cases)}"
    )
    for title, lines in (
        ("SLO status misses", slo_misses),
        ("regression misses", recall_misses),
        ("false alarms", alarm_lines),
        ("root cause not named", root_misses),
        ("other endpoints blamed in fault pairs (info)", collateral),
        ("faults whose effect k6 barely measured (design check, info)", weak),
        ("verdict vs k6 truth + fault (info)", verdict_misses),
    ):
        if lines:
            print(f"\n{title}:")
            for line in lines:
                print(f"  {line}")
    print()
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
    parser.add_argument("--only", action="append", help="with --run: only this fault kind")
    parser.add_argument("--out", default=None, help="with --run: output directory")
    parser.add_argument("--at", metavar="REV", help="with --run: the service as committed at REV")
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per case")
    args = parser.parse_args()
    directory = Path(args.out or args.dir)
    if args.run:
        sys.path.insert(0, str(HERE))
        import build

        build_args = build.parser().parse_args(
            [*(["--pairs", str(args.pairs)] if args.pairs else [])]
            + [x for kind in args.only or [] for x in ("--only", kind)]
            + (["--at", args.at] if args.at else [])
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
