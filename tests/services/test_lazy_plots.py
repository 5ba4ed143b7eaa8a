"""A run's plots are drawn on first request, against the real stack (the API process, the run worker, Postgres,
Redis and S3): a succeeded run has no plots until a client asks for one; that request waits for a worker to draw
both and gets the PNG, later requests get the stored file without a drawing, concurrent first requests draw once,
a drawing that fails answers 503 `plot_failed` and is sent again after plot_retry_after_s, and another team's run
or a run that has not succeeded answers as for any other file (404, 409).

Drawings are counted in the worker's log ("plots drawn and uploaded") and in their follow-up record's sends.
"""

from __future__ import annotations

import re
import threading
import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import Engine, func, update
from sqlalchemy.orm import Session

from algocomp.client import Client
from algocomp.platform.db import FollowUp, Result
from algocomp.platform.queue import DRAW_TASK
from algocomp.platform.settings import Settings
from algocomp.platform.storage import Storage, run_key

from .conftest import ServiceProcess, api_get, bearer, create_user
from .test_worker import baseline, create_run, follow_up_record, load_result

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PLOTS = ("prices_plot", "impulse_plot")
TINY_OVERRIDES = ["horizon.max_periods=5000", "logging.interval=500"]
RUN_TIMEOUT_S = 120


def succeeded_run(api_server: str, seed: int) -> str:
    """A tiny run through the API, waited for until it succeeded; returns its id."""
    with Client(api_server) as client:
        run_id = str(
            client.launch_run(preset="calvano-2020-baseline", seed=seed, sessions=1, overrides=TINY_OVERRIDES)["id"]
        )
        final = client.wait(run_id, timeout=RUN_TIMEOUT_S)
    assert final["status"] == "succeeded", final
    return run_id


def drawings(worker: ServiceProcess, run_id: str) -> int:
    """How many times the worker drew the run's plots."""
    return len(re.findall(rf"run {run_id}: plots drawn and uploaded", worker.output(tail_chars=10**9)))


def plot(api_server: str, run_id: str, name: str, **params: str) -> httpx.Response:
    return api_get(f"{api_server}/results/{run_id}/artifacts/{name}", params=params, timeout=60)


def test_the_first_request_draws_and_stores_and_the_next_one_reads_the_stored_file(
    api_server: str, worker_process: ServiceProcess, db_engine: Engine, storage: Storage
) -> None:
    run_id = succeeded_run(api_server, seed=701)
    key = uuid.UUID(run_id)
    result = load_result(db_engine, key)
    assert result is not None and not set(PLOTS) & set(result.artifacts)  # nothing drawn when the run succeeded
    links = api_get(f"{api_server}/results/{run_id}", timeout=30).json()["artifacts"]
    for name in PLOTS:
        assert links[name]["url"] == f"/results/{run_id}/artifacts/{name}"
        assert links[name]["presigned_url"] is None and links[name]["content_type"] == "image/png"
    assert follow_up_record(db_engine, key, DRAW_TASK) is None

    first = plot(api_server, run_id, "prices_plot")
    assert first.status_code == 200, first.text
    assert first.headers["content-type"] == "image/png" and first.content.startswith(PNG_MAGIC)
    assert drawings(worker_process, run_id) == 1
    stored = load_result(db_engine, key)
    assert stored is not None and {name: stored.artifacts[name] for name in PLOTS} == {
        name: run_key(key, name) for name in PLOTS
    }
    assert storage.get_bytes(run_key(key, "prices_plot")) == first.content
    record = follow_up_record(db_engine, key, DRAW_TASK)
    assert record is not None and record.status == "done" and record.sends == 1

    # the other plot was drawn with it; both are plain S3 objects now, by the API or by a presigned redirect
    redirect = plot(api_server, run_id, "impulse_plot", redirect="true")
    assert redirect.status_code == 307
    assert httpx.get(redirect.headers["location"], timeout=30).content.startswith(PNG_MAGIC)
    again = plot(api_server, run_id, "prices_plot")
    assert again.status_code == 200 and again.content == first.content
    links = api_get(f"{api_server}/results/{run_id}", timeout=30).json()["artifacts"]
    assert httpx.get(links["impulse_plot"]["presigned_url"], timeout=30).content.startswith(PNG_MAGIC)
    assert drawings(worker_process, run_id) == 1
    record = follow_up_record(db_engine, key, DRAW_TASK)
    assert record is not None and record.sends == 1


