"""Each load-profile preset becomes the k6 executor configuration the README documents,
as k6 itself reads it back (`k6 inspect`)."""

from __future__ import annotations

from typing import Any

import pytest

from app.core.settings import Settings
from app.k6.process import inspect_script
from app.plans.k6script import render
from app.plans.schemas import PlanSpec, effective_slos
from tests.builders import plan_doc

# (load as written in a plan, what k6 reports for options.scenarios.main — the fields that matter)
PRESETS: list[tuple[dict[str, Any], dict[str, Any]]] = [
    (
        {"profile": "smoke"},
        {"executor": "constant-vus", "vus": 1, "duration": "30s"},
    ),
    (
        {"profile": "load", "vus": 20, "duration": "5m"},
        {"executor": "constant-vus", "vus": 20, "duration": "5m0s"},
    ),
    (
        {"profile": "ramp",
         "stages": [{"duration": "1m", "target": 50}, {"duration": "30s", "target": 0}]},
        {"executor": "ramping-vus", "startVUs": 0,
         "stages": [{"duration": "1m0s", "target": 50}, {"duration": "30s", "target": 0}]},
    ),
    (
        {"profile": "spike", "vus": 5, "peak_vus": 100, "duration": "100s"},
        {"executor": "ramping-vus", "stages": [
            {"duration": "10s", "target": 5}, {"duration": "10s", "target": 5},
            {"duration": "5s", "target": 100}, {"duration": "20s", "target": 100},
            {"duration": "5s", "target": 5}, {"duration": "40s", "target": 5},
            {"duration": "10s", "target": 0}]},
    ),
    (
        {"profile": "stress", "start_vus": 10, "step_vus": 20, "steps": 3, "step_duration": "1m"},
        {"executor": "ramping-vus", "stages": [
            {"duration": "10s", "target": 10}, {"duration": "1m0s", "target": 10},
            {"duration": "10s", "target": 30}, {"duration": "1m0s", "target": 30},
            {"duration": "10s", "target": 50}, {"duration": "1m0s", "target": 50},
            {"duration": "10s", "target": 0}]},
    ),
    (
        {"profile": "soak", "vus": 40, "duration": "25m"},
        {"executor": "ramping-vus", "stages": [
            {"duration": "1m0s", "target": 40}, {"duration": "25m0s", "target": 40},
            {"duration": "1m0s", "target": 0}]},
    ),
    (
        {"profile": "constant-arrival", "rate": 200, "duration": "2m", "pre_allocated_vus": 50,
         "max_vus": 300},
        {"executor": "constant-arrival-rate", "rate": 200, "timeUnit": "1s", "duration": "2m0s",
         "preAllocatedVUs": 50, "maxVUs": 300},
    ),
    (
        {"profile": "ramping-arrival", "start_rate": 10, "time_unit": "1m",
         "stages": [{"duration": "2m", "target": 600}], "pre_allocated_vus": 20},
        {"executor": "ramping-arrival-rate", "startRate": 10, "timeUnit": "1m0s",
         "stages": [{"duration": "2m0s", "target": 600}], "preAllocatedVUs": 20, "maxVUs": 20},
    ),
    (
        {"profile": "breakpoint", "max_rate": 1000, "duration": "10m", "max_vus": 500},
        {"executor": "ramping-arrival-rate", "startRate": 1,
         "stages": [{"duration": "10m0s", "target": 1000}], "maxVUs": 500},
    ),
]  # fmt: skip


@pytest.mark.parametrize(("load", "expected"), PRESETS, ids=[p[0]["profile"] for p in PRESETS])
async def test_preset_becomes_the_documented_executor(
    settings: Settings, load: dict[str, Any], expected: dict[str, Any]
) -> None:
    spec = PlanSpec.model_validate(plan_doc(load=load))

    options = await inspect_script(settings.k6_binary, render(spec, slos=effective_slos(spec)[0]))

    main = options["scenarios"]["main"]
    assert {key: main[key] for key in expected} == expected


async def test_breakpoint_slos_abort_the_test_when_they_break(settings: Settings) -> None:
    load = {"profile": "breakpoint", "max_rate": 100, "duration": "1m"}
    spec = PlanSpec.model_validate(plan_doc(load=load))

    options = await inspect_script(settings.k6_binary, render(spec, slos=effective_slos(spec)[0]))

    [threshold] = options["thresholds"]["http_req_duration{expected_response:true}"]
    assert threshold == {"threshold": "p(95)<300", "abortOnFail": True, "delayAbortEval": "10s"}


def test_every_preset_is_covered_here() -> None:
    from app.plans.load_profiles import PROFILES

    assert sorted(p[0]["profile"] for p in PRESETS) == sorted(PROFILES)
