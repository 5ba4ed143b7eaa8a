"""How a sweep's wall time falls with the number of run-worker processes (`make bench-scaling`).

    python benchmarks/bench_scaling.py [--processes 1,2,4] [--sessions 5]

For each count N it restarts the native stack of `make dev` with N run-worker processes (WORKER_CONCURRENCY=N,
as `docker compose up --scale worker=K` gives K containers of WORKER_CONCURRENCY processes each), then runs the
built-in sweep calvano-2020-figure1 with --sessions sessions per cell (100 runs) through the API and times it from
the POST to the sweep's end (bench_stack.bench_figure1). It prints wall time, speed-up against the first count and
efficiency (speed-up / N). The stack is left up with the last count; `make dev` restarts it as usual.

A sweep's runs are its unit of distribution: each run goes to one free worker process and runs its sessions
there, so the wall time falls with the processes while there are at least as many runs left as processes and
cores to run them on. It leaves out start-up of the stack (timed from the POST) and the aggregator's metrics.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_stack import bench_figure1, wait_until_idle  # noqa: E402 - benchmarks/ is not a package

REPO_ROOT = Path(__file__).resolve().parents[1]
DEVSTACK = REPO_ROOT / "tools" / "devstack.py"


def restart_stack(processes: int) -> None:
    env = {**os.environ, "WORKER_CONCURRENCY": str(processes)}
    for command in ("down", "up"):
        subprocess.run([sys.executable, str(DEVSTACK), command], env=env, check=True, stdout=subprocess.DEVNULL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", default="1,2,4", help="comma-separated run-worker process counts")
    parser.add_argument("--sessions", type=int, default=5, help="sessions per cell of the sweep (its own: 100)")
    parser.add_argument("--api", default=os.environ.get("ALGOCOMP_API_URL", "http://127.0.0.1:8000"))
    args = parser.parse_args(argv)
    try:
        counts = [int(part) for part in args.processes.split(",") if part.strip()]
    except ValueError:
        parser.error(f"--processes {args.processes!r}: give whole numbers separated by commas, e.g. 1,2,4")
    if not counts or min(counts) < 1:
        parser.error("--processes: at least one count, each 1 or more")
    rows: list[tuple[int, float]] = []
    with tempfile.TemporaryDirectory(prefix="algocomp-scaling-") as scratch:
        for processes in counts:
            print(f"scaling: restarting the stack with {processes} run-worker processes ...", file=sys.stderr)
            restart_stack(processes)
            wait_until_idle()
            measurement = bench_figure1(args.api, args.sessions, Path(scratch) / f"heatmap-{processes}.png")
            assert measurement.seconds is not None
            wall = measurement.seconds
            rows.append((processes, wall))
            print(f"scaling: {processes} processes: {wall:.0f} s ({measurement.detail})", file=sys.stderr)
    first_n, first_wall = rows[0]
    print(f"calvano-2020-figure1, {args.sessions} sessions per cell (100 runs), {os.cpu_count()} cores")
    print(f"{'processes':>9}  {'wall':>7}  {'speed-up':>8}  {'efficiency':>10}")
    for processes, wall in rows:
        speedup = first_wall / wall
        print(f"{processes:>9}  {wall:>6.0f}s  {speedup:>8.2f}  {speedup * first_n / processes:>10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
