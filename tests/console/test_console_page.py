"""The console's page and assets as the service serves them: every path under /ui is the same
page (the page routes itself), behind a CSP that allows nothing off the service's origin, and
the committed build is the build of the committed sources."""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import subprocess

import pytest
from httpx import ASGITransport, AsyncClient

from app.console import assets
from app.console.router import ASSETS_URL, csp
from app.core.settings import Settings
from app.main import create_app

PATHS = ["/ui", "/ui/runs", "/ui/plans/new", "/ui/runs/7c0e6f5e-0000-4000-8000-000000000000"]


@pytest.mark.parametrize("path", PATHS)
async def test_every_console_path_is_the_one_page_under_a_strict_csp(
    client: AsyncClient, path: str
) -> None:
    response = await client.get(path)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert policy == csp()
    assert "default-src 'self'" in policy
    page = response.text
    # One inline script, the boot script, allowed by its hash and by nothing broader; no eval.
    inline = re.findall(r"<script data-api=[^>]*>(.*?)</script>", page, re.S)
    digest = base64.b64encode(hashlib.sha256(inline[0].encode()).digest()).decode()
    assert inline == [assets.boot()]
    assert f"script-src 'self' 'sha256-{digest}';" in policy
    assert "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy
    assert len(re.findall(r"<script(?![^>]*\bsrc=)", page)) == 1
    assert 'id="app"' in page
    assert f'src="{ASSETS_URL}/console.js?v={assets.version()}"' in page
    assert 'data-api="/api/agents/performance-agent"' in page
    # Nothing on the page points anywhere but this service.
    assert re.findall(r"""(?:src|href)="(https?:)?//""", page) == []


async def test_ui_with_a_slash_redirects_to_the_console(client: AsyncClient) -> None:
    response = await client.get("/ui/")

    assert response.status_code == 307
    assert response.headers["location"] == "/ui"


async def test_the_assets_are_served_and_the_page_is_not_in_the_openapi_document(
    client: AsyncClient,
) -> None:
    script = await client.get(f"{ASSETS_URL}/console.js")
    style = await client.get(f"{ASSETS_URL}/console.css")
    missing = await client.get(f"{ASSETS_URL}/nothing.js")
    paths = (await client.get("/openapi.json")).json()["paths"]

    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert len(script.content) > 50_000  # the bundle, not a placeholder
    assert "uplot" in style.text.lower()
    assert missing.status_code == 404
    assert not [p for p in paths if p.startswith("/ui")]


async def test_behind_a_path_prefix_the_page_finds_its_assets_and_the_api(
    settings: Settings,
) -> None:
    transport = ASGITransport(app=create_app(settings), root_path="/perf")
    async with AsyncClient(transport=transport, base_url="http://test") as client:
        page = (await client.get("/perf/ui/runs")).text
        home = await client.get("/perf/")

    assert f'src="/perf{ASSETS_URL}/console.js' in page
    assert 'data-api="/perf/api/agents/performance-agent"' in page
    assert 'data-root="/perf/ui"' in page
    assert home.headers["location"] == "/perf/ui"


def test_the_committed_build_is_the_build_of_the_committed_sources() -> None:
    """`cd console && npm ci && node build.mjs` after any change under console/: the build
    records its sources' digest, recomputed here without npm."""
    manifest = assets.manifest()

    assert manifest["sources_sha256"] == assets.sources_digest(), (
        "console/ changed without a rebuild: cd console && npm ci && node build.mjs"
    )
    packages = manifest["packages"]
    assert isinstance(packages, dict)
    assert {"preact", "uplot", "yaml", "@cfworker/json-schema"} <= set(packages)


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_the_build_script_and_python_agree_on_the_digest() -> None:
    """The digest is computed twice (build.mjs, assets.py); both must name the same bytes."""
    node = subprocess.run(
        [
            "node",
            "--input-type=module",
            "-e",
            "import('./digest.mjs').then(m => console.log(m.digest()))",
        ],
        cwd=assets.SOURCES,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    assert node.stdout.strip() == assets.sources_digest()
