from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from app.plans.load_profiles import LoadProfile
from app.plans.schemas import PlanSpec, format_duration, parse_duration, parse_slo_text
from tests.builders import plan_doc


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("1m30s", 90), ("2h", 7200), ("1500ms", 1.5), (45, 45), ("1m 5s", 65)],
)
def test_durations_read_like_k6(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10", "ten seconds", "5x", "0.5s", True, None])
def test_bad_durations_are_refused(text: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_durations_render_back_for_k6() -> None:
    assert [format_duration(s) for s in (30, 90.0, 1.5)] == ["30s", "90s", "1500ms"]


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("p95 < 300ms", {"sli": "p95", "op": "<", "target": 300}),
        ("p(99)<=1.5s", {"sli": "p99", "op": "<=", "target": 1500}),
        ("avg < 200", {"sli": "avg", "op": "<", "target": 200}),
        ("error_rate < 1%", {"sli": "error_rate", "op": "<", "target": 0.01}),
        ("rate<0.001", {"sli": "error_rate", "op": "<", "target": 0.001}),
        ("rps > 50", {"sli": "rps", "op": ">", "target": 50}),
        ("throughput >= 10/s", {"sli": "rps", "op": ">=", "target": 10}),
    ],
)
def test_slo_texts(text: str, parsed: dict[str, object]) -> None:
    assert parse_slo_text(text) == parsed


@pytest.mark.parametrize("text", ["p95 fast", "error_rate < 150%", "p95 < 3%", "latency < 3ms"])
def test_bad_slo_texts_are_refused(text: str) -> None:
    with pytest.raises((ValueError, ValidationError)):
        PlanSpec.model_validate(plan_doc(slos=[text]))


LOAD = TypeAdapter(LoadProfile)


def test_load_without_a_preset_is_constant_or_staged() -> None:
    assert LOAD.validate_python({"vus": 1, "duration": "1s"}).profile == "load"
    assert LOAD.validate_python({"stages": [{"duration": "1s", "target": 1}]}).profile == "ramp"
    with pytest.raises(ValidationError, match="Extra inputs"):
        LOAD.validate_python({"vus": 1, "stages": [{"duration": "1s", "target": 1}]})
    with pytest.raises(ValidationError, match="duration"):
        LOAD.validate_python({"vus": 1})
    with pytest.raises(ValidationError, match="never starts a VU"):
        LOAD.validate_python({"stages": [{"duration": "5s", "target": 0}]})


def test_staged_load_reports_peak_and_length() -> None:
    load = LOAD.validate_python(
        {"stages": [{"duration": "10s", "target": 5}, {"duration": "1m", "target": 20}]}
    )
    assert (load.vus_at_peak, load.total_duration_s) == (20, 70)


def test_unknown_preset_is_refused() -> None:
    with pytest.raises(ValidationError, match="profile"):
        LOAD.validate_python({"profile": "tsunami", "vus": 1, "duration": "1s"})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("target", {"base_url": "ftp://127.0.0.1"}),
        ("target", {"base_url": "127.0.0.1:8080"}),
        ("endpoints", [{"name": "bad name!", "path": "/"}]),
        ("endpoints", [{"name": "x", "path": "no-slash"}]),
        ("endpoints", [{"name": "x", "path": "/", "expect_status": 999}]),
        ("endpoints", [{"name": "x", "path": "/"}, {"name": "x", "path": "/y"}]),
        ("endpoints", []),
    ],
)
def test_invalid_plans_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        PlanSpec.model_validate(plan_doc(**{field: value}))


def test_unknown_fields_are_refused_rather_than_ignored() -> None:
    with pytest.raises(ValidationError, match="extra"):
        PlanSpec.model_validate(plan_doc(laod={"vus": 1}))


@pytest.mark.parametrize(
    "headers",
    [{"X Bad": "v"}, {"X-Ok": "line\nbreak"}, {"Ünï": "v"}, {"X-Ok": "nul\x00"}],
)
def test_headers_k6_could_not_send_are_refused(headers: dict[str, str]) -> None:
    with pytest.raises(ValidationError, match="header"):
        PlanSpec.model_validate(
            plan_doc(target={"base_url": "http://127.0.0.1", "headers": headers})
        )


@pytest.mark.parametrize("regex", ["(?P<id>\\d+)", "(?i)id=(\\d+)", "\\Aid=(\\d+)", "id=\\d+"])
def test_regexes_must_be_javascript_with_a_capture_group(regex: str) -> None:
    step = {"name": "a", "path": "/a", "extract": {"v": {"regex": regex}}}
    with pytest.raises(ValidationError, match="regex"):
        PlanSpec.model_validate(plan_doc(endpoints=[step], slos=[]))


def test_equals_null_is_an_expectation_that_survives_storage() -> None:
    step = {"name": "a", "path": "/a", "checks": [{"json": "deleted_at", "equals": None}]}
    spec = PlanSpec.model_validate(plan_doc(endpoints=[step], slos=[]))
    stored = PlanSpec.model_validate(spec.model_dump(mode="json", by_alias=True))

    assert stored.steps[0].checks[0].has_equals
    absent = PlanSpec.model_validate(
        plan_doc(endpoints=[{**step, "checks": [{"json": "x"}]}], slos=[])
    )
    again = PlanSpec.model_validate(absent.model_dump(mode="json", by_alias=True))
    assert not again.steps[0].checks[0].has_equals


def test_integers_javascript_would_round_are_refused() -> None:
    step = {"name": "a", "method": "POST", "path": "/a", "body": {"id": 2**53 + 1}}
    with pytest.raises(ValidationError, match="2\\^53"):
        PlanSpec.model_validate(plan_doc(endpoints=[step], slos=[]))


@pytest.mark.parametrize("number", [float("inf"), float("-inf"), float("nan")])
def test_numbers_json_cannot_hold_are_refused(number: float) -> None:
    with pytest.raises(ValidationError, match="not a JSON number"):
        PlanSpec.model_validate(plan_doc(data={"rows": {"inline": [{"col": number}]}}))
