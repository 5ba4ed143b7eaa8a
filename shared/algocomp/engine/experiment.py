"""Run an experiment: every session of a scenario, in parallel across processes, in session order.

Sessions are independent and each draws from its own seeded stream (engine.seeds), so the result is the same
bit for bit whatever the number of worker processes and however they are started; only the wall time changes.

Workers start with the platform's method (engine.processes: fork on Linux, spawn on Windows and macOS, or what
ALGOCOMP_START_METHOD or the start_method argument asks for). Either way the kernel is loaded here first: forked
workers inherit it in memory; spawned ones load it from numba's on-disk cache, which this first load fills on a
new machine, so the workers do not each compile it. Everything a worker receives (the compiled scenario, a session
index and seed) is picklable; a spawned worker imports this module and what sessions need (numpy, numba, pandas,
pydantic), not matplotlib, the benchmark solver or the service libraries.

Workers ignore Ctrl-C (SIGINT; on Windows the console's Ctrl-C event, which reaches every process attached to
it): the caller decides what an interrupt means. When the experiment stops early (should_stop) or is aborted
(an exception, a second Ctrl-C in the CLI), the workers are terminated, not waited for, so nothing outlives it.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager

import numpy as np

from algocomp.engine.build import CompiledScenario, compile_scenario
from algocomp.engine.processes import mp_context, resolve_start_method
from algocomp.engine.python_session import run_python_session, uses_python_path
from algocomp.engine.results import ExperimentResult, ProgressEvent, SessionResult
from algocomp.engine.seeds import session_seeds
from algocomp.engine.session import run_session
from algocomp.metrics.summary import summarise
from algocomp.scenarios import scenario_hash
from algocomp.scenarios.model import Horizon, LoggingSpec, Scenario

_worker_compiled: CompiledScenario | None = None

# How often the parent checks should_stop while its workers run (a session can take minutes).
POLL_S = 0.1
# ProcessPoolExecutor refuses more than 61 workers on Windows (WaitForMultipleObjects' limit of 64 handles, less
# the ones it needs itself): `--workers auto` on a big Windows machine uses 61.
WINDOWS_MAX_WORKERS = 61


def warm_up(scenario: Scenario) -> None:
    """Load (or compile, the first time on a machine) the kernels this scenario uses, with a tiny session."""
    tiny = scenario.model_copy(
        update={
            "horizon": Horizon(max_periods=64, convergence_periods=8),
            "logging": LoggingSpec(
                interval=8, tail=4, cycle_search=16, impulse_periods=2, deviating_firm=scenario.logging.deviating_firm
            ),
        }
    )
    simulate_session(compile_scenario(tiny), 0, 1)


def simulate_session(
    cs: CompiledScenario, index: int, seed: int, *, should_stop: Callable[[], bool] | None = None
) -> SessionResult | None:
    """One session on the compiled path, or on the Python path (engine.python_session) when any firm's agent is a
    Python-path agent (dqn, python)."""
    if uses_python_path(cs):
        return run_python_session(cs, index, seed, should_stop=should_stop)
    return run_session(cs, index, seed, should_stop=should_stop)


def check_agents(cs: CompiledScenario, allowed: Callable[[str], bool] | None = None) -> None:
    """Refuse, before anything runs, Python-path agents that cannot run: a population the Python path cannot
    hold, a class that does not import or lacks a protocol method, params its constructor refuses, or (with
    `allowed`, a service's allow-list) a class not admitted. ScenarioError naming the field."""
    if not uses_python_path(cs):
        return
    from algocomp.agents.python import resolve_agents

    resolve_agents(cs.scenario, allowed=allowed)


def _init_worker(compiled: CompiledScenario) -> None:
    """Runs first in every worker, whatever the start method."""
    global _worker_compiled
    # The parent decides what an interrupt means (a polite stop in the CLI, an abort elsewhere) and terminates
    # the workers when it is done with them; a worker that died of a Ctrl-C of its own would break the pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A forked worker inherits its parent's Python handlers (a service's graceful-shutdown handler, say): the
    # parent's terminate() must end it.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # held by _interrupts_held while starting
    _worker_compiled = compiled


def _run_in_worker(index: int, seed: int) -> SessionResult | None:
    assert _worker_compiled is not None, "worker not initialised"
    return simulate_session(_worker_compiled, index, seed)


@contextmanager
def _interrupts_held() -> Iterator[None]:
    """Hold back SIGINT in this thread while worker processes may be started (pool.submit starts them).

    A worker inherits the blocked signal (across fork and exec), so a Ctrl-C that arrives while it boots (a spawned
    worker spends a second or more importing) waits until _init_worker has set it to be ignored, instead of killing
    the worker mid-import with a KeyboardInterrupt traceback. Here the held Ctrl-C is delivered on leaving, so it is
    delayed by a moment, never lost. Windows has no signal masks: there a worker interrupted while starting ends
    with a traceback, and run_experiment counts the lost session as part of the stop that was asked for.
    """
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """End the pool now: queued sessions are cancelled and running ones terminated (TerminateProcess on Windows,
    SIGTERM elsewhere; killed if that has not worked within a few seconds), so no worker outlives the experiment."""
    # ProcessPoolExecutor has no public way to stop running work before Python 3.14 (terminate_workers).
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=5)
        if process.is_alive():
            process.kill()
            process.join(timeout=5)
    pool.shutdown(wait=True, cancel_futures=True)


