"""Results on disk: Parquet tables with a fixed schema, provenance, figures, and the run folder that holds them.

The command-line tool and the worker service both call `write_run`; the pieces are public so a notebook can write
a table or redraw a figure on its own. matplotlib is only imported when a figure is drawn.
"""

from algocomp.output.panel import read_table, write_table
from algocomp.output.plots import plot_impulse_response, plot_price_paths
from algocomp.output.provenance import run_config
from algocomp.output.writer import (
    PlotProcess,
    atomic_write,
    dumps_json,
    json_ready,
    write_json,
    write_run,
)

__all__ = [
    "PlotProcess",
    "atomic_write",
    "dumps_json",
    "json_ready",
    "plot_impulse_response",
    "plot_price_paths",
    "read_table",
    "run_config",
    "write_json",
    "write_run",
    "write_table",
]
