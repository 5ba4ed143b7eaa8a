"""The native local stack (no Docker): `python tools/devstack.py up|down|status|servers` (used by `make dev`,
`make demo` and `make test`).

`servers` makes sure Postgres and Redis answer (starting them, or installing them with apt when running as root
and they are missing) and that the database URL's role can log in with its password. `up` does that too, creates
the database and migrates it, then starts as background processes, each with a pid
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
import json
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
from typing import BinaryIO
from urllib.parse import urlsplit

from algocomp.platform.queue import WORKER_QUEUES
from algocomp.platform.settings import Settings, get_settings

REPO_ROOT = Path(__file__).resolve().parents[1]
ALEMBIC_INI = REPO_ROOT / "alembic.ini"


def worker_processes() -> int:
    """Pool processes of the run worker: $WORKER_CONCURRENCY (as in docker-compose.yml), default 2."""
    raw = os.environ.get("WORKER_CONCURRENCY", "2")
    try:
        processes = int(raw)
    except ValueError:
        raise SystemExit(f"WORKER_CONCURRENCY={raw!r}: give a whole number of processes (1 or more)") from None
    if processes < 1:
        raise SystemExit(f"WORKER_CONCURRENCY={raw!r}: give a whole number of processes (1 or more)")
    return processes


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


def spawn(argv: list[str], log: BinaryIO, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start `argv` from the repository root in a process group of its own, so that stop_group reaches whatever it
    starts (a Celery worker's pool), with stdin closed and stdout and stderr into `log`."""
    return subprocess.Popen(
        argv,
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_until_ready(
    process: subprocess.Popen[bytes], ready: Callable[[], bool], timeout_s: float, interval_s: float = 0.3
) -> str | None:
    """Wait until `ready()` (a probe that raises counts as not yet); None then, else why not: the process exited
    first, or `timeout_s` passed."""
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            return f"exited with code {process.returncode}"
        try:
            if ready():
                return None
        except Exception:  # noqa: BLE001, S110 - a probe that raises (refused, 503, half-started) means not ready yet
            pass
        if time.monotonic() > deadline:
            return f"not ready after {timeout_s:.0f} s"
        time.sleep(interval_s)


def stop_group(pid: int, grace_s: float, exited: Callable[[], bool]) -> bool:
    """SIGTERM the process group `pid` leads (a warm shutdown), wait up to `grace_s` for `exited()`, then SIGKILL
    the group, whose children may outlive their leader. Whether it exited within the grace period."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while not exited() and time.monotonic() < deadline:
        time.sleep(0.05)
    in_time = exited()
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    return in_time


def rclone_s3_argv(folder: Path, port: int, host: str = "127.0.0.1") -> list[str]:
    """`rclone serve s3` serving `folder` (each sub-folder is a bucket). The key pair is not on this command line
    (anyone can read a process's arguments): it goes in the environment, `rclone_s3_env`."""
    return [
        str(venv_bin("rclone")),
        "serve",
        "s3",
        str(folder),
        "--addr",
        f"{host}:{port}",
        "--force-path-style",
        # the folder is written only through this server, but keep directory listings fresh anyway
        "--dir-cache-time",
        "2s",
        "--config",
        "/dev/null",
        # at DEBUG (-vv) rclone logs the options it read from the environment, the key pair among them
        "--log-level",
        "NOTICE",
    ]


def rclone_s3_env(access_key: str, secret_key: str) -> dict[str, str]:
    """The environment that gives `rclone serve s3` its one v4 key pair (its --auth-key option; rclone reads a
    list option from the environment as CSV, hence the quotes)."""
    pair = f"{access_key},{secret_key}".replace('"', '""')
    return {"RCLONE_AUTH_KEY": f'"{pair}"'}


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
# SIGTERM: open requests get this long, then the API exits (event streams never end by themselves)
API_GRACEFUL_SHUTDOWN_S = 10
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
        if hasattr(value, "get_secret_value"):
            text = value.get_secret_value()
        elif isinstance(value, (list, dict)):
            text = json.dumps(value)
        else:
            text = str(value)
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
    env: dict[str, str] = field(default_factory=dict)  # added to the stack's environment (secrets go here, not argv)

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
        from algocomp.platform.queue import create_celery

        app = create_celery(settings, name="algocomp-devstack-ping")
        try:
            return bool(app.control.ping(destination=[nodename], timeout=1.0))
        finally:
            app.close()

    return ready


# beat marks its liveness at its first tick: a mark this fresh is this beat's (an older one, a previous beat's)
BEAT_FRESH_S = 5.0


def _beat_ticked(settings: Settings) -> Callable[[], bool]:
    def ready() -> bool:
        import redis

        from algocomp.platform.queue.beat import beat_age_s

        client = redis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
        try:
            age_s = beat_age_s(client, settings.key_prefix)
        finally:
            client.close()
        return age_s is not None and age_s < BEAT_FRESH_S

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
        from algocomp.platform.storage import Storage

        storage = Storage(settings)
        storage.ensure_bucket()
        storage.ping()
        return True

    stack = [
        Service(
            "s3",
            rclone_s3_argv(s3_folder, s3_port),
            s3_port,
            f"http://{HOST}:{s3_port}  (bucket {settings.s3_bucket}, folder {s3_folder})",
            s3_ready,
            prepare_s3,
            env=rclone_s3_env(settings.s3_access_key, settings.s3_secret_key.get_secret_value()),
        ),
    ]
    if settings.mlflow_tracking_uri:
        stack.append(
            Service(
                "mlflow",
                [
                    str(venv_bin("mlflow")),
                    "server",
                    "--backend-store-uri",
                    f"sqlite:///{mlflow_dir / 'mlflow.db'}",
                    "--artifacts-destination",
                    str(mlflow_dir / "artifacts"),
                    "--host",
                    HOST,
                    "--port",
                    str(mlflow_port),
                    "--workers",
                    "1",
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
            [python, "-m", "algocomp_api.serve", "--host", HOST, "--port", str(API_PORT)]
            + ["--timeout-graceful-shutdown", str(API_GRACEFUL_SHUTDOWN_S), "--processes", str(settings.api_processes)],
            API_PORT,
            f"http://{HOST}:{API_PORT}  (OpenAPI: http://{HOST}:{API_PORT}/docs)",
            lambda: _http_ok(f"http://{HOST}:{API_PORT}/healthz"),
        ),
        Service(
            "worker",
            [
                python,
                "-m",
                "celery",
                "-A",
                WORKER_APP,
                "worker",
                "-Q",
                WORKER_QUEUES,
                "-c",
                str(worker_processes()),
                "--loglevel",
                "INFO",
                "-n",
                f"runs@{hostname}",
            ],
            None,
            None,
            _celery_ping(settings, f"runs@{hostname}"),
        ),
        Service(
            "aggregator",
            [
                python,
                "-m",
                "celery",
                "-A",
                AGGREGATOR_APP,
                "worker",
                "-Q",
                "aggregate",
                "-c",
                "1",
                "--loglevel",
                "INFO",
                "-n",
                f"aggregate@{hostname}",
            ],
            None,
            None,
            _celery_ping(settings, f"aggregate@{hostname}"),
        ),
        Service(
            "beat",
            [
                python,
                "-m",
                "celery",
                "-A",
                WORKER_APP,
                "beat",
                "--loglevel",
                "INFO",
                "--schedule",
                str(RUN_DIR / "celerybeat-schedule"),
            ],
            None,
            None,
            _beat_ticked(settings),  # its liveness mark in Redis (what /readyz reads)
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
#
# Both servers are taken as the machine has them: started when installed but stopped, installed with apt-get when
# missing (as root; otherwise an error names the command to run). Postgres is never assumed to trust local TCP
# logins: the URL's role logs in with its password, and when it cannot (the role is missing, or has another
# password), the role is created or its password set through the cluster's superuser over the local socket,
# which is Debian's default peer authentication and needs root. pg_hba.conf is never edited.

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def _run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    say("$ " + " ".join(argv))
    return subprocess.run(argv, check=check, text=True, capture_output=True)


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _apt_install(*packages: str) -> None:
    command = f"apt-get install -y {' '.join(packages)}"
    if shutil.which("apt-get") is None:
        raise DevStackError(
            f"{', '.join(packages)} is not installed and this machine has no apt-get: install it with the system's "
            "package manager, or point ALGOCOMP_DATABASE_URL / ALGOCOMP_REDIS_URL at running servers"
        )
    if not _is_root():
        raise DevStackError(
            f"{', '.join(packages)} is not installed and only root can install it: run `sudo {command}` and try "
            "again, or point ALGOCOMP_DATABASE_URL / ALGOCOMP_REDIS_URL at running servers"
        )
    say(f"installing {', '.join(packages)} with apt-get (a few minutes the first time)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]):
        result = subprocess.run(argv, env=env, text=True, capture_output=True)
        if result.returncode != 0:
            raise DevStackError(
                f"`{' '.join(argv)}` failed ({result.returncode}):\n{(result.stdout + result.stderr)[-3000:]}"
            )


def _postgres_clusters() -> list[tuple[str, str, int, bool]]:
    """(version, name, port, online) of every cluster `pg_lsclusters` knows (Debian's postgresql-common)."""
    if shutil.which("pg_lsclusters") is None:
        return []
    result = subprocess.run(["pg_lsclusters", "--no-header"], text=True, capture_output=True)
    clusters = []
    for line in result.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[2].isdigit():
            clusters.append((fields[0], fields[1], int(fields[2]), fields[3].startswith("online")))
    return clusters


def _start_postgres(port: int) -> None:
    """Install Postgres if missing and start the local cluster that serves `port` (creating one if none does)."""
    if shutil.which("pg_lsclusters") is None:
        say("Postgres is not installed")
        _apt_install("postgresql")
    known = _postgres_clusters()
    clusters = [cluster for cluster in known if cluster[2] == port]
    if not clusters:
        # the newest server installed (every cluster's version is one of these)
        installed = sorted(
            (p.name for p in Path("/usr/lib/postgresql").glob("*") if p.name.replace(".", "").isdigit()), key=float
        )
        if not installed:
            raise DevStackError("Postgres is installed but no server version was found under /usr/lib/postgresql")
        version, name = installed[-1], "algocomp" if known else "main"
        if not _is_root():
            raise DevStackError(
                f"no Postgres cluster serves port {port}: run "
                f"`sudo pg_createcluster {version} {name} --port {port} --start`"
            )
        _run(["pg_createcluster", version, name, "--port", str(port)])
        clusters = [cluster for cluster in _postgres_clusters() if cluster[2] == port]
    version, name, _, online = clusters[0]
    if online:
        return
    if not _is_root():
        raise DevStackError(
            f"Postgres {version}/{name} is installed but stopped and only root can start it: run "
            f"`sudo pg_ctlcluster {version} {name} start`"
        )
    say(f"starting Postgres {version}/{name} on port {port}")
    result = _run(["pg_ctlcluster", "--skip-systemctl-redirect", version, name, "start"], check=False)
    if result.returncode != 0:
        raise DevStackError(
            f"Postgres {version}/{name} did not start: {(result.stdout + result.stderr).strip()}; "
            f"see /var/log/postgresql/postgresql-{version}-{name}.log"
        )


def _psql_as_superuser(port: int, sql: str) -> None:
    """Run `sql` as the cluster's superuser over the local socket (peer authentication; needs root).

    The SQL goes in on standard input, so no password appears on a command line.
    """
    runuser = shutil.which("runuser")
    if runuser is None:
        raise DevStackError("runuser (util-linux) is missing: cannot act as the postgres user")
    result = subprocess.run(
        [
            runuser,
            "-u",
            "postgres",
            "--",
            "psql",
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-p",
            str(port),
            "-d",
            "postgres",
        ],
        input=sql,
        text=True,
        capture_output=True,
        cwd="/",
    )
    if result.returncode != 0:
        raise DevStackError(f"psql as the postgres superuser failed: {(result.stdout + result.stderr).strip()}")


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _provision_role(port: int, role: str, password: str) -> None:
    """Create `role` (LOGIN CREATEDB, with `password`) or reset its password, through the superuser."""
    if not _is_root():
        raise DevStackError(
            f"Postgres on port {port} does not let role {role!r} log in with the configured password. Create the "
            f"role once: sudo -u postgres psql -p {port} -c \"CREATE ROLE {role} LOGIN CREATEDB PASSWORD '...'\" "
            "(with the URL's password), or point the URL at a role that can log in"
        )
    identifier = '"' + role.replace('"', '""') + '"'
    say(f"creating the Postgres role {role} (LOGIN CREATEDB), or setting its password, through the local superuser")
    _psql_as_superuser(
        port,
        (
            f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {_sql_literal(role)}) "
            f"THEN CREATE ROLE {identifier}; END IF; END $$;\n"
            f"ALTER ROLE {identifier} LOGIN CREATEDB PASSWORD {_sql_literal(password)};\n"
        ),
    )


def ensure_postgres_server(database_url: str, setting: str = "ALGOCOMP_DATABASE_URL") -> None:
    """Make Postgres at `database_url` answer and accept the URL's role with its password (see the section note).

    Only a server on this machine is started, installed or given the role; a remote one is reported. `setting`
    names where the URL came from, in the errors.
    """
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    host, port = url.host or "127.0.0.1", url.port or 5432
    role = url.username or "postgres"
    local = host in LOCAL_HOSTS
    if not port_open(port, host):
        if not local:
            raise DevStackError(f"Postgres at {host}:{port} does not answer ({setting}); start it")
        _start_postgres(port)
        if not wait_for(lambda: port_open(port, host), 30):
            raise DevStackError(f"Postgres did not start answering on {host}:{port}; see /var/log/postgresql/")
    maintenance = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)

    def can_log_in() -> str | None:
        try:
            with psycopg.connect(maintenance, connect_timeout=5):
                return None
        except psycopg.OperationalError as error:
            return str(error).strip()

    problem = can_log_in()
    if problem is None:
        return
    if not local:
        raise DevStackError(f"cannot log in to Postgres at {host}:{port} as {role!r}: {problem}")
    if not url.password:
        raise DevStackError(
            f"cannot log in to Postgres at {host}:{port} as {role!r}: {problem}. "
            "algocomp never relies on password-less "
            f"(trust) logins: give {setting} a password, e.g. postgresql+psycopg://algocomp:PASSWORD@..."
        )
    say(f"Postgres refused {role!r} ({problem.splitlines()[-1] if problem else 'no reason given'})")
    _provision_role(port, role, url.password)
    problem = can_log_in()
    if problem is not None:
        raise DevStackError(f"cannot log in to Postgres at {host}:{port} as {role!r} even after creating it: {problem}")


def ensure_database(database_url: str) -> None:
    """Create the URL's database (owned by its role) unless it exists."""
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    name = url.database or "algocomp"
    maintenance = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    try:
        with psycopg.connect(maintenance, autocommit=True, connect_timeout=5) as connection:
            exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                connection.execute(f'CREATE DATABASE "{name}"')
                say(f"created database {name}")
    except psycopg.Error as error:
        raise DevStackError(f"cannot create database {name!r} as {url.username!r}: {error}".strip()) from error


def ensure_postgres(settings: Settings) -> None:
    """The stack's database: server up, role able to log in, database created and migrated to head."""
    from sqlalchemy.engine import make_url

    ensure_postgres_server(settings.database_url)
    ensure_database(settings.database_url)
    say(f"migrating {make_url(settings.database_url).render_as_string(hide_password=True)} to head")
    migrate(settings.database_url)


DEV_USER = "dev"
DEV_TEAM = "dev"


def ensure_dev_user(settings: Settings, api_url: str) -> Path:
    """The stack's development user (`dev`, admin of team `dev`) and a live token of theirs in the credentials
    file the client and the CLI read for `api_url` (algocomp.client.credentials), so `make demo` and the CLI
    work without a step by hand. A token already saved there that this database accepts is kept. Returns the
    credentials file."""
    from algocomp.client.credentials import credentials_path, save_token, saved_tokens
    from algocomp.platform.db import get_engine, session_scope
    from algocomp.platform.db.accounts import AccountRepository

    engine = get_engine(settings.database_url)
    try:
        with session_scope(engine) as session:
            accounts = AccountRepository(session)
            saved = saved_tokens().get(api_url.rstrip("/"))
            if saved and accounts.authenticate(saved) is not None:
                return credentials_path()
            user = accounts.user(DEV_USER)
            if user is None:
                _, token = accounts.create_user(DEV_USER, DEV_TEAM, admin=True)
                say(f"created the development user {DEV_USER!r} (admin of team {DEV_TEAM!r})")
            else:
                token = accounts.issue_token(user)
    finally:
        engine.dispose()
    path = save_token(api_url, token)
    say(f"the API token of {DEV_USER!r} for {api_url} is in {path}")
    return path


def ensure_redis_server(redis_url: str, setting: str = "ALGOCOMP_REDIS_URL") -> None:
    """Make Redis at `redis_url` answer: started (installed first if missing) when it is on this machine."""
    url = urlsplit(redis_url)
    host, port = url.hostname or "127.0.0.1", url.port or 6379
    if port_open(port, host):
        return
    if host not in LOCAL_HOSTS:
        raise DevStackError(f"Redis at {host}:{port} does not answer ({setting}); start it")
    if shutil.which("redis-server") is None:
        say("Redis is not installed")
        _apt_install("redis-server")
    redis_dir = DATA_DIR / "redis"
    for folder in (redis_dir, RUN_DIR, LOG_DIR):
        folder.mkdir(parents=True, exist_ok=True)
    say(f"starting Redis on {host}:{port}")
    _run(
        [
            shutil.which("redis-server") or "redis-server",
            "--daemonize",
            "yes",
            "--bind",
            host,
            "--port",
            str(port),
            "--dir",
            str(redis_dir),
            "--pidfile",
            str(RUN_DIR / "redis.pid"),
            "--logfile",
            str(LOG_DIR / "redis.log"),
        ]
    )
    if not wait_for(lambda: port_open(port, host), 15):
        raise DevStackError(f"Redis did not start on {host}:{port}; see {LOG_DIR / 'redis.log'}")


def ensure_redis(settings: Settings) -> None:
    ensure_redis_server(settings.redis_url)


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
        process = spawn(service.argv, log, {**env, **service.env})  # survives this command; `down` stops its group
    service.pid_file.write_text(str(process.pid))
    failed = wait_until_ready(process, service.ready, READY_TIMEOUT_S, interval_s=0.5)
    if failed is not None and process.poll() is not None:
        service.pid_file.unlink(missing_ok=True)
        tail = service.log_file.read_text(errors="replace")[-3000:]
        raise DevStackError(f"{service.name} {failed}:\n{tail}\n(log: {service.log_file})")
    if failed is not None:
        raise DevStackError(f"{service.name} {failed}; see {service.log_file}")
    say(f"{service.name}: started (pid {process.pid}, log {service.log_file})")


def up(settings: Settings) -> None:
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    ensure_redis(settings)
    ensure_postgres(settings)
    ensure_dev_user(settings, f"http://{HOST}:{API_PORT}")
    env = child_environment(settings)
    for service in services(settings):
        _start(service, env)
    print()
    print("algocomp dev stack is up:")
    for service in services(settings):
        if service.url:
            print(f"  {service.name:<10} {service.url}")
    print(f"  {'logs':<10} {LOG_DIR}   (stop with: python tools/devstack.py down)")


def _stop_pid(name: str, pid: int) -> None:
    if not stop_group(pid, STOP_GRACE_S, lambda: not _alive(pid)):
        say(f"{name}: still running after {STOP_GRACE_S:.0f} s; killed it")


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
    parser = argparse.ArgumentParser(prog="python tools/devstack.py", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "command",
        choices=["up", "down", "status", "servers"],
        help="servers: only make Postgres and Redis answer (what the tests need); up: the whole stack",
    )
    arguments = parser.parse_args(argv)
    if os.name != "posix":
        print(
            "[devstack] error: the native stack runs on Linux (and other POSIX systems); on Windows run the stack "
            "with Docker Desktop: docker compose up -d --build (see the README's quick start)",
            file=sys.stderr,
        )
        return 1
    settings = get_settings()
    try:
        if arguments.command == "servers":
            ensure_redis(settings)
            ensure_postgres_server(settings.database_url)
            say("Postgres and Redis answer")
        elif arguments.command == "up":
            up(settings)
        elif arguments.command == "down":
            down(settings)
        else:
            return 1 if status(settings) else 0
    except DevStackError as error:
        print(f"[devstack] error: {error}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as error:
        print(
            f"[devstack] error: {' '.join(map(str, error.cmd))} failed ({error.returncode}): "
            f"{(error.stderr or '').strip()}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
