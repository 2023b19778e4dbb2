"""Check the files a CI gate wrote: junit.xml against the JUnit XSD, load-performance.json
against the fields GitLab's Load Performance widget reads, summary.md's shape.

    .venv/bin/python eval/ci_validate.py REPORT_DIR [--failed-objective TEXT]

Exit 0 when every file is valid (and, with --failed-objective, a failed JUnit case names it);
1 with one line per problem otherwise.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import xmlschema

XSD = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "junit" / "junit.xsd"


def junit_problems(path: Path, failed_objective: str | None) -> list[str]:
    schema = xmlschema.XMLSchema(XSD)
    problems = [f"junit.xml: {e.reason} at {e.path}" for e in schema.iter_errors(str(path))]
    if problems:
        return problems
    root = ET.parse(path).getroot()
    for suite in root.iter("testsuite"):
        cases = suite.findall("testcase")
        if int(suite.get("tests", "-1")) != len(cases):
            problems.append(f"junit.xml: tests={suite.get('tests')} but {len(cases)} cases")
        failed = sum(c.find("failure") is not None for c in cases)
        if int(suite.get("failures", "-1")) != failed:
            problems.append(f"junit.xml: failures={suite.get('failures')} but {failed} failed")
    if failed_objective is not None:
        messages = [f.get("message") or "" for f in root.iter("failure")]
        if not any(failed_objective in m for m in messages):
            problems.append(f"junit.xml: no failed case names {failed_objective!r}: {messages}")
    return problems


def gitlab_problems(path: Path) -> list[str]:
    """GitLab reads metrics.checks (passes/fails: the pass rate), metrics.http_req_waiting
    (p(90), p(95): TTFB) and metrics.http_reqs.rate (RPS) from k6's --summary-export shape."""
    try:
        metrics = json.loads(path.read_text())["metrics"]
    except (ValueError, KeyError, TypeError) as exc:
        return [f"load-performance.json: not k6's summary-export shape ({exc})"]

    def number(value: object) -> bool:
        return isinstance(value, int | float) and math.isfinite(value) and value >= 0

    problems = []
    waiting = metrics.get("http_req_waiting") or {}
    for stat in ("p(90)", "p(95)"):
        if not number(waiting.get(stat)):
            problems.append(f"load-performance.json: metrics.http_req_waiting[{stat!r}] missing")
    if not number((metrics.get("http_reqs") or {}).get("rate")):
        problems.append("load-performance.json: metrics.http_reqs.rate missing")
    checks = metrics.get("checks")
    if checks is not None and not (number(checks.get("passes")) and number(checks.get("fails"))):
        problems.append("load-performance.json: metrics.checks needs passes and fails")
    return problems


def summary_problems(path: Path) -> list[str]:
    lines = path.read_text().splitlines()
    if len(lines) < 2 or not lines[0].startswith("<!-- perf-agent:"):
        return ["summary.md: no perf-agent marker on its first line"]
    if "perf-agent:" not in lines[1] or "**" not in lines[1]:
        return ["summary.md: no verdict heading"]
    return []


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("report_dir", type=Path)
    parser.add_argument("--failed-objective")
    args = parser.parse_args()
    problems = []
    for name in ("junit.xml", "load-performance.json", "summary.md"):
        if not (args.report_dir / name).is_file():
            problems.append(f"{name}: missing")
    if not problems:
        problems += junit_problems(args.report_dir / "junit.xml", args.failed_objective)
        problems += gitlab_problems(args.report_dir / "load-performance.json")
        problems += summary_problems(args.report_dir / "summary.md")
    for problem in problems:
        print(problem)
    if not problems:
        print(
            f"{args.report_dir}: junit.xml valid against {XSD.name}, load-performance.json "
            "has GitLab's fields, summary.md has its marker and verdict"
        )
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
