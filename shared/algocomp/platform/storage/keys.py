"""The one place that knows where a run's files live in S3: `runs/{run_id}/<artifact>`.

Keys are deterministic per run, so a redelivered run task overwrites the same objects instead of producing a
second result set, and every service finds a run's files from its id alone.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from algocomp.platform.storage.s3 import Storage

# artifact name -> path relative to the run's prefix (and to the run folder written by algocomp.output.writer)
ARTIFACTS: dict[str, str] = {
    "panel": "panel.parquet",
    "impulse": "impulse.parquet",
    "summary": "summary.json",
    "scenario": "scenario.json",
    "config": "config.json",
    "log": "run.log",
    "prices_plot": "plots/prices.png",
    "impulse_plot": "plots/impulse.png",
}

_CONTENT_TYPES: dict[str, str] = {
    ".parquet": "application/vnd.apache.parquet",
    ".json": "application/json",
    ".log": "text/plain; charset=utf-8",
    ".csv": "text/csv; charset=utf-8",
    ".png": "image/png",
}


def run_prefix(run_id: uuid.UUID | str) -> str:
    """The prefix under which every file of one run lives."""
    return f"runs/{run_id}/"


def _key(prefix: str, files: dict[str, str], name: str, what: str) -> str:
    try:
        return prefix + files[name]
    except KeyError:
        raise KeyError(f"unknown {what} {name!r}; known: {', '.join(files)}") from None


def run_key(run_id: uuid.UUID | str, name: str) -> str:
    """The S3 key of artifact `name` (a key of ARTIFACTS) of a run."""
    return _key(run_prefix(run_id), ARTIFACTS, name, "artifact")


def content_type(name: str) -> str:
    """The HTTP content type of an artifact (by name from ARTIFACTS, or by a file name's suffix)."""
    relative = ARTIFACTS.get(name, name)
    return _CONTENT_TYPES.get(Path(relative).suffix.lower(), "application/octet-stream")


def upload_run_folder(storage: Storage, run_id: uuid.UUID | str, folder: Path | str) -> dict[str, str]:
    """Upload every known artifact present in a run folder; returns artifact name -> S3 key of what was uploaded."""
    folder = Path(folder)
    present = {name: folder / relative for name, relative in ARTIFACTS.items() if (folder / relative).is_file()}
    # The uploads are independent round trips: in parallel they take about as long as the largest one.
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(present)))) as pool:
        futures = {
            name: pool.submit(storage.put_file, run_key(run_id, name), path, content_type(name))
            for name, path in present.items()
        }
        for future in futures.values():
            future.result()
    return {name: run_key(run_id, name) for name in present}


# sweep artifact name -> path relative to the sweep's prefix (written by the aggregator when a sweep is over)
SWEEP_ARTIFACTS: dict[str, str] = {
    "metrics_csv": "metrics.csv",
    "metrics_parquet": "metrics.parquet",
    "delta_heatmap": "plots/delta_heatmap.png",
    "regulation_effects": "plots/regulation_effects.png",
}


def sweep_prefix(sweep_id: uuid.UUID | str) -> str:
    """The prefix under which a sweep's aggregate files live."""
    return f"sweeps/{sweep_id}/"


def sweep_key(sweep_id: uuid.UUID | str, name: str) -> str:
    """The S3 key of sweep artifact `name` (a key of SWEEP_ARTIFACTS)."""
    return _key(sweep_prefix(sweep_id), SWEEP_ARTIFACTS, name, "sweep artifact")
