"""Generated scripts are valid k6: checked with the real binary's `k6 inspect`."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from app.core.settings import Settings
from app.plans.k6script import render
from app.plans.schemas import PlanSpec, effective_slos
from tests.builders import plan_doc

HOSTILE = "q\"uo'te `tick` ${1+1} </script> \\ \n new\u2028line \u00e9\U0001f600 */ // <!--"


def inspect(settings: Settings, tmp_path: Path, script: str) -> dict[str, object]:
    path = tmp_path / "script.js"
    path.write_text(script)
    done = subprocess.run(
        [settings.k6_binary, "inspect", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={"PATH": os.environ.get("PATH", ""), "K6_NO_USAGE_REPORT": "true"},
    )
    assert done.returncode == 0, done.stderr
    options: dict[str, object] = json.loads(done.stdout)
    return options


def render_doc(doc: dict[str, object]) -> str:
    spec = PlanSpec.model_validate(doc)
    return render(spec, slos=effective_slos(spec)[0])


def test_constant_load_becomes_a_constant_vus_scenario(settings: Settings, tmp_path: Path) -> None:
    options = inspect(settings, tmp_path, render_doc(plan_doc(load={"vus": 3, "duration": "1m"})))

    main = options["scenarios"]["main"]  # type: ignore[index]
    assert {k: main[k] for k in ("executor", "vus", "duration", "gracefulStop")} == {
        "executor": "constant-vus",
        "vus": 3,
        "duration": "1m0s",
        "gracefulStop": "10s",
    }


def test_stages_become_a_ramping_vus_scenario(settings: Settings, tmp_path: Path) -> None:
    load = {"stages": [{"duration": "10s", "target": 5}, {"duration": "20s", "target": 0}]}

    options = inspect(settings, tmp_path, render_doc(plan_doc(load=load)))

    main = options["scenarios"]["main"]  # type: ignore[index]
    assert main["executor"] == "ramping-vus"
    assert main["stages"] == [
        {"duration": "10s", "target": 5},
        {"duration": "20s", "target": 0},
    ]


def test_slos_become_k6_thresholds(settings: Settings, tmp_path: Path) -> None:
    options = inspect(settings, tmp_path, render_doc(plan_doc()))

    thresholds = options["thresholds"]
    assert thresholds["http_req_duration{expected_response:true}"] == ["p(95)<300"]  # type: ignore[index]
    assert thresholds["http_req_failed{name:create_order}"] == ["rate<0.01"]  # type: ignore[index]


@pytest.mark.parametrize("field", ["name", "path", "header", "body", "description"])
def test_hostile_strings_stay_inert_string_literals(
    settings: Settings, tmp_path: Path, field: str
) -> None:
    doc = plan_doc()
    endpoint = doc["endpoints"][1]
    if field == "name":
        doc["name"] = HOSTILE
    elif field == "path":  # as a query value: literal path text cannot hold spaces
        endpoint["query"] = {"q": HOSTILE}
    elif field == "header":  # header values cannot hold line breaks
        endpoint["headers"] = {"X-Test": HOSTILE.replace("\n", " ")}
    elif field == "body":
        endpoint["body"] = {"note": HOSTILE, HOSTILE: [HOSTILE]}
    else:
        doc["description"] = HOSTILE
    script = render_doc(doc)

    inspect(settings, tmp_path, script)  # still parses as JavaScript
    assert "\n new" not in script
    assert "\u2028" not in script


def test_a_query_continues_a_query_string_already_in_the_path() -> None:
    step = {"name": "a", "path": "/search?q=x", "query": {"page": 2}}
    script = render_doc(plan_doc(endpoints=[step], slos=[]))

    assert 'query({"page": 2}, "&")' in script


def test_equals_null_renders_as_an_equality_check() -> None:
    step = {"name": "a", "path": "/a", "checks": [{"json": "deleted_at", "equals": None}]}
    script = render_doc(plan_doc(endpoints=[step], slos=[]))

    assert 'equal(jsonAt(r, "deleted_at"), null)' in script
