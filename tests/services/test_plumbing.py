"""The shared plumbing against real services: S3 over HTTP (rclone), Redis streams and pub/sub, MLflow over
HTTP, structured logs, the per-test database session, and the process helper of conftest."""

from __future__ import annotations

import io
import json
import logging
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import redis
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from algocomp.platform.db import Run, RunStatus, ScenarioRecord
from algocomp.platform.db.models import Team
from algocomp.platform.settings import Settings
from algocomp.platform.storage import (
    ARTIFACTS,
    Storage,
    content_type,
    run_key,
    run_prefix,
    upload_run_folder,
)
from devstack import REPO_ROOT

from .conftest import ServiceStartError, _teardown, start_process

# ------------------------------------------------------------------------------------------------ storage


def test_storage_round_trip_over_http(storage: Storage) -> None:
    prefix = f"tests/{uuid.uuid4().hex}/"
    storage.put_bytes(prefix + "a.json", b'{"profit_gain": 0.8}', "application/json")
    storage.put_bytes(prefix + "nested/b.bin", bytes(range(256)) * 10)

    assert storage.get_bytes(prefix + "a.json") == b'{"profit_gain": 0.8}'
    assert storage.exists(prefix + "a.json")
    assert not storage.exists(prefix + "missing.json")
    assert storage.list(prefix) == [prefix + "a.json", prefix + "nested/b.bin"]

    chunks, length, _kind = storage.open_stream(prefix + "nested/b.bin", chunk_size=1000)
    body = b"".join(chunks)
    assert (body, length) == (bytes(range(256)) * 10, 2560)
    _, _, json_kind = storage.open_stream(prefix + "a.json")
    assert json_kind == "application/json"

    with pytest.raises(KeyError, match="missing"):
        storage.get_bytes(prefix + "missing.json")
    with pytest.raises(KeyError):
        storage.open_stream(prefix + "missing.json")

    url = storage.presigned_url(prefix + "a.json", expires_s=60)
    assert httpx.get(url, timeout=10).content == b'{"profit_gain": 0.8}'

    assert storage.delete_prefix(prefix) == 2
    assert storage.list(prefix) == []
    with pytest.raises(ValueError):
        storage.delete_prefix("")
    storage.ping()


def test_presigned_urls_are_signed_for_the_public_endpoint(service_env: Settings, storage: Storage) -> None:
    """Clients get links for the endpoint they reach (here `localhost` where the services use 127.0.0.1); the
    signature covers the host, so the link only works because it was signed for that name."""
    key = f"tests/{uuid.uuid4().hex}/public.json"
    storage.put_bytes(key, b'{"consumer_surplus": 0.1}', "application/json")
    internal = urlsplit(service_env.s3_endpoint_url or "")
    public_endpoint = f"http://localhost:{internal.port}"
    public = Storage(service_env.model_copy(update={"s3_public_endpoint_url": public_endpoint}))

    url = public.presigned_url(key, expires_s=60)
    assert url.startswith(f"{public_endpoint}/{service_env.s3_bucket}/")
    assert httpx.get(url, timeout=10).content == b'{"consumer_surplus": 0.1}'
    # the services still talk to the internal endpoint
    assert public.get_bytes(key) == b'{"consumer_surplus": 0.1}'
    assert public.client.meta.endpoint_url == service_env.s3_endpoint_url
    # a link signed for one host name is refused under another: the public setting is what makes it work
    internal_link = storage.presigned_url(key, expires_s=60)
    assert internal_link.startswith(f"{service_env.s3_endpoint_url}/")
    moved = internal_link.replace(f"{internal.hostname}:{internal.port}", f"localhost:{internal.port}", 1)
    assert httpx.get(moved, timeout=10).status_code == 403
    storage.delete_prefix(key)


def test_storage_ping_fails_clearly_when_the_endpoint_is_down(service_env: Settings) -> None:
    from algocomp.platform.storage import StorageError
    from devstack import free_port

    dead = Storage(service_env.model_copy(update={"s3_endpoint_url": f"http://127.0.0.1:{free_port()}"}))
    with pytest.raises(StorageError, match="S3 not reachable"):
        dead.ping()


def test_run_keys_are_deterministic_per_run() -> None:
    run_id = uuid.UUID("00000000-0000-0000-0000-000000000001")
    assert run_prefix(run_id) == "runs/00000000-0000-0000-0000-000000000001/"
    assert run_key(run_id, "panel") == "runs/00000000-0000-0000-0000-000000000001/panel.parquet"
    assert run_key(run_id, "prices_plot").endswith("/plots/prices.png")
    assert content_type("panel") == "application/vnd.apache.parquet"
    assert content_type("summary") == "application/json"
    assert content_type("prices_plot") == "image/png"
    with pytest.raises(KeyError, match="unknown artifact"):
        run_key(run_id, "weights")


