"""HTTP routes of the health probes (for compose health checks, orchestrators and `make dev`)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from algocomp_api.deps import Resources
from algocomp_api.errors import ErrorResponse, error_body
from algocomp_api.health.service import readiness

router = APIRouter(tags=["health"])


class Liveness(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]


@router.get("/healthz", response_model=Liveness, summary="The process is up")
async def healthz() -> Liveness:
    """Answered on the event loop itself: no thread, no connection, so it answers while every worker thread is
    busy."""
    return Liveness(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={
        503: {
            "model": ErrorResponse,
            "description": "a dependency is unreachable or beat is silent; error.failed lists which",
        }
    },
    summary="Postgres, Redis and S3 are reachable, and Celery beat ticks (unless beat_max_age_s is 0)",
)
def readyz(resources: Resources) -> JSONResponse:
    checks = readiness(resources)
    failed = [name for name, outcome in checks.items() if outcome != "ok"]
    if failed:
        body = {"status": "unavailable", "checks": checks}
        body.update(error_body("not_ready", f"failing: {', '.join(failed)}", failed=failed))
        return JSONResponse(body, status_code=503)
    return JSONResponse({"status": "ok", "checks": checks})
