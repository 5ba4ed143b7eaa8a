"""Worker processes started by fork, spawn or forkserver: the rule that picks the method, bit-identical results
either way, cancellation without orphans, and the same through the `algocomp` command.

Spawn is how the engine runs on Windows and macOS; these tests force it on Linux. Each spawned pool costs a few
seconds of start-up (a fresh interpreter imports numpy, numba and pandas and loads the kernel from numba's cache),
so the experiments here are short.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

from algocomp.engine import processes
from algocomp.engine.build import compile_scenario
from algocomp.engine.experiment import _init_worker, _run_in_worker, run_experiment
from algocomp.engine.processes import (
    START_METHOD_ENV,
    StartMethodError,
    default_start_method,
    mp_context,
    resolve_start_method,
)
from algocomp.engine.seeds import session_seed
from algocomp.engine.session import run_session
from algocomp.scenarios import apply_overrides, load_scenario

TIMING_KEYS = {"elapsed_s", "periods_per_second"}
PARALLEL_METHODS = ["fork", "spawn", "forkserver"]
TIMEOUT_S = 180


def short(*overrides: str):
    return apply_overrides(
        load_scenario("calvano-2020-baseline"),
        ["sessions=5", "horizon.max_periods=200000", "seed=7", *overrides],
    )


def endless(sessions: int = 4):
    """Sessions that would run for hours: only a stop ends them."""
    return short(f"sessions={sessions}", "horizon.stop_at_convergence=false", "horizon.max_periods=2000000000")


def without_timing(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k not in TIMING_KEYS}


# --------------------------------------------------------------------------------------------- the rule


def test_default_is_fork_on_linux_and_spawn_elsewhere(monkeypatch) -> None:
    monkeypatch.delenv(START_METHOD_ENV, raising=False)
    for platform, expected in (("linux", "fork"), ("win32", "spawn"), ("darwin", "spawn"), ("freebsd14", "spawn")):
        monkeypatch.setattr(processes.sys, "platform", platform)
        assert default_start_method() == expected, platform
        assert resolve_start_method() == expected, platform
    # Linux without fork (a hypothetical build): spawn.
    monkeypatch.setattr(processes.sys, "platform", "linux")
    monkeypatch.setattr(processes.multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    assert default_start_method() == "spawn"


def test_environment_overrides_the_default_and_an_argument_overrides_both(monkeypatch) -> None:
    monkeypatch.setenv(START_METHOD_ENV, " Spawn ")
    assert resolve_start_method() == "spawn"
    assert resolve_start_method("forkserver") == "forkserver"
    monkeypatch.setenv(START_METHOD_ENV, "")
    assert resolve_start_method() == default_start_method()
    assert mp_context("spawn").get_start_method() == "spawn"


def test_bad_values_name_their_source(monkeypatch) -> None:
    monkeypatch.setenv(START_METHOD_ENV, "threads")
    with pytest.raises(StartMethodError, match=f"^{START_METHOD_ENV}: expected one of fork, spawn, forkserver"):
        resolve_start_method()
    with pytest.raises(StartMethodError, match="^--start-method: .*'vfork'") as caught:
        resolve_start_method("vfork", source="--start-method")
    assert caught.value.source == "--start-method"
    # The engine checks before it does any work.
    with pytest.raises(StartMethodError, match=START_METHOD_ENV):
        run_experiment(short("sessions=2"), workers=2)


def test_a_method_the_platform_lacks_is_refused(monkeypatch) -> None:
    monkeypatch.setattr(processes.multiprocessing, "get_all_start_methods", lambda: ["spawn"])  # as on Windows
    monkeypatch.setenv(START_METHOD_ENV, "fork")
    with pytest.raises(StartMethodError, match=f"^{START_METHOD_ENV}: 'fork' is not available on this platform"):
        resolve_start_method()


# --------------------------------------------------------------------------------------------- the engine


@pytest.fixture(scope="module")
def in_process():
    return run_experiment(short(), workers=1)


@pytest.mark.parametrize("method", PARALLEL_METHODS)
def test_every_start_method_gives_the_same_bits(in_process, method: str) -> None:
    parallel = run_experiment(short(), workers=2, start_method=method)
    pd.testing.assert_frame_equal(in_process.panel, parallel.panel, check_exact=True)
    pd.testing.assert_frame_equal(in_process.impulse, parallel.impulse, check_exact=True)
    assert without_timing(in_process.summary) == without_timing(parallel.summary)
    assert [s.metrics for s in in_process.sessions] == [s.metrics for s in parallel.sessions]


def test_environment_variable_reaches_the_engine(in_process, monkeypatch) -> None:
    monkeypatch.setenv(START_METHOD_ENV, "spawn")
    parallel = run_experiment(short(), workers=2)
    pd.testing.assert_frame_equal(in_process.panel, parallel.panel, check_exact=True)
    assert without_timing(in_process.summary) == without_timing(parallel.summary)


def worker_state() -> dict:
    """Run inside a worker: what it has imported and how it treats Ctrl-C."""
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, set()) if hasattr(signal, "pthread_sigmask") else set()
    return {
        "modules": sorted(
            name
            for name in sys.modules
            if name.split(".")[0] in ("matplotlib", "httpx", "sqlalchemy", "boto3", "mlflow")
            or name.startswith(("scipy.optimize", "algocomp.output", "algocomp.cli", "algocomp.client"))
        ),  # fmt: skip
        "sigint_ignored": signal.getsignal(signal.SIGINT) == signal.SIG_IGN,
        "sigint_blocked": signal.SIGINT in blocked,
        "pid": os.getpid(),
    }


def test_spawned_worker_is_lean_ignores_ctrl_c_and_runs_sessions_like_this_process() -> None:
    scenario = short("sessions=1")
    compiled = compile_scenario(scenario)
    seed = session_seed(scenario.seed, 0)
    with ProcessPoolExecutor(1, mp_context=mp_context("spawn"), initializer=_init_worker, initargs=(compiled,)) as pool:
        remote = pool.submit(_run_in_worker, 0, seed).result(timeout=TIMEOUT_S)
        state = pool.submit(worker_state).result(timeout=TIMEOUT_S)
    local = run_session(compiled, 0, seed)
    assert remote.metrics == local.metrics
    pd.testing.assert_frame_equal(remote.panel, local.panel, check_exact=True)
    pd.testing.assert_frame_equal(remote.impulse, local.impulse, check_exact=True)
    assert state["pid"] != os.getpid()
    # The worker needs the session code (numpy, numba, pandas, pydantic), not plotting, the benchmark solver
    # (scipy.optimize), the CLI or the service libraries.
    assert state["modules"] == []
    assert state["sigint_ignored"] and not state["sigint_blocked"]


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_should_stop_ends_running_workers_promptly(method: str) -> None:
    started = time.monotonic()
    result = run_experiment(
        endless(), workers=2, start_method=method, should_stop=lambda: time.monotonic() - started > 1.0
    )
    assert result.cancelled and result.summary["cancelled"] is True
    assert result.sessions == []  # none can finish; the running ones are dropped, not waited for
    assert time.monotonic() - started < 60
    assert multiprocessing.active_children() == []


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_an_abort_terminates_the_workers(method: str) -> None:
    started = time.monotonic()

    def second_ctrl_c() -> bool:
        if time.monotonic() - started > 1.0:
            raise KeyboardInterrupt
        return False

    with pytest.raises(KeyboardInterrupt):
        run_experiment(endless(), workers=2, start_method=method, should_stop=second_ctrl_c)
    assert time.monotonic() - started < 60
    assert multiprocessing.active_children() == []


# --------------------------------------------------------------------------------------------- the plots


def test_plots_are_drawn_in_process_unless_workers_fork(in_process, tmp_path: Path) -> None:
    from algocomp.output import PlotProcess, write_run

    pngs = {}
    for method in ("fork", "spawn"):
        plotter = PlotProcess(method)
        assert plotter.forked == (method == "fork")  # spawn (Windows, macOS): the in-process fallback
        paths = write_run(in_process, tmp_path / method, workers=2, plotter=plotter)
        pngs[method] = [paths[name].read_bytes() for name in ("prices_plot", "impulse_plot")]
        assert all(png[:8] == b"\x89PNG\r\n\x1a\n" for png in pngs[method])
    assert pngs["fork"] == pngs["spawn"]


def test_fsync_opens_for_writing_on_windows(tmp_path: Path, monkeypatch) -> None:
    """FlushFileBuffers needs a handle opened for writing: a read-only descriptor makes os.fsync fail on Windows."""
    from algocomp.output import writer

    class WindowsOs:
        name = "nt"

        def __getattr__(self, attribute):
            return getattr(os, attribute)

    opened = []

    def spy_open(path, flags, *args):
        opened.append(flags)
        return os.open(path, flags, *args)

    fake = WindowsOs()
    fake.open = spy_open
    monkeypatch.setattr(writer, "os", fake)
    target = tmp_path / "file.json"
    writer.atomic_write(target, lambda path: path.write_text("{}"))
    assert opened and all(flags & os.O_RDWR for flags in opened)
    monkeypatch.undo()
    assert target.read_text() == "{}"


# --------------------------------------------------------------------------------------------- the command


TINY_RUN = [
    "simulate", "calvano-2020-baseline", "--sessions", "4",
    "--set", "horizon.max_periods=20000", "--set", "logging.interval=1000", "--json",
]  # fmt: skip


def algocomp(*args: str, method: str | None = None, **popen) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != START_METHOD_ENV}
    if method is not None:
        env[START_METHOD_ENV] = method
    return subprocess.run(
        [sys.executable, "-m", "algocomp.cli.main", *args],
        capture_output=True, text=True, timeout=TIMEOUT_S, env=env, check=False, **popen,
    )  # fmt: skip


def test_simulate_gives_the_same_bits_with_spawn_fork_and_one_worker(tmp_path: Path) -> None:
    runs = {
        "spawn": algocomp(*TINY_RUN, "--workers", "2", "--out", str(tmp_path / "spawn"), method="spawn"),
        # The option wins over the environment.
        "fork": algocomp(
            *TINY_RUN, "--workers", "2", "--out", str(tmp_path / "fork"), "--start-method", "fork", method="spawn"
        ),
        "one": algocomp(*TINY_RUN, "--workers", "1", "--out", str(tmp_path / "one")),
    }
    for name, completed in runs.items():
        assert completed.returncode == 0, (name, completed.stderr)
        assert "Traceback" not in completed.stderr, name
    printed = {name: without_timing(json.loads(c.stdout)) for name, c in runs.items()}
    written = {name: without_timing(json.loads((tmp_path / name / "summary.json").read_text())) for name in runs}
    panels = {name: pd.read_parquet(tmp_path / name / "panel.parquet") for name in runs}
    for name in ("fork", "one"):
        assert {k: v for k, v in printed[name].items() if k != "output_dir"} == {
            k: v for k, v in printed["spawn"].items() if k != "output_dir"
        }, name
        assert written[name] == written["spawn"], name
        pd.testing.assert_frame_equal(panels[name], panels["spawn"], check_exact=True)
    # Under spawn the plots are drawn in the main process (no forked drawer): they are there all the same.
    for name in runs:
        for plot in ("plots/prices.png", "plots/impulse.png"):
            assert (tmp_path / name / plot).stat().st_size > 0, (name, plot)


@pytest.mark.parametrize(
    ("args", "method", "field"),
    [
        (["--start-method", "threads"], None, "--start-method"),
        ([], "bogus", START_METHOD_ENV),
    ],
)
def test_bad_start_method_is_a_user_error(tmp_path: Path, args: list[str], method: str | None, field: str) -> None:
    completed = algocomp(*TINY_RUN, "--out", str(tmp_path / "run"), *args, method=method)
    assert completed.returncode == 2
    assert f"algocomp: error: {field}: expected one of fork, spawn, forkserver" in completed.stderr
    assert "Traceback" not in completed.stderr and completed.stdout == ""
    assert not (tmp_path / "run").exists()


def _group_members(pgid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid:
                    found.append(int(entry.name))
            except ProcessLookupError:
                pass
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sends Ctrl-C to a process group (Linux /proc)")
@pytest.mark.parametrize("method", ["spawn", "fork"])
@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_stops_parallel_workers_without_orphans(tmp_path: Path, method: str, presses: int) -> None:
    """Ctrl-C in a terminal reaches every process of the foreground group: the command and its workers."""
    out_dir = tmp_path / "run"
    env = {**os.environ, START_METHOD_ENV: method}
    process = subprocess.Popen(
        [sys.executable, "-m", "algocomp.cli.main", "simulate", "calvano-2020-baseline", "--sessions", "4",
         "--workers", "2", "--set", "horizon.stop_at_convergence=false", "--set", "horizon.max_periods=2000000000",
         "--out", str(out_dir), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not out_dir.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        # The command, two workers, and the resource tracker (spawn) or the plot drawer (fork).
        while len(_group_members(process.pid)) < 4 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # the workers are importing (spawn) or simulating (fork)
        assert process.poll() is None, process.communicate()
        assert len(_group_members(process.pid)) >= 4
        for _ in range(presses):
            os.killpg(process.pid, signal.SIGINT)
            time.sleep(0.02)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr and stdout == ""
    deadline = time.monotonic() + 10
    while _group_members(process.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _group_members(process.pid) == []  # no worker (nor resource tracker, nor plot drawer) left behind


def test_windows_runs_at_most_61_workers(monkeypatch) -> None:
    """ProcessPoolExecutor refuses more than 61 workers on Windows; `--workers auto` on a big machine must not fail."""
    from algocomp.engine import experiment

    asked = []

    class Started(Exception):
        pass

    def pool(max_workers, **options):
        asked.append((max_workers, options["mp_context"].get_start_method()))
        raise Started

    scenario = short("sessions=100")
    experiment.warm_up(scenario)  # before sys.platform is faked
    monkeypatch.setattr(experiment, "ProcessPoolExecutor", pool)
    monkeypatch.setattr(experiment, "warm_up", lambda scenario: None)
    monkeypatch.delenv(START_METHOD_ENV, raising=False)
    monkeypatch.setattr(sys, "platform", "win32")
    with pytest.raises(Started):
        run_experiment(scenario, workers=100)
    monkeypatch.undo()
    assert asked == [(61, "spawn")]
