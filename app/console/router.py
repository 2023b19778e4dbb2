"""``/ui`` and everything under it: the console's one HTML page for every path (the page
routes itself), its assets under ``/ui/assets`` with long-lived caching."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from app.console import assets

UI_URL = "/ui"
ASSETS_URL = f"{UI_URL}/assets"
# Nothing but the service itself: no CDN, no inline script, no eval. uPlot sizes its elements
# through the CSSOM (allowed); Preact sets style attributes the same way.
CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)


def page(root: str, api: str) -> str:
    v = assets.version()
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>perf-agent</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{root}{ASSETS_URL}/console.css?v={v}">
<script type="module" src="{root}{ASSETS_URL}/console.js?v={v}"></script>
</head>
<body data-root="{root}{UI_URL}" data-api="{root}{api}">
<div id="app"><p class="loading">Loading…</p></div>
<noscript>The console needs JavaScript; the API is at <a href="{root}/docs">/docs</a>.</noscript>
</body>
</html>
"""


def install_console(app: FastAPI, *, api_prefix: str) -> None:
    """Mount the assets and the page; ``api_prefix`` is where the page finds the API."""
    app.mount(ASSETS_URL, StaticFiles(packages=[("app.console", "static")]), name="ui-assets")

    async def console(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        response = HTMLResponse(page(root, api_prefix))
        response.headers["Content-Security-Policy"] = CSP
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        return response

    async def slash(request: Request) -> RedirectResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return RedirectResponse(root + UI_URL, status_code=307)

    app.add_api_route(UI_URL, console, methods=["GET"], include_in_schema=False)
    app.add_api_route(UI_URL + "/", slash, methods=["GET"], include_in_schema=False)
    app.add_api_route(UI_URL + "/{path:path}", console, methods=["GET"], include_in_schema=False)
