"""exp, log and pow elementwise through the C library's functions, the ones Python's math module and the compiled
engine call, instead of numpy's ufuncs.

numpy computes these with SIMD code of its own on CPUs that have it (exp and log with AVX-512, pow through SVML),
and that code rounds some results differently in the last bit from the C library, which numpy uses elsewhere. A
profit table or a price grid one bit apart sends Q-learning down another path, so the same scenario and seed gave
other results on another machine. These functions give the C library's values on every machine (numpy's values
on a CPU without AVX-512). They are for the market's tables, benchmarks and metrics, arrays of at most tens of
thousands of values, built once per run: a Python call per element is fast enough there.
"""

from __future__ import annotations

import math

import numpy as np


def _exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def _log(x: float) -> float:
    if x > 0.0:
        return math.log(x)
    return -math.inf if x == 0.0 else math.nan


def _pow(x: float, y: float) -> float:
    try:
        return math.pow(x, y)
    except OverflowError:
        return math.inf
    except ValueError:
        return math.nan


_EXP = np.frompyfunc(_exp, 1, 1)
_LOG = np.frompyfunc(_log, 1, 1)
_POW = np.frompyfunc(_pow, 2, 1)


def _floats(values: object) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


def exp(x: np.ndarray | float) -> np.ndarray:
    """e**x elementwise (inf where it overflows), as math.exp; an array (0-d for a number)."""
    return _floats(_EXP(np.asarray(x, dtype=np.float64)))


def log(x: np.ndarray | float) -> np.ndarray:
    """The natural log elementwise (-inf at 0, nan below), as math.log; an array (0-d for a number)."""
    return _floats(_LOG(np.asarray(x, dtype=np.float64)))


def power(x: np.ndarray | float, y: np.ndarray | float) -> np.ndarray:
    """x**y elementwise, as math.pow (inf where it overflows, nan where it is undefined); an array."""
    return _floats(_POW(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)))
