"""The `algocomp` command, run as a user runs it: a separate process, judged by exit code, stdout and stderr."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from algocomp.engine.seeds import session_seeds

TIMEOUT_S = 120

# The keys a script reading `simulate --json` relies on.
SUMMARY_KEYS = {
    "nash_price",
    "monopoly_price",
    "nash_profit",
    "monopoly_profit",
    "profit_gain",
    "profit_gain_sd",
    "mean_price",
    "consumer_surplus",
    "converged_share",
    "mean_convergence_period",
    "sessions",
    "periods_total",
    "elapsed_s",
    "periods_per_second",
    "scenario_hash",
    "seed",
}

TINY_RUN = [
    "simulate",
    "calvano-2020-baseline",
    "--sessions",
    "2",
    "--set",
    "horizon.max_periods=20000",
    "--set",
    "logging.interval=1000",
]


def algocomp(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "algocomp.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        cwd=cwd,
        check=False,
    )


def test_version() -> None:
    completed = algocomp("--version")
    assert completed.returncode == 0
    assert completed.stdout.startswith("algocomp ")


def test_presets_lists_the_literature_scenarios() -> None:
    completed = algocomp("presets")
    assert completed.returncode == 0, completed.stderr
    names = {line.split()[0] for line in completed.stdout.splitlines() if line.strip()}
    assert {"calvano-2020-baseline", "klein-2021-sequential", "hansen-2021-ucb", "myopic-vs-bandit"} <= names

    as_json = json.loads(algocomp("presets", "--json").stdout)
    by_name = {preset["name"]: preset["description"] for preset in as_json}
    assert "calvano-2020-baseline" in by_name and by_name["calvano-2020-baseline"]


def test_benchmarks_json_gives_the_calvano_baseline() -> None:
    completed = algocomp("benchmarks", "calvano-2020-baseline", "--json")
    assert completed.returncode == 0, completed.stderr
    benchmarks = json.loads(completed.stdout)
    assert benchmarks["nash_price"] == pytest.approx([1.47293, 1.47293], abs=1e-4)
    assert benchmarks["monopoly_price"] == pytest.approx([1.92498, 1.92498], abs=1e-4)
    assert benchmarks["nash_profit"] == pytest.approx([0.22293, 0.22293], abs=1e-4)
    assert benchmarks["nash_consumer_surplus"] == pytest.approx(0.7151, abs=1e-4)
    grid = benchmarks["price_grid"]
    assert len(grid) == 2 and len(grid[0]) == 15
    assert grid[0][0] == pytest.approx(1.4277250, abs=1e-4) and grid[0][-1] == pytest.approx(1.9701850, abs=1e-4)


def test_benchmarks_of_unit_demand_are_the_grid_equilibria() -> None:
    completed = algocomp("benchmarks", "asker-2022-unit-demand-synchronous", "--json")
    assert completed.returncode == 0, completed.stderr
    benchmarks = json.loads(completed.stdout)
    assert benchmarks["nash_price"] == pytest.approx([2.1291, 2.1291], abs=1e-4)  # the higher of 2.0282 and 2.1291
    assert benchmarks["monopoly_price"] == [10.0, 10.0] and benchmarks["monopoly_profit"] == [4.0, 4.0]
    no_sale = "prices={kind: explicit, values: [0.5, 1.5]}"
    failed = algocomp("benchmarks", "asker-2022-unit-demand-synchronous", "--set", no_sale)
    assert failed.returncode != 0 and "prices" in failed.stderr and "no sale is profitable" in failed.stderr


def test_benchmarks_table_applies_overrides() -> None:
    completed = algocomp("benchmarks", "calvano-2020-baseline", "--set", "market.n_firms=3")
    assert completed.returncode == 0, completed.stderr
    assert "firm 2" in completed.stdout
    assert "1.3702" in completed.stdout  # p_N with three firms
    assert "2.0000" in completed.stdout  # p_M with three firms


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["benchmarks", "no-such-preset"], "no-such-preset"),
        (["benchmarks", "calvano-2020-baseline", "--set", "horizon.max_periods=-5"], "horizon.max_periods"),
        (["benchmarks", "calvano-2020-baseline", "--set", "prices.m=1"], "prices.m"),
        (["benchmarks", "calvano-2020-baseline", "--set", "market.no_such_field=1"], "market.no_such_field"),
        (["simulate", "calvano-2020-baseline", "--sessions", "0"], "sessions"),
        (["simulate", "calvano-2020-baseline", "--workers", "-2"], "--workers"),
        (["simulate", "calvano-2020-baseline", "--workers", "many"], "--workers"),
        (
            ["benchmarks", "calvano-2020-baseline", "--set", "market.demand={model: linear, cross_slope: 0.0}"],
            "market",
        ),
    ],
)
def test_user_errors_name_the_field_without_a_traceback(args: list[str], field: str) -> None:
    completed = algocomp(*args)
    assert completed.returncode == 2
    assert completed.stderr.startswith("algocomp: error: ")
    assert field in completed.stderr
    assert "Traceback" not in completed.stderr
    assert completed.stdout == ""


def test_unwritable_out_is_a_user_error(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    completed = algocomp(*TINY_RUN, "--out", str(not_a_folder / "run"))
    assert completed.returncode == 2
    assert "algocomp: error: --out:" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_simulate_json_writes_the_run_folder(tmp_path: Path) -> None:
    out_dir = tmp_path / "run"
    completed = algocomp(*TINY_RUN, "--out", str(out_dir), "--json")
    assert completed.returncode == 0, completed.stderr

    summary = json.loads(completed.stdout)  # exactly one JSON document, nothing else on stdout
    assert isinstance(summary, dict)
    assert SUMMARY_KEYS <= summary.keys(), SUMMARY_KEYS - summary.keys()
    assert summary["sessions"] == 2 and summary["seed"] == 0
    assert summary["nash_price"] == pytest.approx(1.47293, abs=1e-4)
    assert summary["output_dir"] == str(out_dir)

    for name in (
        "panel.parquet",
        "impulse.parquet",
        "summary.json",
        "scenario.json",
        "config.json",
        "plots/prices.png",
        "plots/impulse.png",
    ):
        assert (out_dir / name).is_file(), name
    assert not [p for p in out_dir.rglob("*") if ".tmp" in p.name]
    written = json.loads((out_dir / "summary.json").read_text())
    assert len(written["sessions"]) == 2
    config = json.loads((out_dir / "config.json").read_text())
    assert config["session_seeds"] == session_seeds(0, 2)
    assert config["scenario_hash"] == summary["scenario_hash"]
    assert config["command"][:3] == ["algocomp", "simulate", "calvano-2020-baseline"]

    # The folder now holds a run: a second run into it is refused instead of mixing two runs' files.
    again = algocomp(*TINY_RUN, "--out", str(out_dir), "--json")
    assert again.returncode == 2 and "--out" in again.stderr and again.stdout == ""


def test_simulate_table_and_default_output_folder(tmp_path: Path) -> None:
    completed = algocomp(*TINY_RUN, "--seed", "3", cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    runs = list((tmp_path / "out").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("calvano-2020-baseline-")
    assert (runs[0] / "summary.json").is_file()
    for label in (
        "Nash price",
        "monopoly price",
        "profit gain",
        "converged",
        "mean price",
        "consumer surplus",
        "periods/s",
        "output",
    ):
        assert label in completed.stdout, label
    assert json.loads((runs[0] / "config.json").read_text())["seed"] == 3


@pytest.mark.parametrize("delay", [0.0, 1.0], ids=["while-loading", "while-simulating"])
def test_ctrl_c_cancels_cleanly(tmp_path: Path, delay: float) -> None:
    """Ctrl-C as soon as the output folder exists (the engine still loading) or a second later (simulating)."""
    out_dir = tmp_path / "run"
    # A session that would run for minutes: no convergence stop, a long horizon.
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "algocomp.cli.main",
            "simulate",
            "calvano-2020-baseline",
            "--sessions",
            "1",
            "--set",
            "horizon.stop_at_convergence=false",
            "--set",
            "horizon.max_periods=2000000000",
            "--out",
            str(out_dir),
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not out_dir.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr
    assert "Traceback" not in stderr
    assert stdout == ""


def test_output_in_a_legacy_code_page_does_not_crash(tmp_path: Path) -> None:
    """Windows writes redirected output in the ANSI code page (cp1252 has no "Δ"): escape, never crash."""
    env = {**os.environ, "PYTHONIOENCODING": "cp1252"}
    table = subprocess.run(
        [sys.executable, "-m", "algocomp.cli.main", *TINY_RUN, "--out", str(tmp_path / "table")],
        capture_output=True, timeout=TIMEOUT_S, env=env, check=False,
    )  # fmt: skip
    assert table.returncode == 0, table.stderr.decode("cp1252")
    assert b"profit gain \\u0394" in table.stdout
    as_json = subprocess.run(
        [sys.executable, "-m", "algocomp.cli.main", *TINY_RUN, "--out", str(tmp_path / "json"), "--json"],
        capture_output=True, timeout=TIMEOUT_S, env=env, check=False,
    )  # fmt: skip
    assert as_json.returncode == 0, as_json.stderr.decode("cp1252")
    assert json.loads(as_json.stdout.decode("cp1252"))["sessions"] == 2
