"""The FastAPI application: `create_app(settings)` wires the domain routers, the error handlers and the
process's clients (opened in the lifespan, closed at shutdown). `app` is what uvicorn serves:

    uvicorn algocomp_api.main:app --host 0.0.0.0 --port 8000
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from algocomp.platform.logs import configure_logging
from algocomp.platform.settings import Settings, get_settings
from algocomp_api.aggregates.routes import router as aggregates_router
from algocomp_api.auth import bearer_token, current_principal
from algocomp_api.dashboard.routes import router as dashboard_router
from algocomp_api.deps import ApiResources, size_thread_pool
from algocomp_api.errors import install_error_handlers
from algocomp_api.health.routes import router as health_router
from algocomp_api.middleware import AdmissionLimit, RequestBodyLimit, UnhandledErrors
from algocomp_api.results.routes import read_router as results_read_router
from algocomp_api.results.routes import router as results_router
from algocomp_api.runs.routes import read_router as runs_read_router
from algocomp_api.runs.routes import router as runs_router
from algocomp_api.scenarios.routes import router as scenarios_router
from algocomp_api.security import install_security
from algocomp_api.streams.routes import router as streams_router
from algocomp_api.sweeps.routes import router as sweeps_router

API_VERSION = "0.1.0"
# never queued behind other requests: the probes
UNQUEUED_PATHS = ("/healthz", "/readyz")
# queued only until their response starts: the event streams (long-lived, no connection while they stream)
STREAM_PATHS = ("/streams/",)

DESCRIPTION = """Simulate AI-driven pricing in oligopoly markets as a service.

1. **POST /scenarios** stores a scenario (a built-in preset or an inline document, validated by the engine);
2. **POST /runs** queues a run of it (seed, sessions, overrides) and answers 202 with links;
3. **GET /streams/{id}** follows its progress as Server-Sent Events (resumable with Last-Event-ID);
4. **GET /results/{id}** returns the summary and links to the panel (Parquet), plots and logs on S3.

The web dashboard is at **/** (it asks for your token). Every route but the health probes, the dashboard's page
and these docs needs an API token: `Authorization: Bearer TOKEN` (an operator
issues one with `algocomp users create NAME --team TEAM`). Scenarios, runs and sweeps belong to the caller's
team; another team's ids answer 404.

Every error is JSON: `{"error": {"code", "message", "field"?}}`.
"""

# uvicorn installs its own handlers on these loggers; routing them through the root logger makes the access
# and error lines structured (JSON off a terminal) like the rest of the API's logs.
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")

TAGS = [
    {"name": "scenarios", "description": "validated experiment descriptions, stored once per fingerprint"},
    {"name": "runs", "description": "queued, running and finished simulations of a scenario"},
    {"name": "sweeps", "description": "grids of runs over dotted-path overrides and seeds, and their metrics"},
    {"name": "aggregates", "description": "per-run coordination indicators recorded by the aggregator"},
    {"name": "results", "description": "a succeeded run's summary and files"},
    {"name": "streams", "description": "live progress of a run or a sweep as Server-Sent Events"},
    {"name": "health", "description": "liveness and readiness probes"},
]


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API for `settings` (default: from the ALGOCOMP_* environment, read when the app starts)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app_settings = settings or get_settings()
        configure_logging("api", secrets=app_settings.secrets())
        for name in UVICORN_LOGGERS:
            logging.getLogger(name).handlers.clear()
            logging.getLogger(name).propagate = True
        resources = ApiResources.open(app_settings)
        size_thread_pool(app_settings)
        app.state.resources = resources
        # What start-up built (modules, the app, models, the pools) lives as long as the process: leave it out of
        # the collector's full passes, which scanned all of it and stopped the event loop for 50-450 ms every few
        # seconds under load (/healthz waited behind them; measured with gc.callbacks, issue 11).
        gc.freeze()
        try:
            yield
        finally:
            app.state.resources = None
            await resources.close()

    app = FastAPI(
        title="algocomp API",
        description=DESCRIPTION,
        version=API_VERSION,
        openapi_tags=TAGS,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    # Inside Starlette's ServerErrorMiddleware, outermost first: the body limit (the body is read, bounded, before
    # the request queues), the admission limit (which notices a client that left), then the last-resort 500.
    app.add_middleware(UnhandledErrors)
    app.add_middleware(
        AdmissionLimit,
        limit=lambda: (settings or get_settings()).api_concurrency,
        wait_s=lambda: (settings or get_settings()).api_queue_wait_s,
        exempt=UNQUEUED_PATHS,
        until_response=STREAM_PATHS,
    )
    app.add_middleware(RequestBodyLimit, limit=lambda: (settings or get_settings()).max_request_bytes)
    # around everything (errors included): the security headers, and CORS when origins are configured
    install_security(app, settings)
    # every route behind a token (the routes that act on the caller's objects also take it as `Caller`; those
    # that read in one trip to a thread check it there, see runs.routes.read_router)
    app.include_router(runs_read_router, dependencies=[Depends(bearer_token)])
    app.include_router(results_read_router, dependencies=[Depends(bearer_token)])
    for router in (scenarios_router, runs_router, sweeps_router, aggregates_router, results_router, streams_router):
        app.include_router(router, dependencies=[Depends(current_principal)])
    app.include_router(health_router)
    # the dashboard's page and bundle: static, no token (the page asks for it before it calls the API)
    app.include_router(dashboard_router)
    return app


app = create_app()
