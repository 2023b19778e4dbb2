"""The served plan JSON Schema (GET /plans/schema) accepts every plan the service accepts: an
editor that validates against it must never flag a plan POST /plan stores. And what is wrong
in a way a schema can say (an unknown key, negative VUs, a duration that is no duration) is
refused by both."""

from __future__ import annotations

import copy
import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from app.plans.service import parse_document
from tests.builders import API, plan_doc

REPOSITORY = Path(__file__).resolve().parents[2]
DEMO_PLANS = sorted((REPOSITORY / "app" / "demo").glob("*.yaml"))


class Schema:
    """The served schema's validator (its repr short: hypothesis prints its arguments)."""

    def __init__(self, schema: dict[str, Any]) -> None:
        Draft202012Validator.check_schema(schema)
        self.validator = Draft202012Validator(schema)

    def errors(self, document: Any) -> list[str]:
        return [
            f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}"
            for e in self.validator.iter_errors(document)
        ]

    def __repr__(self) -> str:
        return "<the served plan schema>"


@pytest.fixture
async def validator(client: AsyncClient) -> Schema:
    return Schema((await client.get(f"{API}/plans/schema")).json())


def schema_errors(validator: Schema, document: Any) -> list[str]:
    return validator.errors(document)


async def post_json(client: AsyncClient, document: Any) -> tuple[int, str]:
    """The status POST /plan answers, and its body (why, when it refused)."""
    response = await client.post(f"{API}/plan", json=document)
    assert response.status_code < 500, response.text
    return response.status_code, response.text[:500]


async def post_yaml(client: AsyncClient, text: str) -> int:
    response = await client.post(
        f"{API}/plan", content=text.encode(), headers={"Content-Type": "application/yaml"}
    )
    assert response.status_code < 500, response.text
    return response.status_code


def steps(*names: str, **fields: Any) -> list[dict[str, Any]]:
    return [{"name": name, "path": f"/{name}", **fields} for name in names]


