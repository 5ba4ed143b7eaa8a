"""Run folders: Parquet schema, provenance, figures, atomic files and JSON.

The tables here are small but real panels and impulse tables built by hand in the engine's documented layout
(engine/results.py), so these tests exercise the output code without running a simulation.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from algocomp.engine.results import (
    IMPULSE_COLUMNS,
    PANEL_COLUMNS,
    ExperimentResult,
    SessionResult,
)
from algocomp.engine.seeds import session_seeds
from algocomp.markets import compute_benchmarks, price_grid
from algocomp.output import (
    atomic_write,
    dumps_json,
    json_ready,
    plot_impulse_response,
    plot_price_paths,
    read_table,
    run_config,
    write_run,
    write_table,
)
from algocomp.output.provenance import RECORDED_DEPENDENCIES
from algocomp.scenarios import scenario_hash
from algocomp.scenarios.model import Scenario

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NASH_PRICE = 1.47293
MONOPOLY_PRICE = 1.92498


# --------------------------------------------------------------------------------------------- fixtures


def synthetic_panel(sessions: int = 3, n_firms: int = 2, last_periods: list[int] | None = None) -> pd.DataFrame:
    """Interval rows every 1,000 periods (session s ends at last_periods[s]) and 5 tail rows per session, with
    prices drifting from the middle of the grid towards the monopoly price as a learning run would."""
    rng = np.random.default_rng(7)
    last_periods = last_periods or [200_000] * sessions
    rows = []
    for session in range(sessions):
        ends = np.arange(1_000, last_periods[session] + 1, 1_000)
        for end in ends:
            for firm in range(n_firms):
                price = 1.70 + 0.15 * (1 - math.exp(-end / 50_000)) + rng.normal(0, 0.01)
                rows.append((session, "interval", int(end), 1_000, firm, price, 1.0, 0.4, (price - 1) * 0.4, 0.5, 1.1))
        for period in range(int(ends[-1]) - 4, int(ends[-1]) + 1):
            for firm in range(n_firms):
                rows.append((session, "tail", period, 1, firm, 1.85, 1.0, 0.38, 0.323, 0.45, 1.09))
    return pd.DataFrame(rows, columns=PANEL_COLUMNS)


def synthetic_impulse(sessions: int = 3, n_firms: int = 2, periods: int = 25) -> pd.DataFrame:
    """Firm 0 cuts to 1.60 at tau 0, the rival punishes at tau 1, both climb back to 1.85."""
    rows = []
    for session in range(sessions):
        for tau in range(-1, periods + 1):
            for firm in range(n_firms):
                if tau < 0:
                    price = 1.85
                elif firm == 0:
                    price = 1.60 if tau == 0 else 1.85 - 0.25 * math.exp(-tau / 3)
                else:
                    price = 1.85 if tau == 0 else 1.85 - 0.30 * math.exp(-(tau - 1) / 3)
                level = price + 0.005 * session
                rows.append(
                    (session, firm, tau, level, level / (1.85 + 0.005 * session), (price - 1) * 0.4, 1.85, 0.34)
                )
    return pd.DataFrame(rows, columns=IMPULSE_COLUMNS)


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return Scenario(name="output-test", sessions=3, seed=11)


@pytest.fixture(scope="module")
def benchmarks(scenario: Scenario):
    return compute_benchmarks(scenario.market)


def columns_of(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """A session's table as the engine hands it over: one array per column."""
    return {column: frame[column].to_numpy() for column in frame.columns}


def experiment_result(scenario: Scenario, benchmarks, *, summary_extra: dict | None = None) -> ExperimentResult:
    panel = synthetic_panel(scenario.sessions)
    impulse = synthetic_impulse(scenario.sessions)
    seeds = session_seeds(scenario.seed, scenario.sessions)
    sessions = [
        SessionResult(
            session=s,
            seed=seeds[s],
            panel_columns=columns_of(panel[panel["session"] == s]),
            impulse_columns=columns_of(impulse[impulse["session"] == s]),
            metrics={
                "session": s,
                "profit_gain": 0.8 + 0.01 * s,
                "converged": s != 2,
                "convergence_period": None if s == 2 else 150_000 + s,
                "mean_price": np.float64(1.85),
            },
        )
        for s in range(scenario.sessions)
    ]
    summary = {
        "scenario_hash": scenario_hash(scenario),
        "seed": scenario.seed,
        "sessions": scenario.sessions,
        "profit_gain": 0.81,
        "profit_gain_sd": float("nan"),
        "mean_convergence_period": np.float64(150_000.5),
        "periods_total": np.int64(600_000),
        **(summary_extra or {}),
    }
    return ExperimentResult(
        scenario=scenario,
        benchmarks=benchmarks,
        grid=price_grid(scenario.prices, benchmarks),
        sessions=sessions,
        summary=summary,
        elapsed_s=1.0,
    )


