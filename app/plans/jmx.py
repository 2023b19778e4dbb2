"""Render a validated plan as an Apache JMeter 5.x test plan (``.jmx``), for teams on JMeter.

Safety rules:

* The document is built with ``xml.etree``: XML escaping of plan text is the library's job.
* XML escaping is not enough. When a test starts, JMeter compiles ``${…}`` in every string
  property of every element (names and comments included; ``PreCompiler``/``ValueReplacer``)
  and runs the functions it finds, ``${__groovy(…)}`` among them. Plan text therefore reaches a
  property only through ``_field``, which makes a literal ``${`` inert (see ``_escape``).
* The only functions written here are perf-agent's own: ``__char``, ``__P`` and ``__groovy`` with
  fixed code in which the only variable part is a validated variable name. Plan text is never
  part of a function's code, and secrets are read at run time (``__P``), never written.

What core JMeter cannot express exactly is approximated; every approximation is listed in the
Test Plan's comments, and on the element concerned, so a reviewer sees it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import math
import random
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NewType
from urllib.parse import quote, urlsplit

from app.plans import templating
from app.plans.load_profiles import parse_duration
from app.plans.schemas import (
    NAME_PATTERN,
    SLO,
    VAR_PATTERN,
    Auth,
    Check,
    DataSet,
    Extract,
    PlanSpec,
    Scenario,
    Step,
    ThinkRange,
)

JMETER_VERSION = "5.6.3"

# Variables the plan defines for itself (User Defined Variables, or set at run time).
PROTOCOL_VAR = "PERF_AGENT_PROTOCOL"
HOST_VAR = "PERF_AGENT_HOST"
PORT_VAR = "PERF_AGENT_PORT"
BASE_PATH_VAR = "PERF_AGENT_BASE_PATH"
SEED_VAR = "PERF_AGENT_SEED"
BASIC_AUTH_VAR = "PERF_AGENT_BASIC_AUTH"
_RESERVED = frozenset({PROTOCOL_VAR, HOST_VAR, PORT_VAR, BASE_PATH_VAR, SEED_VAR, BASIC_AUTH_VAR})

# JMeter variable names this module puts into function code; anything else is refused.
_SAFE_VARIABLE = re.compile(r"^(?:(?:data|vars)\.)?[A-Za-z_][A-Za-z0-9_]*$")

# ResponseAssertion test types (org.apache.jmeter.assertions.ResponseAssertion).
MATCH, EQUALS, SUBSTRING = 1, 8, 16

# What encodeURIComponent leaves as it is, besides ASCII letters and digits.
_URI_SAFE = "-_.!~*'()"


# --- JMeter text -----------------------------------------------------------------------------

JText = NewType("JText", str)
"""A property value ready for JMeter: plan text made inert, or perf-agent's own references."""

