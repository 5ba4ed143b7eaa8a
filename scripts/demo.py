"""The `make demo` driver: a real experiment through the algocomp API, followed live, then a results table.

Launches the Calvano et al. (2020) baseline and the myopic-vs-bandit market for a few seeds each, all at once
(the stack's workers take them in turn), follows every run's Server-Sent Events with a progress bar per run (a
line per change when stdout is not a terminal), then prints one row per run and the links to its files. It ends with
a sweep: the baseline Q-learner against a
myopic and against an epsilon-greedy bandit opponent, each without and with a price cap 10% above Nash, over
several seeds; it prints the per-cell metrics and the cap's paired effects with their 95% intervals.

    python scripts/demo.py [--api URL] [--seeds 3] [--sessions 20] [--bandit-sessions 20]
                           [--sweep-seeds 3] [--sweep-sessions 10] [--sweep-periods 300000]

It uses only the HTTP API (algocomp.client), as any client of a deployed stack would; `make demo` starts the
native stack first (python tools/devstack.py up).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from algocomp.cli.remote import format_sweep_metrics
from algocomp.client import ApiError, Client
from algocomp.client.api import DEFAULT_BASE_URL, TERMINAL_STATUSES

API_URL_ENV = "ALGOCOMP_API_URL"
BASELINE = "calvano-2020-baseline"
BANDIT = "myopic-vs-bandit"
FIRST_SEED = 1
RUN_TIMEOUT_S = 1800
# The closing sweep: opponents of the baseline Q-learner (whole per-firm agent lists) x a price cap.
SWEEP_GRID: dict[str, list[Any]] = {
    "agents": [
        [{"type": "qlearning"}, {"type": "myopic"}],
        [{"type": "qlearning"}, {"type": "epsilon_greedy", "epsilon": 0.1, "beta": 1e-4}],
    ],
    "regulation.price_cap": [None, {"basis": "nash_markup", "value": 0.1}],
}


@dataclass
class DemoRun:
    """One launched run and what its stream said last."""

    scenario: str
    seed: int
    sessions: int
    run_id: str = ""
    status: str = "queued"
    sessions_done: int = 0
    profit_gain: float | None = None
    mean_price: float | None = None
    error: str | None = None
    final: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.scenario} seed {self.seed}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", default=os.environ.get(API_URL_ENV, DEFAULT_BASE_URL), help="the API's base URL")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per scenario (default 3)")
    parser.add_argument("--sessions", type=int, default=20, help="sessions per Calvano baseline run (default 20)")
    parser.add_argument(
        "--bandit-sessions", type=int, default=20, help="sessions per myopic-vs-bandit run (default 20)"
    )
    parser.add_argument("--sweep-seeds", type=int, default=3, help="seeds per cell of the closing sweep (default 3)")
    parser.add_argument("--sweep-sessions", type=int, default=10, help="sessions per run of the sweep (default 10)")
    parser.add_argument(
        "--sweep-periods",
        type=int,
        default=300_000,
        help="longest horizon of a sweep session (default 300000; sessions stop at convergence), which keeps "
        "the sweep well under a minute on 2 cores",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runs = [DemoRun(BASELINE, seed, args.sessions) for seed in range(FIRST_SEED, FIRST_SEED + args.seeds)]
    runs += [DemoRun(BANDIT, seed, args.bandit_sessions) for seed in range(FIRST_SEED, FIRST_SEED + args.seeds)]
    with Client(args.api) as client:
        try:
            client.health()
            for run in runs:
                accepted = client.launch_run(preset=run.scenario, seed=run.seed, sessions=run.sessions)
                run.run_id = str(accepted["id"])
        except ApiError as error:
            print(f"demo: {error}", file=sys.stderr)
            return 2
    print(f"launched {len(runs)} runs through {args.api}: {args.seeds} seeds each of {BASELINE} and {BANDIT}")

    started = time.monotonic()
    follow_all(args.api, runs)
    elapsed = time.monotonic() - started

    with Client(args.api) as client:
        for run in runs:
            if run.status == "succeeded":
                try:
                    run.summary = client.results(run.run_id)
                except ApiError as error:
                    run.error = f"results: {error}"
    print()
    print(results_table(runs))
    print()
    print(f"{sum(r.status == 'succeeded' for r in runs)} of {len(runs)} runs succeeded in {elapsed:.1f} s.")
    print(where_are_the_files(args.api, runs))
    failed = [run for run in runs if run.status != "succeeded"]
    for run in failed:
        print(f"  {run.label} ({run.run_id}) {run.status}: {run.error or 'no error recorded'}", file=sys.stderr)
    sweep_ok = run_sweep(args)
    return 0 if not failed and sweep_ok else 1


# ---------------------------------------------------------------------------------------------- the sweep


def run_sweep(args: argparse.Namespace) -> bool:
    """Q-learning against a myopic and a bandit opponent, with and without a price cap: launch it as one sweep,
    follow its event stream, then print the per-cell metrics and the cap's paired effects (GET
    /sweeps/{id}/metrics). True when every run succeeded."""
    print()
    print(
        f"sweep: {BASELINE} Q-learner vs myopic / epsilon-greedy opponents x price cap (none, Nash + 10%), "
        f"{args.sweep_seeds} seeds x {args.sweep_sessions} sessions per cell"
    )
    with Client(args.api) as client:
        try:
            accepted = client.create_sweep(
                preset=BASELINE,
                grid=SWEEP_GRID,
                seeds_per_cell=args.sweep_seeds,
                sessions=args.sweep_sessions,
                overrides=[
                    f"horizon.max_periods={args.sweep_periods}",
                    "horizon.stop_at_convergence=true",
                    f"logging.interval={max(1, args.sweep_periods // 20)}",
                ],
                name="demo: opponents x price cap",
            )
            sweep_id = str(accepted["id"])
            started = time.monotonic()
            with SweepDisplay(int(accepted["runs"])) as on_progress:
                sweep = client.wait_sweep(sweep_id, progress=on_progress, timeout=RUN_TIMEOUT_S)
            elapsed = time.monotonic() - started
            print(
                f"sweep {sweep_id} {sweep['status']} in {elapsed:.1f} s: {accepted['cells']} cells, "
                f"{accepted['runs']} runs ({', '.join(f'{k} {v}' for k, v in sweep['counts'].items() if v)})"
            )
            if not sweep["counts"].get("succeeded"):
                return False
            metrics = client.sweep_metrics_json(sweep_id)
        except (ApiError, httpx.HTTPError, TimeoutError) as error:
            print(f"demo: sweep: {error}", file=sys.stderr)
            return False
    print()
    print(format_sweep_metrics(metrics))
    print(
        f"Per-cell CSV: {args.api}/sweeps/{sweep_id}/metrics (Accept: text/csv), or "
        f"`algocomp aggregate --sweep {sweep_id}` for one row per run."
    )
    return sweep["status"] == "succeeded"


class SweepDisplay:
    """A tqdm bar of the sweep's runs on a terminal; otherwise a line whenever the count of finished runs
    changes."""

    def __init__(self, runs: int) -> None:
        self._runs = runs
        self._bar: Any = None
        self._last_over = -1

    def __enter__(self) -> Any:
        if sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=self._runs, desc="sweep runs", unit="run", file=sys.stderr)
        return self.update

    def __exit__(self, *exc_info: object) -> None:
        if self._bar is not None:
            self._bar.close()

    def update(self, event: dict[str, Any]) -> None:
        counts = event.get("counts") or {}
        over = sum(counts.get(status, 0) for status in TERMINAL_STATUSES)
        progress = event.get("progress")
        if self._bar is not None:
            self._bar.set_postfix_str(f"{100 * float(progress or 0):.0f}% of the work done", refresh=False)
            self._bar.update(over - self._bar.n)
        elif over != self._last_over:
            self._last_over = over
            print(f"  sweep: {over}/{self._runs} runs over, {100 * float(progress or 0):.0f}% done", flush=True)


# ---------------------------------------------------------------------------------------------- live progress


def follow_all(api: str, runs: list[DemoRun]) -> None:
    """Follow every run's event stream in its own thread (each with its own connection) until all have ended."""
    display = ProgressDisplay(runs, live=sys.stderr.isatty())
    threads = [threading.Thread(target=follow_one, args=(api, run, display), daemon=True) for run in runs]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join(timeout=RUN_TIMEOUT_S)
    finally:
        display.close()


