"""``/ui`` and everything under it: the console's one HTML page for every path (the page
routes itself), its assets under ``/ui/assets`` with long-lived caching."""

from __future__ import annotations

import html
from functools import cache

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.console import assets

UI_URL = "/ui"
ASSETS_URL = f"{UI_URL}/assets"


# Nothing but the service itself: no CDN, no eval, and no inline script but the boot script,
# allowed by its hash. uPlot sizes its elements through the CSSOM (allowed); Preact sets style
# attributes the same way.
@cache
def csp() -> str:
    return "; ".join(
        (
            "default-src 'self'",
            f"script-src 'self' {assets.boot_hash()}",
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
    root, api = html.escape(root), html.escape(api)  # deployment settings, escaped all the same
    v = assets.version()
    preload = "\n".join(
        f'<link rel="modulepreload" href="{root}{ASSETS_URL}/{chunk}">'
        for chunk in assets.preloads()
    )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>perf-agent</title>
<link rel="icon" href="data:,">
<script data-api="{root}{api}" data-root="{root}{UI_URL}">{assets.boot()}</script>
<link rel="stylesheet" href="{root}{ASSETS_URL}/console.css?v={v}">
<script type="module" src="{root}{ASSETS_URL}/console.js?v={v}"></script>
{preload}
</head>
<body data-root="{root}{UI_URL}" data-api="{root}{api}">
<div id="app"><p class="loading">Loading…</p></div>
<noscript>The console needs JavaScript; the API is at <a href="{root}/docs">/docs</a>.</noscript>
</body>
</html>
"""


class Immutable:
    """Assets are named by their content (chunks) or asked for with their digest (``?v=``):
    a browser may keep them for a year without asking again."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_cached(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 200:
                headers = MutableHeaders(scope=message)
                headers["Cache-Control"] = "public, max-age=31536000, immutable"
            await send(message)

        await self.app(scope, receive, send_cached)


def install_console(app: FastAPI, *, api_prefix: str) -> None:
    """Mount the assets and the page; ``api_prefix`` is where the page finds the API."""
    files = StaticFiles(packages=[("app.console", "static")])
    app.mount(ASSETS_URL, GZipMiddleware(Immutable(files), minimum_size=1024), name="ui-assets")

    async def console(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        response = HTMLResponse(page(root, api_prefix))
        response.headers["Content-Security-Policy"] = csp()
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
