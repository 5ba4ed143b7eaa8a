"""Every error the API returns has one shape: {"error": {"code", "message", "field"?, ...}}.

Clients (the Python client, the CLI, a browser) then handle failures in one place, whatever raised them: a domain
error (ApiError), a scenario that does not validate (ScenarioError), a malformed request (RequestValidationError),
a routing error (HTTPException), a database out of reach (503 `database_unavailable` with Retry-After: no
connection within api_db_retry_s, or one lost mid-request) or a bug (anything else: 500, logged with the run id,
no traceback in the body).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from algocomp.platform.db.faults import DatabaseUnavailable, db_transient
from algocomp.scenarios import ScenarioError

log = logging.getLogger("algocomp.api")

# Retry-After of a 503 for a database out of reach: a restart takes seconds
DATABASE_RETRY_AFTER_S = 5

_CODES_BY_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
    503: "unavailable",
}


class ErrorDetail(BaseModel):
    code: str = Field(description="stable machine-readable code, e.g. invalid_scenario, run_not_found, not_ready")
    message: str = Field(description="what went wrong and what to do about it")
    field: str | None = Field(None, description="dotted path of the field at fault, e.g. agents.alpha")

    model_config = {"extra": "allow"}


class ErrorResponse(BaseModel):
    """The body of every error response."""

    error: ErrorDetail


class ApiError(Exception):
    """A failure the client can act on: an HTTP status, a stable code, a message and optionally the field at
    fault; `extra` adds members to the error object (e.g. the run's status for `not_ready`)."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.field = field
        self.headers = dict(headers or {})
        self.extra = extra


def error_body(code: str, message: str, field: str | None = None, **extra: Any) -> dict[str, Any]:
    """The JSON body of an error response."""
    error: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    error.update(extra)
    return {"error": error}


def not_found(what: str, identifier: object, *, field: str | None = None) -> ApiError:
    """404 for a missing scenario, run or artifact."""
    return ApiError(404, f"{what}_not_found", f"no {what} with id {identifier}", field=field)


def _field_from_loc(loc: Sequence[Any]) -> str:
    """ "body.agents.0.alpha" -> "agents.0.alpha": where in the request, without the request part's name."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    return ".".join(str(part) for part in parts)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse(
        error_body(exc.code, exc.message, exc.field, **exc.extra), status_code=exc.status_code, headers=exc.headers
    )


async def _scenario_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ScenarioError)
    return JSONResponse(error_body("invalid_scenario", exc.problem, exc.field or None), status_code=422)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    field = _field_from_loc(first.get("loc", ()))
    message = str(first.get("msg", "invalid request"))
    if field:
        message = f"{field}: {message}"
    details = [{"field": _field_from_loc(e.get("loc", ())), "message": str(e.get("msg", ""))} for e in errors]
    return JSONResponse(error_body("invalid_request", message, field or None, details=details), status_code=422)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _CODES_BY_STATUS.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 404 and message == "Not Found":
        message = f"no route {request.method} {request.url.path}; see /docs for the API"
    return JSONResponse(error_body(code, message), status_code=exc.status_code, headers=exc.headers)


async def _http_error_or_parse_failure(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc.__cause__, RecursionError):  # FastAPI's 400 for a JSON body too deeply nested to parse
        return JSONResponse(
            error_body("invalid_request", "the JSON body nests too deeply to be read", "body"), status_code=422
        )
    return await _http_error(request, exc)


def log_unexpected_error(method: str, path: str, path_params: Mapping[str, Any], exc: BaseException) -> None:
    """Log a bug with its traceback and the run id of the route, if it has one."""
    run_id = path_params.get("run_id")
    log.error(
        "unhandled error in %s %s",
        method,
        path,
        exc_info=exc,
        extra={"run_id": str(run_id)} if run_id is not None else {},
    )


def internal_error_body() -> dict[str, Any]:
    return error_body("internal_error", "the server failed to handle this request; the error is in its logs")


class RequestAbandonedError(Exception):
    """The request's client left before its answer: its query was cancelled and its transaction rolled back."""


# nginx's "client closed request": never seen by the client, which has gone; it marks the access log's line
CLIENT_CLOSED_REQUEST = 499


async def _abandoned(request: Request, exc: Exception) -> Response:
    log.info("%s %s: stopped, its client left", request.method, request.url.path)
    return Response(status_code=CLIENT_CLOSED_REQUEST)


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """503 with Retry-After for a database out of reach; any other database error is a bug (500)."""
    if isinstance(exc, DBAPIError) and not db_transient(exc):
        return await _unexpected_error(request, exc)
    log.warning("%s %s: the database is out of reach: %s", request.method, request.url.path, exc)
    return JSONResponse(
        error_body(
            "database_unavailable",
            "the database is out of reach for the moment; retry after Retry-After (a POST with an Idempotency-Key "
            "is safe to repeat)",
            retry_after_s=DATABASE_RETRY_AFTER_S,
        ),
        status_code=503,
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
    )


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # Reached only for an error outside algocomp_api.middleware.UnhandledErrors, which answers every other one.
    log_unexpected_error(request.method, request.url.path, request.path_params, exc)
    return JSONResponse(internal_error_body(), status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    """Make every error response of `app` use the shape of `error_body`."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(ScenarioError, _scenario_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error_or_parse_failure)
    app.add_exception_handler(RequestAbandonedError, _abandoned)
    app.add_exception_handler(DatabaseUnavailable, _database_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(Exception, _unexpected_error)


def error_responses(
    responses: Mapping[int, Mapping[str, Any]] | None = None, *, authenticated: bool = True
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses of a route: its own, with every 4xx/5xx given the ErrorResponse schema, plus a 422
    (FastAPI would otherwise document its own validation-error shape, which this API never returns) and, for a
    route behind a token, 401."""
    documented: dict[int | str, dict[str, Any]] = {
        422: {"description": "the request does not validate; error.field names the field"}
    }
    if authenticated:
        documented[401] = {"description": "no API token, or one that is unknown, revoked or expired"}
    documented[400] = {"description": "the request body cannot be parsed (not UTF-8, or not JSON)"}
    documented[413] = {"description": "the request body is larger than the API accepts (max_request_bytes)"}
    for code, given in (responses or {}).items():
        documented[code] = dict(given)
    for status_code, response in list(documented.items()):
        if int(status_code) >= 400 and "model" not in response:
            documented[status_code] = {**response, "model": ErrorResponse}
    return documented