# The builders' plans and the shorthands the service documents, each a whole plan.
BUILT: dict[str, dict[str, Any]] = {
    "builders' plan": plan_doc(),
    "without slos": plan_doc(slos=[]),
    "without environment": plan_doc(target={"base_url": "http://127.0.0.1:9"}),
    "duration in seconds": plan_doc(load={"vus": 2, "duration": 90}),
    "duration 1m30s": plan_doc(load={"vus": 2, "duration": "1m30s"}),
    "duration with spaces": plan_doc(load={"vus": 2, "duration": "1m 30s"}),
    "duration 1.5s": plan_doc(load={"vus": 1, "duration": "1.5s"}),
    "duration in ms": plan_doc(load={"vus": 1, "duration": "1500ms"}),
    "stages without profile": plan_doc(
        load={"stages": [{"duration": "5s", "target": 3}, {"duration": 5, "target": 0}]}
    ),
    "load profile": plan_doc(load={"profile": "load", "vus": 2, "duration": "2s"}),
    "smoke with defaults": plan_doc(load={"profile": "smoke"}),
    "ramp": plan_doc(load={"profile": "ramp", "stages": [{"duration": "10s", "target": 4}]}),
    "spike": plan_doc(load={"profile": "spike", "peak_vus": 5, "duration": "1m"}),
    "stress": plan_doc(load={"profile": "stress", "steps": 2, "step_duration": "20s"}),
    "soak": plan_doc(load={"profile": "soak", "vus": 2, "duration": "2m"}),
    "constant arrival": plan_doc(
        load={"profile": "constant-arrival", "rate": 5, "duration": "30s", "time_unit": "1s"}
    ),
    "ramping arrival": plan_doc(
        load={
            "profile": "ramping-arrival",
            "stages": [{"duration": "10s", "target": 10}],
            "pre_allocated_vus": 2,
            "max_vus": 4,
        }
    ),
    "breakpoint": plan_doc(
        load={"profile": "breakpoint", "max_rate": 20, "duration": "1m", "max_vus": 20}
    ),
    "iteration think time": plan_doc(load={"vus": 1, "duration": "2s", "think_time": "500ms"}),
    "slos as text and objects": plan_doc(
        slos=[
            "p95 < 300ms",
            "error_rate < 1%",
            "p(99) < 1s",
            "rps > 1",
            "p95 <= +10%",
            {"objective": "p99 < 1s", "endpoint": "list_orders"},
            {"objective": "p95 < 500ms", "step": "create_order", "warning": "<800ms"},
            {"sli": "p95", "pass": ["<600ms", "<=+10%"], "warning": "<800ms", "weight": 2},
            {"sli": "error_rate", "op": "<", "target": 0.05, "key_sli": True},
        ],
        scoring={"pass": 90, "warning": 75},
    ),
    "one status code and a list": plan_doc(
        endpoints=steps("a", expect_status=201) + steps("b", expect_status=[200, 204]),
        slos=[],
    ),
    "checks of every kind": plan_doc(
        endpoints=steps(
            "login",
            method="POST",
            body={"user": "u"},
            checks=[
                {"status": 200},
                {"status": [200, 201]},
                {"json": "token", "exists": True},
                {"json": "user", "equals": "u"},
                {"json": "nothing", "equals": None},
                {"body_contains": "token"},
            ],
            extract={"token": {"json": "token"}, "id": {"regex": "id=(\\d+)"}},
        )
        + steps("me", headers={"Authorization": "Bearer {{vars.token}}"}, think_time=1),
        slos=[],
    ),
    "think time as a range of text": plan_doc(
        endpoints=steps("a", think_time={"min": "1s", "max": "3s"}), slos=[]
    ),
    "lower-case methods": plan_doc(
        endpoints=steps("a", method="post", body="raw text") + steps("b", method="Delete"),
        slos=[],
    ),
    "json_path, the field's own name": plan_doc(
        endpoints=steps(
            "a",
            checks=[{"json_path": "id", "exists": True}],
            extract={"id": {"json_path": "id"}},
        ),
        slos=[],
    ),
    "scenarios with csv data": plan_doc(
        endpoints=None,
        data={"users": {"format": "csv", "inline": "name\nalice\nbob\n", "selection": "random"}},
        scenarios=[
            {
                "name": "shopper",
                "weight": 3,
                "data": "users",
                "steps": steps("hello", query={"who": "{{data.name}}", "n": 2, "x": 1.5}),
            },
            {"name": "browser", "steps": steps("home", group="landing")},
        ],
        slos=["p95 < 300ms", {"objective": "p95 < 200ms", "endpoint": "home"}],
    ),
    "json data": plan_doc(
        endpoints=None,
        data={"items": {"inline": [{"sku": "A-1", "qty": 2}]}},
        scenarios=[{"name": "main", "data": "items", "steps": steps("buy", body="{{data.sku}}")}],
        slos=[],
    ),
    "budget, seed, description": plan_doc(
        budget={"requests": 1000, "vu_seconds": 60.5}, seed=7, description="a plan"
    ),
    "auth by reference": plan_doc(
        target={
            "base_url": "http://127.0.0.1:9",
            "environment": "local",
            "headers": {"Accept": "application/json"},
            "auth": {"type": "bearer", "secret": "SHOP_TOKEN"},
        }
    ),
    "profiling": plan_doc(profiling={"python": "off", "rate": 50}),
}


@pytest.mark.parametrize("label", list(BUILT))
async def test_every_built_plan_is_stored_and_valid_under_the_schema(
    client: AsyncClient, validator: Schema, label: str
) -> None:
    document = copy.deepcopy(BUILT[label])

    status, why = await post_json(client, document)

    assert status == 201, (label, why)
    assert schema_errors(validator, document) == []


