"""Engine speed figures (`make bench`): kernel throughput, logging overhead, the 1,000-session baseline and
cold/warm start of the command-line tool.

The machine these run on is shared and noisy, so every figure is the median of several runs, printed with its
spread. Targets (issue 2): >= 20M periods/s on one core, logging <= 10% of kernel speed, the 1,000-session
Calvano baseline in < 60 s on two cores, a cold `simulate` of one short session < 10 s, a warm one < 2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from algocomp.engine.build import compile_scenario
from algocomp.engine.experiment import run_experiment
from algocomp.engine.session import advance, new_state
from algocomp.scenarios import apply_overrides, load_scenario

BASELINE = "calvano-2020-baseline"


def kernel_throughput(periods: int, repeats: int) -> dict[str, object]:
    """Periods per second of the learning loop on one core, with and without the panel and tail logging,
    interleaved so that background load hits both alike."""
    scenario = apply_overrides(load_scenario(BASELINE), ["horizon.stop_at_convergence=false"])
    cs = compile_scenario(scenario)
    warm = new_state(cs, 1)
    advance(cs, warm, 1000)
    advance(cs, warm, 1000, log=False)
    rates: dict[bool, list[float]] = {True: [], False: []}
    for rep in range(repeats):
        for log in (True, False):
            st = new_state(cs, 1000 + rep)
            started = time.perf_counter()
            advance(cs, st, periods, log=log)
            rates[log].append(periods / (time.perf_counter() - started))
    with_log, without_log = statistics.median(rates[True]), statistics.median(rates[False])
    return {
        "periods_per_second": with_log,
        "periods_per_second_no_logging": without_log,
        "logging_overhead": 1.0 - with_log / without_log,
        "spread": [min(rates[True]), max(rates[True])],
    }


def general_loop_throughput(periods: int, repeats: int) -> float:
    """The general loop (any agent, any lever) on the same baseline, for comparison."""
    scenario = apply_overrides(load_scenario(BASELINE), ["horizon.stop_at_convergence=false"])
    cs = compile_scenario(scenario)
    advance(cs, new_state(cs, 1), 1000, general=True)
    rates = []
    for rep in range(repeats):
        st = new_state(cs, 2000 + rep)
        started = time.perf_counter()
        advance(cs, st, periods, general=True)
        rates.append(periods / (time.perf_counter() - started))
    return statistics.median(rates)


def full_experiment(sessions: int, workers: int) -> dict[str, object]:
    scenario = apply_overrides(load_scenario(BASELINE), [f"sessions={sessions}"])
    started = time.perf_counter()
    result = run_experiment(scenario, workers=workers)
    wall = time.perf_counter() - started
    s = result.summary
    return {
        "sessions": sessions,
        "workers": workers,
        "wall_s": wall,
        "periods_total": s["periods_total"],
        "periods_per_second": s["periods_total"] / wall,
        "profit_gain": s["profit_gain"],
        "converged_share": s["converged_share"],
    }


def cli_start(repeats: int) -> dict[str, object]:
    """Wall time of `algocomp simulate` for one short session: cold (empty compile cache) and warm."""
    command = [
        sys.executable,
        "-m",
        "algocomp.cli.main",
        "simulate",
        BASELINE,
        "--sessions",
        "1",
        "--set",
        "horizon.max_periods=20000",
        "--set",
        "logging.interval=1000",
        "--json",
    ]
    cold, warm = [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as out:
            env = dict(os.environ, NUMBA_CACHE_DIR=cache)
            for name, bucket in (("cold", cold), ("warm", warm)):
                started = time.perf_counter()
                subprocess.run([*command, "--out", str(Path(out) / name)], env=env, check=True, capture_output=True)
                bucket.append(time.perf_counter() - started)
    return {"cold_s": statistics.median(cold), "warm_s": statistics.median(warm), "cold_all": cold, "warm_all": warm}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and a 100-session experiment")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args()
    repeats = 3 if args.quick else 7
    figures: dict[str, object] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
    }
    print("kernel throughput (one core) ...", file=sys.stderr)
    figures["kernel"] = kernel_throughput(3_000_000, repeats)
    figures["general_loop_periods_per_second"] = general_loop_throughput(1_000_000, max(3, repeats // 2))
    print("full experiment ...", file=sys.stderr)
    figures["experiment"] = full_experiment(100 if args.quick else 1000, workers=2)
    print("command-line start ...", file=sys.stderr)
    figures["cli"] = cli_start(2 if args.quick else 3)
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    k, e, c = figures["kernel"], figures["experiment"], figures["cli"]
    rows = [
        ("Calvano baseline, one core (median)", f"{k['periods_per_second'] / 1e6:.1f} M periods/s", ">= 20"),
        ("  same, logging off", f"{k['periods_per_second_no_logging'] / 1e6:.1f} M periods/s", ""),
        ("  logging overhead", f"{100 * k['logging_overhead']:.1f} %", "<= 10 %"),
        (
            "  general loop (any agent / lever)",
            f"{figures['general_loop_periods_per_second'] / 1e6:.1f} M periods/s",
            "",
        ),
        (f"{e['sessions']}-session baseline, {e['workers']} workers", f"{e['wall_s']:.1f} s wall", "< 60 s (1,000)"),
        ("  throughput", f"{e['periods_per_second'] / 1e6:.1f} M periods/s", ""),
        ("  mean profit gain / converged", f"{e['profit_gain']:.3f} / {e['converged_share']:.0%}", "0.80-0.90 / 100%"),
        ("simulate, one short session, cold", f"{c['cold_s']:.1f} s", "< 10 s"),
        ("simulate, one short session, warm", f"{c['warm_s']:.1f} s", "< 2 s"),
    ]
    print(f"algocomp engine benchmarks — {figures['date']} — {figures['machine']}")
    width = max(len(r[0]) for r in rows)
    for name, value, target in rows:
        print(f"  {name:<{width}}  {value:>22}  {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
