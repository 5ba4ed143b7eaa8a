"""The core install (`pip install algocomp`, no extras) runs the engine and the local `algocomp` commands.

pyproject.toml keeps the service stack (FastAPI, Celery, SQLAlchemy, Redis, boto3, MLflow, ...) and the API's
client (httpx) in the `server` and `client` extras. These tests run algocomp in a subprocess where those packages
cannot be imported (a sys.meta_path blocker, as if they were not installed): the engine, the outputs and
`algocomp simulate` must work and must not even try to import them, and a command that talks to the API must say
which extra to install instead of failing with a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

TIMEOUT_S = 180

# Everything the `server` and `client` extras bring that the library's own code imports.
EXTRA_ONLY_MODULES = (
    "fastapi",
    "starlette",
    "uvicorn",
    "sse_starlette",
    "celery",
    "kombu",
    "sqlalchemy",
    "alembic",
    "psycopg",
    "redis",
    "boto3",
    "botocore",
    "mlflow",
    "flower",
    "httpx",
    "pydantic_settings",
)

# Runs before the code under test: makes the packages above unimportable and, at exit, reports which of them
# were asked for (even unsuccessfully) and which ended up in sys.modules.
BLOCKER = textwrap.dedent(
    """
    import atexit, json, os, sys

    BLOCKED = frozenset({blocked!r})
    attempts = []

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".", 1)[0] in BLOCKED:
                attempts.append(name)
                raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)", name=name)
            return None

    sys.meta_path.insert(0, Blocker())

    def report():
        loaded = sorted(m for m in sys.modules if m.split(".", 1)[0] in BLOCKED)
        with open(os.environ["ALGOCOMP_IMPORT_REPORT"], "w") as out:
            json.dump({{"attempts": sorted(set(attempts)), "loaded": loaded}}, out)

    atexit.register(report)
    """
).format(blocked=sorted(EXTRA_ONLY_MODULES))


def run_without_extras(code: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, list[str]]]:
    """Run `code` in a fresh interpreter with the extras' packages blocked; returns the process and the report."""
    report = tmp_path / "imports.json"
    completed = subprocess.run(
        [sys.executable, "-c", BLOCKER + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        cwd=tmp_path,
        env={**_environment(), "ALGOCOMP_IMPORT_REPORT": str(report)},
        check=False,
    )
    assert report.is_file(), f"the subprocess did not get to exit normally:\n{completed.stderr}"
    return completed, json.loads(report.read_text())


def _environment() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not key.startswith("ALGOCOMP_API")}


def test_the_blocker_blocks(tmp_path: Path) -> None:
    """The premise of the tests below: a blocked package cannot be imported in the subprocess."""
    completed, report = run_without_extras(
        """
        try:
            import httpx
        except ModuleNotFoundError as error:
            print("blocked", error.name)
        """,
        tmp_path,
    )
    assert completed.stdout.strip() == "blocked httpx", completed.stderr
    assert report["attempts"] == ["httpx"] and report["loaded"] == []


def test_library_and_simulate_run_without_the_server_and_client_extras(tmp_path: Path) -> None:
    out_dir = tmp_path / "run"
    completed, report = run_without_extras(
        f"""
        import sys
        import algocomp, algocomp.aggregate, algocomp.aggregate.grid, algocomp.client, algocomp.engine
        import algocomp.engine.experiment
        import algocomp.markets, algocomp.metrics.summary, algocomp.output, algocomp.scenarios, algocomp.cli.main
        from algocomp.cli.main import main

        # `algocomp simulate calvano-2020-baseline --sessions 2 --json`, on a shorter horizon to stay fast
        code = main(["simulate", "calvano-2020-baseline", "--sessions", "2", "--json",
                     "--set", "horizon.max_periods=20000", "--out", {str(out_dir)!r}])
        sys.stdout.flush()
        sys.exit(code)
        """,
        tmp_path,
    )
    assert completed.returncode == 0, completed.stderr
    summary = json.loads(completed.stdout)
    assert summary["sessions"] == 2
    assert summary["output_dir"] == str(out_dir)
    assert (out_dir / "panel.parquet").is_file() and (out_dir / "summary.json").is_file()
    assert report["loaded"] == [], f"imported without need: {report['loaded']}"
    assert report["attempts"] == [], f"tried to import: {report['attempts']}"


@pytest.mark.parametrize(
    "command",
    [
        ["runs", "list"],
        ["results", "00000000-0000-0000-0000-000000000000"],
        ["sweep", "calvano-2020-baseline", "--grid", "agents.alpha=0.05,0.15"],
        ["aggregate", "--out", "metrics.csv"],
    ],
)
def test_remote_commands_without_the_client_extra_say_what_to_install(tmp_path: Path, command: list[str]) -> None:
    completed, _ = run_without_extras(
        f"""
        import sys
        from algocomp.cli.main import main

        sys.exit(main({command!r}))
        """,
        tmp_path,
    )
    assert completed.returncode == 2, completed.stderr
    assert completed.stdout == ""
    assert "Traceback" not in completed.stderr
    message = completed.stderr.strip()
    assert message.startswith(f"algocomp: error: `algocomp {command[0]}` talks to the algocomp API"), message
    assert "pip install 'algocomp[client]'" in message and "httpx" in message
    assert len(message.splitlines()) == 1


def test_the_client_without_httpx_names_the_extra(tmp_path: Path) -> None:
    completed, _ = run_without_extras(
        """
        from algocomp.client import DEFAULT_BASE_URL  # the constants need no HTTP library
        from algocomp.extras import MissingExtra

        try:
            from algocomp.client import Client
        except MissingExtra as error:
            print(error.extra, error.name)
            print(error)
        """,
        tmp_path,
    )
    assert completed.returncode == 0, completed.stderr
    first, message = completed.stdout.strip().splitlines()
    assert first == "client httpx"
    assert "pip install 'algocomp[client]'" in message


def test_sweep_metrics_from_the_database_name_the_server_extra(tmp_path: Path) -> None:
    """algocomp.platform.db.sweep_metrics reads Postgres and S3; its pure part (algocomp.aggregate.grid) does not."""
    completed, _ = run_without_extras(
        """
        from algocomp.aggregate.grid import sweep_cells
        from algocomp.extras import MissingExtra

        try:
            import algocomp.platform.db.sweep_metrics
        except MissingExtra as error:
            print(error.extra)
            print(error)
        """,
        tmp_path,
    )
    assert completed.returncode == 0, completed.stderr
    extra, message = completed.stdout.strip().splitlines()
    assert extra == "server"
    assert "pip install 'algocomp[server]'" in message


@pytest.mark.parametrize(
    "module",
    [
        "algocomp.platform.settings",
        "algocomp.platform.db",
        "algocomp.platform.db.models",
        "algocomp.platform.queue",
        "algocomp.platform.storage",
        "algocomp.platform.progress",
        "algocomp.platform.tracking",
        "algocomp.platform.db.sweep_metrics",
    ],
)
def test_service_modules_without_the_server_extra_name_it(tmp_path: Path, module: str) -> None:
    completed, _ = run_without_extras(
        f"""
        import importlib
        from algocomp.extras import MissingExtra

        try:
            importlib.import_module({module!r})
        except MissingExtra as error:
            print(error.extra)
            print(error)
        else:
            print("imported")
        """,
        tmp_path,
    )
    assert completed.returncode == 0, completed.stderr
    extra, message = completed.stdout.strip().splitlines()
    assert extra == "server", message
    assert message.endswith("pip install 'algocomp[server]'"), message
