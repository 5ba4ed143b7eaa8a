"""Result service functions: find a succeeded run's result row and the S3 key of each of its artifacts, and ask for
its plots, which are drawn on first request.

A run's two plots (PLOTS) are not drawn when it succeeds (drawing costs ~0.3 s, far more than a tiny run): the
first request for one records the drawing as a follow-up (`algocomp.draw_plots`, claimed in one statement, so
concurrent first requests send it once) and a worker draws both from the run's stored tables, uploads them and adds
them to the run's artifacts; later requests find them there, a plain S3 object. A run whose tables were not stored
(no panel or impulse artifact) has no plots to draw: 404 as for any missing artifact."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from algocomp.platform.db import Result, RunStatus
from algocomp.platform.db.accounts import Principal
from algocomp.platform.db.follow_ups import FAILED
from algocomp.platform.queue import DRAW_TASK, PLOTS_QUEUE
from algocomp.platform.settings import Settings
from algocomp.platform.storage import ARTIFACTS, Storage, content_type, run_key
from algocomp.platform.unit_of_work import UnitOfWork
from algocomp_api.errors import ApiError
from algocomp_api.results.schemas import ArtifactLink, ResultOut
from algocomp_api.runs import service as runs

PRESIGNED_URL_EXPIRES_S = 3600
# Artifacts drawn on first request, and the stored tables they are drawn from.
PLOTS = ("prices_plot", "impulse_plot")
PLOT_SOURCES = ("panel", "impulse")


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


def drawable(result: Result, name: str) -> bool:
    """Whether `name` is a plot not drawn yet that can be drawn from the result's stored tables."""
    return name in PLOTS and name not in result.artifacts and all(table in result.artifacts for table in PLOT_SOURCES)


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


@dataclass(frozen=True)
class PlotState:
    """Where a run's plot stands: its key once drawn, else the drawing's record (None: never asked for)."""

    key: str | None
    status: str | None = None
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.key is None and self.status == FAILED


def ask_for_plots(uow: UnitOfWork, run_id: uuid.UUID, settings: Settings) -> bool:
    """Record the drawing of the run's plots and send it once this transaction commits, unless it was sent already
    (pending or done) or failed less than plot_retry_after_s ago; True when this call sent it. A send that fails
    leaves the record pending: the stale-run sweeper sends it again."""
    claimed = uow.follow_ups.claim(run_id, DRAW_TASK, PLOTS_QUEUE, retry_failed_after_s=settings.plot_retry_after_s)
    if claimed:
        uow.send_task(DRAW_TASK, run_id, PLOTS_QUEUE, description=f"send {DRAW_TASK} of run {run_id}")
    return claimed


def plot_state(uow: UnitOfWork, run_id: uuid.UUID, name: str) -> PlotState:
    """A fresh read of plot `name` of the run (each call in its own transaction)."""
    result = uow.runs.result(run_id)
    key = result.artifacts.get(name) if result is not None else None
    if key is not None:
        return PlotState(key)
    record = uow.follow_ups.get(run_id, DRAW_TASK)
    return PlotState(None, record.status if record else None, record.error if record else None)


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
    # plots not drawn yet: their API link draws them on first request; no presigned URL to an object not there yet
    for name in PLOTS:
        if drawable(result, name):
            artifacts[name] = ArtifactLink(
                key=run_key(result.run_id, name),
                url=f"/results/{result.run_id}/artifacts/{name}",
                presigned_url=None,
                content_type=content_type(name),
            )
    artifacts = dict(sorted(artifacts.items()))
    return ResultOut(
        run_id=result.run_id,
        status=RunStatus.succeeded.value,
        summary=result.summary,
        artifacts=artifacts,
        created_at=result.created_at,
    )
