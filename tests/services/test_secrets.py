"""Secrets stay secret: refused development defaults outside development, never on a command line (`ps`), in a
server's log file, a log line of the services or an API response."""

from __future__ import annotations

import io
import logging
import os
import secrets
import socket
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr, ValidationError

from algocomp.platform.logs import configure_logging
from algocomp.platform.settings import DEVELOPMENT_S3_SECRET, Settings, mask_url, redact
from algocomp_api.main import create_app

from .conftest import bearer


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _command_lines() -> dict[int, str]:
    """Every process's arguments, as `ps` shows them (/proc/PID/cmdline)."""
    lines = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                lines[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
    return lines


# ------------------------------------------------------------------------------------------------ settings


@pytest.mark.parametrize("environment", ["test", "production"])
def test_development_secrets_are_refused_outside_development(environment: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for exported in ("ALGOCOMP_S3_SECRET_KEY", "ALGOCOMP_DATABASE_URL", "ALGOCOMP_ENVIRONMENT"):
        monkeypatch.delenv(exported, raising=False)  # the service fixtures export them
    private_db = f"postgresql+psycopg://algocomp:{secrets.token_urlsafe(12)}@db/algocomp"
    with pytest.raises(ValidationError, match="ALGOCOMP_S3_SECRET_KEY must be set"):
        Settings(  # type: ignore[call-arg]
            _env_file=None, environment=environment, database_url=private_db, s3_secret_key=DEVELOPMENT_S3_SECRET
        )
    with pytest.raises(ValidationError, match="ALGOCOMP_DATABASE_URL must not use the development password"):
        Settings(_env_file=None, environment=environment, s3_secret_key="x" * 32)  # type: ignore[call-arg]
    chosen = Settings(  # type: ignore[call-arg]
        _env_file=None, environment=environment, database_url=private_db, s3_secret_key="x" * 32
    )
    assert chosen.s3_secret_key.get_secret_value() == "x" * 32
    development = Settings(_env_file=None, environment="development")  # type: ignore[call-arg]
    assert development.s3_secret_key.get_secret_value() == DEVELOPMENT_S3_SECRET


def test_settings_errors_do_not_quote_their_input(monkeypatch: pytest.MonkeyPatch) -> None:
    password = secrets.token_urlsafe(16)
    monkeypatch.setenv("ALGOCOMP_DATABASE_URL", f"postgresql+psycopg://algocomp:{password}@db/algocomp")
    monkeypatch.setenv("ALGOCOMP_S3_SECRET_KEY", password + "s3")
    monkeypatch.setenv("ALGOCOMP_LEASE_S", "1")  # invalid
    with pytest.raises(ValidationError) as raised:
        Settings(_env_file=None)  # type: ignore[call-arg]
    assert "lease_s" in str(raised.value) and password not in str(raised.value)


def test_settings_repr_and_redaction_mask_secrets() -> None:
    password, secret = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=f"postgresql+psycopg://algocomp:{password}@db:5432/algocomp",
        redis_url=f"redis://:{password}@redis:6379/0",
        s3_secret_key=SecretStr(secret),
        mlflow_tracking_password=SecretStr(secret + "m"),
    )
    for text in (repr(settings), str(settings)):
        assert password not in text and secret not in text
        assert "postgresql+psycopg://algocomp:***@db:5432/algocomp" in text
    assert set(settings.secrets()) == {password, secret, secret + "m"}
    leaked = f"failed: {settings.database_url} key={secret} pw={password} {secret}m"
    assert settings.redact(leaked) == "failed: postgresql+psycopg://algocomp:***@db:5432/algocomp key=*** pw=*** ***"
    assert mask_url("redis://user:p%40ss@h:1/0 and http://h/x@y") == "redis://user:***@h:1/0 and http://h/x@y"
    assert redact("nothing here", ["abc"]) == "nothing here"


def test_log_lines_mask_secrets_and_url_passwords(in_process_logging: None) -> None:
    secret = 'se"cr\\et-' + secrets.token_hex(8)
    for json_lines in (True, False):
        stream = io.StringIO()
        configure_logging("test", "DEBUG", stream=stream, json_lines=json_lines, secrets=[secret])
        logging.getLogger("algocomp.test").warning(
            "connecting to %s with %s", "postgresql://u:hunter2hunter2@h/db", secret, extra={"key": secret}
        )
        try:
            raise RuntimeError(f"boom {secret}")
        except RuntimeError:
            logging.getLogger("algocomp.test").exception("failed")
        text = stream.getvalue()
        assert "hunter2hunter2" not in text and secret not in text and secret.replace('"', '\\"') not in text
        assert "postgresql://u:***@h/db" in text


# ---------------------------------------------------------------------------------- process arguments, logs


def test_devstack_s3_keys_are_neither_in_argv_nor_in_its_log(
    service_env: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The S3 server as `make dev` starts it: its key pair is in no process's arguments and not in its log."""
    import devstack
    from algocomp.platform.storage import Storage, StorageError

    monkeypatch.setattr(devstack, "DATA_DIR", tmp_path)
    monkeypatch.setattr(devstack, "RUN_DIR", tmp_path / "run")
    monkeypatch.setattr(devstack, "LOG_DIR", tmp_path / "logs")
    (tmp_path / "run").mkdir()
    (tmp_path / "logs").mkdir()
    secret = f"devstack-{secrets.token_urlsafe(24)}"
    port = devstack.free_port()
    settings = service_env.model_copy(
        update={"s3_endpoint_url": f"http://127.0.0.1:{port}", "s3_secret_key": SecretStr(secret)}
    )
    s3 = devstack.services(settings)[0]
    assert s3.name == "s3"
    devstack._start(s3, devstack.child_environment(settings))
    pid = s3.pid()
    assert pid is not None
    try:
        storage = Storage(settings)
        storage.ensure_bucket()
        storage.ping()
        wrong = Storage(settings.model_copy(update={"s3_secret_key": SecretStr("wrong-" + secret)}))
        with pytest.raises(StorageError):
            wrong.ensure_bucket()
        # the server and every process on this machine: not in any command line
        assert str(port) in _command_lines()[pid]
        session_secret = service_env.s3_secret_key.get_secret_value()
        holders = [p for p, line in _command_lines().items() if secret in line or session_secret in line]
        assert holders == [], f"the S3 secret is in the arguments of {holders}"
        assert "RCLONE_AUTH_KEY" in Path(f"/proc/{pid}/environ").read_text(errors="replace")
    finally:
        devstack._stop_pid("s3", pid)
    log = s3.log_file.read_text(errors="replace")
    assert "serve s3" in log  # the log exists and has the header
    assert secret not in log and settings.s3_access_key + "," not in log


# --------------------------------------------------------------------------------------- API responses, logs


def test_no_secret_in_api_responses_or_logs(
    service_env: Settings, in_process_logging: None, capsys: pytest.CaptureFixture[str], api_token: str
) -> None:
    """Requests that succeed, fail and probe broken backends whose URLs carry passwords: no response and no log
    line holds a password or the S3 secret."""
    db_password, redis_password = secrets.token_urlsafe(18), secrets.token_urlsafe(18)
    s3_secret = service_env.s3_secret_key.get_secret_value()
    broken = service_env.model_copy(
        update={
            "database_url": f"postgresql+psycopg://algocomp:{db_password}@127.0.0.1:{_closed_port()}/algocomp",
            "redis_url": f"redis://:{redis_password}@127.0.0.1:{_closed_port()}/0",
            "api_db_retry_s": 0,  # no wait: each request meets the closed port once
        }
    )
    wrong_s3 = service_env.model_copy(update={"s3_secret_key": SecretStr("wrong-" + s3_secret)})
    bodies: list[str] = []
    for settings in (service_env, broken, wrong_s3):
        with TestClient(create_app(settings), raise_server_exceptions=False, headers=bearer(api_token)) as client:
            for method, path, body in [
                ("GET", "/healthz", None),
                ("GET", "/readyz", None),
                ("GET", "/scenarios/presets", None),
                ("GET", "/runs", None),
                ("GET", f"/runs/{uuid.uuid4()}", None),
                ("GET", f"/results/{uuid.uuid4()}", None),
                ("GET", "/runs/not-a-uuid", None),
                ("POST", "/runs", {"preset": "no-such-preset"}),
                ("POST", "/scenarios", {"scenario": {"agents": {"alpha": "x"}}}),
                ("GET", "/no/such/route", None),
                ("GET", "/openapi.json", None),
            ]:
                response = client.request(method, path, json=body)
                bodies.append(f"{method} {path} {response.status_code} {response.headers} {response.text}")
    readiness = [b for b in bodies if "/readyz 503" in b]
    assert len(readiness) == 2, bodies  # the broken backends were reached and reported
    logs = capsys.readouterr()
    text = "\n".join(bodies) + logs.out + logs.err
    # the broken database made routes fail (503 database_unavailable), and that was logged
    assert "database_unavailable" in text and "the database is out of reach" in text
    for secret in (db_password, redis_password, s3_secret, "wrong-" + s3_secret):
        assert secret not in text, f"a secret leaked: {secret[:4]}…"
    assert os.environ["ALGOCOMP_S3_SECRET_KEY"] == s3_secret  # the secret was the one the services use


# ------------------------------------------------------------------------------------------------- MLflow


def test_tracking_authenticates_to_mlflow_without_logging_the_password(
    service_env: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """With mlflow_tracking_username/password the MLflow client sends basic auth (a server behind
    authentication, as in compose); the password is in no warning when the server refuses."""
    import base64
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from algocomp.platform.tracking import log_run

    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.setenv(name, "")  # restored (unset) after the test: log_run sets them
        monkeypatch.delenv(name)
    seen: list[str] = []

    class Refusing(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            seen.append(self.headers.get("Authorization", ""))
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="mlflow"')
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    password = secrets.token_urlsafe(16)
    settings = service_env.model_copy(
        update={
            "mlflow_tracking_uri": f"http://127.0.0.1:{server.server_address[1]}",
            "mlflow_tracking_username": "algocomp",
            "mlflow_tracking_password": SecretStr(password),
            "mlflow_timeout_s": 5.0,
        }
    )
    try:
        with caplog.at_level(logging.WARNING):
            assert log_run(settings, run_id=uuid.uuid4(), scenario_name="s", params={}, metrics={}) is None
    finally:
        server.shutdown()
    expected = "Basic " + base64.b64encode(f"algocomp:{password}".encode()).decode()
    assert seen and seen[0] == expected
    assert password not in caplog.text and "failed" in caplog.text
