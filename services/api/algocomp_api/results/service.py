"""Result service functions: find a succeeded run's result row and the S3 key of each of its artifacts."""

from __future__ import annotations

import uuid

from algocomp.platform.db import Result, RunStatus
from algocomp.platform.db.accounts import Principal
from algocomp.platform.storage import ARTIFACTS, Storage, content_type
from algocomp.platform.unit_of_work import UnitOfWork
from algocomp_api.errors import ApiError
from algocomp_api.results.schemas import ArtifactLink, ResultOut
from algocomp_api.runs import service as runs

PRESIGNED_URL_EXPIRES_S = 3600


def get_result(uow: UnitOfWork, caller: Principal, run_id: uuid.UUID) -> Result:
    """The result of a succeeded run; 404 for an unknown run, 409 `not_ready` (with its status) otherwise."""
    run = runs.get_run(uow, caller, run_id)
    result = uow.runs.result(run_id) if run.status == RunStatus.succeeded else None
    if result is None:
        hint = {
            RunStatus.queued: "it is waiting for a worker",
            RunStatus.running: f"it is running ({run.progress:.0%} done)",
            RunStatus.failed: "it failed; see error on the run",
            RunStatus.cancelled: "it was cancelled",
            RunStatus.succeeded: "its results are being stored",
        }[run.status]
        raise ApiError(
            409,
            "not_ready",
            f"run {run_id} has no results: {hint}; follow /streams/{run_id} or poll /runs/{run_id}",
            status=run.status.value,
        )
    return result


def artifact_key(result: Result, name: str) -> str:
    """The S3 key of artifact `name` of a result; 404 naming the known artifacts otherwise."""
    if name not in ARTIFACTS:
        raise ApiError(
            404, "artifact_not_found", f"no artifact {name!r}; artifacts are: {', '.join(ARTIFACTS)}", field="name"
        )
    key = result.artifacts.get(name)
    if key is None:
        raise ApiError(
            404,
            "artifact_not_found",
            f"run {result.run_id} has no {name!r}; it has: {', '.join(result.artifacts) or 'no files'}",
            field="name",
        )
    return key


def download_name(run_id: uuid.UUID, name: str) -> str:
    """The file name offered to a browser: the run id and the artifact's own file name."""
    return f"{run_id}-{ARTIFACTS[name].replace('/', '-')}"


def result_out(result: Result, storage: Storage) -> ResultOut:
    artifacts = {
        name: ArtifactLink(
            key=key,
            url=f"/results/{result.run_id}/artifacts/{name}",
            presigned_url=storage.presigned_url(key, expires_s=PRESIGNED_URL_EXPIRES_S),
            content_type=content_type(name),
        )
        for name, key in sorted(result.artifacts.items())
    }
    return ResultOut(
        run_id=result.run_id,
        status=RunStatus.succeeded.value,
        summary=result.summary,
        artifacts=artifacts,
        created_at=result.created_at,
    )
