"""Keptn-style objectives: absolute and relative criteria, warnings, weights, key SLIs, score."""

from __future__ import annotations

import pytest
from httpx import AsyncClient
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.plans import k6script
from app.plans.schemas import SLO, PlanSpec, effective_slos
from tests.builders import API, make_plan, make_run, plan_doc, result


def slo(value: object) -> SLO:
    spec = PlanSpec.model_validate(plan_doc(slos=[value]))
    return spec.slos[0]


def test_objectives_are_written_as_text_as_keptn_criteria_or_in_k6_syntax() -> None:
    relative = slo("p95 <= +10%")
    keptn = slo({"sli": "p95", "pass": ["<600ms", "<=+10%"], "warning": "<800ms",
                 "weight": 2, "key_sli": True})  # fmt: skip
    k6_style = slo("p(95)<300")

    assert (relative.target, relative.relative_op, relative.relative_change) == (None, "<=", 0.1)
    assert relative.text == "p95 <= +10%"
    assert (keptn.target, keptn.relative_change, keptn.warning_target) == (600, 0.1, 800)
    assert (keptn.weight, keptn.key_sli) == (2, True)
    assert keptn.text == "p95 < 600ms and p95 <= +10%"
    assert (k6_style.sli, k6_style.op, k6_style.target) == ("p95", "<", 300)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("p95 <= +10ms", "signed percentage"),
        ({"sli": "p95", "pass": ["600ms"]}, "criterion like"),
        ({"sli": "p95", "pass": ["<600ms", "<700ms"]}, "at most one absolute"),
        ({"objective": "p95 < 300ms", "warning": "<=+20%"}, "warning criterion is absolute"),
        ({"objective": "p95 < 300ms", "weight": 0}, "greater than or equal to 1"),
        ("latency < 3ms", "unknown indicator"),
    ],
)
def test_malformed_objectives_are_refused_with_a_reason(value: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        slo(value)


def test_a_relative_objective_is_no_k6_threshold() -> None:
    spec = PlanSpec.model_validate(plan_doc(slos=["p95 <= +10%", "error_rate < 1%"]))

    thresholds = k6script.thresholds(spec, effective_slos(spec)[0])

    assert "rate<0.01" in thresholds["http_req_failed"]
    assert not any("+" in str(e) for exprs in thresholds.values() for e in exprs)


async def analyse(
    client: AsyncClient,
    session: AsyncSession,
    *,
    slos: list[object],
    p95: float,
    baseline_p95: float | None = None,
    scoring: dict[str, float] | None = None,
) -> dict:  # type: ignore[type-arg]
    changes: dict[str, object] = {"slos": slos}
    if scoring:
        changes["scoring"] = scoring
    plan = await make_plan(session, **changes)
    body: dict[str, object] = {}
    if baseline_p95 is not None:
        before = await make_run(session, plan, results=[result("*", p95=baseline_p95)])
        body["baseline_run_ids"] = [str(before.id)]
    run = await make_run(session, plan, results=[result("*", p95=p95)])
    response = await client.post(f"{API}/analyse", json={"run_id": str(run.id), **body})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_a_relative_objective_is_judged_against_the_baseline(
    client: AsyncClient, session: AsyncSession
) -> None:
    body = await analyse(client, session, slos=["p95 <= +10%"], p95=125, baseline_p95=100)

    [res] = body["slo_results"]
    assert (res["status"], res["baseline"], res["measured"]) == ("fail", 100.0, 125.0)
    assert res["change"] == pytest.approx(0.25)
    assert "+25.0%" in next(f for f in body["findings"] if f["kind"] == "slo_breach")["summary"]


async def test_without_a_baseline_a_relative_criterion_is_not_judged_and_says_so(
    client: AsyncClient, session: AsyncSession
) -> None:
    body = await analyse(client, session, slos=["p95 <= +10%"], p95=125)

    [res] = body["slo_results"]
    assert res["status"] == "pass"
    assert res["note"] == "no baseline value: the relative criterion was not judged"


async def test_a_miss_within_the_warning_criterion_earns_half_and_can_make_a_warning(
    client: AsyncClient, session: AsyncSession
) -> None:
    slos = [
        {"objective": "p95 < 100ms", "warning": "<200ms", "weight": 2},
        "error_rate < 1%",
        "p99 < 1000ms",
    ]

    body = await analyse(client, session, slos=slos, p95=150, scoring={"pass": 90, "warning": 70})

    assert [r["status"] for r in body["slo_results"]] == ["warning", "pass", "pass"]
    assert body["score"] == {"value": 75.0, "pass_target": 90.0, "warning_target": 70.0,
                             "result": "warning", "failed_key_slis": []}  # fmt: skip
    assert body["verdict"] == "warning"
    assert any(f["kind"] == "slo_warning" for f in body["findings"])


async def test_a_failed_key_objective_fails_whatever_the_score(
    client: AsyncClient, session: AsyncSession
) -> None:
    slos = [
        {"objective": "error_rate < 1%", "weight": 10},
        {"objective": "p95 < 100ms", "key_sli": True},
    ]

    body = await analyse(client, session, slos=slos, p95=150, scoring={"pass": 50, "warning": 10})

    assert body["score"]["value"] == pytest.approx(90.91, abs=0.01)
    assert body["score"]["result"] == "fail"
    assert body["score"]["failed_key_slis"] == ["*:p95 < 100ms"]
    assert body["verdict"] == "fail"


async def test_by_default_every_objective_must_pass(
    client: AsyncClient, session: AsyncSession
) -> None:
    slos = ["p95 < 100ms", "error_rate < 1%", "p99 < 1000ms", "p50 < 500ms"]

    body = await analyse(client, session, slos=slos, p95=150)

    assert (body["score"]["value"], body["score"]["result"], body["verdict"]) == (
        75.0,
        "fail",
        "fail",
    )
