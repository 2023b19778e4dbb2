"""Host names are judged in one spelling: IDNA/UTS-46 normalised, whatever the plan wrote."""

from __future__ import annotations

import pytest
from httpx import AsyncClient

from app.core.errors import GuardrailViolation
from app.core.settings import Settings
from app.guardrails.hosts import check_host, normalise_host
from app.plans.schemas import Target
from tests.builders import API, plan_doc

PROD = "perf.prod.example.com"


@pytest.mark.parametrize(
    ("written", "normalised"),
    [
        ("perf.ｐｒｏｄ.example.com", PROD),  # fullwidth letters
        ("PERF.Prod.Example.COM", PROD),  # case
        ("perf.prod.example.com.", PROD),  # the root's dot
        ("perf。prod．example｡com", PROD),  # ideographic and fullwidth full stops
        ("perf.ℙ𝕣𝕠𝕕.example.com", PROD),  # compatibility forms
        ("Perf.ＰＲＯＤ.Example.Com.", PROD),  # all at once
        ("bücher.perf.example", "xn--bcher-kva.perf.example"),
        ("XN--BCHER-KVA.perf.example", "xn--bcher-kva.perf.example"),
        ("１２７.０.０.１", "127.0.0.1"),
        ("[::FFFF:127.0.0.1]", "127.0.0.1"),
        ("[0:0::1]", "::1"),
        ("prometheus_1.perf.local", "prometheus_1.perf.local"),  # container names keep '_'
    ],
)
def test_every_spelling_of_a_name_normalises_to_one(written: str, normalised: str) -> None:
    assert normalise_host(written) == normalised


@pytest.mark.parametrize(
    "written",
    [
        "perf.ｐｒｏｄ.example.com",
        "PERF.PROD.EXAMPLE.COM",
        "perf.prod.example.com.",
        "perf.prod.example.com。",
        "perf.ℙ𝕣𝕠𝕕.example.com",
    ],
)
def test_the_deny_list_matches_the_normalised_name(written: str, settings: Settings) -> None:
    with pytest.raises(GuardrailViolation) as refused:
        check_host(written, settings)

    assert refused.value.code == "guardrail.host_denied"
    assert refused.value.extra["host"] == PROD
    if written.lower() != PROD:
        assert refused.value.extra["written"] == written


def test_the_allow_list_matches_the_normalised_name(settings: Settings) -> None:
    assert check_host("ａｐｉ.ＳＴＡＧＩＮＧ.example.", settings) == "api.staging.example"
    assert check_host("LOCALHOST.", settings) == "localhost"


def test_patterns_are_normalised_too(settings: Settings) -> None:
    settings.denied_hosts = ["*.ｐｒｏｄ.*", "bücher.*", "EXAMPLE.ORG."]
    settings.allowed_hosts = ["*"]

    for host in ("a.prod.b", "xn--bcher-kva.perf", "bücher.perf", "example.org"):
        with pytest.raises(GuardrailViolation) as refused:
            check_host(host, settings)
        assert refused.value.code == "guardrail.host_denied", host
    assert check_host("a.prd.b", settings) == "a.prd.b"


@pytest.mark.parametrize(
    "host",
    [
        "a..perf.example",  # an empty label
        "-api.perf.example",  # a hyphen at a label's edge
        "xn--zz.perf.example",  # no valid A-label
        "xn--prod-.perf.example",  # an A-label that is not the canonical one ('prod')
        "perf.pr\u200dod.example",  # a joiner out of context
        "perf.pr\u00adod.example",  # a soft hyphen (UTS-46 would drop it silently)
        "perf.pr\u200bod.example",  # a zero-width space
        "x" * 64 + ".perf.example",  # a label longer than 63
        "a b.perf.example",
    ],
)
def test_an_invalid_name_is_refused_not_compared(host: str, settings: Settings) -> None:
    with pytest.raises(GuardrailViolation) as refused:
        check_host(host, settings)

    assert refused.value.code == "guardrail.invalid_host"
    assert refused.value.status == 422
    assert "not a valid host name" in refused.value.detail


async def test_a_fullwidth_production_target_is_denied_at_post_plan(client: AsyncClient) -> None:
    doc = plan_doc(target={"base_url": "https://perf.ｐｒｏｄ.example.com"})

    response = await client.post(f"{API}/plan", json=doc)

    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "guardrail.host_denied"
    assert problem["host"] == PROD


async def test_a_fullwidth_production_prometheus_is_denied_at_post_plan(
    client: AsyncClient,
) -> None:
    doc = plan_doc(
        system_metrics={"prometheus_url": "http://prometheus.ＰＲＯＤ.example:9090",
                        "queries": {"cpu": "up"}}
    )  # fmt: skip

    response = await client.post(f"{API}/plan", json=doc)

    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "guardrail.host_denied"
    assert problem["host"] == "prometheus.prod.example"
    assert problem["purpose"] == "system_metrics.prometheus_url"


async def test_an_invalid_idna_name_is_a_clear_422(client: AsyncClient) -> None:
    target = await client.post(
        f"{API}/plan", json=plan_doc(target={"base_url": "http://xn--zz.perf.example"})
    )
    prometheus = await client.post(
        f"{API}/plan",
        json=plan_doc(
            system_metrics={"prometheus_url": "http://a..perf.example", "queries": {"cpu": "up"}}
        ),
    )

    assert target.status_code == 422
    assert target.json()["errors"][0]["loc"] == ["body", "target", "base_url"]
    assert "'xn--zz.perf.example' is not a valid host name" in target.json()["detail"]
    assert prometheus.status_code == 422
    assert prometheus.json()["code"] == "guardrail.invalid_host"
    assert "'a..perf.example' is not a valid host name" in prometheus.json()["detail"]


def test_a_unicode_target_is_stored_as_the_name_the_guardrails_judged() -> None:
    assert Target(base_url="http://ｌｏｃａｌｈｏｓｔ:8080/api/").base_url == (
        "http://localhost:8080/api"
    )
    assert Target(base_url="https://u:p@bücher.perf.example:8443").base_url == (
        "https://u:p@xn--bcher-kva.perf.example:8443"
    )
    assert Target(base_url="http://127.0.0.1:8080").base_url == "http://127.0.0.1:8080"


@pytest.mark.parametrize(
    ("base_url", "found"),
    [
        ("http://127.0.0.1:8080/\r\nX-Injected: 1", "U+000D"),
        ("http://127.0.0.1:8080/a\nb", "U+000A"),
        ("http://127.0.0.1:8080/\tapi", "U+0009"),
        ("http://127.0.0.1:8080/a b", "U+0020"),
        ("http://127.0.0.1:8080/\x00", "U+0000"),
        ("http://127.0.0.1:8080/\u2028x", "U+2028"),
        ("http://127.0.0.1\u200b:8080", "U+200B"),
        ("http://127.0.0.1:8080/\x7f", "U+007F"),
    ],
)
async def test_whitespace_or_a_control_character_in_base_url_is_refused(
    client: AsyncClient, base_url: str, found: str
) -> None:
    response = await client.post(f"{API}/plan", json=plan_doc(target={"base_url": base_url}))

    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "validation_error"
    assert problem["errors"][0]["loc"] == ["body", "target", "base_url"]
    assert f"whitespace or control characters (found {found}" in problem["detail"]


def test_whitespace_around_base_url_is_trimmed_as_around_every_plan_string() -> None:
    assert Target(base_url=" http://127.0.0.1:8080/\r\n").base_url == "http://127.0.0.1:8080"
