"""The generic mechanism (app/core/auth.py): every operation declares a scope and is refused
without a key (401) or with a key that lacks it (403); the development mode; CORS."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import uuid
from typing import Any

import pytest
from httpx import AsyncClient, Response

from app.core.auth import (
    AUTH_OFF_OWNER,
    SCOPE_DESCRIPTIONS,
    Scope,
    dev_mode_refusal,
    is_loopback,
    parse_scopes,
)
from app.core.settings import Settings
from app.main import API_PREFIX, lifespan
from tests.builders import API, plan_doc
from tests.conftest import Clients, free_port

PROBLEM = "application/problem+json"
OPEN = {"/healthz", "/readyz", "/metrics"}  # and the docs pages, which are not operations


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, URL with real path parameters, operation) of every operation in the document."""
    found = []
    for path, item in spec["paths"].items():
        url = re.sub(r"\{[^}]+\}", lambda _: str(uuid.uuid4()), path)
        for method, operation in item.items():
            found.append((method.upper(), url, operation))
    return found


def assert_problem(response: Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, (response.request.url, response.text)
    assert response.headers["content-type"] == PROBLEM
    problem: dict[str, Any] = response.json()
    assert problem["code"] == code, problem
    assert response.headers["www-authenticate"].startswith("Bearer")
    return problem


async def test_every_operation_declares_a_scope_but_health_and_metrics(clients: Clients) -> None:
    spec = (await clients.anonymous().get("/openapi.json")).json()

    open_ = {url for _, url, op in operations(spec) if "x-required-scope" not in op}
    scoped = [op for _, url, op in operations(spec) if url.startswith(API_PREFIX)]

    assert open_ == OPEN
    assert len(scoped) >= 30
    for op in scoped:
        scope = op["x-required-scope"]
        assert op["security"] == [{"HTTPBearer": [scope]}]
        assert op["description"].startswith(f"**Scope:** `{scope}`")
        assert {"401", "403"} <= set(op["responses"])
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


async def test_every_operation_without_a_key_is_a_401_problem(clients: Clients) -> None:
    anonymous = clients.anonymous()
    spec = (await anonymous.get("/openapi.json")).json()

    for method, url, op in operations(spec):
        response = await anonymous.request(method, url)
        if "x-required-scope" not in op:
            assert response.status_code == 200, url
            continue
        problem = assert_problem(response, 401, "auth.missing_key")
        assert "Authorization: Bearer" in problem["detail"]


async def test_every_operation_with_a_key_lacking_its_scope_is_a_403_problem(
    clients: Clients,
) -> None:
    spec = (await clients.anonymous().get("/openapi.json")).json()
    others = {  # for each scope, a key with every other one (admin would grant it)
        scope: await clients.scoped(*(s for s in Scope if s not in (scope, Scope.admin)))
        for scope in Scope
    }

    walked = 0
    for method, url, op in operations(spec):
        if "x-required-scope" not in op:
            continue
        needed = Scope(op["x-required-scope"])
        response = await others[needed].request(method, url)
        problem = assert_problem(response, 403, "auth.scope_missing")
        assert problem["scope"] == needed
        assert needed not in problem["scopes"]
        assert f"`{needed}`" in problem["detail"]
        assert f'scope="{needed}"' in response.headers["www-authenticate"]
        walked += 1
    assert walked >= 30


async def test_a_key_with_the_scope_gets_past_authentication(clients: Clients) -> None:
    reader = await clients.scoped(Scope.read)
    planner = await clients.scoped(Scope.plan)

    listed = await reader.get(f"{API}/plans")
    missing = await reader.get(f"{API}/plans/{uuid.uuid4()}")
    stored = await planner.post(f"{API}/plan", json=plan_doc())

    assert listed.status_code == 200
    assert missing.status_code == 404  # routing and the route itself, not auth, answered
    assert stored.status_code == 201, stored.text


@pytest.mark.parametrize(
    ("header", "says"),
    [
        ("Bearer pa_" + "x" * 43, "unknown API key"),
        ("Bearer sk-not-ours", "not a perf-agent API key"),
        ("Basic dXNlcjpwdw==", "must be `Bearer <key>`"),
        ("Bearer", "must be `Bearer <key>`"),
    ],
)
async def test_a_bad_key_is_a_401_invalid_key(clients: Clients, header: str, says: str) -> None:
    response = await clients.using(None, Authorization=header).get(f"{API}/plans")

    problem = assert_problem(response, 401, "auth.invalid_key")
    assert says in problem["detail"]
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_admin_implies_every_scope(clients: Clients) -> None:
    admin = await clients.scoped(Scope.admin)

    assert (await admin.get(f"{API}/audit")).status_code == 200
    assert (await admin.post(f"{API}/plan", json=plan_doc())).status_code == 201


def test_the_scope_vocabulary_is_in_one_place() -> None:
    assert set(SCOPE_DESCRIPTIONS) == set(Scope)
    assert parse_scopes(["read", "retired-scope", "execute"]) == {Scope.read, Scope.execute}


# --- development mode --------------------------------------------------------------------------


async def test_with_auth_off_everyone_is_the_anonymous_admin_and_readyz_says_so(
    clients: Clients, settings: Settings
) -> None:
    anonymous = clients.anonymous()
    on = (await anonymous.get("/readyz")).json()
    settings.auth = "off"

    ready = (await anonymous.get("/readyz")).json()
    plan = (await anonymous.post(f"{API}/plan", json=plan_doc())).json()
    approved = await anonymous.post(plan["links"]["review"], json={"action": "approve"})
    audit = (await anonymous.get(f"{API}/audit")).json()

    assert on["auth"] == "on"
    assert {k: ready[k] for k in ("status", "database", "auth")} == {
        "status": "ready",
        "database": "ok",
        "auth": "off",
    }
    assert approved.json()["reviewed_by"] == AUTH_OFF_OWNER
    assert audit[0]["actor"] == AUTH_OFF_OWNER
    assert audit[0]["actor_key_id"] is None


async def test_auth_off_is_a_warning_at_start_up(
    clients: Clients, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings.auth = "off"

    with caplog.at_level(logging.WARNING):
        async with lifespan(clients.app):
            pass

    [warning] = [r for r in caplog.records if "authentication is OFF" in r.getMessage()]
    assert warning.levelno == logging.WARNING
    assert AUTH_OFF_OWNER in warning.getMessage()


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "perf.example.com"])
def test_auth_off_is_refused_on_any_address_but_loopback(host: str) -> None:
    refusal = dev_mode_refusal(Settings(auth="off"), host)

    assert refusal is not None
    assert host in refusal
    assert dev_mode_refusal(Settings(auth="on"), host) is None


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_auth_off_is_allowed_on_loopback(host: str) -> None:
    assert is_loopback(host)
    assert dev_mode_refusal(Settings(auth="off"), host) is None


