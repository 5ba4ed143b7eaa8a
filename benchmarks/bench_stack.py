"""Time the service stack end to end, through its HTTP API (`make bench-stack`; the stack must be up).

    python benchmarks/bench_stack.py [--api URL] [--quick] [--only throughput,scaleout,fanout,sweep,figure1]

Three measurements, each against a target:

  throughput  N tiny runs (the Calvano baseline cut to 1 session of 1,000 periods, a panel row every 100)
              submitted as fast as the API takes them; runs per second from the first submission until all
              have succeeded (target >= 20 runs/s with two worker processes). Then every artifact of every run
              is asked for: both plots of each run through the API (drawn on that first request, by the
              workers) are fetched and checked to be PNGs, and the time that took is printed; and the time until
              the runs' MLflow records (a follow-up after each run) are all done.
  scaleout    the 1,000-session Calvano baseline as 10 runs x 100 sessions (seeds 1..10) through the API,
              against `algocomp simulate calvano-2020-baseline --sessions 1000 --workers 2` on this machine:
              the ratio of the wall times (target <= 1.25: the stack's overhead is small).
  fanout      C concurrent SSE clients on one run each receive every event, in order, ending with the terminal
              event (target: all of them).

  figure1     the built-in sweep calvano-2020-figure1 (Calvano et al.'s Figure 1: 10 x 10 cells of beta x alpha,
              100 sessions each) from the POST until it has ended (target < 10 minutes); its Delta heatmap is
              written to --heatmap. Only when named in --only (`make bench-figure1`).

--quick shrinks them (50 tiny runs, 10 x 10 sessions vs 100 sessions, 20 clients) to a minute or so.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis

from algocomp.client import ApiError, Client
from algocomp.client.api import DEFAULT_BASE_URL, TERMINAL_STATUSES
from algocomp.client.credentials import find_token
from algocomp.platform.queue import ARTIFACTS_QUEUE, PLOTS_QUEUE, RUNS_QUEUE
from algocomp.platform.settings import get_settings

API_URL_ENV = "ALGOCOMP_API_URL"
BASELINE = "calvano-2020-baseline"
TINY_OVERRIDES = ["horizon.max_periods=1000"]
TINY_LOG_INTERVAL = 100
SUBMIT_THREADS = 8
POLL_INTERVAL_S = 0.1
TIMEOUT_S = 1800

THROUGHPUT_TARGET_RUNS_PER_S = 20.0
PLOTS = ("prices_plot", "impulse_plot")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# a plot request answered 503 plot_pending (not drawn within the API's plot_wait_s) is asked again, at most so often
PLOT_ASKS = 20
SCALEOUT_TARGET_RATIO = 1.25


@dataclass
class Measurement:
    name: str
    value: str
    target: str
    met: bool | None
    detail: str = ""
    seconds: float | None = None  # the wall time measured, where the figure is one


# ---------------------------------------------------------------------------------------------- helpers


def count_runs(client: Client, scenario_id: str, status: str) -> int:
    return client.count_runs(scenario_id=scenario_id, status=status)


def wait_for_runs(client: Client, run_ids: list[str], timeout_s: float = TIMEOUT_S) -> dict[str, dict[str, Any]]:
    """Poll until every run has ended; returns the final records by id."""
    pending = set(run_ids)
    finals: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout_s
    while pending:
        for run_id in list(pending):
            run = client.get_run(run_id)
            if run["status"] in TERMINAL_STATUSES:
                finals[run_id] = run
                pending.discard(run_id)
        if pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(pending)} runs still running after {timeout_s:.0f} s")
            time.sleep(0.25)
    return finals


# ---------------------------------------------------------------------------------------------- (a) throughput


def bench_throughput(api: str, runs: int) -> Measurement:
    with Client(api) as client:
        scenario_id = str(client.create_scenario(preset=BASELINE)["id"])
        # Runs of the same scenario from earlier invocations are counted out by their number before this one.
        succeeded_before = count_runs(client, scenario_id, "succeeded")
        failed_before = count_runs(client, scenario_id, "failed")

    local = threading.local()

    def submit(seed: int) -> str:
        if not hasattr(local, "client"):
            local.client = Client(api)
        answer = local.client.launch_run(
            scenario_id=scenario_id, seed=seed, sessions=1, log_interval=TINY_LOG_INTERVAL, overrides=TINY_OVERRIDES
        )
        return str(answer["id"])

    seed_base = int(time.time()) % 1_000_000 * 1000
    started = time.monotonic()
    with ThreadPoolExecutor(SUBMIT_THREADS) as pool:
        run_ids = list(pool.map(submit, range(seed_base, seed_base + runs)))
    submitted = time.monotonic() - started

    with Client(api) as client:
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            done = count_runs(client, scenario_id, "succeeded") - succeeded_before
            failed = count_runs(client, scenario_id, "failed") - failed_before
            if done + failed >= runs:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"throughput: {done} of {runs} tiny runs succeeded after {TIMEOUT_S} s")
            time.sleep(POLL_INTERVAL_S)
        elapsed = time.monotonic() - started
        # Spot-check that the runs counted are the ones submitted here.
        statuses = {client.get_run(run_id)["status"] for run_id in run_ids[:: max(1, runs // 10)]}
    rate = runs / elapsed
    plots = fetch_plots(api, run_ids)
    return Measurement(
        "throughput (tiny runs)",
        f"{rate:.1f} runs/s",
        f">= {THROUGHPUT_TARGET_RUNS_PER_S:.0f} runs/s",
        rate >= THROUGHPUT_TARGET_RUNS_PER_S and failed == 0 and plots.missing == 0,
        f"{runs} runs in {elapsed:.1f} s (submitted in {submitted:.2f} s, {runs / submitted:.0f} POST/s); "
        f"{failed} failed; sampled statuses {sorted(statuses)}; then every plot asked for: {plots.describe()}",
    )


@dataclass
class PlotFetch:
    pngs: int
    missing: int
    pending_answers: int
    elapsed_s: float
    first_error: str = ""

    def describe(self) -> str:
        text = (
            f"{self.pngs} PNGs of {self.pngs + self.missing} in {self.elapsed_s:.1f} s "
            f"({self.pngs / self.elapsed_s:.1f} plots/s, drawn on first request; "
            f"{self.pending_answers} answers 503 plot_pending asked again)"
        )
        return text + (f"; first failure: {self.first_error}" if self.first_error else "")


def fetch_plots(api: str, run_ids: list[str]) -> PlotFetch:
    """GET both plots of every run through the API (SUBMIT_THREADS at a time, run after run, as a client
    browsing the results would), each checked to be a PNG; a 503 plot_pending is asked again after its
    Retry-After."""
    headers = {"Authorization": f"Bearer {find_token(api)}"}
    local = threading.local()
    pending = 0
    failures: list[str] = []
    lock = threading.Lock()

    def fetch(job: tuple[str, str]) -> bool:
        nonlocal pending
        run_id, name = job
        if not hasattr(local, "http"):
            local.http = httpx.Client(base_url=api, headers=headers, timeout=60)
        for _ in range(PLOT_ASKS):
            response = local.http.get(f"/results/{run_id}/artifacts/{name}")
            if response.status_code == 503 and response.json()["error"]["code"] == "plot_pending":
                with lock:
                    pending += 1
                time.sleep(float(response.headers.get("retry-after", "1")))
                continue
            if response.status_code == 200 and response.content.startswith(PNG_MAGIC):
                return True
            with lock:
                failures.append(f"{name} of {run_id}: {response.status_code} {response.text[:200]}")
            return False
        with lock:
            failures.append(f"{name} of {run_id}: still pending after {PLOT_ASKS} asks")
        return False

    jobs = [(run_id, name) for run_id in run_ids for name in PLOTS]
    started = time.monotonic()
    with ThreadPoolExecutor(SUBMIT_THREADS) as pool:
        fetched = list(pool.map(fetch, jobs))
    elapsed = time.monotonic() - started
    return PlotFetch(sum(fetched), len(fetched) - sum(fetched), pending, elapsed, failures[0] if failures else "")


# ---------------------------------------------------------------------------------------------- (b) scale-out


def bench_scaleout(api: str, runs: int, sessions_per_run: int) -> Measurement:
    total_sessions = runs * sessions_per_run
    with Client(api) as client:
        started = time.monotonic()
        run_ids = [
            str(client.launch_run(preset=BASELINE, seed=seed, sessions=sessions_per_run)["id"])
            for seed in range(1, runs + 1)
        ]
        finals = wait_for_runs(client, run_ids)
        api_wall = time.monotonic() - started
    failed = [run_id for run_id, run in finals.items() if run["status"] != "succeeded"]
    wait_until_idle()  # the API runs' follow-ups are done before the CLI gets the cores

    out_dir = tempfile.mkdtemp(prefix="algocomp-bench-cli-")
    try:
        algocomp = os.path.join(os.path.dirname(sys.executable), "algocomp")
        argv = [
            algocomp,
            "simulate",
            BASELINE,
            "--sessions",
            str(total_sessions),
            "--workers",
            "2",
            "--out",
            os.path.join(out_dir, "run"),
        ]
        started = time.monotonic()
        completed = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=TIMEOUT_S)
        cli_wall = time.monotonic() - started
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{completed.stderr[-2000:]}")
    ratio = api_wall / cli_wall
    return Measurement(
        f"scale-out ({total_sessions} sessions)",
        f"ratio {ratio:.2f}",
        f"<= {SCALEOUT_TARGET_RATIO}",
        ratio <= SCALEOUT_TARGET_RATIO and not failed,
        f"API {runs} x {sessions_per_run} sessions: {api_wall:.1f} s ({len(failed)} not succeeded); "
        f"CLI --sessions {total_sessions} --workers 2: {cli_wall:.1f} s",
    )


# ---------------------------------------------------------------------------------------------- (c) SSE fan-out


def bench_fanout(api: str, clients: int, sessions: int) -> Measurement:
    with Client(api) as client:
        run_id = str(client.launch_run(preset=BASELINE, seed=4242, sessions=sessions)["id"])

    received: list[list[tuple[str | None, str]]] = [[] for _ in range(clients)]
    errors: list[str] = []
    barrier = threading.Barrier(clients)

    def listen(index: int) -> None:
        with Client(api, timeout=60) as listener:
            barrier.wait()
            try:
                for event_id, event, _ in listener.events(run_id):
                    received[index].append((event_id, event))
            except (ApiError, httpx.HTTPError) as error:  # counted, reported below
                errors.append(f"client {index}: {error}")

    started = time.monotonic()
    threads = [threading.Thread(target=listen, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=TIMEOUT_S)
    elapsed = time.monotonic() - started

    with Client(api) as client:
        reference = [(event_id, event) for event_id, event, _ in client.events(run_id)]
    complete = sum(1 for events in received if events == reference)
    in_order = all(_stream_order(events) for events in received if events)
    terminal = reference[-1][1] if reference else "none"
    return Measurement(
        f"SSE fan-out ({clients} clients)",
        f"{complete}/{clients} complete",
        "all, in order",
        complete == clients and in_order and terminal in TERMINAL_STATUSES,
        f"{len(reference)} events each (ending {terminal}) in {elapsed:.1f} s; {len(errors)} errors"
        + (f": {errors[0]}" if errors else ""),
    )


def _stream_order(events: list[tuple[str | None, str]]) -> bool:
    """Redis stream ids ("ms-seq") strictly increase."""
    keys = []
    for event_id, _ in events:
        if event_id is None:
            return False
        ms, _, seq = event_id.partition("-")
        keys.append((int(ms), int(seq or 0)))
    return all(a < b for a, b in itertools.pairwise(keys))


# ---------------------------------------------------------------------------------------------- main


def bench_sweep(api: str, side: int, sessions: int, max_periods: int) -> Measurement:
    """A side x side sweep (alpha x beta) of the Calvano baseline at a reduced horizon through the stack, against
    the same cells simulated by the library in one process with two workers (what `algocomp simulate` does per
    cell, without paying its start-up once per cell)."""
    alphas = [round(0.025 + i * (0.25 - 0.025) / max(1, side - 1), 6) for i in range(side)]
    betas = [round(2e-7 * (100 ** (i / max(1, side - 1))), 12) for i in range(side)]
    overrides = [f"horizon.max_periods={max_periods}", "logging.interval=10000"]
    with Client(api) as client:
        started = time.monotonic()
        sweep = client.create_sweep(
            preset=BASELINE,
            grid={"agents.alpha": alphas, "agents.beta": betas},
            seeds=[0],
            sessions=sessions,
            overrides=overrides,
            name="bench-sweep",
        )
        final = client.wait_sweep(str(sweep["id"]), timeout=TIMEOUT_S)
        api_wall = time.monotonic() - started
    wait_until_idle()

    from algocomp.engine.experiment import run_experiment
    from algocomp.scenarios import apply_overrides, load_scenario

    base = load_scenario(BASELINE)
    started = time.monotonic()
    for alpha in alphas:
        for beta in betas:
            cell = apply_overrides(
                base, [*overrides, f"sessions={sessions}", f"agents.alpha={alpha}", f"agents.beta={beta}"]
            )
            run_experiment(cell, workers=2)
    library_wall = time.monotonic() - started
    cells = side * side
    return Measurement(
        f"sweep ({cells} cells x {sessions} sessions)",
        f"{api_wall:.1f} s",
        "completes",
        final.get("status") == "succeeded",
        f"status {final.get('status')}; horizon {max_periods:,} periods; the library on the same cells "
        f"(one process, 2 workers): {library_wall:.1f} s, ratio {api_wall / library_wall:.2f}",
    )


FIGURE1 = "calvano-2020-figure1"
FIGURE1_TARGET_S = 600.0


def bench_figure1(api: str, sessions: int | None, heatmap: Path) -> Measurement:
    """The built-in sweep calvano-2020-figure1 (Calvano et al.'s Figure 1: 10 x 10 cells of beta x alpha, 100
    sessions each unless `sessions` says otherwise) through the stack, timed from the POST until the sweep has
    ended; its Delta heatmap, drawn by the aggregator, is then fetched and written to `heatmap`. The time leaves
    out the aggregator's metrics and heatmap (a few seconds after the sweep ends)."""
    with Client(api) as client:
        started = time.monotonic()
        sweep = client.create_sweep(sweep_preset=FIGURE1, sessions=sessions)
        sweep_id = str(sweep["id"])
        runs = int(sweep["runs"])
        shown = {"done": -1}

        def progress(data: dict[str, Any]) -> None:
            counts = data.get("counts") or {}
            done = sum(counts.get(status, 0) for status in TERMINAL_STATUSES)
            if done != shown["done"]:
                shown["done"] = done
                print(f"  figure1: {done}/{runs} runs over after {time.monotonic() - started:.0f} s", file=sys.stderr)

        final = client.wait_sweep(sweep_id, progress, timeout=TIMEOUT_S * 4)
        wall = time.monotonic() - started
        deadline = time.monotonic() + 180
        while "delta_heatmap" not in (client.get_sweep(sweep_id).get("files") or {}):
            if time.monotonic() > deadline:
                raise TimeoutError(f"sweep {sweep_id}: no delta_heatmap 180 s after it ended")
            time.sleep(1.0)
        heatmap.parent.mkdir(parents=True, exist_ok=True)
        heatmap.write_bytes(client.sweep_file(sweep_id, "delta_heatmap"))
        cells = client.sweep_metrics_json(sweep_id)["cells"]
    gains = [
        c["metrics"]["profit_gain_mean"] for c in cells if (c.get("metrics") or {}).get("profit_gain_mean") is not None
    ]
    per_run = sessions if sessions is not None else 100
    return Measurement(
        f"Figure 1 sweep ({len(cells)} cells x {per_run} sessions)",
        f"{wall:.0f} s",
        f"< {FIGURE1_TARGET_S:.0f} s",
        wall < FIGURE1_TARGET_S and final.get("status") == "succeeded",
        f"sweep {sweep_id} {final.get('status')}; mean Delta by cell {min(gains):.2f} to {max(gains):.2f}; "
        f"heatmap written to {heatmap}",
        seconds=wall,
    )