def assert_png(path: Path, *, min_bytes: int = 5_000) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    assert len(data) > min_bytes, f"{path} has only {len(data)} bytes"


def temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".tmp" in p.name]


# --------------------------------------------------------------------------------------------- tables


def test_panel_round_trip_keeps_values_and_fixes_dtypes(tmp_path: Path) -> None:
    panel = synthetic_panel()
    assert panel["session"].dtype == np.int64  # pandas' default; the file narrows it

    path = write_table(panel, tmp_path / "panel.parquet")
    back = read_table(path)

    assert list(back.columns) == PANEL_COLUMNS
    assert back["session"].dtype == np.int32
    assert back["firm"].dtype == np.int16
    assert back["period"].dtype == np.int64 and back["periods"].dtype == np.int64
    assert isinstance(back["kind"].dtype, pd.CategoricalDtype)
    assert set(back["kind"].cat.categories) == {"interval", "tail"}
    for column in ("price", "cost", "quantity", "profit", "consumer_surplus", "total_welfare"):
        assert back[column].dtype == np.float64
    pd.testing.assert_frame_equal(
        back.astype({"kind": str}),
        panel.astype({"session": np.int32, "firm": np.int16, "kind": str}),
    )


def test_impulse_round_trip_and_zstd(tmp_path: Path) -> None:
    impulse = synthetic_impulse().astype({"price": np.float32})  # a narrower float still lands as float64
    path = write_table(impulse, tmp_path / "impulse.parquet")
    back = read_table(path)
    assert back["tau"].dtype == np.int32 and back["session"].dtype == np.int32 and back["firm"].dtype == np.int16
    assert back["price"].dtype == np.float64
    np.testing.assert_allclose(back["price"].to_numpy(), impulse["price"].to_numpy(dtype=np.float64))
    metadata = pq.ParquetFile(path).metadata
    assert metadata.row_group(0).column(0).compression == "ZSTD"


def test_empty_tables_keep_the_schema(tmp_path: Path) -> None:
    # What ExperimentResult gives for a run with no finished sessions: object columns and no rows.
    empty = ExperimentResult(scenario=None, benchmarks=None, grid=np.empty((2, 0)))
    panel = read_table(write_table(empty.panel, tmp_path / "panel.parquet"))
    impulse = read_table(write_table(empty.impulse, tmp_path / "impulse.parquet"))
    assert len(panel) == 0 and list(panel.columns) == PANEL_COLUMNS
    assert panel["session"].dtype == np.int32 and panel["price"].dtype == np.float64
    assert len(impulse) == 0 and impulse["tau"].dtype == np.int32


def test_write_table_names_the_column_that_does_not_fit(tmp_path: Path) -> None:
    panel = synthetic_panel(sessions=1)
    panel.loc[0, "session"] = 2**40
    with pytest.raises(ValueError, match="session"):
        write_table(panel, tmp_path / "bad.parquet")
    text_price = synthetic_impulse(sessions=1).astype({"price": object})
    text_price.loc[0, "price"] = "expensive"
    with pytest.raises(ValueError, match="price"):
        write_table(text_price, tmp_path / "bad.parquet")


# --------------------------------------------------------------------------------------------- provenance


