"""The unit of work and the run repository against the real Postgres and Redis: messages leave only after the
commit, a rollback drops them, a failing message neither undoes the commit nor stops the others, and every
run transition is decided by one conditional update."""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Iterator

import pytest
import redis
from sqlalchemy import Engine, text

from algocomp.platform.db import RunStatus, sessionmaker_for
from algocomp.platform.db.runs import CancelOutcome, ClaimLost, new_run
from algocomp.platform.progress import ProgressChannel
from algocomp.platform.queue import RUNS_QUEUE, create_celery
from algocomp.platform.settings import Settings
from algocomp.platform.unit_of_work import Messaging, UnitOfWork, UnitOfWorkFactory
from algocomp.scenarios import load_scenario, scenario_hash


@pytest.fixture
def isolated(service_env: Settings, redis_client: redis.Redis) -> Iterator[Settings]:
    """Settings with a Redis key prefix of their own: tasks sent here reach no worker of this session."""
    settings = service_env.model_copy(update={"key_prefix": f"{service_env.key_prefix}uow-{uuid.uuid4().hex[:8]}:"})
    yield settings
    for key in redis_client.scan_iter(match=f"{settings.key_prefix}*"):
        redis_client.delete(key)


@pytest.fixture
def units(isolated: Settings, db_engine: Engine, redis_client: redis.Redis) -> UnitOfWorkFactory:
    messaging = Messaging.from_settings(isolated, create_celery(isolated), redis_client)
    return UnitOfWorkFactory(sessionmaker_for(db_engine), messaging)


def _queued_run(uow: UnitOfWork) -> uuid.UUID:
    scenario = load_scenario("calvano-2020-baseline")
    team = uow.accounts.team(f"uow-{uuid.uuid4().hex[:8]}", create=True)
    assert team is not None
    record, created = uow.scenarios.store(scenario, team_id=team.id)
    assert created
    run = new_run(record.id, scenario, ["seed=3"], team_id=team.id, owner_id=None)
    uow.runs.add([run])
    assert run.scenario_hash == scenario_hash(scenario) and run.status == RunStatus.queued
    return run.id


def _status(engine: Engine, run_id: uuid.UUID) -> str | None:
    with engine.connect() as connection:
        return connection.execute(text("SELECT status::text FROM runs WHERE id = :id"), {"id": run_id}).scalar()


def _events(settings: Settings, client: redis.Redis, run_id: uuid.UUID) -> list[str]:
    return [e.event for e in ProgressChannel(client, run_id, prefix=settings.key_prefix).replay()]


def _tasks(settings: Settings, client: redis.Redis) -> int:
    return int(client.llen(f"{settings.key_prefix}{RUNS_QUEUE}"))


def test_messages_leave_only_after_the_commit(
    units: UnitOfWorkFactory, isolated: Settings, db_engine: Engine, redis_client: redis.Redis
) -> None:
    with units() as uow:
        run_id = _queued_run(uow)
        uow.publish(run_id, "queued", {"status": "queued"})
        uow.enqueue_run(run_id)
        assert len(uow.pending) == 2
        # inside the transaction: nobody outside sees the row, and nothing has been sent
        assert _status(db_engine, run_id) is None
        assert _events(isolated, redis_client, run_id) == [] and _tasks(isolated, redis_client) == 0
    assert _status(db_engine, run_id) == "queued"
    assert _events(isolated, redis_client, run_id) == ["queued"] and _tasks(isolated, redis_client) == 1
    assert uow.pending == []


def test_a_rollback_drops_the_rows_and_the_messages(
    units: UnitOfWorkFactory, isolated: Settings, db_engine: Engine, redis_client: redis.Redis
) -> None:
    with pytest.raises(RuntimeError, match="the route failed"), units() as uow:
        run_id = _queued_run(uow)
        uow.publish(run_id, "queued", {"status": "queued"})
        uow.enqueue_run(run_id)
        raise RuntimeError("the route failed")
    assert _status(db_engine, run_id) is None
    assert _events(isolated, redis_client, run_id) == [] and _tasks(isolated, redis_client) == 0