@pytest.mark.parametrize(
    "text", [p.read_text() for p in DEMO_PLANS], ids=[p.name for p in DEMO_PLANS]
)
async def test_the_demo_plans_are_stored_and_valid_under_the_schema(
    client: AsyncClient, validator: Schema, text: str
) -> None:
    document, _ = parse_document(text.encode(), "application/yaml")  # as the service reads it

    assert await post_yaml(client, text) == 201
    assert schema_errors(validator, document) == []


def readme_plans() -> list[str]:
    readme = (REPOSITORY / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", readme, flags=re.DOTALL)
    return [block for block in blocks if re.search(r"^target:", block, flags=re.MULTILINE)]


def test_the_readme_has_a_plan_to_check() -> None:
    assert len(readme_plans()) >= 1


@pytest.mark.parametrize("text", readme_plans())
async def test_the_readmes_plans_are_valid_under_the_schema(
    client: AsyncClient, validator: Schema, text: str
) -> None:
    document, _ = parse_document(text.encode(), "application/yaml")

    # Documentation: the schema accepts it whether or not this server would store it (its
    # Prometheus host is an example; its secret is not set here).
    assert schema_errors(validator, document) == []
    assert await post_yaml(client, text) in (201, 422)


async def test_a_plan_naming_an_uploaded_data_set_needs_no_inline_rows(
    client: AsyncClient, validator: Schema
) -> None:
    uploaded = await client.post(
        f"{API}/datasets",
        params={"name": "users"},
        content=b"name\nalice\nbob\n",
        headers={"Content-Type": "text/csv"},
    )
    assert uploaded.status_code == 201, uploaded.text
    document = plan_doc(
        endpoints=None,
        data={"users": {"dataset": uploaded.json()["id"], "selection": "unique"}},
        scenarios=[{"name": "main", "data": "users", "steps": steps("hi", path="/{{data.name}}")}],
        slos=[],
    )

    assert schema_errors(validator, document) == []
    status, why = await post_json(client, copy.deepcopy(document))
    assert status == 201, why


# What a schema can say is wrong: both refuse it.
INVALID: dict[str, dict[str, Any]] = {
    "unknown key": plan_doc(colour="blue"),
    "unknown key in a step": plan_doc(endpoints=steps("a", retries=3), slos=[]),
    "unknown key in the load": plan_doc(load={"vus": 2, "duration": "2s", "rampup": "1s"}),
    "negative vus": plan_doc(load={"vus": -1, "duration": "2s"}),
    "zero vus": plan_doc(load={"profile": "load", "vus": 0, "duration": "2s"}),
    "bad duration text": plan_doc(load={"vus": 2, "duration": "ten seconds"}),
    "duration without a unit": plan_doc(load={"vus": 2, "duration": "30"}),
    "unknown profile": plan_doc(load={"profile": "surge", "vus": 2, "duration": "2s"}),
    "stages and vus without profile": plan_doc(
        load={"vus": 2, "stages": [{"duration": "5s", "target": 1}]}
    ),
    "no target": {k: v for k, v in plan_doc().items() if k != "target"},
    "no name": {k: v for k, v in plan_doc().items() if k != "name"},
    "unknown method": plan_doc(endpoints=steps("a", method="FETCH"), slos=[]),
    "bad step name": plan_doc(endpoints=steps("has space"), slos=[]),
    "status as text": plan_doc(endpoints=steps("a", expect_status="200"), slos=[]),
    "slo as a number": plan_doc(slos=[300]),
    "json and json_path both": plan_doc(
        endpoints=steps("a", checks=[{"json": "id", "json_path": "id"}]), slos=[]
    ),
    "data set without rows or id": plan_doc(data={"users": {"format": "csv"}}),
    "weight above 100": plan_doc(
        endpoints=None, scenarios=[{"name": "m", "weight": 101, "steps": steps("a")}], slos=[]
    ),
    "seed below 0": plan_doc(seed=-1),
}


@pytest.mark.parametrize("label", list(INVALID))
async def test_what_the_schema_can_tell_is_wrong_is_refused_by_both(
    client: AsyncClient, validator: Schema, label: str
) -> None:
    document = INVALID[label]

    assert schema_errors(validator, document) != [], label
    assert (await post_json(client, document))[0] == 422, label


# --- hypothesis: a variety of valid plans ----------------------------------------------------

NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)
DURATION_TEXT = st.sampled_from(["2s", "10s", "1m", "1m30s", "1m 30s", "1500ms", "0.5m", "2.5s"])


