"""The JMeter export: a well-formed .jmx whose elements say what the k6 script does.

Property values are checked through ``jmeter_value``, a small model of how JMeter compiles a
property (FunctionParser.compileString + CompoundVariable) restricted to the functions perf-agent
writes: any other function in a value fails the test, so plan text can never be live code.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from app.plans.jmx import jmx_data_files, jsonpath, render_jmx, split_threads
from app.plans.schemas import PlanSpec, effective_slos
from tests.builders import plan_doc

HOSTILE = (
    "q\"uo'te <tag> & ]]> back\\slash \\, ${__javaScript(java.lang.System.exit(0))} "
    "$${x} \\${y} ${__char(36)} end\\ \n new\r\nline\ttab \u00e9\U0001f600 \u2028 \x01 $"
)
URI_SAFE = "-_.!~*'()"
BASE = {"PERF_AGENT_BASE_PATH": ""}


# --- a model of JMeter's property compilation ---


def _reference_end(text: str, start: int) -> int:
    """Index of the "}" closing the reference whose body starts at ``start``."""
    call = re.match(r"__\w+\(", text[start:])
    if call is None:
        return text.index("}", start)
    depth, i = 0, start + call.end() - 1
    while True:
        if text[i] == "\\":
            i += 2
            continue
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            break
        i += 1
    assert text[i + 1] == "}", f"no '}}' after the function call in {text!r}"
    return i + 1


def _unescape_parameter(text: str) -> str:
    return re.sub(r"\\([$,\\])", r"\1", text)


def _call(body: str, variables: Mapping[str, str], props: Mapping[str, str]) -> str:
    if match := re.fullmatch(r"__char\((\d+)\)", body):
        return chr(int(match[1]))
    if match := re.fullmatch(r"__P\(([A-Z0-9_]+),\)", body):
        return props.get(match[1], "")
    if match := re.fullmatch(r"__groovy\((.*)\)", body, re.DOTALL):
        code = _unescape_parameter(match[1])
        if m := re.fullmatch(
            r"java\.net\.URLEncoder\.encode\(vars\.get\('([\w.]+)'\) \?: '', 'UTF-8'\)"
            r"\.replace\('\+', '%20'\)",
            code,
        ):
            return quote(variables.get(m[1], ""), safe="-_.*")
        if m := re.fullmatch(
            r"groovy\.json\.StringEscapeUtils\.escapeJava\(vars\.get\('([\w.]+)'\) \?: ''\)", code
        ):
            return json.dumps(variables.get(m[1], ""))[1:-1]
    if "(" in body:
        raise AssertionError(f"a live JMeter function: ${{{body}}}")
    return variables.get(body, "${" + body + "}")  # JMeter leaves unknown variables as they are


def jmeter_value(
    text: str, variables: Mapping[str, str] | None = None, props: Mapping[str, str] | None = None
) -> str:
    """What JMeter sends for a property value."""
    variables, props = variables or {}, props or {}
    out: list[str] = []
    compiled, previous, i = False, " ", 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            if text[i + 1] not in "$,\\":
                out.append("\\")
            out.append(text[i + 1])
            previous, i = " ", i + 2
        elif char == "{" and previous == "$":
            out.pop()
            end = _reference_end(text, i + 1)
            out.append(_call(text[i + 1 : end], variables, props))
            compiled, previous, i = True, " ", end + 1
        else:
            out.append(char)
            previous, i = char, i + 1
    # Without any reference JMeter keeps the property exactly as written, escapes included.
    return "".join(out) if compiled else text


def test_the_model_follows_jmeter_escaping_rules() -> None:
    # JMeter's PackageTest: escapes are not processed in a value without a reference.
    assert jmeter_value("\\$a \\, \\\\ x") == "\\$a \\, \\\\ x"
    assert jmeter_value("${x}\\$a \\, \\\\ \\x", {"x": "1"}) == "1$a , \\ \\x"
    assert jmeter_value("${__char(36)}{y}") == "${y}"
    with pytest.raises(AssertionError, match="live"):
        jmeter_value("${__javaScript(1)}")


# --- helpers ---


def step(name: str = "get_item", **fields: Any) -> dict[str, Any]:
    return {"name": name, "path": "/items", **fields}


def v1_doc(*steps: dict[str, Any], **changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": "shop",
        "target": {"base_url": "http://127.0.0.1:9"},
        "scenarios": [{"name": "browse", "steps": list(steps) or [step()]}],
        "load": {"vus": 2, "duration": "2s"},
    }
    doc.update(changes)
    return doc


def render_text(doc: dict[str, Any]) -> str:
    spec = PlanSpec.model_validate(doc)
    return render_jmx(spec, slos=effective_slos(spec)[0])


def render(doc: dict[str, Any]) -> ET.Element:
    return ET.fromstring(render_text(doc).encode("utf-8"))


def prop(element: ET.Element, name: str) -> str:
    found = element.find(f"./*[@name='{name}']")
    assert found is not None, f"{element.tag} has no property {name}"
    return found.text or ""


def only(root: ET.Element, tag: str) -> ET.Element:
    found = list(root.iter(tag))
    assert len(found) == 1, f"{len(found)} {tag} elements"
    return found[0]


def named(root: ET.Element, tag: str, testname: str) -> ET.Element:
    found = [e for e in root.iter(tag) if e.get("testname") == testname]
    assert len(found) == 1, f"{len(found)} {tag} named {testname!r}"
    return found[0]


def children(root: ET.Element, element: ET.Element) -> list[ET.Element]:
    """The elements in the hashTree that follows ``element``."""
    for parent in root.iter():
        kids = list(parent)
        if element in kids:
            tree = kids[kids.index(element) + 1]
            assert tree.tag == "hashTree"
            return [e for e in tree if e.tag != "hashTree"]
    raise AssertionError(f"{element.tag} not found")


def headers(root: ET.Element, sampler: ET.Element) -> dict[str, str]:
    managers = [e for e in children(root, sampler) if e.tag == "HeaderManager"]
    if not managers:
        return {}
    assert len(managers) == 1
    return {
        prop(h, "Header.name"): prop(h, "Header.value")
        for h in managers[0].iter("elementProp")
        if h.get("elementType") == "Header"
    }


def body(sampler: ET.Element) -> str:
    assert prop(sampler, "HTTPSampler.postBodyRaw") == "true"
    values = [e for e in sampler.iter("stringProp") if e.get("name") == "Argument.value"]
    assert len(values) == 1
    return values[0].text or ""


def comments(element: ET.Element) -> str:
    return jmeter_value(prop(element, "TestPlan.comments"))


# --- document structure ---


def test_the_document_is_a_jmeter_5_test_plan() -> None:
    root = render(plan_doc())

    assert (root.tag, root.get("version"), root.get("properties")) == (
        "jmeterTestPlan",
        "1.2",
        "5.0",
    )
    assert [e.tag for e in root] == ["hashTree"]
    assert [e.tag for e in root[0]] == ["TestPlan", "hashTree"]
    assert root[0][0].get("testname") == "orders-api"


def _check_hash_trees(tree: ET.Element) -> None:
    kids = list(tree)
    assert len(kids) % 2 == 0, [k.tag for k in kids]
    for element, subtree in zip(kids[::2], kids[1::2], strict=True):
        assert element.tag != "hashTree"
        assert subtree.tag == "hashTree", f"{element.tag} is not followed by its hashTree"
        _check_hash_trees(subtree)


def test_every_element_is_followed_by_its_hash_tree() -> None:
    doc = v1_doc(
        step(
            "a", group="g", think_time="1s", checks=[{"json": "id"}], extract={"x": {"json": "id"}}
        ),
        step("b", group="g", path="/b/{{vars.x}}", body={"k": 1}),
        step("c", think_time={"min": 1, "max": 2}),
        data={"users": {"inline": [{"user": "u1"}]}},
    )
    doc["scenarios"][0]["data"] = "users"
    doc["scenarios"].append({"name": "other", "weight": 2, "steps": [step("d")]})
    root = render(doc)

    _check_hash_trees(root[0])


def test_one_sampler_per_step_with_method_path_and_body() -> None:
    root = render(plan_doc())

    samplers = list(root.iter("HTTPSamplerProxy"))
    assert [s.get("testname") for s in samplers] == ["list_orders", "create_order"]
    get, post = samplers
    assert prop(get, "HTTPSampler.method") == "GET"
    assert jmeter_value(prop(get, "HTTPSampler.path"), BASE) == "/orders"
    assert prop(get, "HTTPSampler.postBodyRaw") == "false"
    assert prop(post, "HTTPSampler.method") == "POST"
    assert json.loads(body(post)) == {"sku": "A-1", "qty": 2}
    assert headers(root, post)["Content-Type"] == "application/json"
    assert "Content-Type" not in headers(root, get)


def test_the_target_is_split_into_variables_for_the_request_defaults() -> None:
    root = render(plan_doc(target={"base_url": "https://api.example.com:8443/v2"}))

    plan_vars = {
        prop(a, "Argument.name"): prop(a, "Argument.value")
        for a in only(root, "TestPlan").iter("elementProp")
        if a.get("elementType") == "Argument"
    }
    assert plan_vars == {
        "PERF_AGENT_PROTOCOL": "https",
        "PERF_AGENT_HOST": "api.example.com",
        "PERF_AGENT_PORT": "8443",
        "PERF_AGENT_BASE_PATH": "/v2",
        "PERF_AGENT_SEED": "1",
    }
    defaults = only(root, "ConfigTestElement")
    assert jmeter_value(prop(defaults, "HTTPSampler.domain"), plan_vars) == "api.example.com"
    sampler = named(root, "HTTPSamplerProxy", "list_orders")
    assert jmeter_value(prop(sampler, "HTTPSampler.path"), plan_vars) == "/v2/orders"


def test_headers_merge_target_auth_and_step_headers_like_k6() -> None:
    doc = v1_doc(
        step(headers={"X-Env": "step", "Accept": "text/plain"}, body={"a": 1}),
        target={
            "base_url": "http://127.0.0.1:9",
            "headers": {"X-Env": "target", "X-Team": "perf"},
            "auth": {"type": "bearer", "secret": "API_TOKEN"},
        },
    )
    root = render(doc)

    found = headers(root, only(root, "HTTPSamplerProxy"))
    props = {"PERF_AGENT_SECRET_API_TOKEN": "t0k"}
    assert {k: jmeter_value(v, props=props) for k, v in found.items()} == {
        "X-Env": "step",
        "X-Team": "perf",
        "Authorization": "Bearer t0k",
        "Accept": "text/plain",
        "Content-Type": "application/json",
    }


def test_the_query_is_encoded_into_the_path_like_k6() -> None:
    doc = v1_doc(step(method="POST", query={"a b": "c&d/é", "n": 1.0, "t": True}, body="raw"))
    root = render(doc)

    path = jmeter_value(prop(only(root, "HTTPSamplerProxy"), "HTTPSampler.path"), BASE)
    assert path == "/items?a%20b=c%26d%2F%C3%A9&n=1&t=true"


def test_references_become_jmeter_variables_encoded_where_k6_encodes() -> None:
    doc = v1_doc(
        step("login", extract={"id": {"json": "id"}, "tok": {"header": "X-Token"}}),
        step(
            "use",
            method="PUT",
            path="/items/{{vars.id}}",
            query={"who": "{{data.user}}"},
            headers={"Authorization": "Bearer {{vars.tok}}"},
            body={"user": "{{data.user}}", "qty": "{{data.qty}}", "note": "id={{vars.id}}"},
        ),
        data={"users": {"inline": [{"user": 'a "b" c', "qty": 2}]}},
    )
    doc["scenarios"][0]["data"] = "users"
    root = render(doc)
    sampler = named(root, "HTTPSamplerProxy", "use")
    values = {**BASE, "id": "x/1 2", "tok": "t", "user": 'a "b" c', "qty": "2"}

    assert jmeter_value(prop(sampler, "HTTPSampler.path"), values) == (
        "/items/x%2F1%202?who=a%20%22b%22%20c"
    )
    assert jmeter_value(headers(root, sampler)["Authorization"], values) == "Bearer t"
    assert json.loads(jmeter_value(body(sampler), values)) == {
        "user": 'a "b" c',
        "qty": 2,  # every row holds a number: it stays a number, as in k6
        "note": "id=x/1 2",
    }


def test_a_data_column_named_like_an_extracted_variable_keeps_its_own_value() -> None:
    doc = v1_doc(
        step("first", extract={"id": {"json": "id"}}),
        step("second", path="/a/{{data.id}}/b/{{vars.id}}"),
        data={"rows": {"inline": [{"id": "row-1"}]}},
    )
    doc["scenarios"][0]["data"] = "rows"
    root = render(doc)

    assert prop(only(root, "CSVDataSet"), "variableNames") == "data.id"
    sampler = named(root, "HTTPSamplerProxy", "second")
    values = {**BASE, "data.id": "row-1", "id": "extracted"}
    assert jmeter_value(prop(sampler, "HTTPSampler.path"), values) == "/a/row-1/b/extracted"


# --- plan text stays literal ---


# What the plan language lets into each place: header values hold no line breaks or control
# characters, literal path text no spaces, control characters or '#'.
HEADER_HOSTILE = re.sub(r"[\x00-\x08\x0a-\x1f\x7f]", "", HOSTILE)
PATH_HOSTILE = re.sub(r"[\x00-\x20\x7f#]", "", HOSTILE)


def _hostile(where: str) -> str:
    if where.endswith("header"):
        return HEADER_HOSTILE
    return PATH_HOSTILE if where == "path" else HOSTILE


def _hostile_doc(where: str) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "target header": {},
        "step header": {"headers": {"X-Note": HEADER_HOSTILE}},
        "path": {"path": "/x" + PATH_HOSTILE},
        "query": {"query": {"q": HOSTILE}},
        "raw body": {"method": "POST", "body": HOSTILE},
        "json body": {"method": "POST", "body": {"k": HOSTILE}},
        "group": {"group": HOSTILE},
        "body check": {"checks": [{"body_contains": HOSTILE}]},
        "json check": {"checks": [{"json": "k", "equals": HOSTILE}]},
    }
    doc = v1_doc(step(**fields.get(where, {})), name="plan " + HOSTILE, description=HOSTILE)
    doc["target"]["headers"] = {"X-Hostile": HEADER_HOSTILE}
    return doc


def _hostile_value(root: ET.Element, where: str) -> str:
    sampler = only(root, "HTTPSamplerProxy")
    if where == "plan name":
        return jmeter_value(only(root, "TestPlan").get("testname") or "").removeprefix("plan ")
    if where == "target header":
        return jmeter_value(headers(root, sampler)["X-Hostile"])
    if where == "step header":
        return jmeter_value(headers(root, sampler)["X-Note"])
    if where == "path":
        return jmeter_value(prop(sampler, "HTTPSampler.path"), BASE).removeprefix("/x")
    if where == "query":
        path = jmeter_value(prop(sampler, "HTTPSampler.path"), BASE)
        assert path == "/items?q=" + quote(HOSTILE, safe=URI_SAFE)
        return HOSTILE
    if where == "raw body":
        return jmeter_value(body(sampler))
    if where == "json body":
        return str(json.loads(jmeter_value(body(sampler)))["k"])
    if where == "group":
        return jmeter_value(only(root, "GenericController").get("testname") or "")
    if where == "body check":
        assertion = [e for e in children(root, sampler) if e.tag == "ResponseAssertion"][1]
        return jmeter_value(only(assertion, "collectionProp")[0].text or "")
    assert where == "json check"
    return str(json.loads(jmeter_value(prop(only(root, "JSONPathAssertion"), "EXPECTED_VALUE"))))


@pytest.mark.parametrize(
    "where",
    [
        "plan name",
        "target header",
        "step header",
        "path",
        "query",
        "raw body",
        "json body",
        "group",
        "body check",
        "json check",
    ],
)
def test_hostile_text_reaches_jmeter_unchanged_and_inert(where: str) -> None:
    text = render_text(_hostile_doc(where))
    root = ET.fromstring(text.encode("utf-8"))

    assert _hostile_value(root, where) == _hostile(where)
    assert HOSTILE in comments(only(root, "TestPlan"))  # the description
    # No "${" of the plan survives as such: the only live calls are perf-agent's own.
    assert "${__javaScript" not in text
    assert "${__char(36)}{__javaScript(" in text
    assert "\r" not in text  # written as &#13;, which XML parsing keeps


def test_a_dollar_or_backslash_just_before_a_reference_stays_literal() -> None:
    doc = v1_doc(
        step("first", extract={"id": {"json": "id"}}),
        step("second", path="/a$\\{{vars.id}}$", headers={"X": "$${{vars.id}}\\"}),
    )
    root = render(doc)
    sampler = named(root, "HTTPSamplerProxy", "second")
    values = {**BASE, "id": "7"}

    assert jmeter_value(prop(sampler, "HTTPSampler.path"), values) == "/a$\\7$"
    assert jmeter_value(headers(root, sampler)["X"], values) == "$$7\\"


def test_characters_xml_cannot_hold_are_written_as_jmeter_calls() -> None:
    # (The schema already refuses lone surrogates.)
    doc = v1_doc(step(method="POST", body="a\x00b\x1fc\ufffed"))
    text = render_text(doc)
    root = ET.fromstring(text.encode("utf-8"))

    assert jmeter_value(body(only(root, "HTTPSamplerProxy"))) == "a\x00b\x1fc\ufffed"


def test_hostile_data_values_survive_the_csv_file() -> None:
    doc = v1_doc(step(path="/u/{{data.user}}"), data={"rows": {"inline": [{"user": HOSTILE}]}})
    doc["scenarios"][0]["data"] = "rows"
    files = jmx_data_files(PlanSpec.model_validate(doc))

    assert list(csv.reader(io.StringIO(files["rows.csv"]))) == [["user"], [HOSTILE]]


# --- checks, extraction, timers ---


def test_expected_status_and_status_checks_become_response_code_assertions() -> None:
    doc = v1_doc(step(expect_status=[200, 201], checks=[{"body_contains": "ok"}, {"status": 200}]))
    root = render(doc)

    assertions = [e for e in children(root, only(root, "HTTPSamplerProxy")) if "Assert" in e.tag]
    expected, contains, status = assertions
    assert (prop(expected, "Assertion.test_field"), prop(expected, "Assertion.test_type")) == (
        "Assertion.response_code",
        "1",  # a regular expression match on the whole code
    )
    assert only(expected, "collectionProp")[0].text == "200|201"
    # Only the first one overrides JMeter's verdict (an expected 404 is a success).
    assert prop(expected, "Assertion.assume_success") == "true"
    assert prop(contains, "Assertion.test_field") == "Assertion.response_data"
    assert prop(contains, "Assertion.test_type") == "16"
    assert prop(contains, "Assertion.assume_success") == "false"
    assert prop(status, "Assertion.test_type") == "8"
    assert only(status, "collectionProp")[0].text == "200"


def test_json_checks_become_jsonpath_assertions() -> None:
    checks = [
        {"json": "data.items.0.id", "equals": 7},
        {"json": "data.name"},
        {"json": "error", "exists": False},
        {"json": "items.#(id>1)"},
    ]
    root = render(v1_doc(step(checks=checks)))

    equals, exists, absent, query = root.iter("JSONPathAssertion")
    assert prop(equals, "JSON_PATH") == "$.data.items[0].id"
    assert (prop(equals, "EXPECTED_VALUE"), prop(equals, "JSONVALIDATION")) == ("7", "true")
    assert prop(equals, "ISREGEX") == "false"
    assert (prop(exists, "JSON_PATH"), prop(exists, "JSONVALIDATION")) == ("$.data.name", "false")
    assert (prop(absent, "JSON_PATH"), prop(absent, "INVERT")) == ("$.error", "true")
    # No JSONPath equivalent: kept for the reviewer, disabled, and said so.
    assert query.get("enabled") == "false"
    assert "disabled" in comments(query)
    assert "items.#(id>1)" in comments(only(root, "TestPlan"))


@pytest.mark.parametrize(
    ("gjson", "expected"),
    [
        ("data.items.0.id", "$.data.items[0].id"),
        ("id", "$.id"),
        ("user-name.first name", "$['user-name']['first name']"),
        ("a\\.b", "$['a.b']"),
        ("it's", "$['it\\'s']"),
        ("items.#", "$.items.length()"),
        ("items.#.id", "$.items[*].id"),
        ("items.*", None),
        ("na?e", None),
        ("items.#(id>1).name", None),
        ("@reverse", None),
        ("a|b", None),
        ("a..b", None),
        ("a;b", None),
    ],
)
def test_gjson_paths_become_jsonpath(gjson: str, expected: str | None) -> None:
    assert jsonpath(gjson) == expected


def test_extraction_becomes_post_processors() -> None:
    extract = {
        "token": {"json": "auth.token"},
        "request_id": {"header": "X-Request-Id"},
        "order": {"regex": "order=(\\d+)"},
    }
    root = render(v1_doc(step(extract=extract), step("next", path="/o/{{vars.order}}")))

    json_pp = only(root, "JSONPostProcessor")
    assert prop(json_pp, "JSONPostProcessor.referenceNames") == "token"
    assert prop(json_pp, "JSONPostProcessor.jsonPathExprs") == "$.auth.token"
    header, regex = root.iter("RegexExtractor")
    assert prop(header, "RegexExtractor.useHeaders") == "true"
    assert prop(header, "RegexExtractor.refname") == "request_id"
    match = re.search(prop(header, "RegexExtractor.regex"), "HTTP/1.1 200 OK\nx-request-id: r-1\n")
    assert match is not None
    assert match[1] == "r-1"
    assert prop(regex, "RegexExtractor.useHeaders") == "false"
    assert prop(regex, "RegexExtractor.regex") == "order=(\\d+)"
    assert prop(regex, "RegexExtractor.template") == "$1$"


def test_think_times_pause_after_their_step() -> None:
    doc = v1_doc(
        step("a", think_time="300ms"),
        step("b", think_time={"min": "1s", "max": "3s"}),
        step("c", think_time=0),
        load={"vus": 1, "duration": "5s", "think_time": "2s"},
    )
    root = render(doc)

    group = only(root, "ThreadGroup")
    assert [e.tag for e in children(root, group)] == [
        "HTTPSamplerProxy",
        "TestAction",
        "HTTPSamplerProxy",
        "TestAction",
        "HTTPSamplerProxy",
        "TestAction",
    ]
    fixed, ranged, iteration = root.iter("TestAction")
    assert [prop(t, "ConstantTimer.delay") for t in children(root, fixed)] == ["300"]
    (uniform,) = children(root, ranged)
    assert uniform.tag == "UniformRandomTimer"
    assert (prop(uniform, "ConstantTimer.delay"), prop(uniform, "RandomTimer.range")) == (
        "1000",
        "2000.0",
    )
    assert [prop(t, "ConstantTimer.delay") for t in children(root, iteration)] == ["2000"]


def test_groups_wrap_consecutive_steps_in_a_simple_controller() -> None:
    doc = v1_doc(
        step("a", group="checkout"),
        step("b", group="checkout"),
        step("c"),
        step("d", group="checkout"),
    )
    root = render(doc)

    tree = children(root, only(root, "ThreadGroup"))
    assert [(e.tag, e.get("testname")) for e in tree] == [
        ("GenericController", "checkout"),
        ("HTTPSamplerProxy", "c"),
        ("GenericController", "checkout"),
    ]
    assert [e.get("testname") for e in children(root, tree[0])] == ["a", "b"]


# --- data ---


@pytest.mark.parametrize(
    ("selection", "recycle", "stop_thread"),
    [("sequential", "true", "false"), ("unique", "false", "true"), ("random", "true", "false")],
)
def test_data_sets_become_csv_data_set_configs(
    selection: str, recycle: str, stop_thread: str
) -> None:
    rows = [{"user": f"u{i}", "n": i, "bad key": "x"} for i in range(20)]
    doc = v1_doc(
        step(path="/u/{{data.user}}"),
        data={"people": {"inline": rows, "selection": selection}},
        seed=7,
    )
    doc["scenarios"][0]["data"] = "people"
    spec = PlanSpec.model_validate(doc)
    root = ET.fromstring(render_jmx(spec, slos=[]).encode())

    config = only(root, "CSVDataSet")
    assert children(root, only(root, "ThreadGroup"))[0] is config
    assert prop(config, "filename") == "people.csv"
    assert "next to this file" in comments(config)
    assert prop(config, "variableNames") == "user,n"
    assert (prop(config, "recycle"), prop(config, "stopThread")) == (recycle, stop_thread)
    assert prop(config, "ignoreFirstLine") == "true"
    written = list(csv.reader(io.StringIO(jmx_data_files(spec)["people.csv"])))
    assert written[0] == ["user", "n"]
    users = [row[0] for row in written[1:]]
    assert sorted(users) == sorted(f"u{i}" for i in range(20))
    assert (users != [f"u{i}" for i in range(20)]) == (selection == "random")
    if selection == "random":
        assert "shuffled" in comments(only(root, "TestPlan"))


def test_data_set_file_names_cannot_leave_the_directory() -> None:
    doc = v1_doc(step(), data={"../../etc/passwd": {"inline": [{"a": "1"}]}})
    doc["scenarios"][0]["data"] = "../../etc/passwd"
    spec = PlanSpec.model_validate(doc)

    (name,) = jmx_data_files(spec)
    assert re.fullmatch(r"data-[0-9a-f]{12}\.csv", name)
    root = ET.fromstring(render_jmx(spec, slos=[]).encode())
    assert prop(only(root, "CSVDataSet"), "filename") == name


# --- load ---


def thread_group(root: ET.Element) -> tuple[str, str, str, str]:
    group = only(root, "ThreadGroup")
    return (
        prop(group, "ThreadGroup.num_threads"),
        prop(group, "ThreadGroup.ramp_time"),
        prop(group, "ThreadGroup.duration"),
        prop(group, "ThreadGroup.scheduler"),
    )


def test_constant_vus_map_exactly() -> None:
    root = render(v1_doc(load={"vus": 3, "duration": "1m"}))

    assert thread_group(root) == ("3", "0", "60", "true")
    assert "Approximation" not in comments(only(root, "ThreadGroup"))


def test_vu_stages_ramp_to_the_first_peak_and_say_so() -> None:
    load = {
        "stages": [
            {"duration": "10s", "target": 5},
            {"duration": "20s", "target": 5},
            {"duration": "10s", "target": 0},
        ]
    }
    root = render(v1_doc(load=load))

    assert thread_group(root) == ("5", "10", "40", "true")
    assert "Approximation" in comments(only(root, "ThreadGroup"))
    assert "ramps linearly" in comments(only(root, "TestPlan"))


@pytest.mark.parametrize(
    "load",
    [
        {"profile": "smoke"},
        {"profile": "spike", "vus": 2, "peak_vus": 10, "duration": "100s"},
        {"profile": "stress", "steps": 2, "step_duration": "10s", "ramp": "5s"},
        {"profile": "soak", "vus": 4, "duration": "10m"},
        {"profile": "breakpoint", "max_rate": 50, "duration": "1m"},
    ],
)
def test_every_preset_renders(load: dict[str, Any]) -> None:
    spec = PlanSpec.model_validate(v1_doc(load=load))
    root = ET.fromstring(render_jmx(spec, slos=[]).encode())

    threads, _, duration, _ = thread_group(root)
    assert int(threads) == spec.load.vus_at_peak
    assert int(duration) == round(spec.load.total_duration_s)
    stops = "first broken SLO" in comments(only(root, "TestPlan"))
    assert stops == (load["profile"] == "breakpoint")


def test_arrival_rates_pace_iterations_with_a_throughput_timer() -> None:
    load = {
        "profile": "constant-arrival",
        "rate": 30,
        "time_unit": "1m",
        "duration": "2m",
        "pre_allocated_vus": 4,
    }
    doc = v1_doc(step("a"), step("b"), load=load)
    doc["scenarios"].append({"name": "admin", "weight": 2, "steps": [step("c")]})
    root = render(doc)

    timers = list(root.iter("ConstantThroughputTimer"))
    assert len(timers) == 2
    # On each scenario's first step only, so it paces iterations: 30/min split 1:2.
    assert children(root, named(root, "HTTPSamplerProxy", "a"))[0] is timers[0]
    assert children(root, named(root, "HTTPSamplerProxy", "c"))[0] is timers[1]
    rates = [float(t.findtext("./doubleProp/value") or "") for t in timers]
    assert rates == [10.0, 20.0]
    assert not [e for e in children(root, named(root, "HTTPSamplerProxy", "b")) if "Timer" in e.tag]
    assert "open model" in comments(only(root, "TestPlan"))


def test_a_ramping_rate_is_paced_at_its_peak_and_flagged() -> None:
    load = {
        "profile": "ramping-arrival",
        "start_rate": 2,
        "stages": [{"duration": "10s", "target": 5}, {"duration": "20s", "target": 20}],
        "pre_allocated_vus": 8,
    }
    root = render(v1_doc(load=load))

    assert thread_group(root) == ("8", "30", "30", "true")
    assert only(root, "ConstantThroughputTimer").findtext("./doubleProp/value") == "1200.0"
    assert "cannot ramp a rate" in comments(only(root, "ThreadGroup"))


@pytest.mark.parametrize(
    ("total", "weights", "expected"),
    [(10, [1, 3], [3, 7]), (10, [1, 1], [5, 5]), (2, [1, 1, 1], [1, 1, 1]), (7, [5], [7])],
)
def test_threads_are_split_by_weight(total: int, weights: list[int], expected: list[int]) -> None:
    assert split_threads(total, weights) == expected


def test_scenarios_become_thread_groups_split_by_weight() -> None:
    doc = v1_doc(load={"vus": 10, "duration": "10s"})
    doc["scenarios"].append({"name": "buy", "weight": 3, "steps": [step("pay")]})
    root = render(doc)

    groups = {
        g.get("testname"): prop(g, "ThreadGroup.num_threads") for g in root.iter("ThreadGroup")
    }
    assert groups == {"browse": "3", "buy": "7"}
    assert "split by weight" in comments(only(root, "TestPlan"))


# --- SLOs and secrets ---


def test_slos_are_listed_in_the_plan_comment_not_faked() -> None:
    root = render(plan_doc())

    text = comments(only(root, "TestPlan"))
    assert "- p95 < 300ms (all requests" in text
    assert "- error_rate < 1% (step create_order)" in text
    assert not list(root.iter("DurationAssertion"))


@pytest.mark.parametrize("kind", ["bearer", "basic", "header"])
def test_the_secret_is_referenced_never_written(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERF_AGENT_SECRET_API_TOKEN", "s3cr3t-value")
    auth = {"type": kind, "secret": "API_TOKEN", "header": "X-Auth"}
    text = render_text(v1_doc(target={"base_url": "http://127.0.0.1:9", "auth": auth}))
    root = ET.fromstring(text.encode())

    assert "s3cr3t" not in text
    value = headers(root, only(root, "HTTPSamplerProxy"))["X-Auth"]
    props = {"PERF_AGENT_SECRET_API_TOKEN": "p"}
    if kind == "basic":
        script = prop(only(root, "JSR223PreProcessor"), "script")
        assert "props.getProperty('PERF_AGENT_SECRET_API_TOKEN', '')" in script
        assert "encodeBase64" in script
        assert jmeter_value(value, {"PERF_AGENT_BASIC_AUTH": "Basic cA=="}) == "Basic cA=="
    else:
        assert jmeter_value(value, props=props) == ("Bearer p" if kind == "bearer" else "p")
    assert "-JPERF_AGENT_SECRET_API_TOKEN" in comments(only(root, "TestPlan"))


# --- the real thing, where installed ---


@pytest.mark.skipif(shutil.which("jmeter") is None, reason="JMeter is not installed")
def test_jmeter_runs_the_plan(tmp_path: Path) -> None:
    doc = v1_doc(
        step("a", checks=[{"json": "id"}], extract={"id": {"json": "id"}}, think_time="100ms"),
        step("b", method="POST", path="/b/{{vars.id}}", body={"k": HOSTILE}, group="g"),
        data={"rows": {"inline": [{"user": "u1"}, {"user": "u2"}]}},
        load={"vus": 1, "duration": "1s"},
    )
    doc["scenarios"][0]["data"] = "rows"
    spec = PlanSpec.model_validate(doc)
    (tmp_path / "plan.jmx").write_text(render_jmx(spec, slos=[]), encoding="utf-8")
    for name, content in jmx_data_files(spec).items():
        (tmp_path / name).write_text(content, encoding="utf-8")

    done = subprocess.run(
        ["jmeter", "-n", "-t", "plan.jmx", "-l", "results.jtl", "-j", "jmeter.log"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    log = (tmp_path / "jmeter.log").read_text(errors="replace")
    assert done.returncode == 0, done.stdout + done.stderr + log
    assert "ERROR" not in log
    # Nothing listens on port 9: every request fails, but each step was sent.
    results = (tmp_path / "results.jtl").read_text()
    assert ",a," in results
    assert ",b," in results