async def test_the_service_will_not_start_open_on_a_public_address(
    clients: Clients, settings: Settings
) -> None:
    settings.auth, settings.host = "off", "0.0.0.0"

    with pytest.raises(RuntimeError, match=r"refusing to listen on 0\.0\.0\.0"):
        async with lifespan(clients.app):
            pass


def test_serve_with_auth_off_on_0_0_0_0_exits_with_one_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve", "--host", "0.0.0.0", "--port", str(free_port())],
        env={"PERF_AGENT_AUTH": "off", "PATH": "/usr/bin:/bin", "COLUMNS": "300"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 2, done.stdout + done.stderr
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("refusing to listen on 0.0.0.0 with PERF_AGENT_AUTH=off")


# --- CORS --------------------------------------------------------------------------------------

UI = "https://perf-xi.example.com"


def preflight(client: AsyncClient, origin: str) -> Any:
    return client.options(
        f"{API}/execute",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )


async def test_a_preflight_from_an_allowed_origin_gets_the_cors_headers(
    settings: Settings, sessionmaker: Any
) -> None:
    settings.cors_origins = [UI]
    clients = Clients(settings, sessionmaker)  # CORS is set up when the app is created
    anonymous = clients.anonymous()

    allowed = await preflight(anonymous, UI)
    other = await preflight(anonymous, "https://evil.example.com")
    # An actual request from the UI carries the header too, even when it is refused.
    refused = await anonymous.get(f"{API}/plans", headers={"Origin": UI})
    await anonymous.aclose()

    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == UI
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert "access-control-allow-origin" not in other.headers
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == UI
    assert "location" in refused.headers["access-control-expose-headers"].lower()


async def test_without_configured_origins_there_is_no_cors(clients: Clients) -> None:
    response = await preflight(clients.anonymous(), UI)

    assert "access-control-allow-origin" not in response.headers
