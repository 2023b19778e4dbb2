"""Render a validated plan as a readable k6 script.

Safety rule: every string that came from a user reaches the script only through ``json.dumps``
with ``ensure_ascii=True``: a JSON string literal is a valid JavaScript string literal, and
escaping non-ASCII also neutralises U+2028/U+2029 line separators. User text reaches comments
only in that encoded form (it has no line break), and never identifiers. ``{{vars.x}}`` and
``{{data.col}}`` references become property reads (``vars["x"]``), concatenated with literals.
"""

from __future__ import annotations

import hashlib
import json
import math
from functools import cache, reduce
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from app.core import slis
from app.k6.process import TREND_STATS
from app.plans import templating
from app.plans.schemas import SLO, PlanSpec, Scenario, Step, ThinkRange


def js(value: Any) -> str:
    return json.dumps(value, ensure_ascii=True)


def js_pretty(value: Any, indent: int) -> str:
    text = json.dumps(value, ensure_ascii=True, indent=2)
    return text.replace("\n", "\n" + " " * indent)


@cache
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("app.plans", "templates"),
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )
    env.filters["js"] = js
    env.filters["js_object"] = js_pretty
    return env


# Metric names k6 reports per step; the ``name`` tag is restricted to [A-Za-z0-9_.-].
def reqs_metric(step: str | None) -> str:
    return f"http_reqs{{name:{step}}}" if step else "http_reqs"


def failed_metric(step: str | None) -> str:
    return f"http_req_failed{{name:{step}}}" if step else "http_req_failed"


def duration_metric(step: str | None) -> str:
    if step:
        return f"http_req_duration{{name:{step},expected_response:true}}"
    return "http_req_duration{expected_response:true}"


def slo_threshold(slo: SLO) -> tuple[str, str]:
    """An SLO's absolute criterion as a k6 threshold: (metric, expression)."""
    if slo.sli == "error_rate":
        return failed_metric(slo.endpoint), f"rate{slo.op}{slo.target:g}"
    if slo.sli == "rps":
        return reqs_metric(slo.endpoint), f"rate{slo.op}{slo.target:g}"
    return duration_metric(slo.endpoint), f"{slis.BY_NAME[slo.sli].stat}{slo.op}{slo.target:g}"


def thresholds(spec: PlanSpec, slos: list[SLO]) -> dict[str, list[Any]]:
    result: dict[str, list[Any]] = {}
    abort = spec.load_profile.abort_on_fail
    for slo in slos:
        if slo.target is None:
            continue  # relative to a baseline: only the analysis can judge it
        metric, expression = slo_threshold(slo)
        entry: Any = expression
        if abort:
            # Breakpoint tests stop at the first broken SLO (after 10s of data).
            entry = {"threshold": expression, "abortOnFail": True, "delayAbortEval": "10s"}
        result.setdefault(metric, []).append(entry)
    # Always true; without a threshold k6 does not report a sub-metric in its summary.
    for name in [None, *spec.step_names]:
        for metric, expression in (
            (reqs_metric(name), "count>=0"),
            (failed_metric(name), "rate>=0"),
            (duration_metric(name), "max>=0"),
        ):
            exprs = result.setdefault(metric, [])
            if not exprs:
                exprs.append(expression)
    return result


# --- expressions -------------------------------------------------------------------------


def js_text(text: str, *, encode: bool = False) -> str:
    """A plan string as a JS expression: literals JSON-encoded, references as reads.

    A string that is exactly one reference keeps the referenced value's type (a number from
    JSON data stays a number in a JSON body) unless ``encode`` asks for URL-encoding.
    """
    parts = templating.parse(text)
    if len(parts) == 1 and isinstance(parts[0], templating.Ref) and not encode:
        ref = parts[0]
        return f"{ref.namespace}[{js(ref.name)}]"
    pieces = []
    for part in parts:
        if isinstance(part, str):
            pieces.append(js(part))
        else:
            read = f"String({part.namespace}[{js(part.name)}])"
            pieces.append(f"encodeURIComponent({read})" if encode else read)
    return " + ".join(pieces) if pieces else '""'