# Characters XML 1.0 cannot carry at all, not even as character references.
_XML_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_NEEDS_COMPILING = re.compile(r"\$\{|[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@dataclass(frozen=True)
class _Expr:
    """A JMeter variable reference or function call written by perf-agent, never plan text."""

    text: str


_Segment = str | _Expr


def _char(code: int) -> str:
    return f"${{__char({code})}}"


def _escape(text: str) -> str:
    """Literal text for a property that JMeter compiles (one holding a reference).

    JMeter's documented escape for a literal ``${`` is ``\\${``, but JMeter applies escapes only
    in a property that also holds a real reference: in one without, it keeps the text exactly as
    written, backslash included (FunctionParser.compileString, ReplaceStringWithFunctions; JMeter's
    own PackageTest "escaped dollar with no variable reference"). ``${__char(36)}{`` works in
    both cases: being a function call, it makes JMeter compile the property, and ``__char(36)``
    is ``$``. In a compiled property ``\\\\`` is one backslash, hence the doubling. Characters
    XML cannot hold are written as ``__char`` calls too.
    """
    text = text.replace("\\", "\\\\").replace("${", _char(36) + "{")
    return _XML_ILLEGAL.sub(lambda match: _char(ord(match[0])), text)


def _merge(segments: Iterable[_Segment]) -> list[_Segment]:
    # Adjacent literals must be escaped together: "$" + "{x" is a "${" as well.
    merged: list[_Segment] = []
    for segment in segments:
        last = merged[-1] if merged else None
        if isinstance(segment, str) and isinstance(last, str):
            merged[-1] = last + segment
        elif segment != "":
            merged.append(segment)
    return merged


def _field(segments: Iterable[_Segment]) -> JText:
    """One property value from literal plan text and perf-agent's references."""
    merged = _merge(segments)
    literals = [s for s in merged if isinstance(s, str)]
    if len(literals) == len(merged) and not _NEEDS_COMPILING.search("".join(literals)):
        return JText("".join(literals))  # JMeter keeps such text exactly as written
    return JText("".join(_escape(s) if isinstance(s, str) else s.text for s in merged))


def _lit(text: str) -> JText:
    return _field([text])


def _checked(name: str) -> str:
    if not _SAFE_VARIABLE.match(name):
        raise ValueError(f"unexpected JMeter variable name {name!r}")
    return name


def _variable(name: str) -> _Expr:
    return _Expr(f"${{{_checked(name)}}}")


def _url_encoded(name: str) -> _Expr:
    # k6 applies encodeURIComponent; URLEncoder writes a space as "+", which a path keeps as "+".
    # Commas are escaped because they separate function parameters.
    return _Expr(
        f"${{__groovy(java.net.URLEncoder.encode(vars.get('{_checked(name)}') ?: ''\\, 'UTF-8')"
        ".replace('+'\\, '%20'))}"
    )


def _json_escaped(name: str) -> _Expr:
    # k6 builds JSON bodies with JSON.stringify, so a value with a quote stays valid JSON.
    return _Expr(
        "${__groovy(groovy.json.StringEscapeUtils.escapeJava("
        f"vars.get('{_checked(name)}') ?: ''))}}"
    )


def _secret(auth: Auth) -> _Expr:
    # An explicit empty default: without one, __P returns "1" for a property that is not set.
    return _Expr(f"${{__P({auth.env_var},)}}")


def _js_text(value: Any) -> str:
    """``String(value)`` in JavaScript for a JSON value (what k6 sends for a non-string)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))  # JavaScript writes 2.0 as "2"
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _uri(text: str) -> str:
    return quote(text, safe=_URI_SAFE, errors="replace")


def _json_quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _joined(items: Sequence[list[_Segment]], separator: str) -> list[_Segment]:
    joined: list[_Segment] = []
    for i, item in enumerate(items):
        joined += [separator, *item] if i else item
    return joined


# --- GJSON (k6) paths → JSONPath --------------------------------------------------------------

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _gjson_segments(path: str) -> list[tuple[str, bool]] | None:
    """Split on unescaped dots: (segment, whether it uses GJSON syntax unknown to JSONPath)."""
    segments: list[tuple[str, bool]] = []
    current, special, escaped = "", False, False
    for char in path:
        if escaped:
            current, escaped = current + char, False
        elif char == "\\":
            escaped = True
        elif char == ".":
            segments.append((current, special))
            current, special = "", False
        else:
            special = special or char in "*?|@!#=<>%[]{}()" or char == ","
            current += char
    if escaped:
        return None
    segments.append((current, special))
    return segments


def jsonpath(gjson: str) -> str | None:
    """A k6/GJSON path (``data.items.0.id``) as JSONPath (``$.data.items[0].id``).

    ``#`` maps to ``[*]`` inside a path and to ``length()`` at its end. Wildcards, queries and
    modifiers have no JSONPath equivalent: None. A ";" is refused as well, because JMeter's JSON
    extractor splits its fields on it.
    """
    segments = _gjson_segments(gjson)
    if not segments or ";" in gjson:
        return None
    out = "$"
    for i, (segment, special) in enumerate(segments):
        last = i == len(segments) - 1
        if segment == "#" and (not last or "[*]" not in out):
            out += ".length()" if last else "[*]"
        elif special or segment == "":
            return None
        elif segment.isdigit() and segment.isascii():
            out += f"[{int(segment)}]"
        elif _IDENTIFIER.match(segment):
            out += f".{segment}"
        else:
            out += "['" + segment.replace("\\", "\\\\").replace("'", "\\'") + "']"
    return out


# --- XML building blocks -----------------------------------------------------------------------


@dataclass
class _Node:
    """A test element and the elements under it (JMeter's hashTree)."""

    element: ET.Element
    children: list[_Node] = field(default_factory=list)


def _hash_tree(parent: ET.Element, nodes: Sequence[_Node]) -> None:
    # JMeter's layout: every element is followed by a <hashTree> sibling holding its children.
    for node in nodes:
        parent.append(node.element)
        _hash_tree(ET.SubElement(parent, "hashTree"), node.children)


def _prop(kind: str, name: str, value: str) -> ET.Element:
    element = ET.Element(kind, name=name)
    element.text = value
    return element


def _string(name: str, value: JText) -> ET.Element:
    return _prop("stringProp", name, value)


def _bool(name: str, value: bool) -> ET.Element:
    return _prop("boolProp", name, "true" if value else "false")


def _int(name: str, value: int) -> ET.Element:
    return _prop("intProp", name, str(value))


def _double(name: str, value: float) -> ET.Element:
    element = ET.Element("doubleProp")
    for tag, text in (("name", name), ("value", repr(float(value))), ("savedValue", "0.0")):
        ET.SubElement(element, tag).text = text
    return element


def _number(value: int | float) -> JText:
    return JText(str(value))


def _collection(name: str, items: Iterable[ET.Element]) -> ET.Element:
    element = ET.Element("collectionProp", name=name)
    element.extend(list(items))
    return element


def _element_prop(
    name: str, element_type: str, props: Iterable[ET.Element], **attrs: str
) -> ET.Element:
    element = ET.Element("elementProp", {"name": name, "elementType": element_type, **attrs})
    element.extend(list(props))
    return element


def _element(
    tag: str,
    name: str,
    gui: str,
    props: Iterable[ET.Element] = (),
    *,
    comment: str | None = None,
    enabled: bool = True,
) -> ET.Element:
    element = ET.Element(
        tag,
        {
            "guiclass": gui,
            "testclass": tag,
            "testname": _lit(name),
            "enabled": "true" if enabled else "false",
        },
    )
    if comment:
        element.append(_string("TestPlan.comments", _lit(comment)))  # JMeter's "Comments" field
    element.extend(list(props))
    return element


def _arguments(name: str, arguments: Iterable[ET.Element], **attrs: str) -> ET.Element:
    return _element_prop(
        name, "Arguments", [_collection("Arguments.arguments", arguments)], **attrs
    )


def _argument(name: str, value: JText) -> ET.Element:
    return _element_prop(
        name,
        "Argument",
        [
            _string("Argument.name", JText(name)),
            _string("Argument.value", value),
            _string("Argument.metadata", JText("=")),
        ],
    )


def _header_manager(headers: Sequence[tuple[JText, JText]]) -> ET.Element:
    entries = [
        _element_prop("", "Header", [_string("Header.name", n), _string("Header.value", v)])
        for n, v in headers
    ]
    return _element(
        "HeaderManager",
        "HTTP Header Manager",
        "HeaderPanel",
        [_collection("HeaderManager.headers", entries)],
    )


def _response_assertion(
    name: str, test_field: str, test_type: int, patterns: Sequence[JText], *, assume_success: bool
) -> ET.Element:
    return _element(
        "ResponseAssertion",
        name,
        "AssertionGui",
        [
            # "Asserion" is JMeter's own spelling of this property.
            _collection(
                "Asserion.test_strings", [_string(str(i), p) for i, p in enumerate(patterns)]
            ),
            _string("Assertion.custom_message", JText("")),
            _string("Assertion.test_field", JText(test_field)),
            _bool("Assertion.assume_success", assume_success),
            _int("Assertion.test_type", test_type),
        ],
    )


def _status_assertion(name: str, statuses: list[int], *, assume_success: bool) -> ET.Element:
    if len(statuses) == 1:
        return _response_assertion(
            name,
            "Assertion.response_code",
            EQUALS,
            [_number(statuses[0])],
            assume_success=assume_success,
        )
    # MATCH is a whole-string regular expression match.
    alternation = JText("|".join(map(str, statuses)))
    return _response_assertion(
        name, "Assertion.response_code", MATCH, [alternation], assume_success=assume_success
    )


def _regex_extractor(name: str, var: str, regex: str, *, headers: bool) -> ET.Element:
    return _element(
        "RegexExtractor",
        name,
        "RegexExtractorGui",
        [
            _string("RegexExtractor.useHeaders", JText("true" if headers else "false")),
            _string("RegexExtractor.refname", JText(var)),
            _string("RegexExtractor.regex", _lit(regex)),
            _string("RegexExtractor.template", JText("$1$")),
            _string("RegexExtractor.default", JText("")),
            _bool("RegexExtractor.default_empty_value", True),
            _string("RegexExtractor.match_number", JText("1")),
        ],
    )


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _constant_timer(ms: int) -> ET.Element:
    return _element(
        "ConstantTimer",
        f"pause {ms} ms",
        "ConstantTimerGui",
        [_string("ConstantTimer.delay", _number(ms))],
    )


def _uniform_timer(min_ms: int, max_ms: int) -> ET.Element:
    return _element(
        "UniformRandomTimer",
        f"pause {min_ms}-{max_ms} ms",
        "UniformRandomTimerGui",
        [
            _string("ConstantTimer.delay", _number(min_ms)),
            _string("RandomTimer.range", _number(float(max_ms - min_ms))),
        ],
    )


def _pause(name: str, timer: ET.Element) -> _Node:
    # k6 sleeps after a request, but a JMeter timer runs before its sampler. A Flow Control
    # Action placed after the step carries the timer and records no sample (JMeter's own
    # "add think times" uses it the same way).
    action = _element(
        "TestAction",
        name,
        "TestActionGui",
        [
            _int("ActionProcessor.action", 1),  # pause
            _int("ActionProcessor.target", 0),  # current thread
            _string("ActionProcessor.duration", JText("0")),
        ],
    )
    return _Node(action, [_Node(timer)])


def _throughput_timer(per_minute: float, comment: str) -> ET.Element:
    return _element(
        "ConstantThroughputTimer",
        f"pace: {per_minute:g} iterations/min",
        "TestBeanGUI",
        [
            _int("calcMode", 4),  # all active threads in this thread group, shared
            _double("throughput", per_minute),
        ],
        comment=comment,
    )


# --- load profile → thread groups --------------------------------------------------------------


@dataclass(frozen=True)
class _Load:
    ramp_s: int
    duration_s: int
    per_minute: float | None  # plan iterations per minute, for arrival-rate presets
    summary: str  # the k6 executor, for the Thread Group comment
    approximation: str | None  # what JMeter does differently, when it does


def _stages(executor: dict[str, Any]) -> list[tuple[float, int]]:
    return [(parse_duration(s["duration"]), int(s["target"])) for s in executor["stages"]]


def _stage_text(stages: list[tuple[float, int]]) -> str:
    return ", ".join(f"{d:g}s→{t}" for d, t in stages)


def _time_to_peak(stages: list[tuple[float, int]], start: int) -> int:
    peak = max([start, *(t for _, t in stages)])
    elapsed = 0.0
    if start < peak:
        for duration, target in stages:
            elapsed += duration
            if target == peak:
                break
    return math.ceil(elapsed)


def _load(spec: PlanSpec) -> _Load:
    executor = spec.load_profile.executor()
    kind = executor["executor"]
    duration = math.ceil(spec.load_profile.total_duration_s)
    vus = spec.load_profile.vus_at_peak
    if kind == "constant-vus":
        return _Load(0, duration, None, f"k6 constant-vus: {vus} VUs for {duration}s.", None)
    if kind == "ramping-vus":
        stages = _stages(executor)
        ramp = _time_to_peak(stages, 0)
        return _Load(
            ramp,
            duration,
            None,
            f"k6 ramping-vus, stages {_stage_text(stages)} (peak {vus} VUs).",
            f"VU stages approximated: JMeter's Thread Group ramps linearly from 0 to the peak "
            f"over {ramp}s (the time to the first peak), then holds it until {duration}s; it "
            "does not follow the other stages, nor ramp down.",
        )
    time_unit = parse_duration(executor["timeUnit"])
    open_model = (
        f"k6 starts up to {vus} VUs as the rate needs (open model); here {vus} threads, no "
        "more, and a Constant Throughput Timer on each scenario's first step paces "
        "iterations, so slow responses lower the rate instead of adding VUs."
    )
    if kind == "constant-arrival-rate":
        rate = executor["rate"]
        return _Load(
            0,
            duration,
            rate * 60 / time_unit,
            f"k6 constant-arrival-rate: {rate} iterations per {time_unit:g}s for {duration}s.",
            open_model,
        )
    stages = _stages(executor)
    start = int(executor["startRate"])
    peak = max([start, *(t for _, t in stages)])
    ramp = _time_to_peak(stages, start)
    return _Load(
        ramp,
        duration,
        peak * 60 / time_unit,
        f"k6 ramping-arrival-rate from {start}, stages {_stage_text(stages)} "
        f"(iterations per {time_unit:g}s).",
        f"{open_model} Core JMeter cannot ramp a rate: the timer paces at the peak rate "
        f"({peak} per {time_unit:g}s) from the start; threads ramp up over {ramp}s, which "
        "holds the rate lower only while too few threads run.",
    )


def split_threads(total: int, weights: Sequence[int]) -> list[int]:
    """Threads per scenario in proportion to the weights (largest remainder), at least 1 each."""
    whole = sum(weights)
    exact = [total * w / whole for w in weights]
    counts = [max(1, math.floor(e)) for e in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: (math.floor(exact[i]) - exact[i], i))
    for i in by_remainder[: max(0, total - sum(counts))]:
        counts[i] += 1
    return counts


def _thread_group(name: str, comment: str, threads: int, load: _Load) -> ET.Element:
    loop = _element_prop(
        "ThreadGroup.main_controller",
        "LoopController",
        [_bool("LoopController.continue_forever", False), _int("LoopController.loops", -1)],
        guiclass="LoopControlPanel",
        testclass="LoopController",
        testname="Loop Controller",
        enabled="true",
    )
    return _element(
        "ThreadGroup",
        name,
        "ThreadGroupGui",
        [
            _string("ThreadGroup.on_sample_error", JText("continue")),
            loop,
            _string("ThreadGroup.num_threads", _number(threads)),
            _string("ThreadGroup.ramp_time", _number(load.ramp_s)),
            _bool("ThreadGroup.scheduler", True),
            _string("ThreadGroup.duration", _number(load.duration_s)),
            _string("ThreadGroup.delay", JText("0")),
            _bool("ThreadGroup.same_user_on_next_iteration", True),
        ],
        comment=comment,
    )


# --- test data ---------------------------------------------------------------------------------


def data_file_name(name: str) -> str:
    """``<name>.csv``; data set names are free text, so one unsafe as a file name is hashed."""
    if re.match(NAME_PATTERN, name):
        return f"{name}.csv"
    return f"data-{hashlib.sha256(name.encode()).hexdigest()[:12]}.csv"


def _used_data_sets(spec: PlanSpec) -> list[str]:
    return sorted({s.data for s in spec.scenarios if s.data is not None})


def _columns(data: DataSet) -> list[str]:
    # Only columns a plan can reference ({{data.col}}) are kept, in order of first appearance.
    seen: dict[str, None] = {}
    for row in data.rows:
        for key in row:
            if isinstance(key, str) and re.match(VAR_PATTERN, key):
                seen.setdefault(key)
    return list(seen)


def _json_typed_columns(data: DataSet) -> frozenset[str]:
    """Columns whose every value is a JSON non-string: their CSV cells hold JSON text."""
    return frozenset(
        col
        for col in _columns(data)
        if all(col in row and not isinstance(row[col], str) for row in data.rows)
    )


def _ordered_rows(data: DataSet, seed: int) -> list[dict[str, Any]]:
    rows = list(data.rows)
    if data.selection == "random":
        # CSV Data Set Config cannot pick rows at random: a seeded shuffle, read in order.
        random.Random(seed).shuffle(rows)
    return rows


def _csv_columns(data: DataSet) -> list[str]:
    # With no column a plan can reference, the rows still pace iterations ("unique" ends them).
    return _columns(data) or ["row"]


def _csv_text(data: DataSet, seed: int) -> str:
    columns = _columns(data)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_csv_columns(data))
    for number, row in enumerate(_ordered_rows(data, seed), start=1):
        # A missing cell is empty; anything else is what k6 would send: String(value).
        cells = ["" if c not in row else _js_text(row[c]) for c in columns] if columns else [number]
        writer.writerow(cells)
    return out.getvalue()


def jmx_data_files(spec: PlanSpec) -> dict[str, str]:
    """The CSV file of each data set a scenario uses, by file name: write them next to the .jmx."""
    return {data_file_name(n): _csv_text(spec.data[n], spec.seed) for n in _used_data_sets(spec)}


# --- the renderer ------------------------------------------------------------------------------


class _Names:
    """JMeter variable names: JMeter has one flat namespace where a plan has two."""

    def __init__(self, spec: PlanSpec) -> None:
        self._extracted = {name for step in spec.steps for name in step.extract}

    def var(self, name: str) -> str:
        return f"vars.{name}" if name in _RESERVED else name

    def column(self, name: str) -> str:
        # A column named like an extracted variable would otherwise read the extracted value.
        clash = name in self._extracted or name in _RESERVED
        return f"data.{name}" if clash else name

    def of(self, ref: templating.Ref) -> str:
        return self.var(ref.name) if ref.namespace == "vars" else self.column(ref.name)


def _same(text: str) -> str:
    return text


class _Renderer:
    def __init__(self, spec: PlanSpec, slos: list[SLO]) -> None:
        self.spec = spec
        self.slos = slos
        self.names = _Names(spec)
        self.json_extracted = {
            name for step in spec.steps for name, ex in step.extract.items() if ex.json_path
        }
        self.notes: list[str] = []  # approximations, listed in the Test Plan's comments

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def document(self) -> str:
        root = ET.Element("jmeterTestPlan", version="1.2", properties="5.0", jmeter=JMETER_VERSION)
        _hash_tree(ET.SubElement(root, "hashTree"), [self._test_plan()])
        ET.indent(root, space="  ")
        body = ET.tostring(root, encoding="unicode")
        # ElementTree leaves a carriage return in text as it is, and XML parsers turn it into a
        # line feed; as a character reference it survives. Raw CRs can only come from text.
        body = body.replace("\r", "&#13;")
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"

    # --- plan level

    def _test_plan(self) -> _Node:
        children = [
            _Node(self._cookie_manager()),
            _Node(self._http_defaults()),
            *self._auth_nodes(),
            *self._thread_groups(),
        ]
        plan = _element(
            "TestPlan",
            self.spec.name,
            "TestPlanGui",
            [
                _bool("TestPlan.functional_mode", False),
                _bool("TestPlan.tearDown_on_shutdown", True),
                _bool("TestPlan.serialize_threadgroups", False),
                _arguments(
                    "TestPlan.user_defined_variables",
                    self._variables(),
                    guiclass="ArgumentsPanel",
                    testclass="Arguments",
                    testname="User Defined Variables",
                    enabled="true",
                ),
                _string("TestPlan.user_define_classpath", JText("")),
            ],
        )
        # Notes are collected while the tree is built, so the comment is written last.
        plan.insert(0, _string("TestPlan.comments", _lit(self._plan_comment())))
        return _Node(plan, children)

    def _variables(self) -> list[ET.Element]:
        parts = urlsplit(self.spec.target.base_url)
        if parts.username is not None:
            self.note(
                "Credentials in target.base_url are not carried over: JMeter's HTTP Request "
                "takes host and port only."
            )
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return [
            _argument(PROTOCOL_VAR, _lit(parts.scheme)),
            _argument(HOST_VAR, _lit(parts.hostname or "")),
            _argument(PORT_VAR, _number(port)),
            _argument(BASE_PATH_VAR, _lit(parts.path)),
            _argument(SEED_VAR, _number(self.spec.seed)),
        ]

    def _plan_comment(self) -> str:
        lines = [f"Generated by perf-agent from the plan {self.spec.name!r}."]
        if self.spec.description:
            lines += ["", self.spec.description]
        lines += [
            "",
            "SLOs (perf-agent judges them on k6 results; JMeter has no percentile or error-rate "
            "thresholds, so they are listed here, not enforced):",
            *(f"- {self._slo_text(slo)}" for slo in self.slos),
            "",
            "Run: jmeter -n -t <this file> -l results.jtl"
            + "".join(f" -J{name}=…" for name in self._secret_properties()),
        ]
        if self.spec.target.auth:
            lines.append(
                "Credentials are JMeter properties read at run time (-J or a -q properties file); "
                "none is written in this file. A missing one is sent empty (k6 refuses to start)."
            )
        if _used_data_sets(self.spec):
            lines.append("CSV files: perf-agent writes them next to this file.")
        lines.append(
            "Where plan text has a '$' followed by '{', the '$' is written as the function call "
            "__char(36): JMeter then sends the text as written instead of evaluating it."
        )
        lines += ["", "Differences from the k6 script:", *(f"- {n}" for n in self.notes)]
        return "\n".join(lines)

    @staticmethod
    def _slo_text(slo: SLO) -> str:
        scope = "all requests" if slo.endpoint is None else f"step {slo.endpoint}"
        detail = ""
        if slo.sli not in ("error_rate", "rps"):
            detail = ", over responses with an expected status"
        return f"{slo.text} ({scope}{detail})"

    def _secret_properties(self) -> list[str]:
        auth = self.spec.target.auth
        return [auth.env_var] if auth else []

    def _cookie_manager(self) -> ET.Element:
        # k6 keeps a cookie jar per VU and empties it at each iteration.
        return _element(
            "CookieManager",
            "HTTP Cookie Manager",
            "CookiePanel",
            [
                _collection("CookieManager.cookies", []),
                _bool("CookieManager.clearEachIteration", True),
                _bool("CookieManager.controlledByThreadGroup", False),
            ],
        )

    def _http_defaults(self) -> ET.Element:
        return _element(
            "ConfigTestElement",
            "HTTP Request Defaults",
            "HttpDefaultsGui",
            [
                _arguments(
                    "HTTPsampler.Arguments",
                    [],
                    guiclass="HTTPArgumentsPanel",
                    testclass="Arguments",
                    testname="User Defined Variables",
                    enabled="true",
                ),
                _string("HTTPSampler.domain", JText(f"${{{HOST_VAR}}}")),
                _string("HTTPSampler.port", JText(f"${{{PORT_VAR}}}")),
                _string("HTTPSampler.protocol", JText(f"${{{PROTOCOL_VAR}}}")),
                _string("HTTPSampler.contentEncoding", JText("UTF-8")),
                _string("HTTPSampler.path", JText("")),
                # k6's default request timeout.
                _string("HTTPSampler.connect_timeout", JText("60000")),
                _string("HTTPSampler.response_timeout", JText("60000")),
            ],
            comment="Target: the PERF_AGENT_* variables of the Test Plan.",
        )

    def _auth_nodes(self) -> list[_Node]:
        auth = self.spec.target.auth
        if auth is None or auth.type != "basic":
            return []
        # JMeter's __base64Encode is a plugin function, and the HTTP Authorization Manager cannot
        # use a custom header name nor take "user:password" as one secret: a JSR223 PreProcessor
        # builds the header value the way k6 does ("Basic " + base64 of the UTF-8 secret).
        script = "\n".join(
            [
                f"// The credential comes from the JMeter property {auth.env_var} at run time.",
                f"String secret = props.getProperty('{auth.env_var}', '')",
                f"vars.put('{BASIC_AUTH_VAR}', 'Basic ' + "
                "secret.getBytes('UTF-8').encodeBase64().toString())",
            ]
        )
        pre = _element(
            "JSR223PreProcessor",
            "basic auth header value",
            "TestBeanGUI",
            [
                _string("scriptLanguage", JText("groovy")),
                _string("parameters", JText("")),
                _string("filename", JText("")),
                _string("cacheKey", JText("true")),
                _string("script", JText(script)),
            ],
            comment=f"Sets {BASIC_AUTH_VAR} before each request; the secret is never in this file.",
        )
        return [_Node(pre)]

    def _auth_value(self, auth: Auth) -> JText:
        if auth.type == "bearer":
            return _field(["Bearer ", _secret(auth)])
        if auth.type == "basic":
            return _field([_variable(BASIC_AUTH_VAR)])
        return _field([_secret(auth)])

    # --- scenarios

    def _thread_groups(self) -> list[_Node]:
        load = _load(self.spec)
        weights = [s.weight for s in self.spec.scenarios]
        threads = split_threads(self.spec.load_profile.vus_at_peak, weights)
        if load.approximation:
            self.note(load.approximation)
        if self.spec.load_profile.abort_on_fail:
            self.note("k6 stops a breakpoint test at the first broken SLO; JMeter runs to the end.")
        if len(self.spec.scenarios) > 1:
            self.note(
                "Scenario weights: k6 shares iterations among scenarios by weight, every VU "
                "running each in turn; here each scenario is a Thread Group and the "
                f"{self.spec.load_profile.vus_at_peak} VUs are split by weight into threads "
                f"({', '.join(map(str, threads))})."
            )
        if sum(threads) > self.spec.load_profile.vus_at_peak:
            self.note(
                f"{sum(threads)} threads for {self.spec.load_profile.vus_at_peak} VUs: every "
                "scenario gets at least one thread."
            )
        return [
            self._scenario(scenario, count, load, sum(weights))
            for scenario, count in zip(self.spec.scenarios, threads, strict=True)
        ]

    def _scenario(self, scenario: Scenario, threads: int, load: _Load, total_weight: int) -> _Node:
        comment = load.summary
        if load.approximation:
            comment += f"\nApproximation: {load.approximation}"
        children: list[_Node] = []
        typed: frozenset[str] = frozenset()
        if scenario.data is not None:
            children.append(_Node(self._data_set(scenario.data)))
            typed = _json_typed_columns(self.spec.data[scenario.data])
        pacing = None
        if load.per_minute is not None:
            per_minute = load.per_minute * scenario.weight / total_weight
            pacing = _throughput_timer(
                per_minute,
                "Scoped to the scenario's first step, so it paces iterations, not requests.",
            )
        children += self._steps(scenario, typed, pacing)
        think = self.spec.load_profile.think_time
        if think:
            children.append(_pause("pause after each iteration", _constant_timer(_ms(think))))
        return _Node(_thread_group(scenario.name, comment, threads, load), children)

    def _data_set(self, name: str) -> ET.Element:
        data = self.spec.data[name]
        file_name = data_file_name(name)
        columns = _csv_columns(data)
        comment = (
            f"Data set {name!r}: {len(data.rows)} rows, {data.selection} selection. perf-agent "
            f"writes {file_name} next to this file (a header line, then one row per line)."
        )
        if data.selection == "random":
            self.note(
                "Random data rows: CSV Data Set Config reads in order, so the rows are written "
                "shuffled with the plan's seed and read in that order, cycling."
            )
        if data.selection == "unique":
            self.note(
                "Unique data rows: each thread stops when the rows run out (k6 ends the whole "
                "test at that point)."
            )
        return _element(
            "CSVDataSet",
            f"data: {name}",
            "TestBeanGUI",
            [
                _string("filename", _lit(file_name)),
                _string("fileEncoding", JText("UTF-8")),
                _string("variableNames", _lit(",".join(map(self.names.column, columns)))),
                _bool("ignoreFirstLine", True),
                _string("delimiter", JText(",")),
                _bool("quotedData", True),
                _bool("recycle", data.selection != "unique"),
                _bool("stopThread", data.selection == "unique"),
                _string("shareMode", JText("shareMode.all")),
            ],
            comment=comment,
        )

    def _steps(
        self, scenario: Scenario, typed: frozenset[str], pacing: ET.Element | None
    ) -> list[_Node]:
        nodes: list[_Node] = []
        first = scenario.steps[0]
        for group, steps in itertools.groupby(scenario.steps, key=lambda s: s.group):
            step_nodes = [
                node
                for step in steps
                for node in self._step(step, typed, pacing if step is first else None)
            ]
            if group is None:
                nodes += step_nodes
            else:
                # A Simple Controller adds no sample: a Transaction Controller would add one per
                # group to the results and so change request counts, error rate and percentiles.
                controller = _element("GenericController", group, "LogicControllerGui")
                nodes.append(_Node(controller, step_nodes))
        return nodes

    # --- steps

    def _step(self, step: Step, typed: frozenset[str], pacing: ET.Element | None) -> list[_Node]:
        nodes = [self._sampler(step, typed, pacing)]
        think = self._think(step)
        if think is not None:
            nodes.append(think)
        return nodes

    def _sampler(self, step: Step, typed: frozenset[str], pacing: ET.Element | None) -> _Node:
        body = self._body(step, typed)
        if body is None:
            arguments = _arguments(
                "HTTPsampler.Arguments",
                [],
                guiclass="HTTPArgumentsPanel",
                testclass="Arguments",
                testname="User Defined Variables",
                enabled="true",
            )
        else:
            raw = _element_prop(
                "",
                "HTTPArgument",
                [
                    _bool("HTTPArgument.always_encode", False),
                    _string("Argument.value", body),
                    _string("Argument.metadata", JText("=")),
                ],
            )
            arguments = _arguments("HTTPsampler.Arguments", [raw])
        sampler = _element(
            "HTTPSamplerProxy",
            step.name,
            "HttpTestSampleGui",
            [
                _bool("HTTPSampler.postBodyRaw", body is not None),
                arguments,
                _string("HTTPSampler.path", self._path(step)),
                _string("HTTPSampler.method", JText(step.method)),
                _string("HTTPSampler.contentEncoding", JText("UTF-8")),
                _bool("HTTPSampler.follow_redirects", True),
                _bool("HTTPSampler.auto_redirects", False),
                _bool("HTTPSampler.use_keepalive", True),
                _bool("HTTPSampler.DO_MULTIPART_POST", False),
            ],
        )
        children = [] if pacing is None else [_Node(pacing)]
        headers = self._headers(step)
        if headers:
            children.append(_Node(_header_manager(headers)))
        children += [_Node(e) for e in self._extractors(step)]
        children += [_Node(e) for e in self._assertions(step, typed)]
        return _Node(sampler, children)

    def _template(
        self,
        text: str,
        literal: Callable[[str], str] = _same,
        ref: Callable[[str], _Expr] = _variable,
    ) -> list[_Segment]:
        return [
            literal(p) if isinstance(p, str) else ref(self.names.of(p))
            for p in templating.parse(text)
        ]

    def _path(self, step: Step) -> JText:
        # As in k6: references in the path are URL-encoded, the literal path is not; the query
        # is encoded in full and appended. It is part of the path rather than sampler arguments
        # because JMeter sends arguments of a POST, PUT or PATCH as a form body.
        segments: list[_Segment] = [_variable(BASE_PATH_VAR)]
        segments += self._template(step.path, ref=_url_encoded)
        pairs: list[list[_Segment]] = []
        for key, value in step.query.items():
            if isinstance(value, str):
                encoded = self._template(value, literal=_uri, ref=_url_encoded)
            else:
                encoded = [_uri(_js_text(value))]
            pairs.append([_uri(key), "=", *encoded])
        if pairs:
            segments += ["?", *_joined(pairs, "&")]
        return _field(segments)

    def _headers(self, step: Step) -> list[tuple[JText, JText]]:
        # The same merge as k6: target headers, then auth, then the step's own (last wins).
        merged: dict[str, JText] = {k: _lit(v) for k, v in self.spec.target.headers.items()}
        auth = self.spec.target.auth
        if auth is not None:
            merged[auth.header] = self._auth_value(auth)
        for key, value in step.headers.items():
            merged[key] = _field(self._template(value))
        json_body = step.body is not None and not isinstance(step.body, str)
        if json_body and not any(k.lower() == "content-type" for k in step.headers):
            merged["Content-Type"] = JText("application/json")
        return [(_lit(k), v) for k, v in merged.items()]

    def _body(self, step: Step, typed: frozenset[str]) -> JText | None:
        if step.body is None:
            return None
        if isinstance(step.body, str):
            return _field(self._template(step.body))
        return _field(self._json(step.body, typed))

    def _json(self, value: Any, typed: frozenset[str]) -> list[_Segment]:
        """A JSON value as compact JSON text (like JSON.stringify), references resolved."""
        if isinstance(value, str):
            return self._json_string(value, typed)
        if isinstance(value, dict):
            members = [[_json_quoted(str(k)), ":", *self._json(v, typed)] for k, v in value.items()]
            return ["{", *_joined(members, ","), "}"]
        if isinstance(value, list):
            return ["[", *_joined([self._json(v, typed) for v in value], ","), "]"]
        return [_js_text(value)]

    def _json_string(self, text: str, typed: frozenset[str]) -> list[_Segment]:
        parts = templating.parse(text)
        if len(parts) == 1 and isinstance(parts[0], templating.Ref):
            # k6 keeps the type of a string that is exactly one reference.
            ref = parts[0]
            if ref.namespace == "data" and ref.name in typed:
                return [_variable(self.names.of(ref))]  # the CSV cell holds the JSON text
            if ref.namespace == "vars" and ref.name in self.json_extracted:
                self.note(
                    f"A JSON body value that is exactly {{{{vars.{ref.name}}}}} is sent as a "
                    "JSON string: k6 keeps the extracted value's JSON type (a number stays a "
                    "number), JMeter's extracted variables are text."
                )
        inner = [
            _json_quoted(p)[1:-1] if isinstance(p, str) else _json_escaped(self.names.of(p))
            for p in parts
        ]
        return ['"', *inner, '"']

    # --- checks and extraction

    def _assertions(self, step: Step, typed: frozenset[str]) -> list[ET.Element]:
        # The expected-status assertion comes first: "assume success" overrides JMeter's own
        # verdict (a 404 can be expected), and a later assertion must not be overridden by it.
        found = [
            _status_assertion(
                f"{step.name}: status in {step.expect_status}",
                step.expect_status,
                assume_success=True,
            )
        ]
        if step.checks:
            self.note(
                "Errors: JMeter marks a sample failed when any assertion fails, so a failed "
                "check raises JMeter's error rate; in k6 only an unexpected status fails a "
                "request, and checks are counted apart."
            )
        for number, check in enumerate(step.checks, start=1):
            found.append(self._check(f"{step.name}: #{number}", check, typed))
        return found

    def _check(self, prefix: str, check: Check, typed: frozenset[str]) -> ET.Element:
        if check.status is not None:
            return _status_assertion(
                f"{prefix} status in {check.status}", check.status, assume_success=False
            )
        if check.body_contains is not None:
            return _response_assertion(
                f"{prefix} body contains {check.body_contains!r}",
                "Assertion.response_data",
                SUBSTRING,
                [_lit(check.body_contains)],
                assume_success=False,
            )
        return self._json_check(prefix, check, typed)

    def _json_check(self, prefix: str, check: Check, typed: frozenset[str]) -> ET.Element:
        gjson = check.json_path or ""
        path = jsonpath(gjson)
        expected = JText("")
        if check.exists is False:
            label, validate, invert = f"{gjson} absent", False, True
        elif check.equals is not None:
            label, validate, invert = f"{gjson} == {json.dumps(check.equals)}", True, False
            expected = _field(self._json(check.equals, typed))
            self.note(
                "JSON equality checks: JMeter's JSONPath Assertion also passes when the value is "
                "an array and any of its elements equals the expected value."
            )
        else:
            label, validate, invert = f"{gjson} exists", False, False
        comment = None
        if path is None:
            comment = self._untranslatable(gjson)
        return _element(
            "JSONPathAssertion",
            f"{prefix} {label}",
            "JSONPathAssertionGui",
            [
                _string("JSON_PATH", _lit(path or gjson)),
                _string("EXPECTED_VALUE", expected),
                _bool("JSONVALIDATION", validate),
                _bool("EXPECT_NULL", False),
                _bool("INVERT", invert),
                _bool("ISREGEX", False),
            ],
            comment=comment,
            enabled=path is not None,
        )

    def _untranslatable(self, gjson: str) -> str:
        text = (
            f"The k6 (GJSON) path {gjson!r} uses syntax JSONPath lacks (wildcards, queries, "
            "modifiers): this element is disabled; write its JSONPath by hand."
        )
        self.note(text)
        return text

    def _extractors(self, step: Step) -> list[ET.Element]:
        return [self._extractor(step, var, ex) for var, ex in step.extract.items()]

    def _extractor(self, step: Step, var: str, extract: Extract) -> ET.Element:
        name = self.names.var(var)
        label = f"{step.name}: extract {var}"
        if extract.header is not None:
            # Response headers reach the extractor as "Name: value" lines.
            pattern = "(?im)^" + re.sub(r"(\W)", r"\\\1", extract.header) + r":\s*(.*)$"
            return _regex_extractor(label, name, pattern, headers=True)
        if extract.regex is not None:
            self.note(
                "Regex extraction runs on JMeter's regex engine (ORO, Perl 5 syntax, by "
                "default), not JavaScript's: check unusual expressions."
            )
            return _regex_extractor(label, name, extract.regex, headers=False)
        gjson = extract.json_path or ""
        path = jsonpath(gjson)
        return _element(
            "JSONPostProcessor",
            label,
            "JSONPostProcessorGui",
            [
                _string("JSONPostProcessor.referenceNames", JText(name)),
                _string("JSONPostProcessor.jsonPathExprs", _lit(path or gjson)),
                _string("JSONPostProcessor.match_numbers", JText("1")),
                _string("JSONPostProcessor.defaultValues", JText("")),
                _bool("JSONPostProcessor.compute_concat", False),
            ],
            comment=None if path else self._untranslatable(gjson),
            enabled=path is not None,
        )

    def _think(self, step: Step) -> _Node | None:
        think = step.think_time
        if think is None:
            return None
        if isinstance(think, ThinkRange):
            self.note(
                f"Random think times are not seeded ({SEED_VAR} is informative): JMeter's "
                "Uniform Random Timer takes no seed."
            )
            timer = _uniform_timer(_ms(think.min), _ms(think.max))
        elif think > 0:
            timer = _constant_timer(_ms(think))
        else:
            return None
        return _pause(f"think time after {step.name}", timer)


def render_jmx(spec: PlanSpec, *, slos: list[SLO]) -> str:
    """The plan as a JMeter 5.x ``.jmx`` document; ``jmx_data_files`` gives its CSV files."""
    return _Renderer(spec, slos).document()
