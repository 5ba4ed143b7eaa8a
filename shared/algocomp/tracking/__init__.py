"""MLflow tracking that never fails or stalls a run."""

from algocomp.tracking.mlflow_log import (
    RUN_ID_TAG,
    flatten,
    log_run,
    mlflow_metrics,
    mlflow_params,
)

__all__ = ["RUN_ID_TAG", "flatten", "log_run", "mlflow_metrics", "mlflow_params"]
