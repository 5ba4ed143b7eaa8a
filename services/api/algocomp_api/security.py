"""Browser-facing protections of every response: security headers, and CORS only for configured origins.

`SecurityHeaders` is plain ASGI and wraps the whole application, outside Starlette's ServerErrorMiddleware, so a
500 gets the headers too. The API answers JSON, so its Content-Security-Policy allows nothing; the interactive
documentation (/docs, /redoc) loads Swagger UI and ReDoc from a CDN with inline start-up scripts, so those pages
get a policy that allows exactly that; the dashboard's page and bundle (/ and /assets/) get one that allows its own
scripts and styles and calls to this origin, nothing else.

CORS: `settings.cors_origins` (empty by default: no origin may call the API from a browser page).
"""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from algocomp.platform.settings import Settings
from algocomp_api.dashboard import routes as dashboard

# JSON, files and event streams: nothing to load, never framed
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# FastAPI's /docs (Swagger UI) and /redoc pages: their scripts and styles from jsDelivr, an inline start-up
# script, the FastAPI favicon, the OpenAPI document and the "try it out" calls to this origin
DOCS_CDN = "https://cdn.jsdelivr.net"
DOCS_CSP = (
    "default-src 'none'; "
    f"script-src 'self' 'unsafe-inline' {DOCS_CDN}; "
    f"style-src 'self' 'unsafe-inline' {DOCS_CDN} https://fonts.googleapis.com; "
    "font-src https://fonts.gstatic.com; "
    "img-src 'self' data: https://fastapi.tiangolo.com; "
    "connect-src 'self'; worker-src blob:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
# The dashboard (algocomp_api.dashboard): its own scripts and styles only (no inline script or style element, no
# CDN), its calls to this origin, images drawn in the page (data: and blob: URLs); never framed.
DASHBOARD_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; font-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
BASE_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
CORS_METHODS = ["GET", "POST", "OPTIONS"]
CORS_HEADERS = ["Content-Type", "Authorization", "Last-Event-ID"]
CORS_EXPOSE = ["Location"]


class SecurityHeaders:
    """Adds the security headers to every HTTP response; a header the route set itself (Cache-Control on a
    stream, say) is kept. `docs_paths` get the documentation's policy, `dashboard_paths` and the paths under
    `dashboard_prefix` the dashboard's."""

    def __init__(
        self,
        app: ASGIApp,
        docs_paths: Iterable[str] = (),
        dashboard_paths: Iterable[str] = (),
        dashboard_prefix: str | None = None,
    ) -> None:
        self.app = app
        self.docs_paths = frozenset(docs_paths)
        self.dashboard_paths = frozenset(dashboard_paths)
        self.dashboard_prefix = dashboard_prefix

    def policy(self, path: str) -> str:
        if path in self.docs_paths:
            return DOCS_CSP
        if path in self.dashboard_paths or (self.dashboard_prefix and path.startswith(self.dashboard_prefix)):
            return DASHBOARD_CSP
        return API_CSP

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = self.policy(scope.get("path", ""))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                extra = [*BASE_HEADERS, (b"content-security-policy", csp.encode()), (b"cache-control", b"no-store")]
                headers += [(name, value) for name, value in extra if name not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install_security(app: FastAPI, settings: Settings | None) -> None:
    """Security headers on every response of `app` (500s included); CORS for `settings.cors_origins`, if any.

    `settings` None: read when the app is first called (the app's settings come from the environment then)."""
    docs_paths = [path for path in (app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url) if path]
    build = app.build_middleware_stack
    added_cors = False

    def build_with_security() -> ASGIApp:
        nonlocal added_cors
        from algocomp.platform.settings import get_settings

        origins = (settings or get_settings()).cors_origins
        if origins and not added_cors:
            added_cors = True
            app.user_middleware.insert(0, _cors_middleware(origins))
        return SecurityHeaders(build(), docs_paths, dashboard.PAGE_PATHS, dashboard.ASSETS_PREFIX)

    app.build_middleware_stack = build_with_security  # type: ignore[method-assign]


def _cors_middleware(origins: list[str]) -> Middleware:
    return Middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_methods=CORS_METHODS,
        allow_headers=CORS_HEADERS,
        expose_headers=CORS_EXPOSE,
        allow_credentials=False,
        max_age=600,
    )
