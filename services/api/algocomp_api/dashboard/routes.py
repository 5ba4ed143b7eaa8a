"""GET / (the dashboard's page) and GET /assets/{name} (its scripts and styles), from the built bundle.

No token is needed to load the page: it holds no data, and asks for the token before it calls the API. The
bundle's file names carry a hash of their content (Vite's build), so they may be cached for good; the page itself
is never cached, so a new build is picked up at the next load. A missing bundle (the API installed without
`make dashboard`) answers 404 `dashboard_not_built` saying how to build it."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response

from algocomp_api.errors import ApiError

STATIC_DIR = Path(__file__).resolve().parent / "static"
# the page and the paths its bundle is served from (security.SecurityHeaders gives them the dashboard's policy)
PAGE_PATHS = ("/",)
ASSETS_PREFIX = "/assets/"
# one file name of the bundle, no folder: letters, digits, dot, dash and underscore
_ASSET_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")
_MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".woff2": "font/woff2",
}
IMMUTABLE = "public, max-age=31536000, immutable"

router = APIRouter(include_in_schema=False)


def _not_built() -> ApiError:
    return ApiError(
        404,
        "dashboard_not_built",
        "the dashboard's bundle is not built in this installation: run `make dashboard` (needs node and npm) "
        "and restart the API",
    )


@router.api_route("/", methods=["GET", "HEAD"])
def index() -> Response:
    page = STATIC_DIR / "index.html"
    if not page.is_file():
        raise _not_built()
    return FileResponse(page, media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-store"})


@router.api_route(ASSETS_PREFIX + "{name}", methods=["GET", "HEAD"])
def asset(name: str) -> Response:
    path = STATIC_DIR / "assets" / name
    media_type = _MEDIA_TYPES.get(Path(name).suffix)
    if not _ASSET_NAME.match(name) or media_type is None or not path.is_file():
        raise ApiError(404, "not_found", f"no dashboard file {name!r}")
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": IMMUTABLE})
