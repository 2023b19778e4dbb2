"""One address policy for every outbound connection: targets, Prometheus, the webhook.

Real sockets on 127.0.0.1 and 127.0.0.2 only (127.0.0.2 plays a production host); test names
are answered by a Python-level resolver (tests/guardrails/listeners.py), never by DNS.
"""

from __future__ import annotations

import ipaddress
import logging
import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx import AsyncClient

from app.core.errors import GuardrailViolation
from app.core.settings import Settings
from app.guardrails.network import (
    blacklist_except,
    check_addresses,
    check_outbound,
    k6_network_args,
    pinned_client,
    resolve,
    shown,
    target_addresses,
)
from app.plans.schemas import Budget
from app.runs.budget import BudgetWatch, Limits
from tests.builders import API, plan_doc
from tests.guardrails.listeners import FakeDNS, Listeners

IP = ipaddress.ip_address


def denied(settings: Settings, *networks: str) -> Settings:
    settings.denied_networks = list(networks)
    return settings


# --- addresses --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.2",
        "::ffff:127.0.0.2",  # IPv4-mapped: a dual-stack socket connects to 127.0.0.2
        "64:ff9b::7f00:2",  # NAT64 (DNS64 answers an AAAA for an IPv4-only name)
        "2002:7f00:2::1",  # 6to4
        "::127.0.0.2",  # IPv4-compatible (deprecated)
    ],
)
def test_an_address_carrying_a_denied_ipv4_address_is_denied(
    settings: Settings, address: str
) -> None:
    with pytest.raises(GuardrailViolation) as refused:
        check_addresses("metrics.perf.example", [IP(address)], denied(settings, "127.0.0.2/32"))

    assert refused.value.code == "guardrail.address_denied"
    assert refused.value.extra["address"] == shown(IP(address))
    assert refused.value.extra["network"] == "127.0.0.2/32"


def test_a_denied_network_of_mapped_addresses_denies_the_ipv4_ones(settings: Settings) -> None:
    with pytest.raises(GuardrailViolation):
        check_addresses("x", [IP("127.0.0.2")], denied(settings, "::ffff:127.0.0.0/120"))
    # …without a denied IPv6 range swallowing IPv4, or a neighbour being caught.
    check_addresses("x", [IP("127.0.0.1")], denied(settings, "::/0"))
    check_addresses("x", [IP("127.0.0.1"), IP("::ffff:127.0.0.1")], denied(settings, "127.0.0.2"))


async def test_the_targets_checked_addresses_are_normalised_and_confine_k6(
    settings: Settings, dns: FakeDNS
) -> None:
    dns["api.perf.example"] = ["::ffff:127.0.0.1", "127.0.0.1", "::1"]

    assert await target_addresses("api.perf.example", settings) == [IP("127.0.0.1"), IP("::1")]
    assert await target_addresses("[::ffff:127.0.0.1]", settings) == [IP("127.0.0.1")]
    args = await k6_network_args("API.PERF.example.", settings)
    assert args == ["--blacklist-ip", blacklist_except([IP("127.0.0.1"), IP("::1")])]
    assert dns.lookups == {"api.perf.example": 2}  # looked up in its normalised spelling


async def test_a_target_resolving_to_a_mapped_denied_address_is_refused(
    settings: Settings, dns: FakeDNS
) -> None:
    dns["api.perf.example"] = ["127.0.0.1", "::ffff:127.0.0.2"]

    with pytest.raises(GuardrailViolation) as refused:
        await target_addresses("api.perf.example", denied(settings, "127.0.0.2/32"))

    assert refused.value.code == "guardrail.address_denied"
    assert "::ffff:127.0.0.2 (IPv4 127.0.0.2)" in refused.value.detail


async def test_target_addresses_applies_the_host_patterns(settings: Settings) -> None:
    with pytest.raises(GuardrailViolation) as refused:
        await target_addresses("perf.ｐｒｏｄ.example.com", settings)

    assert refused.value.code == "guardrail.host_denied"


async def test_resolve_keeps_its_meaning(dns: FakeDNS) -> None:
    dns["api.perf.example"] = ["127.0.0.1", "127.0.0.1", "::ffff:127.0.0.1"]

    assert await resolve("api.perf.example") == [IP("127.0.0.1"), IP("::ffff:127.0.0.1")]
    assert await resolve("[::1]") == [IP("::1")]
    with pytest.raises(GuardrailViolation) as refused:
        await resolve("nowhere.perf.example")
    assert refused.value.code == "guardrail.unresolvable"


