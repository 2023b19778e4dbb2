"""/docs and /redoc render in headless Chromium while every request outside the service is refused.

Debian's /usr/bin/chromium driven by Playwright (never a browser Playwright downloads); the service
is `perf-agent serve` on 127.0.0.1. Each test counts the requests the page made to any other
origin (aborted) and the loads the page's Content-Security-Policy refused.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.openapi.docs import get_swagger_ui_html
from PIL import Image
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright

from app.cli import running_server
from app.main import API_PREFIX
from tests.conftest import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# ReDoc's menu footer always has an <img> of Redocly's logo on their CDN (no option removes it);
# the docs' CSP refuses it before any request is made, and ReDoc then drops the image.
REDOCLY_LOGO = ("img-src", "https://cdn.redoc.ly/redoc/logo-mini.svg")
RECORD_CSP = """
window.__refused = [];
document.addEventListener("securitypolicyviolation",
    (e) => window.__refused.push([e.effectiveDirective, e.blockedURI]));
"""
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian's Chromium is not at /usr/bin/chromium (apt-get install chromium; CI does)",
)


@pytest.fixture(scope="module")
def service(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`perf-agent serve` without its worker (no run of another test gets claimed)."""
    port = free_port()
    env = {
        **os.environ,
        "PERF_AGENT_DATABASE_URL": database_url,
        "PERF_AGENT_DATA_DIR": str(tmp_path_factory.mktemp("docs-data")),
        "PERF_AGENT_MIGRATE_ON_START": "false",
    }
    argv = [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--no-worker"]
    with running_server(argv, port, health="/readyz", env=env) as url:
        yield url


@pytest.fixture(scope="module")
def operations(service: str) -> int:
    spec = httpx.get(f"{service}/openapi.json", timeout=10).json()
    return sum(1 for item in spec["paths"].values() for method in item if method in METHODS)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


class Offline:
    """A page on which only the service's own origin answers."""

    def __init__(self, browser: Browser, origin: str) -> None:
        self.origin = origin
        self.aborted: list[str] = []
        self.errors: list[str] = []
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.context.route("**/*", self._route)
        self.context.add_init_script(RECORD_CSP)
        self.page: Page = self.context.new_page()
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _route(self, route: Route) -> None:
        if route.request.url.startswith(f"{self.origin}/"):
            route.continue_()
        else:
            self.aborted.append(route.request.url)
            route.abort("internetdisconnected")

    def refused(self) -> list[tuple[str, str]]:
        pairs: list[Any] = self.page.evaluate("window.__refused")
        return [(directive, uri) for directive, uri in pairs]

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def offline(browser: Browser, service: str) -> Iterator[Offline]:
    page = Offline(browser, service)
    yield page
    page.close()


def colours(screenshot: Path) -> int:
    with Image.open(screenshot) as image:
        found = image.convert("RGB").getcolors(maxcolors=1 << 16)
    return len(found) if found is not None else 1 << 16


def test_swagger_ui_renders_the_operations_offline(
    offline: Offline, service: str, operations: int, tmp_path: Path
) -> None:
    page = offline.page
    page.goto(f"{service}/docs")
    plan = page.locator(f".opblock-summary-path[data-path='{API_PREFIX}/plan']")
    expect(plan).to_be_visible(timeout=30_000)
    expect(page.locator(".opblock")).to_have_count(operations)
    expect(page.locator(".info .title")).to_contain_text("perf-agent")
    page.screenshot(path=tmp_path / "docs.png")

    # "Try it out" reaches the API under the page's CSP.
    page.locator(".opblock-summary-path[data-path='/healthz']").click()
    healthz = page.locator(".opblock", has=page.locator("[data-path='/healthz']"))
    healthz.get_by_role("button", name="Try it out").click()
    healthz.get_by_role("button", name="Execute").click()
    expect(healthz.locator(".live-responses-table tbody td.response-col_status")).to_have_text(
        "200", timeout=10_000
    )

    assert offline.aborted == []
    assert offline.refused() == []
    assert offline.errors == []
    assert colours(tmp_path / "docs.png") > 50, "the screenshot is (nearly) one colour"


def test_redoc_renders_the_operations_offline(
    offline: Offline, service: str, operations: int, tmp_path: Path
) -> None:
    page = offline.page
    page.goto(f"{service}/redoc")

    menu = page.get_by_role("menu").first
    expect(menu).to_be_visible(timeout=30_000)
    expect(menu.locator("[data-item-id*='/operation/']")).to_have_count(operations)
    create_plan = "Store a test plan and generate its k6 script"
    expect(page.locator("h2", has_text=create_plan)).to_be_visible()
    menu.get_by_role("menuitem", name="plan", exact=True).click()  # the tag opens in the menu
    operation = menu.get_by_role("menuitem", name=create_plan, exact=True)
    expect(operation).to_be_visible()
    expect(operation.locator(".operation-type")).to_have_text("post")
    page.screenshot(path=tmp_path / "redoc.png")

    assert offline.aborted == []
    assert offline.refused() in ([], [REDOCLY_LOGO])
    assert offline.errors == []
    assert colours(tmp_path / "redoc.png") > 50, "the screenshot is (nearly) one colour"


def test_the_blocking_catches_a_page_that_loads_from_a_cdn(offline: Offline, service: str) -> None:
    """The check above would fail FastAPI's own /docs page: it sees the CDN requests."""
    page = offline.page
    page.goto(f"{service}/healthz")
    cdn_page = get_swagger_ui_html(openapi_url="/openapi.json", title="FastAPI's default")
    page.set_content(bytes(cdn_page.body).decode(), wait_until="load")

    assert any(url.startswith("https://cdn.jsdelivr.net/") for url in offline.aborted)
    assert page.locator(".opblock").count() == 0