def js_key(key: str) -> str:
    # In an object literal `"__proto__": v` sets the prototype; a computed key adds a property.
    return f"[{js(key)}]" if key == "__proto__" else js(key)


def js_object(items: dict[str, str]) -> str:
    """An object literal from keys and ready-made JS expressions."""
    return "{" + ", ".join(f"{js_key(k)}: {v}" for k, v in items.items()) + "}"


def js_value(value: Any) -> str:
    """A JSON value whose strings may hold references, as a JS expression."""
    if isinstance(value, str):
        return js_text(value)
    if isinstance(value, dict):
        return js_object({k: js_value(v) for k, v in value.items()})
    if isinstance(value, list):
        return "[" + ", ".join(js_value(v) for v in value) + "]"
    return js(value)


def js_json(value: Any) -> str:
    """A constant JSON value, parsed at run time (keys such as ``__proto__`` stay data)."""
    return f"JSON.parse({js(json.dumps(value, ensure_ascii=True, allow_nan=False))})"


def label(text: str) -> str:
    # k6 uses '::' to nest group names and rejects it in group and check names.
    return text.replace("::", ": :")


def _body(step: Step) -> str:
    if step.body is None:
        return "null"
    if isinstance(step.body, str):
        return js_text(step.body)
    return f"JSON.stringify({js_value(step.body)})"


def _headers(step: Step) -> str:
    headers = dict(step.headers)
    if step.body is not None and not isinstance(step.body, str):
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
    return js_object({k: js_text(v) for k, v in headers.items()})


def _checks(step: Step) -> list[str]:
    """Check entries (``"name": (r) => …``) for the step's expected status and its checks."""
    statuses = js(step.expect_status)
    entries = [f"{js(f'{step.name}: status in {step.expect_status}')}: "
               f"(r) => {statuses}.includes(r.status)"]  # fmt: skip
    for i, chk in enumerate(step.checks, start=1):
        if chk.status is not None:
            what, test = f"status in {chk.status}", f"{js(chk.status)}.includes(r.status)"
        elif chk.body_contains is not None:
            what = f"body contains {chk.body_contains!r}"
            test = f"(r.body || '').includes({js(chk.body_contains)})"
        elif chk.exists is False:
            what, test = f"{chk.json_path} absent", f"jsonAt(r, {js(chk.json_path)}) === undefined"
        elif chk.has_equals:
            what = f"{chk.json_path} == {json.dumps(chk.equals)}"
            test = f"equal(jsonAt(r, {js(chk.json_path)}), {js_value(chk.equals)})"
        else:
            what, test = f"{chk.json_path} exists", f"jsonAt(r, {js(chk.json_path)}) !== undefined"
        entries.append(f"{js(label(f'{step.name}: #{i} {what}'))}: (r) => {test}")
    return entries


def _think(step: Step) -> str | None:
    tt = step.think_time
    if tt is None:
        return None
    if isinstance(tt, ThinkRange):
        return f"pause({tt.min:g}, {tt.max:g});"
    return f"sleep({tt:g});" if tt > 0 else None