def resolve_workers(workers: int | None) -> int:
    """0 or None mean one process per core."""
    if not workers:
        return os.cpu_count() or 1
    if workers < 0:
        raise ValueError(f"workers must be 0 (one per core) or a positive number, got {workers}")
    return workers


def run_experiment(
    scenario: Scenario,
    *,
    workers: int | None = 1,
    progress: Callable[[ProgressEvent], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    compiled: CompiledScenario | None = None,
    start_method: str | None = None,
    agent_classes_allowed: Callable[[str], bool] | None = None,
) -> ExperimentResult:
    """Simulate scenario.sessions sessions seeded from scenario.seed and summarise them.

    progress is called after every finished session; should_stop is polled between sessions (and between
    chunks of a session when running in this process) and, if it returns True, the experiment stops early
    with result.cancelled set and the finished sessions kept (sessions still running in worker processes are
    dropped, as a session interrupted in this process is).

    start_method (fork, spawn or forkserver) says how worker processes start when workers > 1; None means
    ALGOCOMP_START_METHOD or the platform's default (engine.processes). It changes only the start-up time.

    Sessions with a Python-path agent (dqn, python) run on the Python path (engine.python_session); its agents
    are checked first (check_agents; agent_classes_allowed is a service's allow-list of `type: python` classes).
    """
    started = time.perf_counter()
    cs = compiled if compiled is not None else compile_scenario(scenario)
    check_agents(cs, agent_classes_allowed)
    n_workers = min(resolve_workers(workers), scenario.sessions)
    if sys.platform == "win32":
        n_workers = min(n_workers, WINDOWS_MAX_WORKERS)
    seeds = session_seeds(scenario.seed, scenario.sessions)
    results: dict[int, SessionResult] = {}
    gains: list[float] = []
    prices: list[float] = []
    periods_done = 0
    cancelled = False

    def finished(result: SessionResult) -> None:
        nonlocal periods_done
        results[result.session] = result
        periods_done += result.metrics["periods"]
        if result.metrics["profit_gain"] is not None:
            gains.append(result.metrics["profit_gain"])
        prices.append(result.metrics["mean_price"])
        if progress is not None:
            progress(
                ProgressEvent(
                    sessions_done=len(results),
                    sessions_total=scenario.sessions,
                    periods_done=periods_done,
                    mean_price=float(np.mean(prices)),
                    profit_gain=float(np.mean(gains)) if gains else float("nan"),
                    elapsed_s=time.perf_counter() - started,
                )
            )

    if n_workers <= 1:
        for index, seed in enumerate(seeds):
            if should_stop is not None and should_stop():
                cancelled = True
                break
            result = simulate_session(cs, index, seed, should_stop=should_stop)
            if result is None:
                cancelled = True
                break
            finished(result)
    else:
        context = mp_context(resolve_start_method(start_method))
        warm_up(scenario)  # fork: workers inherit the loaded kernel; spawn: they load the cache this fills
        pool = ProcessPoolExecutor(n_workers, mp_context=context, initializer=_init_worker, initargs=(cs,))
        try:
            pending: set[Future] = set()
            queue = iter(enumerate(seeds))

            def submit_more() -> None:
                # Keep a short queue per worker: dynamic balancing (sessions differ in length) and prompt cancel.
                for index, seed in queue:
                    with _interrupts_held():
                        pending.add(pool.submit(_run_in_worker, index, seed))
                    if len(pending) >= 2 * n_workers:
                        break

            submit_more()
            while pending:
                done, pending = wait(pending, timeout=POLL_S, return_when=FIRST_COMPLETED)
                for future in done:
                    if future.exception() is None:
                        finished(future.result())
                    elif should_stop is not None and should_stop():
                        # A worker hit by the same Ctrl-C before it could ignore it (while starting up): the stop
                        # was asked for, so this is the stop, not a failure.
                        cancelled = True
                    else:
                        future.result()  # raises the worker's exception, with its traceback
                if cancelled or (should_stop is not None and should_stop()):
                    cancelled = True
                    break
                submit_more()
        except BaseException:
            _stop_workers(pool)
            raise
        if cancelled:
            _stop_workers(pool)
        else:
            pool.shutdown(wait=True)

    ordered = [results[i] for i in sorted(results)]
    elapsed = time.perf_counter() - started
    summary = summarise(
        cs,
        [r.metrics for r in ordered],
        impulse=ExperimentResult(scenario, cs.benchmarks, cs.grid, ordered).impulse,
        scenario_hash=scenario_hash(scenario),
        elapsed_s=elapsed,
        sessions_requested=scenario.sessions,
    )
    summary["cancelled"] = cancelled
    return ExperimentResult(
        scenario=scenario,
        benchmarks=cs.benchmarks,
        grid=cs.grid,
        sessions=ordered,
        summary=summary,
        elapsed_s=elapsed,
        cancelled=cancelled,
    )
