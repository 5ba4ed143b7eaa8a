"""GET /aggregates: one row of coordination indicators per finished run, across all runs (the aggregator's
`run_metrics` joined with `runs`)."""
