"""The native local stack (no Docker): `python -m algocomp.devstack up|down|status` (used by `make dev`/`make demo`).

`up` makes sure Postgres and Redis answer (starting them, or installing them with apt when running as root and
they are missing), creates the database and migrates it, then starts as background processes, each with a pid
file under data/run/ and a log under data/logs/: an S3 endpoint (`rclone serve s3` on data/s3), the MLflow
tracking server, the API, the run worker, the aggregator, Celery beat (the requeue sweeper) and Flower. What is
already running (live pid file, or its port already answering) is left alone. Every child gets its ALGOCOMP_*
settings written explicitly into its environment, so the stack is configured exactly like the services.
`down` stops what `up` started (SIGTERM, then SIGKILL after a grace period); `status` lists it.

Helpers here (free ports, readiness waits, the rclone S3 command line, migrating a database) are shared with the
service tests in tests/services/conftest.py, so the tests start the S3 endpoint exactly as `make dev` does.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from algocomp.queue import WORKER_QUEUES
from algocomp.settings import Settings, get_settings

REPO_ROOT = Path(__file__).resolve().parents[2]
ALEMBIC_INI = REPO_ROOT / "alembic.ini"


def venv_bin(name: str) -> Path:
    """A console script installed next to this interpreter (rclone, celery, alembic, mlflow, ...)."""
    return Path(sys.executable).parent / name


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1", timeout_s: float = 0.5) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def wait_for(ready: Callable[[], bool], timeout_s: float, interval_s: float = 0.2) -> bool:
    """Poll `ready` until it returns True or `timeout_s` passes; exceptions count as not ready."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if ready():
                return True
        except Exception:  # noqa: BLE001, S110 - a probe that raises (refused, 503, half-started) means not ready yet
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


def rclone_s3_argv(folder: Path, port: int, access_key: str, secret_key: str, host: str = "127.0.0.1") -> list[str]:
    """`rclone serve s3` serving `folder` (each sub-folder is a bucket) with one v4 key pair."""
    return [
        str(venv_bin("rclone")),
        "serve",
        "s3",
        str(folder),
        "--addr",
        f"{host}:{port}",
        "--auth-key",
        f"{access_key},{secret_key}",
        "--force-path-style",
        # the folder is written only through this server, but keep directory listings fresh anyway
        "--dir-cache-time",
        "2s",
        "--config",
        "/dev/null",
    ]