def _step_code(step: Step, number: int, total: int, regexes: list[str]) -> list[str]:
    url = f"BASE_URL + {js_text(step.path, encode=True)}"
    if step.query:
        params = js_object(
            {k: js_text(v) if isinstance(v, str) else js(v) for k, v in step.query.items()}
        )
        # A path that already has a query string continues it.
        url += f" + query({params}, {js('&' if '?' in step.path else '?')})"
    params_lines = [
        f"    headers: headers({_headers(step)}),",
        f"    tags: {{ name: {js(step.name)} }},",
        f"    responseCallback: http.expectedStatuses({', '.join(map(str, step.expect_status))}),",
    ]
    if step.needs_body:
        params_lines.append("    responseType: 'text',")
    lines = [
        f"  // step {number} of {total}",
        f"  res = http.request({js(step.method)}, {url}, {_body(step)}, {{",
        *params_lines,
        "  });",
        "  check(res, {",
        *(f"    {entry}," for entry in _checks(step)),
        "  });",
    ]
    for var, ex in step.extract.items():
        if ex.json_path is not None:
            source, where = "json", js(ex.json_path)
        elif ex.header is not None:
            source, where = "header", js(ex.header)
        else:
            assert ex.regex is not None
            regexes.append(ex.regex)
            source, where = "regex", f"REGEXES[{len(regexes) - 1}]"
        lines += [
            f"  vars[{js(var)}] = extract(res, {js(source)}, {where});",
            f"  check(res, {{ {js(f'{step.name}: extracted {var}')}: () => "
            f"vars[{js(var)}] !== undefined }});",
        ]
    think = _think(step)
    if think:
        lines.append(f"  {think}")
    return lines


def _scenario_body(scenario: Scenario, regexes: list[str]) -> str:
    lines: list[str] = []
    total = len(scenario.steps)
    i = 0
    while i < total:
        step = scenario.steps[i]
        if step.group is None:
            lines += _step_code(step, i + 1, total, regexes)
            i += 1
            continue
        # Consecutive steps of one group run inside one k6 group().
        lines.append(f"  group({js(label(step.group))}, function () {{")
        while i < total and scenario.steps[i].group == step.group:
            lines += ["  " + line for line in _step_code(scenario.steps[i], i + 1, total, regexes)]
            i += 1
        lines.append("  });")
    return "\n".join(lines)


def weighted_cycle(scenarios: list[Scenario]) -> list[int]:
    """Scenario indexes in a smooth repeating order with exact weight shares."""
    weights = [s.weight for s in scenarios]
    divisor = reduce(math.gcd, weights)
    weights = [w // divisor for w in weights]
    current = [0] * len(weights)
    cycle = []
    for _ in range(sum(weights)):  # smooth weighted round-robin (as in nginx)
        current = [c + w for c, w in zip(current, weights, strict=True)]
        best = max(range(len(weights)), key=lambda k: current[k])
        current[best] -= sum(weights)
        cycle.append(best)
    return cycle


def render(spec: PlanSpec, *, slos: list[SLO], version: int = 1) -> str:
    if spec.script is not None:
        return spec.script  # hand-written: run exactly what the engineer wrote
    dataset_names = sorted({s.data for s in spec.scenarios if s.data is not None})
    datasets = [
        {
            "name": name,
            "rows": js_json(spec.data[name].rows),
            "count": len(spec.data[name].rows),
            "selection": spec.data[name].selection,
        }
        for name in dataset_names
    ]
    regexes: list[str] = []
    scenarios = [
        {
            "name": sc.name,
            "weight": sc.weight,
            "data_index": dataset_names.index(sc.data) if sc.data else None,
            "selection": spec.data[sc.data].selection if sc.data else None,
            "body": _scenario_body(sc, regexes),
        }
        for sc in spec.scenarios
    ]
    template = _environment().get_template("script.js.j2")
    return template.render(
        plan_name=spec.name,
        version=version,
        base_url=spec.target.base_url,
        seed=spec.seed,
        executor=spec.load_profile.executor(),
        thresholds=thresholds(spec, slos),
        trend_stats=TREND_STATS,
        default_headers=js_object({k: js(v) for k, v in spec.target.headers.items()}),
        regexes=regexes,
        auth=spec.target.auth,
        datasets=datasets,
        scenarios=scenarios,
        cycle=weighted_cycle(spec.scenarios),
        think_time=spec.load_profile.think_time,
        step_names=spec.step_names,
    )


def sha256(script: str) -> str:
    return hashlib.sha256(script.encode()).hexdigest()
