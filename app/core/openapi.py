"""Shared OpenAPI fragments, so every route documents its problem responses; the docs pages."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict


class Problem(BaseModel):
    """RFC 9457 problem details; ``code`` is stable and machine-readable."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    code: str
    instance: str | None = None


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        400: "Malformed request body",
        403: "Not allowed for this caller",
        404: "Unknown id",
        409: "Not possible in the resource's current state",
        413: "Body too large",
        415: "Unsupported content type",
        422: "Invalid input or guardrail violation",
    }
    return {
        status: {
            "model": Problem,
            "description": descriptions.get(status, "Problem"),
            "content": {"application/problem+json": {}},
        }
        for status in statuses
    }


# The API's documentation pages. FastAPI's own load Swagger UI's and ReDoc's JS/CSS (and a
# favicon) from CDNs, so without internet they are blank; these load the same files from the
# installed fastapi-offline package (swagger-ui-dist 5, redoc 2), served at DOCS_ASSETS_URL.
DOCS_URL = "/docs"
REDOC_URL = "/redoc"
DOCS_ASSETS_URL = "/docs-assets"
_ASSETS_PACKAGE = ("fastapi_offline", "static")
# Both pages may load nothing from outside the service, which is what works offline. ReDoc's
# menu footer always has an <img> of Redocly's logo from their CDN (no option removes it):
# the browser refuses it here and ReDoc drops the image.
DOCS_CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",  # FastAPI's inline initialiser of Swagger UI
        "style-src 'self' 'unsafe-inline'",  # both inject <style> elements
        "img-src 'self' data:",
        "worker-src 'self' blob:",  # ReDoc's search index
    )
)


def install_docs(app: FastAPI) -> None:
    """Serve ``/docs`` (with its OAuth2 redirect) and ``/redoc`` from local files.

    The app must be created with ``docs_url=None, redoc_url=None`` so FastAPI does not add its
    CDN-loading pages; the OpenAPI document stays FastAPI's (``app.openapi_url``).
    """
    if app.docs_url is not None or app.redoc_url is not None:
        raise ValueError("create the app with docs_url=None and redoc_url=None")
    openapi_url = app.openapi_url
    if openapi_url is None:
        raise ValueError("the docs need the app's OpenAPI document (openapi_url)")
    oauth2_redirect_url = app.swagger_ui_oauth2_redirect_url

    app.mount(
        DOCS_ASSETS_URL,
        StaticFiles(packages=[_ASSETS_PACKAGE]),
        name="docs-assets",
    )

    def root_path(request: Request) -> str:
        path: str = request.scope.get("root_path", "")
        return path.rstrip("/")

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = root_path(request)
        page = get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{DOCS_ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS_URL}/favicon.png",
            oauth2_redirect_url=root + oauth2_redirect_url if oauth2_redirect_url else None,
            init_oauth=app.swagger_ui_init_oauth,
            swagger_ui_parameters=app.swagger_ui_parameters,
        )
        page.headers["Content-Security-Policy"] = DOCS_CSP
        return page

    async def redoc(request: Request) -> HTMLResponse:
        root = root_path(request)
        page = get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{DOCS_ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{DOCS_ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )
        page.headers["Content-Security-Policy"] = DOCS_CSP
        return page

    app.add_route(DOCS_URL, swagger_ui, include_in_schema=False)
    if oauth2_redirect_url:

        async def swagger_ui_oauth2_redirect(request: Request) -> HTMLResponse:
            return get_swagger_ui_oauth2_redirect_html()

        app.add_route(oauth2_redirect_url, swagger_ui_oauth2_redirect, include_in_schema=False)
    app.add_route(REDOC_URL, redoc, include_in_schema=False)