def test_upload_run_folder_uploads_every_present_artifact(storage: Storage, tmp_path: Path) -> None:
    run_id = uuid.uuid4()
    (tmp_path / "plots").mkdir()
    (tmp_path / "summary.json").write_text('{"profit_gain": 0.5}')
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "plots" / "prices.png").write_bytes(b"\x89PNG fake")
    (tmp_path / "unrelated.txt").write_text("not an artifact")

    uploaded = upload_run_folder(storage, run_id, tmp_path)

    assert uploaded == {name: run_key(run_id, name) for name in ("summary", "config", "prices_plot")}
    assert storage.list(run_prefix(run_id)) == sorted(uploaded.values())
    assert set(ARTIFACTS) >= set(uploaded)
    assert storage.get_bytes(run_key(run_id, "prices_plot")) == b"\x89PNG fake"
    storage.delete_prefix(run_prefix(run_id))


# ----------------------------------------------------------------------------------------------- database


def test_db_session_rolls_back_after_each_test_part_one(db_session: Session) -> None:
    team = Team(name=f"plumbing-{uuid.uuid4().hex[:8]}")
    db_session.add(team)
    db_session.flush()
    scenario = ScenarioRecord(team_id=team.id, name="plumbing", scenario_hash="plumbing-hash", spec={})
    db_session.add(scenario)
    db_session.commit()  # a savepoint inside the outer transaction
    db_session.add(
        Run(team_id=team.id, scenario_id=scenario.id, spec={}, scenario_hash="plumbing-hash", seed=1, sessions=1)
    )
    db_session.commit()
    run = db_session.scalars(select(Run).where(Run.scenario_hash == "plumbing-hash")).one()
    assert run.status is RunStatus.queued and run.attempt == 0


def test_db_session_rolls_back_after_each_test_part_two(db_session: Session) -> None:
    # Other modules share the session's database, so look only for what part one wrote.
    rows = select(func.count()).select_from(ScenarioRecord).where(ScenarioRecord.scenario_hash == "plumbing-hash")
    assert db_session.scalar(rows) == 0


def test_the_session_database_is_fresh_and_migrated(db_session: Session, service_env: Settings) -> None:
    name = db_session.execute(text("SELECT current_database()")).scalar_one()
    assert name.startswith("algocomp_test_") and name in service_env.database_url
    head = ScriptDirectory.from_config(Config(str(REPO_ROOT / "alembic.ini"))).get_current_head()
    assert db_session.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == head


# ---------------------------------------------------------------------------------------------- processes


def _fail(message: str) -> None:
    raise ConnectionError(message)


def test_fixture_teardown_keeps_the_first_error_in_front() -> None:
    """A set-up that fails is what the report shows; clean-ups of what it had acquired still run, and one that
    fails as a consequence (Redis unreachable) becomes a warning instead of replacing the first error."""
    cleaned: list[str] = []
    with pytest.raises(RuntimeError, match="connection refused on 5432"), pytest.warns(UserWarning, match="redis down"):
        with _teardown() as teardown:
            teardown.add("remove folder", lambda: cleaned.append("folder"))
            teardown.add("delete keys", lambda: _fail("redis down"))
            raise RuntimeError("connection refused on 5432")
    assert cleaned == ["folder"]


def test_fixture_teardown_raises_its_own_error_after_running_every_step() -> None:
    cleaned: list[str] = []
    # steps run last-registered first: "stop s3" fails first and is raised, "delete keys" after it is a warning
    with pytest.raises(ConnectionError, match="s3 stuck"), pytest.warns(UserWarning, match="redis down"):
        with _teardown() as teardown:
            teardown.add("drop database", lambda: cleaned.append("database"))
            teardown.add("delete keys", lambda: _fail("redis down"))
            teardown.add("stop s3", lambda: _fail("s3 stuck"))
    assert cleaned == ["database"]


def test_start_process_fails_clearly_when_the_service_module_is_missing(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "uvicorn", "algocomp_no_such_service.main:app", "--port", "1"]
    with pytest.raises(ServiceStartError) as failure:
        start_process(argv, lambda: False, timeout=60, log_dir=tmp_path)
    message = str(failure.value)
    assert "exited with code" in message and "algocomp_no_such_service" in message