def migrate(database_url: str, revision: str = "head") -> None:
    """`alembic upgrade <revision>` on `database_url`, in-process, without touching this process's logging."""
    from alembic import command
    from alembic.config import Config

    config = Config(str(ALEMBIC_INI))
    config.set_main_option("script_location", str(REPO_ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.attributes["configure_logger"] = False
    command.upgrade(config, revision)


# ------------------------------------------------------------------------------------------------- the stack

DATA_DIR = Path(os.environ.get("ALGOCOMP_DEV_DATA_DIR", REPO_ROOT / "data")).resolve()
RUN_DIR = DATA_DIR / "run"
LOG_DIR = DATA_DIR / "logs"
HOST = "127.0.0.1"
API_PORT = int(os.environ.get("ALGOCOMP_DEV_API_PORT", "8000"))
FLOWER_PORT = int(os.environ.get("ALGOCOMP_DEV_FLOWER_PORT", "5555"))
READY_TIMEOUT_S = float(os.environ.get("ALGOCOMP_DEV_READY_TIMEOUT_S", "120"))
STOP_GRACE_S = 20.0
WORKER_APP = "algocomp_worker.app:celery_app"
AGGREGATOR_APP = "algocomp_aggregator.app:celery_app"


class DevStackError(RuntimeError):
    """The stack cannot be brought up; the message says what failed and what to do."""


def say(message: str) -> None:
    print(f"[devstack] {message}", flush=True)


def _port_of(url: str, default: int) -> int:
    return urlsplit(url).port or default


def _http_ok(url: str, timeout_s: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def child_environment(settings: Settings) -> dict[str, str]:
    """The environment of every child: this one plus each setting written out as ALGOCOMP_*."""
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        text = value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)
        env[f"ALGOCOMP_{name.upper()}"] = text
    env["ALGOCOMP_S3_SECRET_KEY"] = settings.s3_secret_key.get_secret_value()
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class Service:
    """One background process of the stack."""

    name: str
    argv: list[str]
    port: int | None
    url: str | None
    ready: Callable[[], bool]
    prepare: Callable[[], None] = field(default=lambda: None)

    @property
    def pid_file(self) -> Path:
        return RUN_DIR / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return LOG_DIR / f"{self.name}.log"

    def pid(self) -> int | None:
        """The pid in the pid file if that process is alive (a stale file is removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if _alive(pid):
            return pid
        self.pid_file.unlink(missing_ok=True)
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (exited, not reaped) counts as dead
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return True


def _celery_ping(settings: Settings, nodename: str) -> Callable[[], bool]:
    def ready() -> bool:
        from algocomp.queue import create_celery

        app = create_celery(settings, name="algocomp-devstack-ping")
        try:
            return bool(app.control.ping(destination=[nodename], timeout=1.0))
        finally:
            app.close()

    return ready


def services(settings: Settings) -> list[Service]:
    """The stack's processes in start order (S3 and MLflow first: the services use them)."""
    s3_port = _port_of(settings.s3_endpoint_url or "http://127.0.0.1:9000", 9000)
    mlflow_port = _port_of(settings.mlflow_tracking_uri or "http://127.0.0.1:5001", 5001)
    python = sys.executable
    hostname = socket.gethostname()
    s3_folder = DATA_DIR / "s3"
    mlflow_dir = DATA_DIR / "mlflow"

    def prepare_s3() -> None:
        (s3_folder / settings.s3_bucket).mkdir(parents=True, exist_ok=True)  # a folder is a bucket

    def prepare_mlflow() -> None:
        (mlflow_dir / "artifacts").mkdir(parents=True, exist_ok=True)

    def s3_ready() -> bool:
        if not port_open(s3_port):
            return False
        from algocomp.storage import Storage

        storage = Storage(settings)
        storage.ensure_bucket()
        storage.ping()
        return True

    stack = [
        Service(
            "s3",
            rclone_s3_argv(s3_folder, s3_port, settings.s3_access_key, settings.s3_secret_key.get_secret_value()),
            s3_port,
            f"http://{HOST}:{s3_port}  (bucket {settings.s3_bucket}, folder {s3_folder})",
            s3_ready,
            prepare_s3,
        ),
    ]
    if settings.mlflow_tracking_uri:
        stack.append(
            Service(
                "mlflow",
                [
                    str(venv_bin("mlflow")), "server",
                    "--backend-store-uri", f"sqlite:///{mlflow_dir / 'mlflow.db'}",
                    "--artifacts-destination", str(mlflow_dir / "artifacts"),
                    "--host", HOST, "--port", str(mlflow_port), "--workers", "1",
                ],
                mlflow_port,
                f"http://{HOST}:{mlflow_port}",
                lambda: _http_ok(f"http://{HOST}:{mlflow_port}/health"),
                prepare_mlflow,
            )
        )
    stack += [
        Service(
            "api",
            [python, "-m", "uvicorn", "algocomp_api.main:app", "--host", HOST, "--port", str(API_PORT)],
            API_PORT,
            f"http://{HOST}:{API_PORT}  (OpenAPI: http://{HOST}:{API_PORT}/docs)",
            lambda: _http_ok(f"http://{HOST}:{API_PORT}/healthz"),
        ),
        Service(
            "worker",
            [python, "-m", "celery", "-A", WORKER_APP, "worker", "-Q", WORKER_QUEUES, "-c", "2", "--loglevel", "INFO",
             "-n", f"runs@{hostname}"],
            None,
            None,
            _celery_ping(settings, f"runs@{hostname}"),
        ),
        Service(
            "aggregator",
            [python, "-m", "celery", "-A", AGGREGATOR_APP, "worker", "-Q", "aggregate", "-c", "1",
             "--loglevel", "INFO", "-n", f"aggregate@{hostname}"],
            None,
            None,
            _celery_ping(settings, f"aggregate@{hostname}"),
        ),
        Service(
            "beat",
            [python, "-m", "celery", "-A", WORKER_APP, "beat", "--loglevel", "INFO",
             "--schedule", str(RUN_DIR / "celerybeat-schedule")],
            None,
            None,
            lambda: True,  # beat has no probe; it is checked to still be alive after a moment
        ),
        Service(
            "flower",
            [python, "-m", "celery", "-A", WORKER_APP, "flower", f"--port={FLOWER_PORT}", f"--address={HOST}"],
            FLOWER_PORT,
            f"http://{HOST}:{FLOWER_PORT}",
            lambda: _http_ok(f"http://{HOST}:{FLOWER_PORT}/healthcheck"),
        ),
    ]
    return stack


# ------------------------------------------------------------------------------------- Postgres and Redis


def _run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    say("$ " + " ".join(argv))
    return subprocess.run(argv, check=check, text=True, capture_output=True)


def _apt_install(*packages: str) -> None:
    if os.geteuid() != 0:
        raise DevStackError(
            f"{', '.join(packages)} not installed and this is not root: install them "
            f"(sudo apt-get install -y {' '.join(packages)}) or point ALGOCOMP_DATABASE_URL / ALGOCOMP_REDIS_URL "
            "at running servers"
        )
    if shutil.which("apt-get") is None:
        raise DevStackError(f"{', '.join(packages)} not installed and there is no apt-get: install them by hand")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-q", *packages], check=True, env=env)


def _postgres_clusters() -> list[str]:
    base = Path("/etc/postgresql")
    return sorted((p.name for p in base.iterdir() if (p / "main").is_dir()), key=float) if base.is_dir() else []


def _trust_local_tcp(version: str) -> None:
    """A cluster we just installed accepts local TCP logins without a password, as the settings' URL expects."""
    hba = Path(f"/etc/postgresql/{version}/main/pg_hba.conf")
    rules = "host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n"
    text = hba.read_text()
    if rules not in text:
        hba.write_text(f"# added by algocomp.devstack for local development\n{rules}{text}")
        say(f"{hba}: local TCP connections now trusted (development only)")


def ensure_postgres(settings: Settings) -> None:
    from sqlalchemy.engine import make_url

    url = make_url(settings.database_url)
    host, port = url.host or "127.0.0.1", url.port or 5432
    if not port_open(port, host):
        if host not in {"127.0.0.1", "localhost", "::1"}:
            raise DevStackError(f"Postgres at {host}:{port} does not answer (ALGOCOMP_DATABASE_URL); start it")
        installed_now = False
        if not _postgres_clusters():
            say("Postgres is not installed; installing it")
            _apt_install("postgresql")
            installed_now = True
        version = _postgres_clusters()[-1]
        if installed_now:
            _trust_local_tcp(version)
        say(f"starting Postgres {version}")
        _run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"], check=False)
        if installed_now:
            _run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "reload"], check=False)
        if not wait_for(lambda: port_open(port, host), 30):
            raise DevStackError(
                f"Postgres {version} did not start on {host}:{port}; see /var/log/postgresql/postgresql-{version}-main.log"
            )
    _create_database(settings.database_url)
    say(f"migrating {url.render_as_string(hide_password=True)} to head")
    migrate(settings.database_url)


