"""Render a validated plan as a readable k6 script.

Safety rule: every string that came from a user reaches the script only through ``json.dumps``
with ``ensure_ascii=True``: a JSON string literal is a valid JavaScript string literal, and
escaping non-ASCII also neutralises U+2028/U+2029 line separators. User text reaches comments
only in that encoded form (it has no line break), and never identifiers.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from app.plans.schemas import SLO, PlanSpec, format_duration

TREND_STATS = ["avg", "min", "med", "max", "p(50)", "p(90)", "p(95)", "p(99)", "count"]
ALL_ENDPOINTS = "*"

_K6_STAT = {
    "avg": "avg",
    "min": "min",
    "med": "med",
    "p50": "p(50)",
    "p90": "p(90)",
    "p95": "p(95)",
    "p99": "p(99)",
    "max": "max",
}


def js(value: Any) -> str:
    return json.dumps(value, ensure_ascii=True)


def js_object(value: Any, indent: int) -> str:
    text = json.dumps(value, ensure_ascii=True, indent=2)
    pad = " " * indent
    return text.replace("\n", "\n" + pad)


@cache
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("app.plans", "templates"),
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )
    env.filters["js"] = js
    env.filters["js_object"] = js_object
    return env


# Metric names k6 reports per endpoint; the ``name`` tag is restricted to [A-Za-z0-9_.-].
def reqs_metric(endpoint: str | None) -> str:
    return f"http_reqs{{name:{endpoint}}}" if endpoint else "http_reqs"


def failed_metric(endpoint: str | None) -> str:
    return f"http_req_failed{{name:{endpoint}}}" if endpoint else "http_req_failed"


def duration_metric(endpoint: str | None) -> str:
    if endpoint:
        return f"http_req_duration{{name:{endpoint},expected_response:true}}"
    return "http_req_duration{expected_response:true}"


def slo_threshold(slo: SLO) -> tuple[str, str]:
    """An SLO as a k6 threshold: (metric, expression)."""
    if slo.sli == "error_rate":
        return failed_metric(slo.endpoint), f"rate{slo.op}{slo.target:g}"
    if slo.sli == "rps":
        return reqs_metric(slo.endpoint), f"rate{slo.op}{slo.target:g}"
    return duration_metric(slo.endpoint), f"{_K6_STAT[slo.sli]}{slo.op}{slo.target:g}"


def thresholds(spec: PlanSpec, slos: list[SLO]) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for slo in slos:
        metric, expression = slo_threshold(slo)
        result.setdefault(metric, []).append(expression)
    # Always true; without a threshold k6 does not report a sub-metric in its summary.
    for name in [None, *(e.name for e in spec.endpoints)]:
        for metric, expression in (
            (reqs_metric(name), "count>=0"),
            (failed_metric(name), "rate>=0"),
            (duration_metric(name), "max>=0"),
        ):
            exprs = result.setdefault(metric, [])
            if not exprs:
                exprs.append(expression)
    return result


def scenario(spec: PlanSpec) -> dict[str, Any]:
    load = spec.load
    if load.stages:
        return {
            "executor": "ramping-vus",
            "startVUs": 0,
            "stages": [
                {"duration": format_duration(s.duration), "target": s.target} for s in load.stages
            ],
            "gracefulRampDown": "10s",
            "gracefulStop": "10s",
        }
    return {
        "executor": "constant-vus",
        "vus": load.vus,
        "duration": format_duration(load.total_duration_s),
        "gracefulStop": "10s",
    }


def _body_js(body: Any) -> str:
    if body is None:
        return "null"
    if isinstance(body, str):
        return js(body)
    return f"JSON.stringify({js(body)})"


def render(spec: PlanSpec, *, slos: list[SLO], version: int = 1) -> str:
    endpoints = []
    for ep in spec.endpoints:
        headers = dict(ep.headers)
        if ep.body is not None and not isinstance(ep.body, str):
            if not any(k.lower() == "content-type" for k in headers):
                headers["Content-Type"] = "application/json"
        endpoints.append(
            {
                "name": ep.name,
                "method": ep.method,
                "path": ep.path,
                "headers": headers,
                "body_js": _body_js(ep.body),
                "expect_status": ep.expect_status,
                "check_name": f"{ep.name}: status in {ep.expect_status}",
            }
        )
    template = _environment().get_template("script.js.j2")
    return template.render(
        plan_name=spec.name,
        version=version,
        base_url=spec.target.base_url,
        scenario=scenario(spec),
        thresholds=thresholds(spec, slos),
        trend_stats=TREND_STATS,
        endpoints=endpoints,
        endpoint_names=[e.name for e in spec.endpoints],
        think_time=spec.load.think_time,
    )


def sha256(script: str) -> str:
    return hashlib.sha256(script.encode()).hexdigest()
