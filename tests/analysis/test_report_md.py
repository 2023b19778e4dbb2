"""The Markdown report's wording: the scenario sentence reads right for every load profile."""

from __future__ import annotations

import re
from typing import Any, get_args

import pytest

from app.analysis.report import PROFILE_NOUNS, load_text, scenario_text
from app.plans.load_profiles import LoadProfile
from app.plans.schemas import PlanSpec
from tests.builders import plan_doc

# A valid load section of every profile a plan may name (``raw`` is the service's own).
LOADS: dict[str, dict[str, Any]] = {
    "smoke": {"profile": "smoke"},
    "load": {"profile": "load", "vus": 5, "duration": "30s"},
    "ramp": {"profile": "ramp", "stages": [{"duration": "20s", "target": 10}]},
    "spike": {"profile": "spike", "peak_vus": 20, "duration": "60s"},
    "stress": {"profile": "stress", "steps": 2, "step_duration": "20s"},
    "soak": {"profile": "soak", "vus": 5, "duration": "60s"},
    "constant-arrival": {"profile": "constant-arrival", "rate": 10, "duration": "30s"},
    "ramping-arrival": {
        "profile": "ramping-arrival",
        "stages": [{"duration": "30s", "target": 20}],
    },
    "breakpoint": {"profile": "breakpoint", "max_rate": 50, "duration": "60s"},
}


def profile_names() -> list[str]:
    union = get_args(get_args(LoadProfile)[0])
    names = [name for cls in union for name in get_args(cls.model_fields["profile"].annotation)]
    return [name for name in names if name != "raw"]


def test_every_profile_a_plan_may_name_has_a_noun_and_a_plan_here() -> None:
    assert set(profile_names()) == set(PROFILE_NOUNS) == set(LOADS)


@pytest.mark.parametrize("profile", sorted(LOADS))
def test_the_scenario_sentence_names_the_profile_once_and_repeats_no_word(profile: str) -> None:
    spec = PlanSpec.model_validate(plan_doc(load=LOADS[profile]))
    assert spec.load_profile.profile == profile

    text = load_text(spec)

    assert text.startswith(PROFILE_NOUNS[profile] + f" (the `{profile}` profile, k6 `")
    assert re.search(r"\b(\w+) \1\b", text, re.IGNORECASE) is None, text
    assert "load profile" not in text
    assert text.count(f"`{profile}`") == 1
    assert scenario_text(spec).startswith(text + " against `http://127.0.0.1:9` (local).")


def test_a_constant_load_reads_as_one() -> None:
    spec = PlanSpec.model_validate(plan_doc(load=LOADS["load"]))

    assert load_text(spec) == (
        "A constant load (the `load` profile, k6 `constant-vus`: 5 virtual users for 30s; "
        "at most 5 VUs, 30s)"
    )


def test_a_v0_plan_without_a_profile_name_reads_as_a_constant_load_too() -> None:
    spec = PlanSpec.model_validate(plan_doc(load={"vus": 2, "duration": "2s"}))

    assert load_text(spec).startswith("A constant load (the `load` profile, ")


def test_one_vu_is_singular_and_a_rate_keeps_its_time_unit() -> None:
    smoke = PlanSpec.model_validate(plan_doc(load=LOADS["smoke"]))
    slow = PlanSpec.model_validate(
        plan_doc(load={**LOADS["constant-arrival"], "rate": 3, "time_unit": "2s"})
    )

    assert "1 virtual user for 30s; at most 1 VU, 30s)" in load_text(smoke)
    assert ": 3 iterations per 2s for 30s;" in load_text(slow)
