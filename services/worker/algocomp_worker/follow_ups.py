"""Work on a succeeded run off its critical path.

- `track`: log the run to MLflow (the durable follow-up every success sends, on the `artifacts` queue, consumed only
  when no run waits). It links the files stored so far: the plots only once drawn.
- `draw_plots`: draw its two PNG plots from its stored tables, upload them and add them to its artifacts. Sent by
  the API when a client first asks for a plot (on the `plots` queue, taken before runs): drawing costs ~0.3 s, far
  more than a tiny run, so runs never pay for plots nobody looks at. A repeat finds the plots recorded and draws
  nothing; a redraw (both recorded but one missing from S3) writes the same keys, and the artifacts are merged in
  one statement."""

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


# The artifacts drawn on request (names of algocomp.platform.storage.ARTIFACTS).
PLOTS = ("prices_plot", "impulse_plot")


def draw_run_plots(context: WorkerContext, run_id: uuid.UUID | str) -> dict[str, str]:
    """Draw a succeeded run's plots, upload them and add them to its artifacts, unless they are recorded and stored
    already. Returns the plot artifacts ({} for a run that has no stored result)."""
    run_id = uuid.UUID(str(run_id))
    row = context.units_of_work.run(lambda uow: uow.runs.succeeded_result(run_id), what=f"read the result of {run_id}")
    if row is None:
        log.info("run %s has no stored result; nothing to draw", run_id)
        return {}
    recorded = {name: row.artifacts[name] for name in PLOTS if name in row.artifacts}
    if len(recorded) == len(PLOTS) and all(context.storage.exists(key) for key in recorded.values()):
        log.info("run %s: plots drawn already", run_id)
        return recorded
    plots = draw_and_upload(context, run_id, load_scenario(dict(row.spec)), dict(row.summary))
    context.units_of_work.run(
        lambda uow: uow.runs.add_artifacts(run_id, plots), what=f"add the plots to the artifacts of run {run_id}"
    )
    log.info("run %s: plots drawn and uploaded (%s)", run_id, ", ".join(sorted(plots)))
    return plots


def track_run(context: WorkerContext, run_id: uuid.UUID | str) -> bool:
    """Log a succeeded run to MLflow with links to its stored files; False for a run that has no stored result."""
    run_id = uuid.UUID(str(run_id))
    row = context.units_of_work.run(lambda uow: uow.runs.succeeded_result(run_id), what=f"read the result of {run_id}")
    if row is None:
        log.info("run %s has no stored result; nothing to track", run_id)
        return False
    scenario = load_scenario(dict(row.spec))
    track(context, run_id, row.attempt, row.scenario_hash, scenario, dict(row.summary), dict(row.artifacts))
    return True


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
