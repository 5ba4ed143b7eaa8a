"""The aggregator's tasks, registered explicitly on the app."""

from __future__ import annotations

from typing import Any

from algocomp.db import get_engine
from algocomp.logs import bind_run
from algocomp.queue import RUN_FINISHED_TASK
from celery import Celery

from algocomp_aggregator.indicators import record_run_metrics


def register_tasks(app: Celery) -> None:
    """Register the aggregator's tasks on `app` under the shared task names (algocomp.queue)."""

    @app.task(name=RUN_FINISHED_TASK)
    def run_finished(run_id: str) -> dict[str, Any] | None:
        """Store the indicators of a run that reached a terminal status (sent by the worker once per outcome)."""
        with bind_run(run_id):
            metrics = record_run_metrics(get_engine(), run_id)
        if metrics is None:
            return None
        return {"run_id": run_id, "status": metrics.status, "profit_gain": metrics.profit_gain}
