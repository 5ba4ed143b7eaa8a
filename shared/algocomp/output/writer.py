"""A run folder: the results of one experiment, as files a reader can open without algocomp.

    out_dir/
      config.json      provenance: seeds, versions, commit, command (output.provenance)
      scenario.json    the scenario exactly as run; `algocomp simulate scenario.json` reruns it
      panel.parquet    the long panel (engine.results), fixed schema (output.panel)
      impulse.parquet  the impulse responses
      plots/prices.png, plots/impulse.png
      summary.json     the experiment summary plus "sessions": one summary per session; written last

Every file is written under a temporary name in the same folder and renamed into place (os.replace is atomic on
one file system), so an interrupted or failed run leaves whole files or none, never a truncated one. summary.json
goes last, so its presence means the folder is complete.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pickle
import secrets
import signal
import sys
import traceback
from collections.abc import Callable, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np

from algocomp.engine.results import ExperimentResult
from algocomp.output.panel import write_table
from algocomp.output.plots import plot_impulse_response, plot_price_paths
from algocomp.output.provenance import run_config

CONFIG_FILE = "config.json"
SCENARIO_FILE = "scenario.json"
PANEL_FILE = "panel.parquet"
IMPULSE_FILE = "impulse.parquet"
SUMMARY_FILE = "summary.json"
PLOTS_DIR = "plots"
PRICES_PLOT_FILE = f"{PLOTS_DIR}/prices.png"
IMPULSE_PLOT_FILE = f"{PLOTS_DIR}/impulse.png"

TEMP_MARKER = ".tmp"


def write_run(
    result: ExperimentResult,
    out_dir: str | Path,
    *,
    workers: int,
    command: list[str] | None = None,
    plotter: PlotProcess | None = None,
    plots: bool = True,
) -> dict[str, Path]:
    """Write the run folder for `result` into `out_dir` (created with its parents if missing; existing files of a
    previous run there are replaced). Returns the written files by name: config, scenario, panel, impulse,
    prices_plot, impulse_plot, summary.

    `workers` and `command` are recorded in config.json; they describe how the run was made, not its results.
    `plotter`, a PlotProcess started before the simulation, draws the plots; without it one is started here.
    plots=False leaves them out (the worker draws them in a follow-up task, see algocomp_worker.follow_ups).
    """
    out_dir = Path(out_dir)
    (out_dir / PLOTS_DIR).mkdir(parents=True, exist_ok=True)
    scenario = result.scenario
    written: dict[str, Path] = {}

    config = run_config(scenario, workers=workers, command=command)
    written["config"] = write_json(config, out_dir / CONFIG_FILE)
    written["scenario"] = write_json(scenario.model_dump(mode="json"), out_dir / SCENARIO_FILE)

    panel = result.panel
    impulse = result.impulse

    job = (panel, impulse, result.benchmarks, out_dir, scenario.name, scenario.logging.deviating_firm)
    # Importing matplotlib and rendering take most of a short run's writing time: where processes fork, a child
    # draws the plots while this process writes the tables (started earlier by the caller, it has matplotlib
    # loaded); elsewhere PlotProcess draws them here, before the tables.
    if plots:
        if plotter is None:
            plotter = PlotProcess()
        plotter.draw(*job)
    elif plotter is not None:
        plotter.close()
    written["panel"] = atomic_write(out_dir / PANEL_FILE, lambda path: write_table(panel, path))
    written["impulse"] = atomic_write(out_dir / IMPULSE_FILE, lambda path: write_table(impulse, path))
    if plots:
        assert plotter is not None  # made above when plots are drawn
        plotter.wait()
        written["prices_plot"] = out_dir / PRICES_PLOT_FILE
        written["impulse_plot"] = out_dir / IMPULSE_PLOT_FILE

    summary = dict(result.summary)
    summary.setdefault("cancelled", result.cancelled)
    summary["sessions"] = result.session_summaries
    written["summary"] = write_json(summary, out_dir / SUMMARY_FILE)
    return written


def draw_plots(panel, impulse, benchmarks, out_dir: Path, scenario_name: str, deviating_firm: int) -> None:
    atomic_write(
        out_dir / PRICES_PLOT_FILE,
        lambda path: plot_price_paths(panel, benchmarks, path, scenario_name=scenario_name),
    )
    atomic_write(
        out_dir / IMPULSE_PLOT_FILE,
        lambda path: plot_impulse_response(
            impulse, benchmarks, path, deviating_firm=deviating_firm, scenario_name=scenario_name
        ),
    )


class PlotProcess:
    """Draws a run's plots in a forked child, where processes start by fork (Linux; see engine.processes).

    Start it before the simulation: the child imports matplotlib (half a second) while the parent simulates,
    then waits for the data on a pipe. `draw` hands it the tables; `wait` waits for the PNGs (and raises if
    drawing failed); `close` ends a child that will get no data. Where processes start by spawn (Windows, where
    there is no fork; macOS, where forking a process that has loaded system frameworks is unsafe; or when
    ALGOCOMP_START_METHOD / `start_method` asks for spawn or forkserver), no child is made: everything happens in
    this process at `draw`, and `wait` and `close` have nothing to do. The PNGs are the same either way.
    """

    def __init__(self, start_method: str | None = None) -> None:
        from algocomp.engine.processes import resolve_start_method

        self._pid = 0
        self._pipe = None
        if resolve_start_method(start_method) != "fork" or not hasattr(os, "fork"):
            return
        read_end, write_end = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            os.close(write_end)
            self._child(read_end)
        os.close(read_end)
        self._pid = pid
        self._pipe = os.fdopen(write_end, "wb")

    @property
    def forked(self) -> bool:
        """Whether a child draws the plots (False: they are drawn in this process at `draw`)."""
        return bool(self._pid)

    @staticmethod
    def _child(read_end: int) -> None:
        status = 0
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what an interrupt means
            import matplotlib.figure  # noqa: F401  (the point: load it while the parent simulates)

            with os.fdopen(read_end, "rb") as pipe:
                data = pipe.read()
            if data:
                draw_plots(*pickle.loads(data))
        except BaseException:
            traceback.print_exc()
            status = 1
        finally:
            sys.stderr.flush()
            os._exit(status)

    def draw(self, *job: Any) -> None:
        if self._pipe is None:
            draw_plots(*job)
            return
        with self._pipe:
            pickle.dump(job, self._pipe, protocol=pickle.HIGHEST_PROTOCOL)
        self._pipe = None

    def wait(self) -> None:
        if self._pipe is not None:
            self.close()
            return
        if self._pid:
            _, status = os.waitpid(self._pid, 0)
            self._pid = 0
            if os.waitstatus_to_exitcode(status) != 0:
                raise RuntimeError("drawing the plots failed (the reason is printed above)")

    def close(self) -> None:
        """End the child without drawing anything."""
        if self._pipe is not None:
            self._pipe.close()
            self._pipe = None
        if self._pid:
            os.waitpid(self._pid, 0)
            self._pid = 0


# --------------------------------------------------------------------------------------------- atomic files


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Produce `path` all at once: `write` is called with a temporary path next to it (same suffix, so writers that
    pick the format from the name still work), the result is flushed to disk and renamed over `path`.

    If `write` raises (or the process is interrupted with Ctrl-C), the temporary file is removed and `path` keeps
    its previous content, if any.
    """
    path = Path(path)
    temporary = path.with_name(f".{path.stem}.{secrets.token_hex(4)}{TEMP_MARKER}{path.suffix}")
    try:
        write(temporary)
        if not temporary.exists():
            raise RuntimeError(f"the writer for {path.name} returned without creating {temporary.name}")
        _fsync(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def write_json(document: Any, path: str | Path) -> Path:
    """Write `document` as indented UTF-8 JSON, atomically; NaN and infinities become null (see json_ready)."""
    text = dumps_json(document) + "\n"
    return atomic_write(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def _fsync(path: Path) -> None:
    # Windows flushes only handles opened for writing (FlushFileBuffers needs GENERIC_WRITE; fsync of a read-only
    # descriptor fails with EBADF there); elsewhere a read-only descriptor is enough and works on any file we made.
    flags = os.O_RDWR | getattr(os, "O_BINARY", 0) if os.name == "nt" else os.O_RDONLY
    descriptor = os.open(path, flags)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# --------------------------------------------------------------------------------------------- JSON


def dumps_json(document: Any, *, indent: int | None = 2) -> str:
    """Strict JSON for `document`: what other tools (jq, JavaScript, R) can read, so no NaN literals."""
    return json.dumps(json_ready(document), indent=indent, allow_nan=False, ensure_ascii=False)


def json_ready(value: Any) -> Any:
    """`value` with only JSON types left: NumPy scalars and arrays become numbers and lists, NaN and infinities
    become None (a metric that is undefined, e.g. the convergence period of a session that never converged),
    paths and dates become strings, dataclasses and pydantic models become dicts.

    Anything else raises TypeError: a summary holding an object nobody planned for is a bug to fix, not to hide
    behind its repr.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, np.bool_):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, Mapping):
        return {str(key): json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist())
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if hasattr(value, "model_dump"):
        return json_ready(value.model_dump(mode="json"))
    if hasattr(value, "to_dict") and callable(value.to_dict):
        return json_ready(value.to_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return json_ready(dataclasses.asdict(value))
    raise TypeError(f"cannot write a {type(value).__name__} as JSON: {value!r}")
