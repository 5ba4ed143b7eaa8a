"""A sweep's S3 files through the API (GET /sweeps/{id} lists them, GET /sweeps/{id}/files/{name} streams them)
and `algocomp sweep --grid-file`, against the real stack: the API process, the run worker, the aggregator, Postgres,
Redis and an S3 endpoint.

The session-wide `worker_process` serves the runs (this module sorts after test_api, whose stream tests need no
worker running yet). The aggregator is this module's own process, stopped when the module ends: test_sweeps,
which runs later, reads metrics computed at request time and must not race an aggregator writing rows.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from algocomp.client import Client
from algocomp.platform.settings import Settings

from .conftest import ServiceProcess, _celery_worker, api_get, wait_until

PRICE_CAP = {"basis": "absolute", "value": 1.75}
TINY_OVERRIDES = ["horizon.max_periods=20000", "logging.interval=1000"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SWEEP_FILES = {"metrics_csv", "metrics_parquet", "delta_heatmap", "regulation_effects"}
WAIT_TIMEOUT_S = 120
AGGREGATOR_WAIT_S = 30
CLI_TIMEOUT_S = 150


def algocomp(*args: str, api: str) -> subprocess.CompletedProcess[str]:
    """The `algocomp` command as a user runs it: a separate process, judged by exit code and output."""
    return subprocess.run(
        [sys.executable, "-m", "algocomp.cli.main", *args, "--api", api],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


@pytest.fixture(scope="module")
def aggregator(service_env: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """The aggregator for this module only."""
    yield from _celery_worker(
        service_env,
        "algocomp_aggregator.app:celery_app",
        "aggregate",
        1,
        "aggregate",
        tmp_path_factory.mktemp("sweep-files-aggregator"),
    )


@pytest.fixture(scope="module")
def written_sweep(api_server: str, worker_process: ServiceProcess, aggregator: ServiceProcess) -> dict[str, Any]:
    """A 1x2 sweep (alpha 0.15; unregulated, price-capped) of the tiny baseline, followed until it succeeded and the
    aggregator has written all four of its files; returns GET /sweeps/{id} at that point."""
    with Client(api_server) as client:
        accepted = client.create_sweep(
            preset="calvano-2020-baseline",
            # two paths (the second with one value), so the aggregator also draws the 2-D Delta heatmap
            grid={"agents.alpha": [0.15], "regulation.price_cap": [None, PRICE_CAP]},
            seeds=[0],
            sessions=2,
            overrides=TINY_OVERRIDES,
            name="sweep-files-test",
        )
        sweep_id = str(accepted["id"])
        sweep = client.wait_sweep(sweep_id, timeout=WAIT_TIMEOUT_S)
        assert sweep["status"] == "succeeded", sweep

        def with_all_files() -> dict[str, Any] | None:
            sweep = client.get_sweep(sweep_id)
            return sweep if set(sweep["files"]) == SWEEP_FILES else None

        return wait_until(
            with_all_files,
            f"the aggregator to write {sorted(SWEEP_FILES)}",
            AGGREGATOR_WAIT_S,
            interval_s=0.5,
            detail=lambda: (
                f"GET /sweeps/{sweep_id}: {client.get_sweep(sweep_id)['files']}"
                f"\naggregator output:\n{aggregator.output()[-2000:]}"
            ),
        )


def test_get_sweep_links_the_files_written_to_s3(api_server: str, written_sweep: dict[str, Any]) -> None:
    sweep_id = written_sweep["id"]
    for name, link in written_sweep["files"].items():
        assert link["url"] == f"/sweeps/{sweep_id}/files/{name}"
        assert link["key"].startswith(f"sweeps/{sweep_id}/")
        assert link["presigned_url"].startswith("http")
    presigned = httpx.get(written_sweep["files"]["delta_heatmap"]["presigned_url"], timeout=10)
    assert presigned.status_code == 200 and presigned.content.startswith(PNG_MAGIC)
    metrics = api_get(f"{api_server}/sweeps/{sweep_id}/metrics", timeout=30).json()
    assert set(metrics["files"]) == SWEEP_FILES and len(metrics["cells"]) == 2


def test_sweep_files_stream_with_their_content_type(api_server: str, written_sweep: dict[str, Any]) -> None:
    sweep_id = written_sweep["id"]
    heatmap = api_get(f"{api_server}/sweeps/{sweep_id}/files/delta_heatmap", timeout=30)
    assert heatmap.status_code == 200 and heatmap.headers["content-type"] == "image/png"
    assert heatmap.content.startswith(PNG_MAGIC)
    table = api_get(f"{api_server}/sweeps/{sweep_id}/files/metrics_csv", timeout=30)
    assert table.status_code == 200 and table.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(table.text)))
    assert [row["cell"] for row in rows] == ["0", "1"]
    with Client(api_server) as client:
        assert client.sweep_file(sweep_id, "regulation_effects").startswith(PNG_MAGIC)


def test_unknown_sweep_file_is_404_json(api_server: str, written_sweep: dict[str, Any]) -> None:
    unknown = api_get(f"{api_server}/sweeps/{written_sweep['id']}/files/prices_plot", timeout=10)
    assert unknown.status_code == 404 and "metrics_csv" in unknown.json()["error"]["message"]
    no_sweep = api_get(f"{api_server}/sweeps/00000000-0000-0000-0000-000000000000/files/metrics_csv", timeout=10)
    assert no_sweep.status_code == 404 and "error" in no_sweep.json()


def test_files_not_written_yet_are_absent_and_404(api_server: str, worker_process: ServiceProcess) -> None:
    """A sweep that has not ended has no files: none listed, and a known name answers 404 saying why."""
    with Client(api_server) as client:
        accepted = client.create_sweep(
            preset="calvano-2020-baseline",
            grid={"agents.alpha": [0.1]},
            seeds=[0],
            sessions=1,
            # long enough that it cannot end before the checks (a converging session ended first on a busy
            # machine, and the clean-up's cancel then met a finished sweep); the cancel below stops it
            overrides=["horizon.max_periods=200000000", "horizon.stop_at_convergence=false", "logging.interval=100000"],
        )
        sweep_id = str(accepted["id"])
        try:
            assert client.get_sweep(sweep_id)["files"] == {}
            missing = api_get(f"{api_server}/sweeps/{sweep_id}/files/metrics_csv", timeout=10)
            assert missing.status_code == 404 and "not written yet" in missing.json()["error"]["message"]
        finally:
            client.cancel_sweep(sweep_id)


def test_cli_sweep_from_a_grid_file(api_server: str, worker_process: ServiceProcess, tmp_path: Path) -> None:
    grid_file = tmp_path / "sweep.yaml"
    grid_file.write_text("grid:\n  regulation.price_cap: [null, {basis: absolute, value: 1.75}]\nseeds: [0]\n")
    out = tmp_path / "sweep_results.csv"
    done = algocomp(
        "sweep",
        "calvano-2020-baseline",
        "--grid-file",
        str(grid_file),
        "--sessions",
        "2",
        *(arg for override in TINY_OVERRIDES for arg in ("--set", override)),
        "--out",
        str(out),
        api=api_server,
    )
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(out.open()))
    assert [row["cell"] for row in rows] == ["0", "1"]
    assert all(row["profit_gain_mean"] for row in rows)


def test_cli_grid_file_errors_exit_2_with_one_line(api_server: str, tmp_path: Path) -> None:
    missing = algocomp("sweep", "calvano-2020-baseline", "--grid-file", str(tmp_path / "nope.yaml"), api=api_server)
    assert missing.returncode == 2 and "nope.yaml" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1 and "Traceback" not in missing.stderr

    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("grid: [unclosed\n")
    broken = algocomp("sweep", "calvano-2020-baseline", "--grid-file", str(bad_yaml), api=api_server)
    assert broken.returncode == 2 and "not valid YAML" in broken.stderr
    assert len(broken.stderr.strip().splitlines()) == 1

    no_grid = tmp_path / "no_grid.json"
    no_grid.write_text(json.dumps({"seeds": [0, 1]}))
    gridless = algocomp("sweep", "calvano-2020-baseline", "--grid-file", str(no_grid), api=api_server)
    assert gridless.returncode == 2 and '"grid"' in gridless.stderr
    assert len(gridless.stderr.strip().splitlines()) == 1


def test_grid_flags_add_to_and_override_the_file(tmp_path: Path) -> None:
    from algocomp.cli.main import build_parser
    from algocomp.cli.remote import sweep_request

    grid_file = tmp_path / "sweep.yaml"
    grid_file.write_text(
        "grid: {agents.alpha: [0.05, 0.1], regulation.price_cap: [null]}\nseeds: 2\nsessions: 3\n"
        "overrides: [horizon.max_periods=1000]\nname: from-file\n"
    )
    args = build_parser().parse_args(
        [
            "sweep",
            "calvano-2020-baseline",
            "--grid-file",
            str(grid_file),
            "--grid",
            "agents.alpha=0.2",
            "--grid",
            "agents.beta=1e-5",
            "--set",
            "logging.interval=100",
            "--sessions",
            "4",
        ]
    )
    request = sweep_request(args)
    assert request["grid"] == {"agents.alpha": [0.2], "regulation.price_cap": [None], "agents.beta": [1e-5]}
    assert request["seeds_per_cell"] == 2 and request["seeds"] is None
    assert request["sessions"] == 4 and request["name"] == "from-file"
    assert request["overrides"] == ["horizon.max_periods=1000", "logging.interval=100"]


def test_cli_sweep_by_a_built_in_sweeps_name_with_options_that_replace_its_own(
    api_server: str, worker_process: ServiceProcess, tmp_path: Path
) -> None:
    from algocomp.cli.main import build_parser
    from algocomp.cli.remote import names_sweep_preset, sweep_request

    assert names_sweep_preset("calvano-2020-figure1")
    assert not names_sweep_preset("calvano-2020-baseline")  # a scenario preset
    as_given = sweep_request(build_parser().parse_args(["sweep", "calvano-2020-figure1"]), grid_optional=True)
    assert as_given["grid"] is None and as_given["seeds"] is None and as_given["sessions"] is None

    out = tmp_path / "figure1-corner.csv"
    done = algocomp(
        "sweep",
        "calvano-2020-figure1",
        "--grid",
        "agents.alpha=0.25",
        "--grid",
        "agents.beta=2e-5",
        "--sessions",
        "2",
        *(arg for override in TINY_OVERRIDES for arg in ("--set", override)),
        "--out",
        str(out),
        api=api_server,
    )
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 1 and rows[0]["agents.alpha"] == "0.25"
