"""MLflow tracking that never fails or stalls a run."""

from algocomp.extras import raise_missing_extra

try:
    from algocomp.platform.tracking.mlflow_log import (
        RUN_ID_TAG,
        flatten,
        log_run,
        mlflow_metrics,
        mlflow_params,
    )
except ImportError as _error:
    raise_missing_extra(_error, "server", "algocomp.platform.tracking (MLflow tracking)")

__all__ = ["RUN_ID_TAG", "flatten", "log_run", "mlflow_metrics", "mlflow_params"]