# --- check_outbound ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://127.0.0.1/x", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("127.0.0.1:9090", "only http and https"),
        ("http:///path", "names no host"),
        ("http://127.0.0.1:99999", "port is invalid"),
        ("http://127.0.0.1:9090/\r\nHost: evil", "U+000D"),
        ("http://127.0.0.1:9090/a b", "U+0020"),
    ],
)
async def test_an_outbound_url_of_the_wrong_form_is_refused(
    settings: Settings, url: str, reason: str
) -> None:
    with pytest.raises(GuardrailViolation) as refused:
        await check_outbound(url, settings, purpose="test")

    assert refused.value.code == "guardrail.invalid_url"
    assert reason in refused.value.detail
    assert refused.value.detail.startswith("test: ")


async def test_check_outbound_returns_the_checked_addresses_and_normalised_url(
    settings: Settings, dns: FakeDNS
) -> None:
    dns["metrics.perf.example"] = ["127.0.0.1"]

    checked = await check_outbound(
        "HTTP://Metrics.ＰＥＲＦ.example:9090/prom/?a=1#f", settings, purpose="Prometheus"
    )

    assert checked.url == "http://metrics.perf.example:9090/prom/?a=1"
    assert (checked.host, checked.port, checked.addresses) == (
        "metrics.perf.example",
        9090,
        (IP("127.0.0.1"),),
    )


async def test_the_operators_webhook_skips_the_host_patterns_but_not_the_networks(
    settings: Settings, dns: FakeDNS
) -> None:
    dns["hooks.prod.example"] = ["127.0.0.1"]
    url = "https://hooks.prod.example/alert"

    with pytest.raises(GuardrailViolation) as refused:
        await check_outbound(url, settings, purpose="plan URL")
    assert refused.value.code == "guardrail.host_denied"
    assert (await check_outbound(url, settings, purpose="hook", host_patterns=False)).port == 443
    with pytest.raises(GuardrailViolation) as refused:
        await check_outbound(
            url, denied(settings, "127.0.0.0/8"), purpose="hook", host_patterns=False
        )
    assert refused.value.code == "guardrail.address_denied"
    assert refused.value.extra["purpose"] == "hook"


# --- the connection goes to the checked address -----------------------------------------------


async def test_a_rebinding_name_is_connected_to_at_the_address_that_was_checked(
    settings: Settings, dns: FakeDNS, listen: Listeners
) -> None:
    checked_side = listen("127.0.0.1")
    production = listen("127.0.0.2", checked_side.port)
    answers = iter([["127.0.0.1"]])
    dns["rebind.perf.example"] = lambda: next(answers, ["127.0.0.2"])  # first check, then prod
    denied(settings, "127.0.0.2/32")
    url = f"http://rebind.perf.example:{checked_side.port}/api/v1/query"

    target = await check_outbound(url, settings, purpose="Prometheus")
    async with pinned_client(target, timeout=2.0) as client:
        first = await client.get(target.url)
        second = await client.get(target.url)

    assert (first.status_code, second.status_code) == (200, 200)
    assert [r.host for r in checked_side.requests] == [
        f"rebind.perf.example:{checked_side.port}"
    ] * 2
    assert production.connections == 0
    # Unpinned, the same name would have reached production: the check alone is not enough.
    async with httpx.AsyncClient(trust_env=False) as plain:
        await plain.get(target.url)
    assert production.connections == 1


