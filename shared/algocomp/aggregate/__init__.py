"""Cross-run coordination metrics for sweeps: per-cell indicators with bootstrap intervals and paired regulation
effects. Pure functions over the engine's session summaries, shared by the aggregator service and the CLI."""

from algocomp.aggregate.metrics import (
    COLLUSION_THRESHOLD,
    bootstrap_ci,
    cell_metrics,
    paired_effects,
)

__all__ = ["COLLUSION_THRESHOLD", "bootstrap_ci", "cell_metrics", "paired_effects"]