def test_a_failing_message_is_logged_and_the_others_still_go(
    isolated: Settings,
    db_engine: Engine,
    redis_client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Progress to a Redis that is down fails; the commit stands and the task (another Redis) is still sent."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    down = redis.Redis(port=closed_port, socket_connect_timeout=1)
    messaging = Messaging(create_celery(isolated), down, isolated.key_prefix, isolated.progress_maxlen)
    with (
        caplog.at_level(logging.WARNING, logger="algocomp.platform.unit_of_work"),
        UnitOfWork(sessionmaker_for(db_engine)(), messaging) as uow,
    ):
        run_id = _queued_run(uow)
        uow.publish(run_id, "queued", {"status": "queued"})
        uow.enqueue_run(run_id)
    assert _status(db_engine, run_id) == "queued"
    assert _tasks(isolated, redis_client) == 1
    failed = [r for r in caplog.records if "could not publish the 'queued' event" in r.getMessage()]
    assert len(failed) == 1 and getattr(failed[0], "run_id", None) == str(run_id)


def test_run_transitions_are_conditional(units: UnitOfWorkFactory, db_engine: Engine) -> None:
    with units() as uow:
        run_id = _queued_run(uow)

    with units() as uow:
        first = uow.runs.claim(run_id, worker="a", lease_s=600)
    with units() as uow:
        assert uow.runs.claim(run_id, worker="b", lease_s=600) is None, "a fresh lease is not taken twice"
        lease = uow.runs.lease(run_id, lease_s=600)
    assert first is not None and first.attempt == 1
    assert lease is not None and lease.attempt == 1 and 590 < lease.left_s <= 600, lease

    with units() as uow:
        assert uow.runs.heartbeat(first, progress=0.5) is False
    with units() as uow:
        assert uow.runs.cancel(run_id) is CancelOutcome.requested
    with units() as uow:
        assert uow.runs.heartbeat(first) is True, "the worker hears the cancel request"

    # the lease runs out: another delivery takes over, and the first attempt can write nothing more
    with db_engine.begin() as connection:
        connection.execute(
            text("UPDATE runs SET heartbeat_at = now() - interval '1 hour' WHERE id = :id"), {"id": run_id}
        )
    with units() as uow:
        expired = uow.runs.lease(run_id, lease_s=600)
        second = uow.runs.claim(run_id, worker="b", lease_s=600)
    assert expired is not None and expired.attempt == 1 and expired.left_s == 0.0, expired
    assert second is not None and second.attempt == 2
    with pytest.raises(ClaimLost), units() as uow:
        uow.runs.heartbeat(first)
    with units() as uow:
        assert uow.runs.finish(first, RunStatus.failed, error="late") is False

    with units() as uow:
        assert uow.runs.finish(second, RunStatus.cancelled, sessions_done=0) is True
    assert _status(db_engine, run_id) == "cancelled"
    with units() as uow:
        assert uow.runs.lease(run_id, lease_s=600) is None, "a finished run has no lease"
        assert uow.runs.cancel(run_id) is CancelOutcome.finished
        assert uow.runs.claim(run_id, worker="c", lease_s=0) is None


def test_a_queued_run_is_cancelled_at_once_and_cannot_be_claimed(units: UnitOfWorkFactory) -> None:
    with units() as uow:
        run_id = _queued_run(uow)
    with units() as uow:
        assert uow.runs.cancel(run_id) is CancelOutcome.cancelled
        run = uow.runs.get(run_id)
        assert run is not None and run.status == RunStatus.cancelled and run.finished_at is not None
    with units() as uow:
        assert uow.runs.claim(run_id, worker="a", lease_s=600) is None


def test_a_result_exists_exactly_when_its_run_succeeded(units: UnitOfWorkFactory) -> None:
    with units() as uow:
        run_id = _queued_run(uow)
    with units() as uow:
        claim = uow.runs.claim(run_id, worker="a", lease_s=600)
    assert claim is not None
    with pytest.raises(ValueError, match="summary and artifacts"), units() as uow:
        uow.runs.finish(claim, RunStatus.succeeded)
    with units() as uow:
        assert uow.runs.get(run_id).status == RunStatus.running  # type: ignore[union-attr]
        assert uow.runs.result(run_id) is None
    with units() as uow:
        assert uow.runs.finish(claim, RunStatus.succeeded, summary={"sessions": 1}, artifacts={"panel": "k"})
    with units() as uow:
        uow.runs.add_artifacts(run_id, {"prices_plot": "p"})
    with units() as uow:
        row = uow.runs.succeeded_result(run_id)
        assert row is not None and row.artifacts == {"panel": "k", "prices_plot": "p"} and row.attempt == 1