async def test_a_pinned_client_goes_nowhere_else(
    settings: Settings, listen: Listeners, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked_side = listen("127.0.0.1", respond=lambda *_: (302, "http://127.0.0.2/"))
    production = listen("127.0.0.2")
    monkeypatch.setenv("HTTP_PROXY", production.base)  # a proxy would resolve the name itself
    monkeypatch.setenv("ALL_PROXY", production.base)
    target = await check_outbound(checked_side.base, settings, purpose="test")

    async with pinned_client(target, timeout=2.0) as client:
        redirected = await client.get(target.url)
        with pytest.raises(httpx.ConnectError, match=r"is not 127\.0\.0\.1:"):
            await client.get(f"{production.base}/")

    assert redirected.status_code == 302  # not followed
    assert len(checked_side.requests) == 1
    assert production.connections == 0


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for metrics.perf.example (openssl), its key."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=metrics.perf.example", "-addext", "subjectAltName=DNS:metrics.perf.example",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_https_to_the_checked_address_keeps_the_name_for_sni_and_the_certificate(
    settings: Settings, dns: FakeDNS, listen: Listeners, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    server = listen("127.0.0.1", tls=server_tls)
    dns["metrics.perf.example"] = ["127.0.0.1"]
    dns["other.perf.example"] = ["127.0.0.1"]
    trust = ssl.create_default_context(cafile=str(cert))

    target = await check_outbound(
        f"https://metrics.perf.example:{server.port}/", settings, purpose="Prometheus"
    )
    async with pinned_client(target, timeout=2.0, verify=trust) as client:
        answer = await client.get(target.url)
    other = await check_outbound(
        f"https://other.perf.example:{server.port}/", settings, purpose="Prometheus"
    )
    async with pinned_client(other, timeout=2.0, verify=trust) as client:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.get(other.url)  # connected by address, still verified by name

    assert answer.status_code == 200
    assert server.server_names[0] == "metrics.perf.example"
    assert [r.host for r in server.requests] == [f"metrics.perf.example:{server.port}"]


# --- the cost-alert webhook -------------------------------------------------------------------


def budget_watch(settings: Settings, events: list[tuple[str, str, dict[str, Any]]]) -> BudgetWatch:
    async def event(kind: str, message: str, data: dict[str, Any]) -> None:
        events.append((kind, message, data))

    return BudgetWatch(
        address="127.0.0.1:9",  # k6's REST API: not called below 100 %
        limits=Limits.of(Budget(requests=100), settings),
        settings=settings,
        event=event,
        run_id="run-1",
        on_exhausted=lambda: None,
    )


async def test_a_webhook_resolving_into_a_denied_network_is_not_called(
    settings: Settings, dns: FakeDNS, listen: Listeners, caplog: pytest.LogCaptureFixture
) -> None:
    production = listen("127.0.0.2")
    dns["hooks.perf.example"] = ["127.0.0.2"]
    settings.cost_alert_webhook = f"http://hooks.perf.example:{production.port}/hook"
    events: list[tuple[str, str, dict[str, Any]]] = []

    with caplog.at_level(logging.WARNING, logger="app.runs.budget"):
        await budget_watch(denied(settings, "127.0.0.2/32"), events).observe(
            {"vu_seconds": 1.0, "total_requests": 85}
        )

    assert production.connections == 0
    assert [kind for kind, _, _ in events] == ["budget_alert", "budget_webhook_refused"]
    refusal = events[1][2]
    assert (refusal["code"], refusal["address"]) == ("guardrail.address_denied", "127.0.0.2")
    assert "budget webhook not called" in caplog.text


async def test_the_webhook_is_posted_to_its_checked_address(
    settings: Settings, dns: FakeDNS, listen: Listeners
) -> None:
    hook = listen("127.0.0.1")
    production = listen("127.0.0.2", hook.port)
    answers = iter([["127.0.0.1"]])
    dns["hooks.prod.example"] = lambda: next(answers, ["127.0.0.2"])  # an operator's prod name
    settings.cost_alert_webhook = f"http://hooks.prod.example:{hook.port}/hook?token=t"
    events: list[tuple[str, str, dict[str, Any]]] = []

    await budget_watch(denied(settings, "127.0.0.2/32"), events).observe(
        {"vu_seconds": 1.0, "total_requests": 85}
    )

    assert [kind for kind, _, _ in events] == ["budget_alert"]
    [posted] = hook.requests
    assert (posted.method, posted.path, posted.query) == ("POST", "/hook", {"token": ["t"]})
    assert posted.host == f"hooks.prod.example:{hook.port}"
    assert b'"run_id":"run-1"' in posted.body.replace(b" ", b"")
    assert production.connections == 0


# --- plan time --------------------------------------------------------------------------------


async def test_a_target_resolving_into_a_denied_network_is_refused_at_post_plan(
    client: AsyncClient, settings: Settings
) -> None:
    denied(settings, "127.0.0.0/8", "::1/128")

    response = await client.post(
        f"{API}/plan", json=plan_doc(target={"base_url": "http://localhost:8080"})
    )

    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "guardrail.address_denied"
    assert (problem["host"], problem["address"]) == ("localhost", "127.0.0.1")
    assert (await client.get(f"{API}/plans")).json()["items"] == []


async def test_a_prometheus_resolving_into_a_denied_network_is_refused_at_post_plan(
    client: AsyncClient, settings: Settings, dns: FakeDNS
) -> None:
    dns["metrics.perf.example"] = ["::ffff:127.0.0.2"]
    denied(settings, "127.0.0.2/32")
    doc = plan_doc(
        system_metrics={"prometheus_url": "http://metrics.perf.example:9090",
                        "queries": {"cpu": "up"}}
    )  # fmt: skip

    response = await client.post(f"{API}/plan", json=doc)

    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "guardrail.address_denied"
    assert problem["purpose"] == "system_metrics.prometheus_url"
    assert problem["network"] == "127.0.0.2/32"


async def test_a_name_that_does_not_resolve_yet_is_stored_and_judged_at_run_time(
    client: AsyncClient, dns: FakeDNS
) -> None:
    response = await client.post(
        f"{API}/plan", json=plan_doc(target={"base_url": "http://later.perf.example:8080"})
    )

    assert response.status_code == 201, response.text
    assert dns.unknown == ["later.perf.example"]  # looked up, and no such name (yet)
