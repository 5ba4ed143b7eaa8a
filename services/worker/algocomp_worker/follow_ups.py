"""After a run succeeded, off its critical path (the `artifacts` queue, consumed only when no run waits): draw its
plots from its stored tables, add them to its artifacts, and log the run to MLflow. Idempotent: a repeat redraws
the same keys, and the artifacts are merged in one statement."""

from __future__ import annotations

import io
import logging
import tempfile
import uuid
from pathlib import Path
from typing import Any

from algocomp.output.panel import read_table
from algocomp.output.writer import draw_plots
from algocomp.platform.storage import run_key, upload_run_folder
from algocomp.platform.tracking import log_run
from algocomp.scenarios import Scenario, load_scenario
from algocomp_worker.context import WorkerContext

log = logging.getLogger(__name__)

# Scalar summary entries logged as MLflow metrics.
TRACKED_METRICS = (
    "profit_gain",
    "profit_gain_sd",
    "profit_gain_median",
    "share_profit_gain_above_half",
    "mean_price",
    "price_index",
    "mean_profit",
    "consumer_surplus",
    "consumer_surplus_loss",
    "total_welfare",
    "lerner_index",
    "hhi",
    "converged_share",
    "mean_convergence_period",
    "mean_cycle_length",
    "focal_share",
    "punishment_share",
    "deviation_pays_share",
    "periods_total",
    "periods_per_second",
    "elapsed_s",
)


def render_and_track(context: WorkerContext, run_id: uuid.UUID | str) -> dict[str, str]:
    """Draw a succeeded run's plots, upload them, add them to its artifacts, then log the run to MLflow. Returns
    the plot artifacts ({} for a run that has no stored result)."""
    run_id = uuid.UUID(str(run_id))
    row = context.units_of_work.run(lambda uow: uow.runs.succeeded_result(run_id), what=f"read the result of {run_id}")
    if row is None:
        log.info("run %s has no stored result; nothing to draw", run_id)
        return {}
    scenario = load_scenario(dict(row.spec))
    summary = dict(row.summary)
    plots = draw_and_upload(context, run_id, scenario, summary)
    context.units_of_work.run(
        lambda uow: uow.runs.add_artifacts(run_id, plots), what=f"add the plots to the artifacts of run {run_id}"
    )
    log.info("run %s: plots uploaded (%s)", run_id, ", ".join(sorted(plots)))
    track(context, run_id, row.attempt, row.scenario_hash, scenario, summary, {**dict(row.artifacts), **plots})
    return plots


def draw_and_upload(
    context: WorkerContext, run_id: uuid.UUID, scenario: Scenario, summary: dict[str, Any]
) -> dict[str, str]:
    """The price and impulse-response plots, drawn from the run's Parquet tables on S3 and uploaded beside them."""
    storage = context.storage
    panel = read_table(io.BytesIO(storage.get_bytes(run_key(run_id, "panel"))))
    impulse = read_table(io.BytesIO(storage.get_bytes(run_key(run_id, "impulse"))))
    with tempfile.TemporaryDirectory(prefix=f"algocomp-plots-{run_id}-") as scratch:
        folder = Path(scratch)
        (folder / "plots").mkdir()
        draw_plots(panel, impulse, summary.get("benchmarks"), folder, scenario.name, scenario.logging.deviating_firm)
        return upload_run_folder(storage, run_id, folder)


def track(
    context: WorkerContext,
    run_id: uuid.UUID,
    attempt: int,
    scenario_hash: str,
    scenario: Scenario,
    summary: dict[str, Any],
    artifacts: dict[str, str],
) -> None:
    """Log the run to MLflow; log_run never raises (a tracking failure never fails a run)."""
    params: dict[str, Any] = {
        "scenario_hash": scenario_hash,
        "seed": scenario.seed,
        "sessions": scenario.sessions,
        "n_firms": scenario.market.n_firms,
        "demand": scenario.market.demand.model,
        "agents": ",".join(sorted({agent.type for agent in scenario.agent_list()})),
        "max_periods": scenario.horizon.max_periods,
        "regulated": scenario.regulation.is_active,
    }
    metrics = {key: summary[key] for key in TRACKED_METRICS if isinstance(summary.get(key), (int, float))}
    links = {name: f"s3://{context.storage.bucket}/{key}" for name, key in artifacts.items()}
    tracking_id = log_run(
        context.settings,
        run_id=str(run_id),
        scenario_name=scenario.name,
        params=params,
        metrics=metrics,
        artifacts=links,
        tags={"attempt": str(attempt), "worker_task": "algocomp.run"},
    )
    if tracking_id:
        log.info("run %s tracked in MLflow as %s", run_id, tracking_id)