def _create_database(database_url: str) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    name = url.database or "algocomp"
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as connection:
            exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                connection.execute(f'CREATE DATABASE "{name}"')
                say(f"created database {name}")
    except psycopg.OperationalError as error:
        raise DevStackError(f"cannot connect to Postgres as {url.username!r}: {error}".strip()) from error


def ensure_redis(settings: Settings) -> None:
    url = urlsplit(settings.redis_url)
    host, port = url.hostname or "127.0.0.1", url.port or 6379
    if port_open(port, host):
        return
    if host not in {"127.0.0.1", "localhost", "::1"}:
        raise DevStackError(f"Redis at {host}:{port} does not answer (ALGOCOMP_REDIS_URL); start it")
    if shutil.which("redis-server") is None:
        say("Redis is not installed; installing it")
        _apt_install("redis-server")
    redis_dir = DATA_DIR / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    say(f"starting Redis on {host}:{port}")
    _run([
        "redis-server", "--daemonize", "yes", "--bind", host, "--port", str(port), "--dir", str(redis_dir),
        "--pidfile", str(RUN_DIR / "redis.pid"), "--logfile", str(LOG_DIR / "redis.log"),
    ])
    if not wait_for(lambda: port_open(port, host), 15):
        raise DevStackError(f"Redis did not start on {host}:{port}; see {LOG_DIR / 'redis.log'}")


