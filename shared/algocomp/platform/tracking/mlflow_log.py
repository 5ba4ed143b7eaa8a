"""Log a finished run to MLflow over HTTP, without ever failing or stalling the run.

Tracking is a convenience for researchers browsing runs; the run's truth is in Postgres and S3. So every error
(server down, slow, refusing a value) is logged as a warning and answered with None, HTTP retries and timeouts
are capped (MLflow's defaults retry for minutes), and the whole call runs under a hard deadline of about
2 × settings.mlflow_timeout_s.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
import time
from collections.abc import Mapping
from typing import Any

from algocomp.platform.settings import Settings

logger = logging.getLogger(__name__)

# MLflow's limits (mlflow.utils.validation): longer values are refused, so they are truncated here
MAX_KEY_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 6000
MAX_TAG_VALUE_LENGTH = 8000
PARAMS_PER_BATCH = 100
METRICS_PER_BATCH = 1000
RUN_ID_TAG = "algocomp.run_id"
_UNSAFE_KEY_CHARACTERS = re.compile(r"[^A-Za-z0-9_\-. /:]")
_MLFLOW_STATUS = {"succeeded": "FINISHED", "failed": "FAILED", "cancelled": "KILLED"}
# experiment id by (tracking URI, experiment name), looked up once per process instead of once per run
_EXPERIMENT_IDS: dict[tuple[str, str], str] = {}


def flatten(values: Mapping[str, Any], parent: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists and other values are kept as they are."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{parent}.{key}" if parent else str(key)
        if isinstance(value, Mapping):
            flat.update(flatten(value, name))
        else:
            flat[name] = value
    return flat


def _key(name: str) -> str:
    return _UNSAFE_KEY_CHARACTERS.sub("_", name)[:MAX_KEY_LENGTH]


def mlflow_params(params: Mapping[str, Any]) -> dict[str, str]:
    """Flattened parameters as MLflow accepts them: safe keys ≤ 250 characters, text values ≤ 6000."""
    result: dict[str, str] = {}
    for name, value in flatten(params).items():
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        result[_key(name)] = text[:MAX_PARAM_VALUE_LENGTH]
    return result


def mlflow_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The finite numbers among the flattened metrics (booleans, text and NaN are not metrics)."""
    result: dict[str, float] = {}
    for name, value in flatten(metrics).items():
        if isinstance(value, bool) or value is None:
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            result[_key(name)] = number
    return result


_HTTP_LIMITS = ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR")
# limits the operator set before this process started win; the others are derived from the settings
_OPERATOR_LIMITS = frozenset(name for name in _HTTP_LIMITS if name in os.environ)


def _cap_http(timeout_s: float) -> None:
    """Bound MLflow's HTTP client, which reads these variables on every request (its defaults retry 7 times
    with a 120 s timeout each)."""
    limits = {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(1, math.ceil(timeout_s))),
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0",
    }
    for name, value in limits.items():
        if name not in _OPERATOR_LIMITS:
            os.environ[name] = value


def _authenticate(settings: Settings) -> None:
    """An MLflow server behind basic authentication: MLflow's client reads the user and password from these
    variables on every request (set here from the settings, when they name a user; else the operator's stand)."""
    if settings.mlflow_tracking_username:
        os.environ["MLFLOW_TRACKING_USERNAME"] = settings.mlflow_tracking_username
        password = settings.mlflow_tracking_password
        os.environ["MLFLOW_TRACKING_PASSWORD"] = password.get_secret_value() if password is not None else ""


