"""/docs and /redoc load their JS/CSS from the installed package, never a CDN; / sends a person
to the docs. (That they render with the network blocked: test_docs_browser.py.)"""

from __future__ import annotations

import re

import pytest
from httpx import ASGITransport, AsyncClient

from app.core.openapi import DOCS_ASSETS_URL, DOCS_CSP, DOCS_URL, REDOC_URL
from app.core.settings import Settings
from app.main import HOME_URL, create_app

# Any absolute or protocol-relative URL: a page that names one loads something from elsewhere.
ABSOLUTE_URL = re.compile(r"""(?:https?:)?//[\w.-]+""", re.IGNORECASE)
LOADED = re.compile(r"""\b(?:src|href|spec-url)="([^"]+)"|\burl: '([^']+)'""")


@pytest.mark.parametrize("page", [DOCS_URL, REDOC_URL])
async def test_the_docs_pages_name_no_other_host(client: AsyncClient, page: str) -> None:
    response = await client.get(page)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert ABSOLUTE_URL.findall(html) == []
    assert "cdn" not in html.lower()
    assert "tiangolo" not in html  # the favicon used to come from fastapi.tiangolo.com
    assert "fonts.googleapis" not in html
    assert response.headers["content-security-policy"] == DOCS_CSP


@pytest.mark.parametrize(
    ("page", "assets"),
    [
        (DOCS_URL, {"swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"}),
        (REDOC_URL, {"redoc.standalone.js", "favicon.png"}),
    ],
)
async def test_everything_a_docs_page_loads_is_served_here(
    client: AsyncClient, page: str, assets: set[str]
) -> None:
    html = (await client.get(page)).text
    loaded = {a or b for a, b in LOADED.findall(html)}

    assert {f"{DOCS_ASSETS_URL}/{name}" for name in assets} | {"/openapi.json"} == loaded
    kinds = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
    for url in loaded - {"/openapi.json"}:
        response = await client.get(url)
        assert response.status_code == 200, url
        assert response.headers["content-type"].startswith(kinds[url[url.rfind(".") :]]), url
        assert len(response.content) > 1000, url
    assert (await client.get("/openapi.json")).json()["openapi"].startswith("3.")


async def test_swagger_ui_is_a_version_that_renders_openapi_3_1(client: AsyncClient) -> None:
    # FastAPI writes OpenAPI 3.1; Swagger UI renders it from version 5 on (4 shows an error).
    bundle = (await client.get(f"{DOCS_ASSETS_URL}/swagger-ui-bundle.js")).text
    version = re.search(r'PACKAGE_VERSION:"(\d+)\.', bundle)

    assert version is not None
    assert int(version.group(1)) >= 5


async def test_the_oauth2_redirect_page_is_still_served(client: AsyncClient) -> None:
    docs = (await client.get(DOCS_URL)).text
    response = await client.get("/docs/oauth2-redirect")

    assert "oauth2RedirectUrl: window.location.origin + '/docs/oauth2-redirect'" in docs
    assert response.status_code == 200
    assert "swaggerUIRedirectOauth2" in response.text
    assert ABSOLUTE_URL.findall(response.text) == []


async def test_the_root_redirects_a_person_to_the_console(client: AsyncClient) -> None:
    response = await client.get("/")

    assert HOME_URL == "/ui"
    assert response.status_code == 307
    assert response.headers["location"] == HOME_URL
    landed = await client.get("/", follow_redirects=True)
    assert landed.status_code == 200
    assert 'id="app"' in landed.text


async def test_the_docs_are_not_in_the_openapi_document(client: AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]

    assert not {"/", DOCS_URL, REDOC_URL, "/docs/oauth2-redirect"} & set(paths)
    assert not [path for path in paths if path.startswith(DOCS_ASSETS_URL)]


async def test_behind_a_path_prefix_every_url_carries_it(settings: Settings) -> None:
    app = create_app(settings)
    transport = ASGITransport(app=app, root_path="/perf")
    async with AsyncClient(transport=transport, base_url="http://test") as client:
        home = await client.get("/perf/")
        docs = (await client.get("/perf/docs")).text
        redoc = (await client.get("/perf/redoc")).text
        asset = await client.get(f"/perf{DOCS_ASSETS_URL}/swagger-ui.css")

    assert home.headers["location"] == "/perf/ui"
    assert f'src="/perf{DOCS_ASSETS_URL}/swagger-ui-bundle.js"' in docs
    assert "url: '/perf/openapi.json'" in docs
    assert "window.location.origin + '/perf/docs/oauth2-redirect'" in docs
    assert f'src="/perf{DOCS_ASSETS_URL}/redoc.standalone.js"' in redoc
    assert 'spec-url="/perf/openapi.json"' in redoc
    assert asset.status_code == 200
