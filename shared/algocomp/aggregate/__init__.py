"""Cross-run coordination metrics for sweeps: per-cell indicators with bootstrap intervals and paired regulation
effects. Pure functions over the engine's session summaries, shared by the aggregator service and the CLI.

algocomp.aggregate.grid turns a sweep's grid and its cells' sessions into per-cell metrics, tables and plots
(also pure); algocomp.platform.db.sweep_metrics reads those sessions from the database and S3 (the `server` extra)."""

from algocomp.aggregate.metrics import (
    COLLUSION_THRESHOLD,
    bootstrap_ci,
    cell_metrics,
    paired_effects,
)

__all__ = ["COLLUSION_THRESHOLD", "bootstrap_ci", "cell_metrics", "paired_effects"]