def test_start_process_times_out_with_the_output(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import time; print('still starting', flush=True); time.sleep(60)"]
    with pytest.raises(ServiceStartError, match=r"not ready after 2 s:\nstill starting"):
        start_process(argv, lambda: False, timeout=2, log_dir=tmp_path)


# ----------------------------------------------------------------------------------------------- progress


def test_progress_events_replay_in_order(service_env: Settings, redis_client: redis.Redis) -> None:
    from algocomp.platform.progress import ProgressChannel, stream_key

    run_id = uuid.uuid4()
    channel = ProgressChannel.from_settings(service_env, run_id, client=redis_client)
    assert channel.stream == stream_key(service_env.key_prefix, run_id)
    assert channel.stream.startswith(service_env.key_prefix)
    assert channel.replay() == [] and channel.last() is None

    ids = [channel.publish("queued", {"status": "queued"}), channel.publish("started", {"worker": "w1"})]
    ids += [channel.publish("progress", {"sessions_done": done, "share_done": done / 3}) for done in (1, 2, 3)]
    ids.append(channel.publish("succeeded", {"status": "succeeded"}))

    events = channel.replay()
    assert [event.id for event in events] == ids
    assert [event.event for event in events] == ["queued", "started", "progress", "progress", "progress", "succeeded"]
    assert events[3].data == {"sessions_done": 2, "share_done": 2 / 3}
    assert [event.terminal for event in events] == [False] * 5 + [True]

    after_second = channel.replay(after_id=ids[1])
    assert [event.id for event in after_second] == ids[2:]
    assert [event.id for event in channel.replay(after_id=ids[1], count=2)] == ids[2:4]
    assert channel.replay(after_id=ids[-1]) == []
    assert channel.last() == events[-1]


def test_progress_read_blocks_until_an_event_arrives(service_env: Settings, redis_client: redis.Redis) -> None:
    import threading
    import time

    from algocomp.platform.progress import ProgressChannel

    channel = ProgressChannel.from_settings(service_env, uuid.uuid4(), client=redis_client)
    first = channel.publish("started", {})
    assert channel.read(first, block_ms=100) == []

    publisher = ProgressChannel.from_settings(service_env, channel.run_id)
    timer = threading.Timer(0.3, lambda: publisher.publish("failed", {"status": "failed", "error": "boom"}))
    started = time.monotonic()
    timer.start()
    events = channel.read(first, block_ms=5000)
    timer.join()
    publisher.client.close()
    assert 0.2 < time.monotonic() - started < 4
    assert [(event.event, event.data, event.terminal) for event in events] == [
        ("failed", {"status": "failed", "error": "boom"}, True)
    ]


def test_progress_stream_is_capped(service_env: Settings, redis_client: redis.Redis) -> None:
    from algocomp.platform.progress import ProgressChannel

    channel = ProgressChannel(redis_client, uuid.uuid4(), prefix=service_env.key_prefix, maxlen=20)
    for period in range(600):
        channel.publish("progress", {"periods_done": period})
    last_id = channel.publish("cancelled", {"status": "cancelled"})

    length = redis_client.xlen(channel.stream)
    # MAXLEN ~ trims whole radix-tree nodes (100 entries each): about maxlen are kept, never the whole history
    assert 20 <= length <= 20 + 100
    events = channel.replay()
    assert len(events) == length and events[-1].id == last_id and events[-1].event == "cancelled"
    assert [event.data["periods_done"] for event in events[:-1]] == list(range(600 - length + 1, 600))


def test_progress_is_published_live_with_its_stream_id(service_env: Settings, redis_client: redis.Redis) -> None:
    import time

    from algocomp.platform.progress import ProgressChannel, channel_key

    channel = ProgressChannel.from_settings(service_env, uuid.uuid4(), client=redis_client)
    subscription = channel.subscribe()
    assert channel.channel == channel_key(service_env.key_prefix, channel.run_id)
    try:
        deadline = time.monotonic() + 5
        while subscription.subscribed is False and time.monotonic() < deadline:
            subscription.get_message(timeout=0.1)
        stream_id = channel.publish("progress", {"mean_price": 1.7, "profit_gain": float("nan")})
        message = None
        while message is None and time.monotonic() < deadline:
            message = subscription.get_message(timeout=0.5)
        assert message is not None, "no live message within 5 s"
        assert json.loads(message["data"]) == {
            "id": stream_id,
            "event": "progress",
            "data": {"mean_price": 1.7, "profit_gain": None},
        }
    finally:
        subscription.close()


def test_progress_refuses_unknown_event_names(service_env: Settings, redis_client: redis.Redis) -> None:
    from algocomp.platform.progress import ProgressChannel

    channel = ProgressChannel.from_settings(service_env, uuid.uuid4(), client=redis_client)
    with pytest.raises(ValueError, match="unknown progress event 'finished'"):
        channel.publish("finished", {})
    assert redis_client.exists(channel.stream) == 0


def test_async_progress_channel_replays_and_follows(service_env: Settings, redis_client: redis.Redis) -> None:
    import asyncio

    import redis.asyncio as aioredis

    from algocomp.platform.progress import AsyncProgressChannel, ProgressChannel, is_terminal

    run_id = uuid.uuid4()
    writer = ProgressChannel.from_settings(service_env, run_id, client=redis_client)
    first = writer.publish("started", {"worker": "w1"})

    async def follow() -> list[tuple[str, str]]:
        client = aioredis.Redis.from_url(service_env.redis_url)
        reader = AsyncProgressChannel.from_settings(service_env, run_id, client=client)
        try:
            seen = [(event.event, event.id) for event in await reader.replay()]
            last_id = seen[-1][1]
            await reader.publish("progress", {"share_done": 0.5})
            loop = asyncio.get_running_loop()
            loop.call_later(0.2, writer.publish, "succeeded", {"status": "succeeded"})
            while not is_terminal(seen[-1][0]):
                for event in await reader.read(last_id, block_ms=3000):
                    seen.append((event.event, event.id))
                    last_id = event.id
            return seen
        finally:
            await client.aclose()

    seen = asyncio.run(follow())
    assert [name for name, _ in seen] == ["started", "progress", "succeeded"]
    assert seen[0][1] == first


# ----------------------------------------------------------------------------------------------- tracking


def test_tracking_disabled_returns_none(service_env: Settings) -> None:
    from algocomp.platform.tracking import log_run

    assert service_env.mlflow_tracking_uri == ""
    assert log_run(service_env, run_id="r", scenario_name="s", params={}, metrics={}) is None


def test_tracking_against_a_dead_server_returns_none_quickly(
    service_env: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    import time

    from algocomp.platform.tracking import log_run
    from devstack import free_port

    settings = service_env.model_copy(
        update={"mlflow_tracking_uri": f"http://127.0.0.1:{free_port()}", "mlflow_timeout_s": 2.0}
    )
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="algocomp.platform.tracking"):
        result = log_run(
            settings, run_id=uuid.uuid4(), scenario_name="baseline", params={"seed": 1}, metrics={"profit_gain": 0.8}
        )
    assert result is None
    assert time.monotonic() - started < 15
    assert any("MLflow tracking of run" in record.getMessage() for record in caplog.records)


def test_tracking_params_are_flattened_and_metrics_numeric() -> None:
    from algocomp.platform.tracking import mlflow_metrics, mlflow_params

    params = mlflow_params({"market": {"demand": {"mu": 0.25}}, "agents": [1, 2], "note": "x" * 7000, "a b!": 1})
    assert params["market.demand.mu"] == "0.25" and params["agents"] == "[1, 2]"
    assert len(params["note"]) == 6000 and params["a b_"] == "1"
    metrics = mlflow_metrics({"profit_gain": 0.8, "n": 3, "ok": True, "label": "x", "bad": float("nan"), "d": {"e": 2}})
    assert metrics == {"profit_gain": 0.8, "n": 3.0, "d.e": 2.0}


def test_tracking_logs_to_a_real_mlflow_server(service_env: Settings, tmp_path: Path, start_service) -> None:
    from mlflow.tracking import MlflowClient

    from algocomp.platform.tracking import RUN_ID_TAG, log_run
    from devstack import free_port, venv_bin

    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    (tmp_path / "artifacts").mkdir()
    argv = [
        str(venv_bin("mlflow")),
        "server",
        "--backend-store-uri",
        f"sqlite:///{tmp_path / 'mlflow.db'}",
        "--default-artifact-root",
        str(tmp_path / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    try:
        start_service(argv, lambda: httpx.get(f"{uri}/health", timeout=2).status_code == 200, timeout=60)
    except ServiceStartError as error:  # a failure, not a skip: the tracking code cannot be checked without it
        pytest.fail(f"the MLflow server did not start within 60 s: {str(error)[-800:]}", pytrace=False)

    settings = service_env.model_copy(
        update={"mlflow_tracking_uri": uri, "mlflow_experiment": "algocomp-test", "mlflow_timeout_s": 10.0}
    )
    run_id = uuid.uuid4()
    arguments = {
        "run_id": run_id,
        "scenario_name": "calvano-baseline",
        "params": {"seed": 7, "market": {"firms": 2, "demand": {"mu": 0.25}}},
        "metrics": {"profit_gain": 0.83, "price_index": 1.2, "status": "ok"},
        "artifacts": {"panel": f"s3://algocomp-test/runs/{run_id}/panel.parquet"},
        "tags": {"worker": "runs@test"},
    }
    mlflow_run_id = log_run(settings, **arguments)
    assert mlflow_run_id is not None

    run = MlflowClient(tracking_uri=uri).get_run(mlflow_run_id)
    assert run.info.run_name == str(run_id) and run.info.status == "FINISHED"
    assert run.data.params == {"seed": "7", "market.firms": "2", "market.demand.mu": "0.25"}
    assert run.data.metrics == {"profit_gain": 0.83, "price_index": 1.2}
    assert run.data.tags[RUN_ID_TAG] == str(run_id)
    assert run.data.tags["algocomp.scenario"] == "calvano-baseline"
    assert run.data.tags["artifact.panel"] == f"s3://algocomp-test/runs/{run_id}/panel.parquet"
    assert run.data.tags["worker"] == "runs@test"

    # a redelivered run logs into the same MLflow run
    assert log_run(settings, **arguments) == mlflow_run_id


# ------------------------------------------------------------------------------------------------ logging


def test_json_log_lines_carry_the_bound_run_id() -> None:
    from algocomp.platform.logs import bind_run, configure_logging, current_run_id

    stream = io.StringIO()
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    try:
        handler = configure_logging("worker", "INFO", stream=stream)
        assert configure_logging("worker", "INFO", stream=stream) is not handler
        assert sum(1 for h in root.handlers if getattr(h, "_algocomp_handler", False)) == 1
        logger = logging.getLogger("algocomp.worker.test")
        with bind_run("run-123"):
            assert current_run_id() == "run-123"
            logger.info("claimed run with %d sessions", 4, extra={"attempt": 1})
            try:
                raise RuntimeError("scenario exploded")
            except RuntimeError:
                logger.exception("run failed")
        assert current_run_id() is None
        logger.warning("idle")
    finally:
        for handler in list(root.handlers):
            if getattr(handler, "_algocomp_handler", False):
                root.removeHandler(handler)
        for handler in saved_handlers:
            if handler not in root.handlers:
                root.addHandler(handler)
        root.setLevel(saved_level)

    claimed, failed, idle = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert claimed["message"] == "claimed run with 4 sessions"
    assert (claimed["run_id"], claimed["service"], claimed["level"], claimed["attempt"]) == (
        "run-123",
        "worker",
        "INFO",
        1,
    )
    assert claimed["logger"] == "algocomp.worker.test" and claimed["time"].endswith("+00:00")
    assert failed["run_id"] == "run-123" and "RuntimeError: scenario exploded" in failed["exception"]
    assert "run_id" not in idle


def test_console_log_lines_are_readable() -> None:
    from algocomp.platform.logs import ConsoleFormatter, RunIdFilter, bind_run

    record = logging.LogRecord("algocomp.api", logging.INFO, __file__, 1, "serving on %s", ("0.0.0.0:8000",), None)
    with bind_run("r1"):
        RunIdFilter("api").filter(record)
    line = ConsoleFormatter().format(record)
    assert line.endswith("INFO  api run=r1 algocomp.api: serving on 0.0.0.0:8000")


# ----------------------------------------------------------------------------------------------- devstack


def test_devstack_children_get_every_setting_explicitly(service_env: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import SecretStr

    from devstack import child_environment, services

    settings = service_env.model_copy(
        update={"progress_maxlen": 123, "s3_secret_key": SecretStr("another-secret"), "lease_s": 42}
    )
    env = child_environment(settings)
    assert env["ALGOCOMP_DATABASE_URL"] == settings.database_url
    assert env["ALGOCOMP_S3_SECRET_KEY"] == "another-secret"
    assert env["ALGOCOMP_MLFLOW_TRACKING_URI"] == ""
    # a child reading that environment gets the same settings back
    for name, value in env.items():
        if name.startswith("ALGOCOMP_"):
            monkeypatch.setenv(name, value)
    child_settings = Settings(_env_file=None)
    assert child_settings.model_dump() == settings.model_dump()
    assert child_settings.s3_secret_key.get_secret_value() == "another-secret"

    names = [service.name for service in services(service_env)]
    assert names == ["s3", "api", "worker", "aggregator", "beat", "flower"]  # no MLflow when tracking is off
    with_tracking = service_env.model_copy(update={"mlflow_tracking_uri": "http://127.0.0.1:5001"})
    assert [service.name for service in services(with_tracking)][:2] == ["s3", "mlflow"]
