"""The one settings object of every service, read from ALGOCOMP_* environment variables and an optional .env.

Defaults suit a developer's machine (`make dev`): local Postgres, Redis, an S3 endpoint on :9000 and MLflow on
:5001. Whenever the environment is not `development` (test and production alike) the validators refuse the
development secrets, so a test run or a team deployment cannot run on them by accident.

Secrets never reach a log line or a response: they are SecretStr, URLs carrying a password (the database and
Redis URLs) are masked in the settings' repr, and `redact()` masks them, and every secret of the settings, in any
text (the structured logs and the API's readiness details go through it).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from algocomp.extras import raise_missing_extra

try:
    from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
except ImportError as _error:
    raise_missing_extra(_error, "server", "algocomp.platform.settings (the services' settings)")

DEVELOPMENT_S3_SECRET = "algocomp-secret"
# the password of the default database URL (a local development database)
DEVELOPMENT_DATABASE_PASSWORD = "algocomp"
# every development default that is a secret, by setting name: refused whenever environment != "development"
DEVELOPMENT_SECRETS = {"s3_secret_key": DEVELOPMENT_S3_SECRET}
MASK = "***"
MIN_BARE_URL_PASSWORD = 12
# the password of scheme://user:password@host (database, Redis, MLflow URLs)
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s]*:)(?P<password>[^@/?#\s]+)(?=@)")


def url_password(url: str) -> str | None:
    """The password of the user part of `url` (scheme://user:PASSWORD@host), or None."""
    match = _URL_PASSWORD.search(url)
    return match.group("password") if match else None


def mask_url(url: str) -> str:
    """`url` with the password of its user part (scheme://user:PASSWORD@host) replaced by ***."""
    return _URL_PASSWORD.sub(lambda match: match.group("head") + MASK, url)


class Settings(BaseSettings):
    # hide_input_in_errors: a validation error would otherwise quote every input, secrets and URLs included
    model_config = SettingsConfigDict(
        env_prefix="ALGOCOMP_", env_file=".env", extra="ignore", hide_input_in_errors=True
    )

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = "postgresql+psycopg://algocomp:algocomp@127.0.0.1:5432/algocomp"
    redis_url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = Field("algocomp:", description="prefix of every Redis key and queue name")
    s3_endpoint_url: str | None = Field("http://127.0.0.1:9000", description="S3 endpoint the services use")
    s3_public_endpoint_url: str | None = Field(
        None,
        description="S3 endpoint that clients reach, used to sign every URL handed to them (presigned links, "
        "redirects); empty: the services' endpoint. Set it where the services reach S3 under an internal name, "
        "as in compose (http://minio:9000 inside, http://localhost:9000 from the host).",
    )
    s3_bucket: str = "algocomp"
    s3_access_key: str = "algocomp"
    s3_secret_key: SecretStr = SecretStr(DEVELOPMENT_S3_SECRET)
    s3_region: str = "us-east-1"
    mlflow_tracking_uri: str = Field("http://127.0.0.1:5001", description="empty: no tracking")
    mlflow_tracking_username: str | None = Field(
        None,
        description="user of an MLflow server behind basic authentication (with mlflow_tracking_password); "
        "the tracking client sends them as MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD",
    )
    mlflow_tracking_password: SecretStr | None = None
    mlflow_experiment: str = "algocomp"
    mlflow_timeout_s: float = 5.0
    progress_maxlen: int = Field(10_000, ge=10, description="events kept in each run's Redis stream")
    progress_interval_s: float = Field(0.5, gt=0, description="least time between two progress events of a run")
    sse_ping_interval_s: float = Field(
        15.0, gt=0, le=15.0, description="seconds between the keep-alive comments of an SSE stream (at most 15)"
    )
    sse_reader_connections: int = Field(
        100,
        ge=1,
        description="Redis connections of one API process for the blocking reads of followed runs (one per run "
        "followed; beyond, readers take turns)",
    )
    run_time_limit_s: int = Field(6 * 3600, ge=60, description="hard time limit of one run task")
    # A dead worker's run is claimed again once its lease expires: heartbeats every heartbeat_interval_s (a thread
    # of the worker process, whatever the engine is doing), a lease of several heartbeats.
    heartbeat_interval_s: float = Field(5.0, gt=0, description="how often a running run's heartbeat is refreshed")
    lease_s: int = Field(
        30, ge=2, description="a running run without a heartbeat for this long may be reclaimed (>= 3 heartbeats)"
    )
    requeue_after_s: int = Field(300, ge=5, description="a run queued this long without a worker is re-sent")
    sweep_interval_s: float = Field(
        15.0, ge=1, description="how often Celery beat sends the stale-run sweeper (algocomp.requeue_stale)"
    )
    beat_max_age_s: float = Field(
        60.0,
        ge=0,
        description="/readyz reports `beat` failing when beat's last mark is older than this (0: not checked); "
        "more than sweep_interval_s",
    )
    # Transient faults (a refused or reset connection, a server restarting, a 5xx of S3): retried with exponential
    # backoff and full jitter (algocomp.platform.retry) until the budget is spent, then the operation fails.
    retry_budget_s: float = Field(
        60.0,
        ge=0,
        description="how long the worker and the aggregator keep retrying one operation on S3, Postgres or the "
        "broker (Redis) through a transient fault before it fails (0: no retry); a run whose upload fails so ends "
        "failed, naming S3",
    )
    retry_base_s: float = Field(0.2, gt=0, description="first backoff step of those retries (doubled at each)")
    retry_max_delay_s: float = Field(5.0, gt=0, description="longest wait between two retries")
    follow_up_max_retries: int = Field(
        10,
        ge=0,
        description="how many times a follow-up (a run's plots, its MLflow logging, the aggregator's notice) is sent "
        "again after a transient fault outlasted retry_budget_s, waiting 2 s, 4 s, ... (at most 300 s, jittered)",
    )
    follow_up_keep_s: float = Field(
        7 * 86_400.0,
        ge=60,
        description="how long the record of a done follow-up is kept; the stale-run sweeper then deletes it (a "
        "failed one is kept, with its error)",
    )
    plot_wait_s: float = Field(
        10.0,
        gt=0,
        le=60,
        description="how long a request for a run's plot not drawn yet waits for a worker to draw it (without "
        "holding a thread or a database connection) before a 503 `plot_pending` with Retry-After",
    )
    plot_retry_after_s: float = Field(
        30.0,
        ge=0,
        le=3600,
        description="after a run's plots failed to draw, how long requests answer 503 `plot_failed` with the error "
        "before the next one sends the drawing again",
    )
    api_db_retry_s: float = Field(
        5.0,
        ge=0,
        description="how long an API request retries getting a database connection through a transient fault; "
        "then (or on a connection lost mid-request) it answers 503 with Retry-After",
    )
    api_page_size_max: int = Field(500, ge=1, description="largest `limit` of a list endpoint's page")
    # 8, not more: an API process computes on one core, and more threads than that only contend for it (measured
    # with make bench-load: /healthz's p99 under load fell from ~150 ms at 16 to ~60 ms at 4-8, throughput held)
    api_concurrency: int = Field(
        8,
        ge=1,
        le=200,
        description="requests one API process serves at once (health probes and event streams aside); the database "
        "pool and the thread pool are sized from it",
    )
    api_processes: int = Field(
        2,
        ge=1,
        le=64,
        description="API server processes `make dev` and the compose stack start (algocomp_api.serve): one process "
        "runs Python on one core at a time, so one per core; each has its own api_concurrency, database pool and "
        "event-stream readers",
    )
    api_queue_wait_s: float = Field(
        10.0, gt=0, description="how long a request may wait for one of those slots before a 503 with Retry-After"
    )

    # ---- Limits: what one request may ask of the platform. Each is refused with 422 naming the field and the limit
    # (413 for the body), before any list is built or anything stored. The defaults admit every preset as it is
    # (the heaviest, Calvano et al.'s, run 1,000 sessions of at most 10^9 periods each: a work of 10^12).
    max_sessions_per_run: int = Field(10_000, ge=1, description="sessions of one run (the request's or the scenario's)")
    max_periods_per_session: int = Field(
        1_000_000_000, ge=1, description="horizon.max_periods of one session (the cap; most sessions converge sooner)"
    )
    max_work_per_run: int = Field(
        10**12, ge=1, description="sessions x horizon.max_periods of one run: the most periods it may simulate"
    )
    max_log_rows_per_session: int = Field(
        1_000_000,
        ge=100,
        description="each of logging.max_intervals, tail, cycle_search and impulse_periods: arrays of that many rows "
        "a session allocates up front",
    )
    max_log_rows_per_run: int = Field(
        25_000_000,
        ge=1_000,
        description="sessions x (logging.max_intervals + logging.tail): the panel rows a run's worker may hold",
    )
    # 2,000 runs take the API about 9 s to store and queue on a 2-core machine (mostly Celery's per-task cost)
    max_sweep_runs: int = Field(2_000, ge=1, description="runs (cells x seeds) of one sweep")
    max_grid_values: int = Field(1_000, ge=1, description="values of a sweep's grid, all its paths together")
    max_override_count: int = Field(100, ge=1, description='"PATH=VALUE" overrides of one run or sweep')
    max_override_chars: int = Field(4_096, ge=16, description="characters of one override (or one grid path=value)")
    max_yaml_depth: int = Field(
        32, ge=4, le=64, description="nesting of a YAML override value or of a JSON document in a request"
    )
    max_request_bytes: int = Field(1_048_576, ge=1024, description="bytes of a request body (413 above)")
    max_page_offset: int = Field(1_000_000, ge=0, description="largest `offset` of a list endpoint's page")
    # accounts: how many of a team's runs may be queued or running at once (a sweep counts all its runs)
    team_active_runs_max: int = Field(20_000, ge=1, description="queued + running runs per team; above: 429")
    team_quota_retry_after_s: int = Field(60, ge=1, description="Retry-After of a 429 for the team quota")
    # idempotency keys of POST /runs and POST /sweeps (algocomp.platform.db.idempotency)
    idempotency_ttl_s: int = Field(
        24 * 3600, ge=60, description="how long a POST's answer is kept for a retry with its Idempotency-Key"
    )
    idempotency_wait_s: float = Field(
        10.0,
        gt=0,
        le=300,
        description="how long a request waits for another one with the same Idempotency-Key to finish; then 409",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="origins allowed to call the API from a browser (CORS), e.g. https://app.example.org; a JSON "
        "list or comma-separated; empty (the default): no cross-origin access",
    )

    python_agent_classes: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["algocomp.agents."],
        description="the `type: python` agent classes runs may name (importing a class runs its module's code): "
        "exact module:Class paths, or prefixes ending in '.' or ':' (the default, algocomp.agents., admits "
        "algocomp's own agents only; '*' admits every class); a JSON list or comma-separated",
    )

    @field_validator("python_agent_classes", mode="before")
    @classmethod
    def _classes_from_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            return [entry.strip() for entry in text.split(",") if entry.strip()]
        return value

    def python_agent_allowed(self, path: str) -> bool:
        """Whether runs may name the agent class at `path` (module:Class): python_agent_classes admits it."""
        from algocomp.agents.python import class_allowed

        return class_allowed(path, self.python_agent_classes)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins_from_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            return [origin.strip() for origin in text.split(",") if origin.strip()]
        return value

    @model_validator(mode="after")
    def _lease_spans_heartbeats(self) -> Settings:
        if self.lease_s < 3 * self.heartbeat_interval_s:
            raise ValueError(
                f"lease_s ({self.lease_s}) must be at least 3 heartbeat intervals (heartbeat_interval_s "
                f"{self.heartbeat_interval_s:g}): one late heartbeat must not cost a run its claim"
            )
        if self.beat_max_age_s and self.beat_max_age_s <= self.sweep_interval_s:
            raise ValueError(
                f"beat_max_age_s ({self.beat_max_age_s:g}) must exceed sweep_interval_s ({self.sweep_interval_s:g})"
            )
        return self

    @model_validator(mode="after")
    def _no_development_secrets_outside_development(self) -> Settings:
        if self.environment == "development":
            return self
        for name, development_value in DEVELOPMENT_SECRETS.items():
            value = getattr(self, name)
            if isinstance(value, SecretStr) and value.get_secret_value() == development_value:
                raise ValueError(
                    f"ALGOCOMP_{name.upper()} must be set when ALGOCOMP_ENVIRONMENT is {self.environment!r} "
                    "(the development default is public)"
                )
        if url_password(self.database_url) == DEVELOPMENT_DATABASE_PASSWORD:
            raise ValueError(
                f"ALGOCOMP_DATABASE_URL must not use the development password when ALGOCOMP_ENVIRONMENT is "
                f"{self.environment!r} (the development default is public)"
            )
        return self

    def __repr_args__(self) -> Any:
        # URLs with a password are masked (secrets are SecretStr and mask themselves)
        for name, value in super().__repr_args__():
            yield name, (mask_url(value) if isinstance(value, str) and name and name.endswith("_url") else value)

    def secrets(self) -> list[str]:
        """The secrets to mask wherever they appear: every SecretStr value, and each URL password long enough
        not to be an ordinary word (a URL's password is masked inside URLs anyway, whatever its length; the
        development database password, `algocomp`, is also the name of half the project)."""
        found: list[str] = []
        for value in (getattr(self, name) for name in type(self).model_fields):
            if isinstance(value, SecretStr):
                found.append(value.get_secret_value())
            elif isinstance(value, str):
                found += [
                    match.group("password")
                    for match in _URL_PASSWORD.finditer(value)
                    if len(match.group("password")) >= MIN_BARE_URL_PASSWORD
                ]
        return [secret for secret in dict.fromkeys(found) if secret]

    def redact(self, text: str) -> str:
        """`text` with URL passwords and every secret of these settings replaced by ***."""
        return redact(text, self.secrets())


def redact(text: str, secrets: list[str] | tuple[str, ...] = ()) -> str:
    """`text` with the passwords of URLs in it and each of `secrets` (longest first) replaced by ***."""
    text = mask_url(text)
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 4:  # a one-letter "secret" would mask every occurrence of that letter
            text = text.replace(secret, MASK)
    return text


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings()
