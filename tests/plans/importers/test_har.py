"""HAR recordings become one-workflow plans that validate, render and pass ``k6 inspect``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.plans.importers import ImportProblem
from app.plans.importers.har import plan_from_har
from app.plans.schemas import PlanSpec
from tests.plans.importers import BASE_URL, FIXTURES, k6_inspect, script_for

HAR_FILES = sorted((FIXTURES / "har").glob("*.har"))
TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJkZW1vIn0.sig"


def entry(
    method: str,
    url: str,
    *,
    at: float = 0.0,
    took_ms: float = 100,
    status: int = 200,
    mime: str = "application/json",
    response: Any = None,
    headers: dict[str, str] | None = None,
    response_headers: dict[str, str] | None = None,
    post: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A HAR 1.2 entry started ``at`` seconds after 10:00:00 UTC."""
    minutes, seconds = divmod(at, 60)
    request: dict[str, Any] = {
        "method": method,
        "url": url,
        "headers": [{"name": k, "value": v} for k, v in (headers or {}).items()],
    }
    if post is not None:
        request["postData"] = post
    content: dict[str, Any] = {"mimeType": mime}
    if response is not None:
        content["text"] = response if isinstance(response, str) else json.dumps(response)
    return {
        "startedDateTime": f"2024-05-01T10:{int(minutes):02d}:{seconds:06.3f}Z",
        "time": took_ms,
        "request": request,
        "response": {
            "status": status,
            "headers": [{"name": k, "value": v} for k, v in (response_headers or {}).items()],
            "content": content,
        },
    }


def har(*entries: dict[str, Any], **log: Any) -> dict[str, Any]:
    return {"log": {"version": "1.2", "creator": {"name": "test"}, "entries": list(entries), **log}}