def follow_one(api: str, run: DemoRun, display: ProgressDisplay) -> None:
    with Client(api) as client:
        try:
            for _, event, data in client.events(run.run_id):
                data = data if isinstance(data, dict) else {}
                if event == "progress":
                    run.status = "running"
                    run.sessions_done = int(data.get("sessions_done") or run.sessions_done)
                    run.profit_gain = data.get("profit_gain", run.profit_gain)
                    run.mean_price = data.get("mean_price", run.mean_price)
                elif event == "started":
                    run.status = "running"
                elif event in TERMINAL_STATUSES:
                    run.status = event
                display.update(run, event)
            run.final = client.get_run(run.run_id)
        except (ApiError, httpx.HTTPError) as error:
            # A stream that cannot be followed: the run's record still says how it ended.
            try:
                run.final = client.wait(run.run_id, timeout=RUN_TIMEOUT_S)
            except (ApiError, httpx.HTTPError, TimeoutError):
                run.error = f"could not follow the run: {error}"
                run.status = "unknown"
                display.update(run, "unknown")
                return
        run.status = str(run.final.get("status", run.status))
        run.sessions_done = int(run.final.get("sessions_done") or run.sessions_done)
        run.error = run.final.get("error") and str(run.final["error"]).strip().splitlines()[-1]
        display.update(run, run.status)


