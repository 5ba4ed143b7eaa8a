"""HTTP routes of /results."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from algocomp.platform.logs import bind_run
from algocomp.platform.storage import ARTIFACTS, content_type
from algocomp_api.auth import Caller
from algocomp_api.deps import StorageDep, UnitOfWorkDep
from algocomp_api.errors import ApiError, error_responses
from algocomp_api.files import stream_object
from algocomp_api.results import service
from algocomp_api.results.schemas import ResultOut

router = APIRouter(prefix="/results", tags=["results"])

_NOT_READY: dict[int, dict[str, Any]] = {
    404: {"description": "no run with this id, or no such artifact"},
    409: {"description": "the run has not succeeded (error.code = not_ready, error.status = its status)"},
}


@router.get(
    "/{run_id}",
    response_model=ResultOut,
    responses=error_responses(_NOT_READY),
    summary="A succeeded run's summary and files",
)
def get_result(uow: UnitOfWorkDep, caller: Caller, storage: StorageDep, run_id: uuid.UUID) -> ResultOut:
    with bind_run(run_id):
        return service.result_out(service.get_result(uow, caller, run_id), storage)


def _artifact_response(
    uow: UnitOfWorkDep, caller: Caller, storage: StorageDep, run_id: uuid.UUID, name: str, redirect: bool
) -> Response:
    with bind_run(run_id):
        key = service.artifact_key(service.get_result(uow, caller, run_id), name)
        if redirect:
            return RedirectResponse(
                storage.presigned_url(key, expires_s=service.PRESIGNED_URL_EXPIRES_S), status_code=307
            )
        return stream_object(
            storage,
            key,
            filename=service.download_name(run_id, name),
            media_type=content_type(name),
            missing=ApiError(
                404,
                "artifact_not_found",
                f"{name!r} of run {run_id} is recorded but missing from storage",
                field="name",
            ),
        )


Redirect = Annotated[bool, Query(description="answer 307 to a presigned S3 URL instead of streaming the file")]


@router.get(
    "/{run_id}/panel",
    responses=error_responses(
        {
            200: {"content": {"application/vnd.apache.parquet": {}}, "description": "the panel as Parquet"},
            307: {"description": "redirect=true: a presigned S3 URL"},
            **_NOT_READY,
        }
    ),
    response_class=StreamingResponse,
    summary="The run's panel (Parquet)",
)
def get_panel(
    uow: UnitOfWorkDep, caller: Caller, storage: StorageDep, run_id: uuid.UUID, redirect: Redirect = False
) -> Response:
    """The per-interval panel of every session, streamed from S3, or with `redirect=true` a 307 to a
    presigned URL so large files bypass the API."""
    return _artifact_response(uow, caller, storage, run_id, "panel", redirect)


@router.get(
    "/{run_id}/artifacts/{name}",
    responses=error_responses(
        {200: {"description": "the file"}, 307: {"description": "redirect=true: a presigned S3 URL"}, **_NOT_READY}
    ),
    response_class=StreamingResponse,
    summary="One of the run's files: " + ", ".join(ARTIFACTS),
)
def get_artifact(
    uow: UnitOfWorkDep, caller: Caller, storage: StorageDep, run_id: uuid.UUID, name: str, redirect: Redirect = False
) -> Response:
    return _artifact_response(uow, caller, storage, run_id, name, redirect)