def test_run_config_records_what_reproduces_the_run(scenario: Scenario, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ALGOCOMP_COMMIT", raising=False)
    command = ["algocomp", "simulate", "output-test", "--workers", "3"]
    config = run_config(scenario, workers=3, command=command)

    assert config["scenario_hash"] == scenario_hash(scenario)
    assert config["scenario_name"] == "output-test"
    assert config["seed"] == 11 and config["sessions"] == 3
    assert config["session_seeds"] == session_seeds(11, 3)
    assert len(config["session_seeds"]) == scenario.sessions
    assert "session_seeds" in config["session_seed_rule"]
    assert config["algocomp_version"]
    for name in RECORDED_DEPENDENCIES:
        assert config["dependencies"][name], f"no version recorded for {name}"
    assert config["python_version"].count(".") == 2
    assert config["platform"]
    assert datetime.fromisoformat(config["created_at"]).utcoffset() == timedelta(0)
    assert config["command"] == command
    assert config["workers"] == 3
    assert "do not depend on the number of workers" in config["workers_note"]
    assert config["git_commit"] is None or len(config["git_commit"]) == 40
    assert config["git_dirty"] in (None, True, False)
    json.loads(dumps_json(config))  # strict JSON


def test_run_config_takes_the_commit_from_the_environment(scenario: Scenario, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALGOCOMP_COMMIT", "0123456789abcdef0123456789abcdef01234567")
    monkeypatch.setenv("ALGOCOMP_DIRTY", "0")
    config = run_config(scenario, workers=1, command=None)
    assert config["git_commit"] == "0123456789abcdef0123456789abcdef01234567"
    assert config["git_dirty"] is False
    assert config["git_commit_source"] == "env"
    assert config["command"] is None


# --------------------------------------------------------------------------------------------- plots


@pytest.mark.parametrize("sessions", [1, 4])
def test_price_paths_plot_is_a_png(tmp_path: Path, benchmarks, sessions: int) -> None:
    path = plot_price_paths(synthetic_panel(sessions), benchmarks, tmp_path / "prices.png", scenario_name="test")
    assert_png(path)


def test_price_paths_plot_holds_sessions_that_stopped_early(tmp_path: Path) -> None:
    # Sessions of different lengths and benchmarks given as a plain mapping (Benchmarks.to_dict()).
    panel = synthetic_panel(3, last_periods=[40_000, 120_000, 300_000])
    mapping = {"nash_price": [NASH_PRICE, NASH_PRICE], "monopoly_price": [MONOPOLY_PRICE, MONOPOLY_PRICE]}
    assert_png(plot_price_paths(panel, mapping, tmp_path / "prices.png"))


def test_price_paths_plot_with_asymmetric_benchmarks_and_three_firms(tmp_path: Path) -> None:
    mapping = {"nash_price": [1.40, 1.45, 1.50], "monopoly_price": [1.90, 1.95, 2.00]}
    assert_png(plot_price_paths(synthetic_panel(2, n_firms=3), mapping, tmp_path / "prices.png"))


@pytest.mark.parametrize("sessions", [1, 4])
def test_impulse_plot_is_a_png(tmp_path: Path, benchmarks, sessions: int) -> None:
    path = plot_impulse_response(
        synthetic_impulse(sessions), benchmarks, tmp_path / "impulse.png", deviating_firm=0, scenario_name="test"
    )
    assert_png(path)


def test_empty_tables_still_give_figures(tmp_path: Path, benchmarks) -> None:
    impulse_path = plot_impulse_response(pd.DataFrame(columns=IMPULSE_COLUMNS), benchmarks, tmp_path / "i.png")
    prices_path = plot_price_paths(pd.DataFrame(columns=PANEL_COLUMNS), None, tmp_path / "p.png")
    for path in (impulse_path, prices_path):
        assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 1_000


# --------------------------------------------------------------------------------------------- run folder


def test_write_run_writes_the_whole_folder(tmp_path: Path, scenario: Scenario, benchmarks) -> None:
    result = experiment_result(scenario, benchmarks)
    out_dir = tmp_path / "runs" / "first"
    paths = write_run(result, out_dir, workers=2, command=["algocomp", "simulate", "x"])

    expected = {
        "config": "config.json",
        "scenario": "scenario.json",
        "panel": "panel.parquet",
        "impulse": "impulse.parquet",
        "prices_plot": "plots/prices.png",
        "impulse_plot": "plots/impulse.png",
        "summary": "summary.json",
    }
    assert {name: path.relative_to(out_dir).as_posix() for name, path in paths.items()} == expected
    assert all(path.is_file() for path in paths.values())
    assert temp_files(out_dir) == []

    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["profit_gain"] == 0.81
    assert summary["profit_gain_sd"] is None  # NaN is written as null
    assert summary["periods_total"] == 600_000
    assert summary["cancelled"] is False
    assert [s["session"] for s in summary["sessions"]] == [0, 1, 2]
    assert summary["sessions"][2]["convergence_period"] is None

    assert json.loads((out_dir / "scenario.json").read_text()) == scenario.model_dump(mode="json")
    assert Scenario.model_validate(json.loads((out_dir / "scenario.json").read_text())) == scenario
    config = json.loads((out_dir / "config.json").read_text())
    assert config["workers"] == 2 and config["scenario_hash"] == scenario_hash(scenario)
    assert len(read_table(out_dir / "panel.parquet")) == len(result.panel)
    assert len(read_table(out_dir / "impulse.parquet")) == len(result.impulse)
    assert_png(out_dir / "plots" / "prices.png")
    assert_png(out_dir / "plots" / "impulse.png")


def test_atomic_write_failure_keeps_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "summary.json"
    target.write_text("old")

    def half_written(path: Path) -> None:
        path.write_text('{"profit_gain": 0.8')
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, half_written)
    assert target.read_text() == "old"
    assert temp_files(tmp_path) == []

    atomic_write(target, lambda path: path.write_text("new"))
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def test_json_ready_writes_numpy_and_undefined_values_as_json() -> None:
    document = {
        "gain": np.float64(0.5),
        "count": np.int32(3),
        "flag": np.bool_(True),
        "path": Path("out/run"),
        "grid": np.array([[1.0, np.nan]]),
        "inf": float("inf"),
        7: (1, 2),
    }
    assert json_ready(document) == {
        "gain": 0.5,
        "count": 3,
        "flag": True,
        "path": "out/run",
        "grid": [[1.0, None]],
        "inf": None,
        "7": [1, 2],
    }
    with pytest.raises(TypeError, match="object"):
        json_ready({"unplanned": object()})
