"""Pure ASGI middlewares around the application.

`RequestBodyLimit` refuses a body above `max_request_bytes` with 413 before the application reads it: at once from
its Content-Length, or, for a chunked body, as soon as the bytes received pass the limit. It never holds more than
the limit: the body is read here (at most the limit) and replayed to the application.

`UnhandledErrors` turns an exception no handler took into the API's 500 JSON body, and then returns normally.
Starlette's own last-resort handler (ServerErrorMiddleware) sends that response and re-raises, and uvicorn closes
the connection of an application that raised: the client's next request on the same kept-alive connection was
reset. Here a bug costs one 500, not the connection.

`AdmissionLimit` admits at most `api_concurrency` requests at once and answers 503 to one that waited too long.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from algocomp_api.errors import error_body, internal_error_body, log_unexpected_error

log = logging.getLogger("algocomp.api")


def payload_too_large(limit: int) -> JSONResponse:
    return JSONResponse(
        error_body(
            "payload_too_large",
            f"the request body is at most {limit:,} bytes (setting max_request_bytes)",
            "body",
            limit=limit,
        ),
        status_code=413,
    )


class RequestBodyLimit:
    """413 for a request body above `limit()` bytes, counted as it arrives (Content-Length or chunked)."""

    def __init__(self, app: ASGIApp, limit: Callable[[], int]) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit()
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > limit:
            await payload_too_large(limit)(scope, receive, send)
            return

        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left: let the application see it
                replayed = [message]
                break
            body = message.get("body", b"")
            size += len(body)
            if size > limit:
                await payload_too_large(limit)(scope, receive, send)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                replayed = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]
                break
        chunks.clear()

        async def replay() -> Message:
            if replayed:
                return replayed.pop()
            return await receive()  # after the body: http.disconnect, which streaming responses wait for

        await self.app(scope, replay, send)


class UnhandledErrors:
    """A 500 JSON response for an exception no handler took, without re-raising it (so the connection lives)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            log_unexpected_error(scope.get("method", ""), scope.get("path", ""), scope.get("path_params", {}), exc)
            if started:
                raise  # half a response was sent: only closing the connection can end it
            await JSONResponse(internal_error_body(), status_code=500)(scope, receive, send)


def overloaded(retry_after_s: int) -> JSONResponse:
    return JSONResponse(
        error_body(
            "overloaded",
            "the API is serving as many requests as it can; retry after a moment",
            retry_after_s=retry_after_s,
        ),
        status_code=503,
        headers={"Retry-After": str(retry_after_s)},
    )


class AdmissionLimit:
    """At most `limit` requests in the application at once; others wait up to `wait_s` for a slot, then get 503
    with Retry-After.

    The database pool has a connection for every admitted request and the thread pool more threads than admitted
    requests (deps.ApiResources sizes both from the same setting), so an admitted request never waits for either:
    the pool cannot deadlock against the threads that would release it. Paths under `exempt` (the health probes,
    and the event streams, which live for minutes and hold no connection while they wait) are never queued."""

    def __init__(
        self, app: ASGIApp, limit: Callable[[], int], wait_s: Callable[[], float], exempt: tuple[str, ...]
    ) -> None:
        self.app = app
        self.limit = limit
        self.wait_s = wait_s
        self.exempt = exempt
        self._slots: asyncio.Semaphore | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt):
            await self.app(scope, receive, send)
            return
        if self._slots is None:  # created in the server's event loop, on the first request
            self._slots = asyncio.Semaphore(self.limit())
        wait_s = self.wait_s()
        try:
            await asyncio.wait_for(self._slots.acquire(), timeout=wait_s)
        except TimeoutError:
            log.warning("overloaded: %s %s waited %.1f s for a slot", scope["method"], scope["path"], wait_s)
            await overloaded(max(1, round(wait_s)))(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self._slots.release()