def durations(low: int = 1, high: int = 120) -> st.SearchStrategy[Any]:
    return st.integers(low, high) | st.floats(low, high, allow_nan=False) | DURATION_TEXT


PAUSE = st.integers(0, 3) | st.floats(0, 3) | st.sampled_from(["0s", "250ms", "1s"])
# A step's think time may be a range; the load's (after each iteration) is one pause.
PAUSES = (
    PAUSE
    | st.builds(
        lambda lo, extra: {"min": lo, "max": lo + extra}, st.integers(0, 2), st.integers(0, 2)
    )
    | st.sampled_from([{"min": "500ms", "max": "1s"}])
)
METHODS = st.sampled_from(["GET", "POST", "put", "Patch", "delete", "HEAD", "options"])
STATUSES = st.integers(200, 299)
STAGES = st.lists(
    st.fixed_dictionaries({"duration": durations(1, 30), "target": st.integers(0, 5)}),
    min_size=1,
    max_size=3,
).map(lambda stages: [*stages[:-1], {**stages[-1], "target": max(1, stages[-1]["target"])}])


def with_pause(load: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.tuples(load, st.none() | PAUSE).map(
        lambda pair: pair[0] if pair[1] is None else {**pair[0], "think_time": pair[1]}
    )


LOADS = with_pause(
    st.one_of(
        st.fixed_dictionaries({"vus": st.integers(1, 5), "duration": durations()}),
        st.fixed_dictionaries({"stages": STAGES}),
        st.fixed_dictionaries(
            {"profile": st.just("load"), "vus": st.integers(1, 5), "duration": durations()}
        ),
        st.fixed_dictionaries(
            {"profile": st.just("smoke")},
            optional={"vus": st.integers(1, 5), "duration": durations()},
        ),
        st.fixed_dictionaries({"profile": st.just("ramp"), "stages": STAGES}),
        st.fixed_dictionaries(
            {"profile": st.just("spike"), "peak_vus": st.integers(1, 9), "duration": durations(10)},
            optional={"vus": st.integers(1, 3)},
        ),
        st.fixed_dictionaries(
            {"profile": st.just("stress")},
            optional={
                "start_vus": st.integers(1, 3),
                "step_vus": st.integers(1, 3),
                "steps": st.integers(1, 3),
                "step_duration": durations(1, 30),
                "ramp": durations(1, 10),
            },
        ),
        st.fixed_dictionaries(
            {"profile": st.just("soak"), "vus": st.integers(1, 5), "duration": durations()}
        ),
        st.fixed_dictionaries(
            {
                "profile": st.just("constant-arrival"),
                "rate": st.integers(1, 20),
                "duration": durations(),
            },
            optional={
                "time_unit": st.sampled_from(["1s", 1, "1m"]),
                "pre_allocated_vus": st.just(2),
            },
        ),
        st.fixed_dictionaries(
            {"profile": st.just("ramping-arrival"), "stages": STAGES},
            optional={"start_rate": st.integers(0, 3), "max_vus": st.integers(10, 20)},
        ),
        st.fixed_dictionaries(
            {
                "profile": st.just("breakpoint"),
                "max_rate": st.integers(1, 50),
                "duration": durations(),
            },
            optional={"start_rate": st.integers(0, 3), "time_unit": st.just("1s")},
        ),
    )
)

CHECKS = st.one_of(
    st.fixed_dictionaries({"status": STATUSES | st.lists(STATUSES, min_size=1, max_size=3)}),
    st.fixed_dictionaries(
        {"json": st.sampled_from(["id", "data.items.0.id"])}, optional={"exists": st.booleans()}
    ),
    st.fixed_dictionaries(
        {
            "json": st.just("name"),
            "equals": st.none() | st.integers(0, 9) | st.text("abc", max_size=3),
        }
    ),
    st.fixed_dictionaries({"json_path": st.just("id"), "exists": st.just(True)}),
    st.fixed_dictionaries({"body_contains": st.text('abc"{}', min_size=1, max_size=5)}),
)
EXTRACTS = st.one_of(
    st.fixed_dictionaries({"json": st.just("token")}),
    st.fixed_dictionaries({"json_path": st.just("token")}),
    st.fixed_dictionaries({"header": st.just("X-Token")}),
    st.fixed_dictionaries({"regex": st.just("id=(\\d+)")}),
)


@st.composite
def step_lists(draw: st.DrawFn, *, columns: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    names = draw(st.lists(NAMES, min_size=1, max_size=3, unique=True))
    made: list[dict[str, Any]] = []
    for i, name in enumerate(names):
        step: dict[str, Any] = {"name": name, "path": f"/{name}"}
        if draw(st.booleans()):
            step["method"] = draw(METHODS)
        uses_data = draw(st.booleans())
        if columns and uses_data:
            step["query"] = {"who": f"{{{{data.{columns[0]}}}}}", "n": draw(st.integers(0, 9))}
        if draw(st.booleans()):
            step["expect_status"] = draw(STATUSES | st.lists(STATUSES, min_size=1, max_size=2))
        if draw(st.booleans()):
            step["checks"] = draw(st.lists(CHECKS, max_size=3))
        if i == 0 and draw(st.booleans()):
            step["extract"] = {"token": draw(EXTRACTS)}
            step["headers"] = {"X-Trace": "t"}
        elif i > 0 and "extract" in made[0] and draw(st.booleans()):
            step["headers"] = {"Authorization": "Bearer {{vars.token}}"}
        if draw(st.booleans()):
            step["body"] = draw(st.none() | st.text("ab ", max_size=4) | st.just({"sku": "A-1"}))
        if draw(st.booleans()):
            step["think_time"] = draw(PAUSES)
        if draw(st.booleans()):
            step["group"] = "checkout"
        made.append(step)
    return made


def slo_lists(step_names: list[str]) -> st.SearchStrategy[list[Any]]:
    texts = st.sampled_from(
        ["p95 < 300ms", "p99 < 1s", "error_rate < 1%", "avg < 200", "rps > 1", "p95 <= +10%",
         "p(90) < 250ms", "med < 100ms", "max < 2s"]
    )  # fmt: skip
    named = st.sampled_from(step_names)
    forms = st.one_of(
        texts,
        st.builds(lambda t, e: {"objective": t, "endpoint": e}, texts, named),
        st.builds(lambda t, e: {"objective": t, "step": e, "weight": 2}, texts, named),
        st.fixed_dictionaries(
            {
                "sli": st.sampled_from(["p95", "p99"]),
                "pass": st.sampled_from(["<600ms", ["<600ms", "<=+10%"]]),
            },
            optional={"warning": st.just("<800ms"), "key_sli": st.booleans()},
        ),
        st.fixed_dictionaries(
            {"sli": st.just("error_rate"), "op": st.just("<"), "target": st.floats(0, 1)}
        ),
    )
    return st.lists(forms, max_size=4)


@st.composite
def plans(draw: st.DrawFn) -> dict[str, Any]:
    target: dict[str, Any] = {
        "base_url": draw(st.sampled_from(["http://127.0.0.1:9", "http://127.0.0.1:8001/api/"]))
    }
    if draw(st.booleans()):
        target["environment"] = draw(st.sampled_from(["staging", "local", "prod-eu"]))
    if draw(st.booleans()):
        target["headers"] = {"Accept": "application/json"}
    document: dict[str, Any] = {
        "name": draw(st.text("abc- ", min_size=1, max_size=12)).strip() or "p",
        "target": target,
    }
    if draw(st.booleans()):
        document["endpoints"] = draw(step_lists())
        names = [s["name"] for s in document["endpoints"]]
    else:
        data = draw(st.booleans())
        if data:
            document["data"] = {
                "users": draw(
                    st.sampled_from(
                        [
                            {"format": "csv", "inline": "name,pw\nann,1\nbob,2\n"},
                            {"inline": [{"name": "ann"}, {"name": "bob"}], "selection": "unique"},
                        ]
                    )
                )
            }
        scenarios = []
        names = []
        for i in range(draw(st.integers(1, 2))):
            made = draw(step_lists(columns=("name",) if data and i == 0 else ()))
            made = [s for s in made if s["name"] not in names]
            if not made:
                continue
            names += [s["name"] for s in made]
            scenario: dict[str, Any] = {"name": f"scenario{i}", "steps": made}
            if data and i == 0:
                scenario["data"] = "users"
            if draw(st.booleans()):
                scenario["weight"] = draw(st.integers(1, 100))
            scenarios.append(scenario)
        document["scenarios"] = scenarios
    document["load"] = draw(LOADS)
    document["slos"] = draw(slo_lists(names))
    if draw(st.booleans()):
        document["seed"] = draw(st.integers(0, 2**31 - 1))
    if draw(st.booleans()):
        document["scoring"] = draw(
            st.sampled_from([{"pass": 90, "warning": 75}, {"pass": 100}, {"warning": 0}, {}])
        )
    if draw(st.booleans()):
        document["budget"] = {"requests": draw(st.integers(1, 10**6))}
    return document


@hypothesis_settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(document=plans())
async def test_every_drawn_plan_the_service_stores_is_valid_under_the_schema(
    client: AsyncClient, validator: Schema, document: dict[str, Any]
) -> None:
    sent = json.loads(json.dumps(document))

    status, why = await post_json(client, copy.deepcopy(sent))

    assert status == 201, (document, why)  # the strategy draws valid plans only
    assert schema_errors(validator, sent) == [], document


@hypothesis_settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(document=plans(), spoil=st.sampled_from(["key", "vus", "duration", "method", "stage"]))
async def test_a_drawn_plan_spoilt_where_the_schema_can_tell_is_refused_by_both(
    client: AsyncClient, validator: Schema, document: dict[str, Any], spoil: str
) -> None:
    spoilt = json.loads(json.dumps(document))
    steps_of = spoilt.get("endpoints") or spoilt["scenarios"][0]["steps"]
    if spoil == "key":
        steps_of[0]["timeout"] = "1s"
    elif spoil == "vus":
        spoilt["load"] = {"vus": -3, "duration": "10s"}
    elif spoil == "duration":
        spoilt["load"] = {"profile": "load", "vus": 1, "duration": "soon"}
    elif spoil == "method":
        steps_of[0]["method"] = "GETS"
    else:
        spoilt["load"] = {"stages": [{"duration": "5s", "target": -1}]}

    assert schema_errors(validator, spoilt) != [], spoilt
    assert (await post_json(client, spoilt))[0] == 422, spoilt


def test_the_served_schema_documents_the_shorthands() -> None:
    """The schema in docs/ is the one served (tests/plans/test_router.py): the shorthands are
    in the file an editor is pointed at too."""
    documented = json.loads((REPOSITORY / "docs" / "plan-schema.json").read_text())
    validator = Schema(documented)
    for label in ("lower-case methods", "json_path, the field's own name", "duration 1m30s"):
        assert schema_errors(validator, BUILT[label]) == [], label
    assert (
        schema_errors(validator, {**plan_doc(), "data": {"u": {"dataset": str(uuid.uuid4())}}})
        == []
    )
