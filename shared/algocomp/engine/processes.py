"""How algocomp starts child processes (the engine's workers, the CLI's plot drawer): the one rule, in one place.

    fork        only on Linux, where it is available and safe: the children start at once with the parent's
                memory, the loaded kernel included.
    spawn       everywhere else. Windows has no fork; on macOS fork is unsafe once system frameworks have started
                threads, and Python's own default there is spawn. A spawned child starts a fresh interpreter,
                imports what it needs and loads the compiled kernel from numba's cache (engine.kernel uses
                cache=True; NUMBA_CACHE_DIR moves the cache if the package folder is read-only).

The environment variable ALGOCOMP_START_METHOD (fork, spawn or forkserver) overrides the default, and an explicit
argument (`algocomp simulate --start-method`, `run_experiment(start_method=...)`) overrides both. The results do
not depend on the method: every session draws from its own seeded stream (engine.seeds).

This module imports nothing heavy, so anything may ask it without loading the engine.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from multiprocessing.context import BaseContext

START_METHOD_ENV = "ALGOCOMP_START_METHOD"
START_METHODS = ("fork", "spawn", "forkserver")


class StartMethodError(ValueError):
    """A start method that is unknown or not available here. `source` names where it came from (the environment
    variable or the option), so a caller can report the mistake against it."""

    def __init__(self, source: str, problem: str) -> None:
        self.source = source
        self.problem = problem
        super().__init__(f"{source}: {problem}")


def default_start_method() -> str:
    """fork on Linux (when the platform offers it), spawn anywhere else."""
    if sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods():
        return "fork"
    return "spawn"


def resolve_start_method(explicit: str | None = None, *, source: str = "start_method") -> str:
    """The start method to use: `explicit` if given (`source` names it in errors, e.g. "--start-method"), else
    ALGOCOMP_START_METHOD if set and not empty, else default_start_method(). Raises StartMethodError for a value
    that is not fork, spawn or forkserver, or that this platform does not offer (fork and forkserver on Windows).
    """
    if explicit is not None:
        value, origin = explicit, source
    else:
        value, origin = os.environ.get(START_METHOD_ENV, ""), START_METHOD_ENV
        if not value.strip():
            return default_start_method()
    method = value.strip().lower()
    if method not in START_METHODS:
        raise StartMethodError(origin, f"expected one of {', '.join(START_METHODS)}; got {value!r}")
    available = multiprocessing.get_all_start_methods()
    if method not in available:
        raise StartMethodError(
            origin, f"{method!r} is not available on this platform ({sys.platform}); use one of {', '.join(available)}"
        )
    return method


def mp_context(method: str | None = None) -> BaseContext:
    """The multiprocessing context for `method` (resolved by resolve_start_method when None)."""
    return multiprocessing.get_context(resolve_start_method(method))
