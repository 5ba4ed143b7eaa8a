"""`make bench-faults` (benchmarks/bench_faults.py) in miniature: its own stack comes up, one API kill lands
during a burst of keyed POSTs, every key gets exactly one run that succeeds, and everything it started is gone
afterwards (its database dropped). Slow (about a minute: a whole stack starts), so outside the default suite."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg
import pytest

from devstack import REPO_ROOT

pytestmark = pytest.mark.slow


def test_api_kill_scenario_passes_and_cleans_up() -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            str(REPO_ROOT / part) for part in ("shared", "services/api", "services/worker", "services/aggregator")
        ),
    }
    done = subprocess.run(
        [sys.executable, "benchmarks/bench_faults.py", "--scenarios", "api-kill", "--runs", "4", "--injections", "1"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    row = next(line for line in done.stdout.splitlines() if line.startswith("api-kill "))
    assert row.split()[1:6] == ["1/1", "4", "4", "0", "0"], row
    assert row.endswith("PASS")
    database = next(word for word in done.stdout.split() if word.startswith("algocomp_faults_")).rstrip(",")
    admin = os.environ.get("ALGOCOMP_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        with psycopg.connect(admin, connect_timeout=5) as connection:
            left = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
    except psycopg.OperationalError:
        pytest.skip("cannot connect to Postgres to see the database dropped")
    assert left is None, f"database {database} was not dropped"