def steps(doc: dict[str, Any]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = doc["scenarios"][0]["steps"]
    return result


def imported(*entries: dict[str, Any]) -> list[dict[str, Any]]:
    return steps(plan_from_har(har(*entries), base_url=BASE_URL))


@pytest.mark.parametrize("path", HAR_FILES, ids=[p.stem for p in HAR_FILES])
def test_each_public_fixture_imports_renders_and_passes_k6_inspect(
    path: Path, tmp_path: Path
) -> None:
    recording = json.loads(path.read_text())

    doc = plan_from_har(recording, base_url=BASE_URL)
    script = script_for(doc)
    k6_inspect(script, tmp_path)

    assert PlanSpec.model_validate(doc).target.base_url == BASE_URL
    # The plan's name may mention the recorded host; no request URL may.
    origins = {"/".join(e["request"]["url"].split("/")[:3]) for e in recording["log"]["entries"]}
    assert not any(origin in script for origin in origins)


def test_the_fixtures_cover_six_recordings() -> None:
    assert [p.stem for p in HAR_FILES] == ["api", "checks", "full", "params", "sleep", "variable"]


def test_har_to_k6_extensions_are_ignored_and_pages_become_groups() -> None:
    recording = json.loads((FIXTURES / "har" / "full.har").read_text())

    doc = plan_from_har(recording, base_url=BASE_URL)

    assert all("checks" not in s and "variables" not in s for s in steps(doc))
    assert [s["group"] for s in steps(doc)][:3] == ["Perform login", "Static", "Static"]


def test_base_url_defaults_to_the_recorded_origin() -> None:
    doc = plan_from_har(har(entry("GET", "https://api.example.com:8443/v1/items")))

    assert doc["target"] == {"base_url": "https://api.example.com:8443"}
    assert steps(doc)[0]["path"] == "/v1/items"


def test_think_times_are_the_gaps_between_requests_capped_and_rounded() -> None:
    result = imported(
        entry("GET", "http://app.test/a", at=0.0, took_ms=200),  # next at 2.5s: 2.3s pause
        entry("GET", "http://app.test/b", at=2.5, took_ms=100),  # next 50ms after it ends
        entry("GET", "http://app.test/c", at=2.65, took_ms=100),  # next 2 minutes later
        entry("GET", "http://app.test/d", at=125.0, took_ms=100),  # the last step
    )

    assert [s.get("think_time") for s in result] == [2.3, None, 30.0, None]


def test_overlapping_requests_get_no_negative_think_time() -> None:
    result = imported(
        entry("GET", "http://app.test/a", at=0.0, took_ms=900),
        entry("GET", "http://app.test/b", at=0.3, took_ms=100),
    )

    assert "think_time" not in result[0]


def test_static_assets_are_dropped_by_type_and_extension() -> None:
    doc = plan_from_har(
        har(
            entry("GET", "http://app.test/", mime="text/html"),
            entry("GET", "http://app.test/app.css", mime="text/css"),
            entry("GET", "http://app.test/bundle.js?v=3", mime="text/plain"),
            entry("GET", "http://app.test/logo", mime="image/png"),
            entry("GET", "http://app.test/fonts/x.woff2", mime="application/octet-stream"),
            entry("GET", "http://app.test/favicon.ico", mime="text/html"),
            {**entry("GET", "http://app.test/img/7", mime="binary/data"), "_resourceType": "image"},
            entry("GET", "http://app.test/api/items"),
        ),
        base_url=BASE_URL,
    )

    assert [s["path"] for s in steps(doc)] == ["/", "/api/items"]
    assert "Dropped 6 static assets." in doc["description"]


def test_cors_preflights_are_dropped_but_other_options_requests_kept() -> None:
    preflight = {"Access-Control-Request-Method": "POST", "Origin": "https://app.test"}

    result = imported(
        entry("OPTIONS", "http://app.test/api/orders", status=204, headers=preflight),
        entry("OPTIONS", "http://app.test/api/orders"),
        entry("POST", "http://app.test/api/orders", status=201),
    )

    assert [(s["method"], s["expect_status"]) for s in result] == [("OPTIONS", 200), ("POST", 201)]


def test_only_the_first_hosts_requests_are_kept_and_the_others_are_named() -> None:
    doc = plan_from_har(
        har(
            entry("GET", "https://cdn.test/lib.js", mime="application/javascript"),
            entry("GET", "https://app.test/api/me"),
            entry("POST", "https://tracker.test/collect"),
            entry("GET", "https://app.test/api/items"),
        ),
        base_url=BASE_URL,
    )

    assert [s["path"] for s in steps(doc)] == ["/api/me", "/api/items"]
    assert "dropped 1 to tracker.test" in doc["description"]


def test_a_token_from_a_json_response_is_extracted_and_referenced_later() -> None:
    login = entry(
        "POST",
        "http://app.test/api/login",
        post={"mimeType": "application/json", "text": '{"user": "demo", "password": "pw"}'},
        response={"data": {"access_token": TOKEN, "expires_in": 3600}},
    )
    orders = entry(
        "GET",
        f"http://app.test/api/orders?session={TOKEN}",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    refresh = entry(
        "POST",
        f"http://app.test/api/tokens/{TOKEN}/refresh",
        post={"mimeType": "application/json", "text": json.dumps({"token": TOKEN})},
    )

    doc = plan_from_har(har(login, orders, refresh), base_url=BASE_URL)
    first, second, third = steps(doc)

    assert first["extract"] == {"access_token": {"json": "data.access_token"}}
    assert second["headers"] == {"Authorization": "Bearer {{vars.access_token}}"}
    assert second["query"] == {"session": "{{vars.access_token}}"}
    assert third["path"] == "/api/tokens/{{vars.access_token}}/refresh"
    assert third["body"] == {"token": "{{vars.access_token}}"}
    assert TOKEN not in json.dumps(doc)
    assert 'vars["access_token"] = extract(res, "json", "data.access_token")' in script_for(doc)


def test_a_token_from_a_response_header_is_extracted_by_its_canonical_name() -> None:
    result = imported(
        entry("POST", "http://app.test/login", response_headers={"x-auth-token": TOKEN}),
        entry("GET", "http://app.test/me", headers={"X-Auth-Token": TOKEN}),
    )

    assert result[0]["extract"] == {"x_auth_token": {"header": "X-Auth-Token"}}
    assert result[1]["headers"] == {"X-Auth-Token": "{{vars.x_auth_token}}"}


def test_a_token_field_name_with_gjson_syntax_is_escaped() -> None:
    result = imported(
        entry("POST", "http://app.test/login", response={"auth.token": TOKEN}),
        entry("GET", "http://app.test/me", headers={"Authorization": TOKEN}),
    )

    assert result[0]["extract"] == {"auth_token": {"json": "auth\\.token"}}


def test_short_unused_or_non_token_values_are_not_correlated() -> None:
    result = imported(
        entry(
            "POST",
            "http://app.test/login",
            response={"token": "abc", "csrf": "never-used-again-123", "name": "carol-1234567"},
        ),
        entry("GET", "http://app.test/items/abc/carol-1234567"),
    )

    assert "extract" not in result[0]
    assert result[1]["path"] == "/items/abc/carol-1234567"


def test_recorded_credentials_nobody_produced_are_removed_and_reported() -> None:
    doc = plan_from_har(
        har(entry("GET", "http://app.test/me", headers={"Authorization": "Bearer stale-123456"})),
        base_url=BASE_URL,
    )

    assert "headers" not in steps(doc)[0]
    assert "Removed the recorded Authorization header from 01_get_me" in doc["description"]


def test_browser_and_hop_by_hop_headers_are_dropped() -> None:
    recorded = {
        ":authority": "app.test",
        "Host": "app.test",
        "Content-Length": "2",
        "Cookie": "sid=1",
        "Accept-Encoding": "gzip",
        "Connection": "keep-alive",
        "sec-ch-ua": '"Chromium"',
        "User-Agent": "Mozilla/5.0",
        "If-None-Match": 'W/"1"',
        "Accept": "application/json",
        "X-Request-Source": "web",
    }

    result = imported(entry("GET", "http://app.test/api", headers=recorded))

    assert result[0]["headers"] == {"Accept": "application/json", "X-Request-Source": "web"}


def test_json_bodies_are_parsed_and_other_text_is_kept_raw() -> None:
    result = imported(
        entry(
            "POST",
            "http://app.test/json",
            post={"mimeType": "application/json; charset=utf-8", "text": '{"a": [1, 2]}'},
        ),
        entry("POST", "http://app.test/text", post={"mimeType": "text/plain", "text": "a\nb"}),
        entry("POST", "http://app.test/bad", post={"mimeType": "application/json", "text": "{x"}),
    )

    assert result[0]["body"] == {"a": [1, 2]}
    assert result[1]["body"] == "a\nb"
    assert result[1]["headers"] == {"Content-Type": "text/plain"}
    assert result[2]["body"] == "{x"


def test_form_params_are_encoded_into_the_body() -> None:
    form = {
        "mimeType": "application/x-www-form-urlencoded",
        "params": [{"name": "user", "value": "a b"}, {"name": "pw", "value": "&"}],
    }

    result = imported(entry("POST", "http://app.test/login", post=form))

    assert result[0]["body"] == "user=a+b&pw=%26"
    assert result[0]["headers"] == {"Content-Type": "application/x-www-form-urlencoded"}


def test_query_strings_become_query_unless_a_name_repeats() -> None:
    result = imported(
        entry("GET", "http://app.test/search?q=red%20shoes&page=2"),
        entry("GET", "http://app.test/search?tag=a&tag=b"),
    )

    assert result[0]["path"] == "/search"
    assert result[0]["query"] == {"q": "red shoes", "page": "2"}
    assert result[1]["path"] == "/search?tag=a&tag=b"
    assert "query" not in result[1]


def test_expect_status_is_the_recorded_one_and_304_expects_200() -> None:
    result = imported(
        entry("POST", "http://app.test/orders", status=201),
        entry("GET", "http://app.test/orders/1", status=304),
        entry("GET", "http://app.test/missing", status=404),
    )

    assert [s["expect_status"] for s in result] == [201, 200, 404]


def test_a_followed_redirect_becomes_one_step_expecting_the_final_status() -> None:
    redirect = entry(
        "POST",
        "http://app.test/login",
        status=302,
        at=0.0,
        took_ms=100,
        response_headers={"Location": "/home"},
    )
    followed = entry("GET", "http://app.test/home", at=0.2, took_ms=300)
    later = entry("GET", "http://app.test/items", at=2.0)

    result = imported(redirect, followed, later)

    assert [s["path"] for s in result] == ["/login", "/items"]
    assert result[0]["expect_status"] == 200
    assert result[0]["think_time"] == 1.5  # from the end of the followed request


@pytest.mark.parametrize(
    ("recording", "message"),
    [
        ([], "not a HAR file"),
        ({"log": {}}, "not a HAR file"),
        ({"log": {"entries": []}}, "records no requests"),
        ({"log": {"entries": [{"response": {}}]}}, "entry 1 has no 'request'"),
        (
            {"log": {"entries": [{"request": {"method": "GET"}}]}},
            "entry 1: the request has no 'url'",
        ),
        (har(entry("GET", "http://app.test/a.png", mime="image/png")), "no request left"),
        (har(entry("GET", "http://app.test:port/")), "'http://app.test:port/' is not a URL"),
    ],
)
def test_unusable_recordings_are_refused_precisely(recording: Any, message: str) -> None:
    with pytest.raises(ImportProblem, match=message):
        plan_from_har(recording, base_url=BASE_URL)


def test_name_and_load_can_be_given() -> None:
    doc = plan_from_har(
        har(entry("GET", "http://app.test/")),
        base_url=BASE_URL,
        name="checkout",
        load={"profile": "load", "vus": 2, "duration": "30s"},
    )

    assert doc["name"] == "checkout"
    assert doc["load"] == {"profile": "load", "vus": 2, "duration": "30s"}
    assert plan_from_har(har(entry("GET", "http://app.test/")))["load"] == {
        "profile": "smoke",
        "vus": 1,
        "duration": "10s",
    }