def wait_until_idle(timeout_s: float = 600.0) -> float:
    """Wait until the workers' queues are empty (runs, plots and the runs' follow-ups), so that one measurement's
    leftover work does not slow the next; returns how long that took."""
    settings = get_settings()
    broker = redis.Redis.from_url(settings.redis_url)
    keys = [f"{settings.key_prefix}{queue}" for queue in (RUNS_QUEUE, PLOTS_QUEUE, ARTIFACTS_QUEUE)]
    started = time.perf_counter()
    quiet = 0
    while time.perf_counter() - started < timeout_s:
        quiet = quiet + 1 if sum(broker.llen(key) for key in keys) == 0 else 0
        if quiet >= 3:  # empty three times in a row: the last tasks taken have had time to finish
            break
        time.sleep(0.5)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", default=os.environ.get(API_URL_ENV, DEFAULT_BASE_URL))
    parser.add_argument("--quick", action="store_true", help="smaller numbers: about a minute")
    parser.add_argument(
        "--only",
        default="throughput,scaleout,fanout,sweep",
        help="comma-separated subset; figure1 (Calvano et al.'s Figure 1 sweep, ~10 minutes) runs only when named",
    )
    parser.add_argument(
        "--figure1-sessions", type=int, default=None, help="sessions per cell of the figure1 sweep (default: its 100)"
    )
    parser.add_argument(
        "--heatmap", type=Path, default=Path("out/bench/figure1-delta-heatmap.png"), help="where figure1's heatmap goes"
    )
    args = parser.parse_args(argv)
    chosen = {name.strip() for name in args.only.split(",") if name.strip()}

    with Client(args.api) as client:
        try:
            client.health()
        except ApiError as error:
            print(f"bench_stack: {error}", file=sys.stderr)
            return 2

    measurements: list[Measurement] = []
    if "throughput" in chosen:
        print("throughput: submitting tiny runs ...", file=sys.stderr, flush=True)
        measurements.append(bench_throughput(args.api, 50 if args.quick else 200))
        drained = wait_until_idle()
        measurements[-1].detail += f"; their MLflow records were all done {drained:.1f} s after that"
    if "scaleout" in chosen:
        print("scale-out: API runs, then the CLI ...", file=sys.stderr, flush=True)
        measurements.append(bench_scaleout(args.api, 10, 10 if args.quick else 100))
        wait_until_idle()
    if "fanout" in chosen:
        print("fan-out: SSE clients on one run ...", file=sys.stderr, flush=True)
        measurements.append(bench_fanout(args.api, 20 if args.quick else 100, 10 if args.quick else 20))

    if "sweep" in chosen:
        print("sweep: a grid of cells through the stack, then the library ...", file=sys.stderr, flush=True)
        measurements.append(bench_sweep(args.api, 4 if args.quick else 10, 10, 100_000))

    if "figure1" in chosen:
        wait_until_idle()
        print("figure1: Calvano et al.'s Figure 1 sweep through the stack ...", file=sys.stderr, flush=True)
        measurements.append(bench_figure1(args.api, args.figure1_sessions, args.heatmap))

    print(format_table(measurements))
    return 0


def format_table(measurements: list[Measurement]) -> str:
    header = ("measurement", "result", "target", "met")
    rows = [(m.name, m.value, m.target, {True: "yes", False: "NO", None: "-"}[m.met]) for m in measurements]
    widths = (
        [max(len(header[i]), *(len(row[i]) for row in rows)) for i in range(4)] if rows else [len(h) for h in header]
    )
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(header, widths)), "  ".join("-" * w for w in widths)]
    for row, measurement in zip(rows, measurements):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths)))
        lines.append(f"    {measurement.detail}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