# ---------------------------------------------------------------------------------------- up, down, status


def _start(service: Service, env: dict[str, str]) -> None:
    pid = service.pid()
    if pid is not None:
        say(f"{service.name}: already running (pid {pid})")
        return
    if service.port is not None and port_open(service.port):
        say(f"{service.name}: port {service.port} already answers; leaving whatever serves it alone")
        return
    service.prepare()
    with service.log_file.open("ab") as log:
        log.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(service.argv)}\n".encode())
        log.flush()
        process = subprocess.Popen(
            service.argv, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # survives this command; `down` signals its whole process group
        )
    service.pid_file.write_text(str(process.pid))
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        if process.poll() is not None:
            service.pid_file.unlink(missing_ok=True)
            tail = service.log_file.read_text(errors="replace")[-3000:]
            raise DevStackError(f"{service.name} exited with code {process.returncode}:\n{tail}\n(log: {service.log_file})")
        try:
            if service.ready():
                break
        except Exception:  # noqa: BLE001, S110 - a probe that raises (refused, 503, half-started) means not ready yet
            pass
        if time.monotonic() > deadline:
            raise DevStackError(f"{service.name} not ready after {READY_TIMEOUT_S:.0f} s; see {service.log_file}")
        time.sleep(0.5)
    if service.name == "beat":
        time.sleep(2)
        if process.poll() is not None:
            raise DevStackError(f"beat exited with code {process.returncode}; see {service.log_file}")
    say(f"{service.name}: started (pid {process.pid}, log {service.log_file})")


def up(settings: Settings) -> None:
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    ensure_redis(settings)
    ensure_postgres(settings)
    env = child_environment(settings)
    for service in services(settings):
        _start(service, env)
    print()
    print("algocomp dev stack is up:")
    for service in services(settings):
        if service.url:
            print(f"  {service.name:<10} {service.url}")
    print(f"  {'logs':<10} {LOG_DIR}   (stop with: python -m algocomp.devstack down)")


def _stop_pid(name: str, pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    except PermissionError:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(pid):
        say(f"{name}: still running after {STOP_GRACE_S:.0f} s; killing it")
    # the group may hold pool children even after the leader left
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def down(settings: Settings) -> None:
    for service in reversed(services(settings)):
        pid = service.pid()
        if pid is None:
            continue
        say(f"stopping {service.name} (pid {pid})")
        _stop_pid(service.name, pid)
        service.pid_file.unlink(missing_ok=True)
    redis_pid_file = RUN_DIR / "redis.pid"
    if redis_pid_file.exists():
        say(f"Redis started by `up` keeps running (pid file {redis_pid_file}); Postgres is left running too")
    say("stopped")


def status(settings: Settings) -> int:
    """Print each service's state; returns the number of services not running."""
    missing = 0
    for service in services(settings):
        pid = service.pid()
        if pid is not None:
            state = f"running (pid {pid})"
        elif service.port is not None and port_open(service.port):
            state = f"port {service.port} answers (not started by devstack)"
        else:
            state = "stopped"
            missing += 1
        print(f"  {service.name:<10} {state:<42} {service.url or ''}")
    return missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m algocomp.devstack", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up", "down", "status"])
    arguments = parser.parse_args(argv)
    settings = get_settings()
    try:
        if arguments.command == "up":
            up(settings)
        elif arguments.command == "down":
            down(settings)
        else:
            return 1 if status(settings) else 0
    except DevStackError as error:
        print(f"[devstack] error: {error}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as error:
        print(f"[devstack] error: {' '.join(map(str, error.cmd))} failed ({error.returncode}): "
              f"{(error.stderr or '').strip()}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
