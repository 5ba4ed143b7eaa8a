"""Engine speed figures (`make bench`): complete baseline sessions through the command-line tool (the headline),
learning-loop throughput past convergence, logging overhead, the general loop, the 1,000-session baseline and
cold/warm start of the command-line tool.

The machine these run on is shared and noisy, so every figure is the median of several runs, printed with its
spread. Targets: >= 40M periods/s on complete baseline sessions, one worker (issue 13); >= 20M periods/s for the
loop on one core, logging <= 10% of its speed, the 1,000-session Calvano baseline in < 60 s on two cores, a cold
`simulate` of one short session < 10 s, a warm one < 2 s (issue 2).
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
SIMULATE_BASELINE = [sys.executable, "-m", "algocomp.cli.main", "simulate", BASELINE]  # the CLI both CLI figures time


def complete_baseline_sessions(sessions: int = 48, repeats: int = 3) -> dict[str, object]:
    """Periods per second of complete Calvano baseline sessions (preset calvano-2020-baseline, learning until
    convergence, then the limit cycle, impulse responses and equilibrium checks) on one worker: the figure
    `algocomp simulate calvano-2020-baseline --sessions 48 --workers 1 --json` prints as periods_per_second, the
    median over `repeats` runs of the tool, each in a new process with the compile cache warm.

    That figure is the periods learnt over the wall time of run_experiment: it includes compiling the scenario,
    loading the compiled loops from numba's cache (numba's own first-use set-up, about half a second, is most of
    that) and every session's analysis after learning. It leaves out the interpreter's start and the imports, and
    writing the output folder (the panel, tables and plots), which happen outside that interval."""
    command = [
        *SIMULATE_BASELINE,
        "--sessions",
        str(sessions),
        "--workers",
        "1",
        "--json",
    ]
    rates, periods = [], 0
    with tempfile.TemporaryDirectory() as out:
        # one run first, so that the compile cache is warm for every timed one (and its output not timed)
        for rep in range(repeats + 1):
            done = subprocess.run(
                [*command, "--out", str(Path(out) / str(rep))], check=True, capture_output=True, text=True
            )
            summary = json.loads(done.stdout.strip().splitlines()[-1])
            if rep > 0:
                rates.append(summary["periods_per_second"])
                periods = summary["periods_total"]
    return {
        "sessions": sessions,
        "workers": 1,
        "periods_total": periods,
        "periods_per_second": statistics.median(rates),
        "spread": [min(rates), max(rates)],
        "all": rates,
    }


def kernel_throughput(periods: int, repeats: int) -> dict[str, object]:
    """Periods per second of the learning loop on one core, with and without the panel and tail logging,
    interleaved so that background load hits both alike. Each session runs `periods` periods from its start
    without stopping at convergence: with 3M, about half of them past it, where exploration has died out and
    hardly a row is rescanned, so this runs faster than whole sessions (complete_baseline_sessions)."""
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
        *SIMULATE_BASELINE,
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


def cpu_model() -> str:
    """The processor's name and SIMD level as Linux reports them (the engine's speed differs between machines)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or "unknown CPU"
    name = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown CPU")
    flags = next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), [])
    simd = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{name} ({simd})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and a 100-session experiment")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args()
    repeats = 3 if args.quick else 7
    figures: dict[str, object] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{cpu_model()}, {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
    }
    print("complete baseline sessions, one worker ...", file=sys.stderr)
    figures["complete_sessions"] = complete_baseline_sessions(48, 3 if args.quick else 5)
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
    k, e, c, w = figures["kernel"], figures["experiment"], figures["cli"], figures["complete_sessions"]
    low, high = w["spread"]
    rows = [
        (
            f"complete baseline sessions ({w['sessions']}, 1 worker, median of {len(w['all'])})",
            f"{w['periods_per_second'] / 1e6:.1f} M periods/s",
            f">= 40 (runs {low / 1e6:.1f}-{high / 1e6:.1f})",
        ),
        ("learning loop, 3M periods a session, one core", f"{k['periods_per_second'] / 1e6:.1f} M periods/s", ">= 20"),
        ("  same, logging off", f"{k['periods_per_second_no_logging'] / 1e6:.1f} M periods/s", ""),
        ("  logging overhead", f"{100 * k['logging_overhead']:.1f} %", "<= 10 %"),
        (
            "  general loop (any agent / lever), 1M periods",
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
