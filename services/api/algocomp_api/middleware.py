"""Pure ASGI middlewares around the application.

`RequestBodyLimit` refuses a body above `max_request_bytes` with 413 before the application reads it: at once from
its Content-Length, or, for a chunked body, as soon as the bytes received pass the limit. It never holds more than
the limit: the body is read here (at most the limit) and replayed to the application.

`UnhandledErrors` turns an exception no handler took into the API's 500 JSON body, and then returns normally.
Starlette's own last-resort handler (ServerErrorMiddleware) sends that response and re-raises, and uvicorn closes
the connection of an application that raised: the client's next request on the same kept-alive connection was
reset. Here a bug costs one 500, not the connection.

`AdmissionLimit` admits at most `api_concurrency` requests at once and answers 503 to one that waited too long;
a request whose client leaves is dropped from the queue, or, once running, has its database work cancelled.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
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


class Abandonment:
    """What to do when a request's client leaves before its answer: callbacks (blocking ones: each runs in a
    worker thread) registered by the parts of the request that hold work, such as its database transaction."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[[], object]] = []
        self._tasks: set[asyncio.Task[object]] = set()
        self.happened = False

    def on_abandon(self, callback: Callable[[], object]) -> None:
        self._callbacks.append(callback)

    def trigger(self) -> None:
        """Run the callbacks, once (from the event loop; they run in worker threads, not waited for)."""
        if self.happened:
            return
        self.happened = True
        for callback in self._callbacks:
            task = asyncio.ensure_future(run_in_threadpool(callback))
            self._tasks.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[object]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("stopping the work of an abandoned request failed", exc_info=task.exception())


# The request's Abandonment, in its ASGI scope (deps.get_unit_of_work registers its transaction there).
ABANDONMENT = "algocomp.abandonment"


class AdmissionLimit:
    """At most `limit` requests in the application at once; others wait up to `wait_s` for a slot, then get 503
    with Retry-After. A request whose client leaves stops: while it waits for a slot it is dropped without
    running, and once running its `Abandonment` callbacks run (deps.get_unit_of_work cancels its database query).

    The database pool has a connection for every admitted request and the thread pool more threads than admitted
    requests (deps.ApiResources sizes both from the same setting), so an admitted request never waits for either:
    the pool cannot deadlock against the threads that would release it. Paths under `exempt` (the health probes)
    are never queued. Paths under `until_response` (the event streams, which live for minutes, hold no connection
    once they stream and watch their own client) hold a slot only until their response starts: checking the token
    and the run takes a connection like any request.

    It sits inside RequestBodyLimit, which has read the whole body (bounded) before the request queues here: a
    slow client's upload holds no slot, and the next `receive` tells when the client leaves."""

    def __init__(
        self,
        app: ASGIApp,
        limit: Callable[[], int],
        wait_s: Callable[[], float],
        exempt: tuple[str, ...],
        until_response: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.limit = limit
        self.wait_s = wait_s
        self.exempt = exempt
        self.until_response = until_response
        self._slots: asyncio.Semaphore | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt):
            await self.app(scope, receive, send)
            return
        if self._slots is None:  # created in the server's event loop, on the first request
            self._slots = asyncio.Semaphore(self.limit())
        body = await receive()  # the whole body (RequestBodyLimit replays it), or the client left
        if body["type"] == "http.disconnect":
            return
        # resolves (to http.disconnect) when the client leaves, or once the response is complete
        gone = asyncio.ensure_future(receive())
        try:
            if await self._admit(scope, receive, send, gone):
                await self._serve(scope, body, send, gone)
        finally:
            gone.cancel()

    async def _admit(self, scope: Scope, receive: Receive, send: Send, gone: asyncio.Future[Message]) -> bool:
        """Wait for a slot: True once the request holds one; False when its client left (nothing sent) or it waited
        too long (503 sent)."""
        assert self._slots is not None
        wait_s = self.wait_s()
        acquiring = asyncio.ensure_future(self._slots.acquire())
        waited: set[asyncio.Future[Any]] = {acquiring, gone}
        await asyncio.wait(waited, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED)
        if acquiring.done() and not gone.done():
            return True
        if not acquiring.cancel() and not acquiring.cancelled():
            self._slots.release()  # the slot came at the same moment as the disconnect or the timeout
        if gone.done():
            log.info("%s %s: the client left while it waited for a slot; not run", scope["method"], scope["path"])
            return False
        log.warning("overloaded: %s %s waited %.1f s for a slot", scope["method"], scope["path"], wait_s)
        await overloaded(max(1, round(wait_s)))(scope, receive, send)
        return False

    async def _serve(self, scope: Scope, body: Message, send: Send, gone: asyncio.Future[Message]) -> None:
        """Run the application in the slot the request holds, and release it when the request is done (a stream:
        when its response starts)."""
        assert self._slots is not None
        slots = self._slots
        abandonment = Abandonment()
        scope[ABANDONMENT] = abandonment
        working = True  # holds its slot, and work the client's leaving should stop
        streams = scope["path"].startswith(self.until_response)  # False for no prefixes

        def done_working() -> None:
            nonlocal working
            if working:
                working = False
                slots.release()

        async def tracked_send(message: Message) -> None:
            if (message["type"] == "http.response.start" and streams) or (
                message["type"] == "http.response.body" and not message.get("more_body", False)
            ):
                done_working()
            await send(message)

        def client_left(_: asyncio.Future[Message]) -> None:
            if working and not gone.cancelled():
                log.info("%s %s: the client left; stopping the request's work", scope["method"], scope["path"])
                abandonment.trigger()

        gone.add_done_callback(client_left)
        replay: Message | None = body

        async def receive_after_body() -> Message:
            nonlocal replay
            if replay is not None:
                message, replay = replay, None
                return message
            return await asyncio.shield(gone)

        try:
            await self.app(scope, receive_after_body, tracked_send)
        finally:
            done_working()