class ProgressDisplay:
    """A tqdm bar per run on a terminal; otherwise one printed line whenever a run starts or ends."""

    def __init__(self, runs: list[DemoRun], *, live: bool) -> None:
        self._lock = threading.Lock()
        self._bars: dict[str, Any] = {}
        self._printed: dict[str, str] = {}  # the last state printed per run, off a terminal
        self._live = live
        if live:
            from tqdm import tqdm

            label_width = max(len(run.label) for run in runs)
            # A pseudo-terminal that reports no size (`script`, some CI runners) would hide every bar.
            columns = _terminal_columns()
            for position, run in enumerate(runs):
                self._bars[run.run_id] = tqdm(
                    total=run.sessions,
                    desc=run.label.ljust(label_width),
                    unit="session",
                    position=position,
                    leave=True,
                    file=sys.stderr,
                    dynamic_ncols=columns is not None,
                    ncols=None if columns is not None else 110,
                    nrows=None if columns is not None else max(24, len(runs) + 2),
                    bar_format="{desc} {bar} {n_fmt}/{total_fmt}{postfix}",
                )
                self._bars[run.run_id].set_postfix_str("queued")

    def update(self, run: DemoRun, event: str) -> None:
        with self._lock:
            if self._live:
                bar = self._bars[run.run_id]
                postfix = run.status
                if run.profit_gain is not None and run.mean_price is not None:
                    postfix += f"  price {run.mean_price:.4f}  profit gain {run.profit_gain:.3f}"
                bar.set_postfix_str(postfix, refresh=False)
                bar.update(run.sessions_done - bar.n)
                bar.refresh()
            elif event in ("started", *TERMINAL_STATUSES, "unknown") and self._printed.get(run.run_id) != event:
                self._printed[run.run_id] = event
                print(f"  {run.label}: {event} ({run.sessions_done}/{run.sessions} sessions)", flush=True)

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()


def _terminal_columns() -> int | None:
    try:
        columns = os.get_terminal_size(sys.stderr.fileno()).columns
    except (OSError, ValueError):
        return None
    return columns or None


# ---------------------------------------------------------------------------------------------- report


def results_table(runs: list[DemoRun]) -> str:
    header = [
        "run",
        "scenario",
        "seed",
        "sessions",
        "status",
        "profit gain ± sd",
        "mean price",
        "consumer surplus",
        "converged",
    ]
    rows = []
    for run in runs:
        summary = run.summary
        rows.append(
            [
                run.run_id[:8],
                run.scenario,
                str(run.seed),
                str(run.sessions_done if not summary else _sessions(summary, run.sessions)),
                run.status,
                f"{_number(summary.get('profit_gain'), 3)} ± {_number(summary.get('profit_gain_sd'), 3)}"
                if summary
                else "",
                _number(summary.get("mean_price")) if summary else "",
                _number(summary.get("consumer_surplus")) if summary else "",
                _share(summary.get("converged_share")) if summary else "",
            ]
        )
    widths = [max(len(header[i]), *(len(row[i]) for row in rows)) for i in range(len(header))]
    numeric = {2, 3, 5, 6, 7, 8}

    def line(cells: list[str]) -> str:
        return "  ".join(
            cell.rjust(w) if i in numeric else cell.ljust(w) for i, (cell, w) in enumerate(zip(cells, widths))
        )

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *(line(row) for row in rows)])


def where_are_the_files(api: str, runs: list[DemoRun]) -> str:
    lines = ["Each run's files are in S3 under runs/<id>/ and served by the API:"]
    for run in runs:
        lines.append(f"  {run.label:<28} {api}/results/{run.run_id}   (panel: {api}/results/{run.run_id}/panel)")
    lines.append(f"Live events: {api}/streams/<id>; the API's documentation: {api}/docs")
    lines.append("From a shell: algocomp results <id>, algocomp panel <id> --out panel.parquet")
    return "\n".join(lines)


def _sessions(summary: dict[str, Any], default: int) -> int:
    value = summary.get("sessions")
    return len(value) if isinstance(value, list) else int(value or default)


def _number(value: Any, digits: int = 4) -> str:
    if isinstance(value, (list, tuple)):
        return "/".join(_number(v, digits) for v in value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "n/a"
    return "n/a" if math.isnan(number) else f"{number:.{digits}f}"


def _share(value: Any) -> str:
    try:
        return f"{100 * float(value):.0f}%"
    except (TypeError, ValueError):
        return "n/a"


if __name__ == "__main__":
    sys.exit(main())