def test_concurrent_first_requests_draw_once(
    api_server: str, worker_process: ServiceProcess, db_engine: Engine
) -> None:
    run_id = succeeded_run(api_server, seed=702)
    names = ["prices_plot", "impulse_plot", "prices_plot", "impulse_plot"]
    answers: list[httpx.Response | None] = [None] * len(names)
    barrier = threading.Barrier(len(names))

    def ask(index: int) -> None:
        barrier.wait()
        answers[index] = plot(api_server, run_id, names[index])

    threads = [threading.Thread(target=ask, args=(index,)) for index in range(len(names))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    for answer in answers:
        assert answer is not None and answer.status_code == 200, answer.text if answer else None
        assert answer.content.startswith(PNG_MAGIC)
    assert answers[0].content == answers[2].content and answers[1].content == answers[3].content  # type: ignore[union-attr]
    assert drawings(worker_process, run_id) == 1
    record = follow_up_record(db_engine, uuid.UUID(run_id), DRAW_TASK)
    assert record is not None and record.status == "done" and record.sends == 1


def test_another_teams_run_is_404_and_a_run_not_succeeded_is_409_and_neither_draws(
    api_server: str, worker_process: ServiceProcess, service_env: Settings, db_engine: Engine
) -> None:
    run_id = succeeded_run(api_server, seed=703)
    outsider = create_user(service_env.database_url, f"outsider-{uuid.uuid4().hex[:8]}", "another-team")
    answer = httpx.get(f"{api_server}/results/{run_id}/artifacts/prices_plot", headers=bearer(outsider), timeout=30)
    assert answer.status_code == 404, answer.text
    assert answer.json()["error"]["code"] == "run_not_found"

    queued = create_run(db_engine, baseline(sessions=1, max_periods=1000, seed=704))  # never sent: stays queued
    answer = plot(api_server, str(queued), "prices_plot")
    assert answer.status_code == 409, answer.text
    assert answer.json()["error"]["code"] == "not_ready" and answer.json()["error"]["status"] == "queued"

    unknown = plot(api_server, run_id, "no_such_plot")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "artifact_not_found"
    for run in (uuid.UUID(run_id), queued):
        assert follow_up_record(db_engine, run, DRAW_TASK) is None
    assert drawings(worker_process, run_id) == 0


def test_a_drawing_that_fails_answers_503_and_is_sent_again_after_the_retry_delay(
    api_server: str, worker_process: ServiceProcess, db_engine: Engine, storage: Storage
) -> None:
    run_id = succeeded_run(api_server, seed=705)
    key = uuid.UUID(run_id)
    panel = storage.get_bytes(run_key(key, "panel"))
    storage.delete(run_key(key, "panel"))  # nothing to draw from: the drawing fails for good (not transient)

    failed = plot(api_server, run_id, "prices_plot")
    assert failed.status_code == 503, failed.text
    error = failed.json()["error"]
    assert error["code"] == "plot_failed" and "KeyError" in error["message"], error
    assert int(failed.headers["retry-after"]) >= 1
    # within plot_retry_after_s the error stands: answered at once, nothing sent again
    again = plot(api_server, run_id, "impulse_plot")
    assert again.status_code == 503 and again.json()["error"]["code"] == "plot_failed"
    record = follow_up_record(db_engine, key, DRAW_TASK)
    assert record is not None and record.status == "failed" and record.sends == 1

    # once the delay has passed (the record is made older than it) and the table is back, a request draws them
    storage.put_bytes(run_key(key, "panel"), panel, "application/vnd.apache.parquet")
    with Session(db_engine) as session, session.begin():
        session.execute(
            update(FollowUp)
            .where(FollowUp.run_id == key, FollowUp.task == DRAW_TASK)
            .values(updated_at=func.now() - timedelta(hours=2))
        )
    drawn = plot(api_server, run_id, "prices_plot")
    assert drawn.status_code == 200, drawn.text
    assert drawn.content.startswith(PNG_MAGIC)
    record = follow_up_record(db_engine, key, DRAW_TASK)
    assert record is not None and record.status == "done" and record.error is None and record.sends == 1
    assert drawings(worker_process, run_id) == 1


@pytest.mark.parametrize("name", PLOTS)
def test_a_run_without_its_tables_has_no_plot_to_draw(
    api_server: str, worker_process: ServiceProcess, db_engine: Engine, name: str
) -> None:
    """A result whose impulse table was never recorded (a run stored before impulse tables, say): 404, no drawing."""
    run_id = succeeded_run(api_server, seed=706 if name == "prices_plot" else 707)
    key = uuid.UUID(run_id)
    with Session(db_engine) as session, session.begin():
        session.execute(
            update(Result).where(Result.run_id == key).values(artifacts=Result.artifacts.op("-")("impulse"))
        )
    answer = plot(api_server, run_id, name)
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "artifact_not_found"
    assert name not in api_get(f"{api_server}/results/{run_id}", timeout=30).json()["artifacts"]
    assert follow_up_record(db_engine, key, DRAW_TASK) is None
    assert drawings(worker_process, run_id) == 0
