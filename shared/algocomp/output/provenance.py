"""Provenance of a run: what a reader needs to reproduce it, written next to the results as config.json.

A result is reproducible when the same scenario, run from the same seed by the same code with the same numerical
libraries, gives the same numbers. So the record holds the scenario's hash (its full text is in scenario.json),
the seed and every session's seed together with the rule that derived them, the algocomp version and the git
commit of the source tree (and whether that tree had uncommitted changes, which makes the commit an incomplete
answer), the interpreter, the platform, and the versions of the libraries that do the arithmetic. It also says
how the run was started and with how many workers, and that the results do not depend on that number: each
session draws from its own seed, so splitting sessions over processes changes only the wall-clock time.
"""

from __future__ import annotations

import functools
import importlib.metadata
import inspect
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import algocomp
from algocomp.scenarios.model import Scenario

CONFIG_FORMAT = "algocomp.run_config/1"

# The libraries whose versions can change the numbers (RNG streams, compiled kernels, solvers) or the files.
RECORDED_DEPENDENCIES: tuple[str, ...] = ("numpy", "numba", "llvmlite", "scipy", "pandas", "pyarrow", "pydantic")

GIT_TIMEOUT_S = 5.0

WORKERS_NOTE = (
    "Results do not depend on the number of workers: every session runs from its own seed (session_seeds), "
    "so running sessions in parallel changes only the elapsed time and periods_per_second."
)


def run_config(scenario: Scenario, *, workers: int, command: list[str] | None) -> dict[str, Any]:
    """Everything needed to reproduce a run of `scenario` (with its seed and sessions as run), as a JSON-ready dict.

    `command` is the command line that started the run (None when it was started from Python); `workers` the
    number of processes it used.
    """
    from algocomp.engine import seeds
    from algocomp.scenarios import scenario_hash

    git_commit, git_dirty, commit_source = source_revision()
    return {
        "format": CONFIG_FORMAT,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "scenario_name": scenario.name,
        "scenario_hash": scenario_hash(scenario),
        "seed": scenario.seed,
        "sessions": scenario.sessions,
        "session_seeds": [int(seed) for seed in seeds.session_seeds(scenario.seed, scenario.sessions)],
        "session_seed_rule": _session_seed_rule(seeds),
        "algocomp_version": algocomp.__version__,
        "git_commit": git_commit,
        "git_dirty": git_dirty,
        "git_commit_source": commit_source,
        "python_version": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "dependencies": dependency_versions(),
        "command": list(command) if command is not None else None,
        "workers": workers,
        "workers_note": WORKERS_NOTE,
        "reproduce": f"algocomp simulate scenario.json --workers {workers}",
    }


def dependency_versions() -> dict[str, str | None]:
    """Installed versions of the numerical libraries (None for one that is not installed)."""
    return dict(_installed_versions())


@functools.lru_cache(maxsize=1)
def _installed_versions() -> tuple[tuple[str, str | None], ...]:
    """Read once per process: the metadata lookups cost ~10 ms, and a worker writes config.json for every run."""
    versions: dict[str, str | None] = {}
    for name in RECORDED_DEPENDENCIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return tuple(versions.items())


def source_revision() -> tuple[str | None, bool | None, str | None]:
    """(commit, dirty, source) of the code that is running.

    The environment wins: a container image built from a commit has no .git folder, so its build sets
    ALGOCOMP_COMMIT (and may set ALGOCOMP_DIRTY to 1/0). Otherwise git is asked about the package's own directory,
    with a short timeout so a slow or hung git never delays a run. dirty is True when files of the package
    (shared/algocomp, untracked ones included) differ from the commit; None when it cannot be known. A checkout
    without commits, a copy outside git, or a missing git binary all give (None, None, None).
    """
    env_commit = os.environ.get("ALGOCOMP_COMMIT", "").strip()
    if env_commit:
        return env_commit, _env_flag(os.environ.get("ALGOCOMP_DIRTY")), "env"
    return _git_revision(Path(algocomp.__file__).resolve().parent)


@functools.lru_cache(maxsize=4)
def _git_revision(package_dir: Path) -> tuple[str | None, bool | None, str | None]:
    """Asked once per process: a worker writes config.json for every run, and two git calls cost ~10 ms."""
    commit = _git(package_dir, "rev-parse", "--verify", "HEAD")
    if not commit:
        return None, None, None
    status = _git(package_dir, "status", "--porcelain", "--untracked-files=normal", "--", ".")
    dirty = None if status is None else bool(status)
    return commit, dirty, "git"


def _git(cwd: Path, *args: str) -> str | None:
    """Output of `git args` run in `cwd`, stripped; None if git is missing, fails or takes too long."""
    # GIT_OPTIONAL_LOCKS=0: `git status` must not take the index lock, which would race with people editing.
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    try:
        completed = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if completed.returncode != 0:
        return None
    return completed.stdout.strip()


def _env_flag(value: str | None) -> bool | None:
    if value is None or not value.strip():
        return None
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes"):
        return True
    if lowered in ("0", "false", "no"):
        return False
    return None


def _session_seed_rule(seeds_module: ModuleType) -> str:
    """The derivation rule as the seeds module states it (its SEED_RULE, else the docstring of session_seeds), so
    the record stays true when the rule changes together with its description."""
    function = seeds_module.session_seeds
    name = f"{function.__module__}.{function.__qualname__}(seed, sessions)"
    rule = getattr(seeds_module, "SEED_RULE", None) or inspect.getdoc(function)
    return f"{name}: {' '.join(str(rule).split())}" if rule else name