def _log(
    settings: Settings,
    run_id: str,
    scenario_name: str,
    params: Mapping[str, Any],
    metrics: Mapping[str, Any],
    artifacts: Mapping[str, str],
    tags: Mapping[str, str],
    status: str,
) -> str:
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    cache_key = (settings.mlflow_tracking_uri, settings.mlflow_experiment)
    experiment_id = _EXPERIMENT_IDS.get(cache_key)
    if experiment_id is None:
        experiment = client.get_experiment_by_name(settings.mlflow_experiment)
        if experiment is not None:
            experiment_id = experiment.experiment_id
        else:
            try:
                experiment_id = client.create_experiment(settings.mlflow_experiment)
            except MlflowException:  # another worker created it in between
                found = client.get_experiment_by_name(settings.mlflow_experiment)
                if found is None:
                    raise
                experiment_id = found.experiment_id
        _EXPERIMENT_IDS[cache_key] = experiment_id

    # a redelivered run task logs into the MLflow run of its first attempt instead of adding a second one
    existing = client.search_runs([experiment_id], filter_string=f"tags.`{RUN_ID_TAG}` = '{run_id}'", max_results=1)
    all_tags = {
        RUN_ID_TAG: run_id,
        "algocomp.scenario": scenario_name,
        **{_key(name): str(value)[:MAX_TAG_VALUE_LENGTH] for name, value in tags.items()},
        **{_key(f"artifact.{name}"): uri[:MAX_TAG_VALUE_LENGTH] for name, uri in artifacts.items()},
    }
    if existing:
        mlflow_run_id = existing[0].info.run_id
        logged_params = existing[0].data.params
    else:
        mlflow_run_id = client.create_run(experiment_id, run_name=run_id, tags={RUN_ID_TAG: run_id}).info.run_id
        logged_params = {}

    # MLflow refuses to change a logged parameter, so a retry only adds the ones it does not have yet
    param_items = [Param(k, v) for k, v in mlflow_params(params).items() if k not in logged_params]
    tag_items = [RunTag(k, v) for k, v in all_tags.items()]
    timestamp_ms = int(time.time() * 1000)
    metric_items = [Metric(k, v, timestamp_ms, 0) for k, v in mlflow_metrics(metrics).items()]
    # params, tags and metrics together, as few requests as MLflow's per-request limits allow (one for a run's
    # usual record): each request costs the tracking server more than the data it carries
    batches = max(
        math.ceil(len(param_items) / PARAMS_PER_BATCH),
        math.ceil(len(tag_items) / PARAMS_PER_BATCH),
        math.ceil(len(metric_items) / METRICS_PER_BATCH),
    )
    for batch in range(batches):
        client.log_batch(
            mlflow_run_id,
            params=param_items[batch * PARAMS_PER_BATCH : (batch + 1) * PARAMS_PER_BATCH],
            tags=tag_items[batch * PARAMS_PER_BATCH : (batch + 1) * PARAMS_PER_BATCH],
            metrics=metric_items[batch * METRICS_PER_BATCH : (batch + 1) * METRICS_PER_BATCH],
        )
    client.set_terminated(mlflow_run_id, status=_MLFLOW_STATUS.get(status, "FINISHED"))
    return mlflow_run_id


def log_run(
    settings: Settings,
    *,
    run_id: str | Any,
    scenario_name: str,
    params: Mapping[str, Any],
    metrics: Mapping[str, Any],
    artifacts: Mapping[str, str] | None = None,
    tags: Mapping[str, str] | None = None,
    status: str = "succeeded",
) -> str | None:
    """Log one run (params, numeric metrics, artifact links as `artifact.<name>` tags) to MLflow.

    Returns the MLflow run id, or None when tracking is disabled (empty settings.mlflow_tracking_uri) or failed.
    Never raises, and returns within about 2 × settings.mlflow_timeout_s even if the server hangs.
    """
    if not settings.mlflow_tracking_uri:
        return None
    run_id = str(run_id)
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["mlflow_run_id"] = _log(
                settings, run_id, scenario_name, params, metrics, artifacts or {}, tags or {}, status
            )
        except BaseException as error:  # noqa: BLE001 - tracking must never fail a run, whatever went wrong
            _EXPERIMENT_IDS.clear()  # the experiment may be gone (deleted, another server): look it up next time
            outcome["error"] = error

    try:
        _cap_http(settings.mlflow_timeout_s)
        _authenticate(settings)
        # a daemon thread: if the server hangs past the deadline the run goes on and the thread is abandoned
        thread = threading.Thread(target=target, name=f"mlflow-log-{run_id}", daemon=True)
        thread.start()
        thread.join(timeout=2 * settings.mlflow_timeout_s + 1)
    except Exception as error:  # noqa: BLE001
        logger.warning("MLflow tracking of run %s failed: %s", run_id, error, extra={"run_id": run_id})
        return None
    if thread.is_alive():
        logger.warning(
            "MLflow tracking of run %s gave up after %.0f s (server %s too slow); the run is unaffected",
            run_id,
            2 * settings.mlflow_timeout_s + 1,
            settings.mlflow_tracking_uri,
            extra={"run_id": run_id},
        )
        return None
    if "error" in outcome:
        failure = outcome["error"]
        logger.warning(
            "MLflow tracking of run %s at %s failed (%s: %s); the run is unaffected",
            run_id,
            settings.mlflow_tracking_uri,
            type(failure).__name__,
            str(failure)[:500],
            extra={"run_id": run_id},
        )
        return None
    return outcome.get("mlflow_run_id")
