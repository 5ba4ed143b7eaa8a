"""The published figures the reproduction tests hold, and how they compare ours to them.

Calvano, Calzolari, Denicolò & Pastorello (2020), online appendix Table A11, from the replication package's output
(AER_online_appendix_Rscripts/table_A11/table_A11.txt), 1,000 sessions per row.
"""

from __future__ import annotations

import numpy as np

CALVANO_SESSIONS = 1000
CALVANO_A11 = {
    1: {
        "profit_gain": 0.849,
        "equilibrium_on_path": 0.505,
        "rival_relative_change": -0.127,
        "unprofitable_deviations": 0.936,
        "punishment_length": 5.705,
    },
    2: {
        "profit_gain": 0.574,
        "equilibrium_on_path": 0.371,
        "rival_relative_change": -0.030,
        "unprofitable_deviations": 0.441,
        "punishment_length": 24.038,
    },
}


# Three firms: online appendix Table A4, first row (alpha 0.15, beta 4e-6 per period)
CALVANO_A4_N3 = {
    "profit_gain": 0.643,
    "equilibrium_on_path": 0.184,
    "rival_relative_change": -0.078,
    "unprofitable_deviations": 0.882,
    "punishment_length": 11.686,
}


def mean_and_se(values, weights=None) -> tuple[float, float]:
    """Mean over sessions and its standard error; with weights, `values` are per-session sums and the mean is a
    ratio of sums (a figure pooled over every deviation of every session), its standard error clustered by
    session."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    if weights is None:
        return float(values.mean()), float(values.std(ddof=1) / np.sqrt(n))
    weights = np.asarray(weights, dtype=float)
    mean = values.sum() / weights.sum()
    return float(mean), float(np.sqrt(np.sum((values - mean * weights) ** 2) * n / (n - 1)) / weights.sum())


def within_sampling_error(
    values, published: float, *, weights=None, published_sessions: int = CALVANO_SESSIONS
) -> bool:
    """Whether our mean over sessions (pooled when weighted, see mean_and_se) is within 1.96 standard errors of
    the difference from a published mean over `published_sessions` sessions, taking their spread to be ours."""
    mean, se = mean_and_se(values, weights)
    return bool(abs(mean - published) <= 1.96 * se * np.sqrt(1 + len(values) / published_sessions))


def report(label: str, values, *, weights=None) -> str:
    """'label: mean [low, high] (n sessions)' with the 95% interval of mean_and_se; printed by the reproduction
    tests (run them with -s) so the README's figures come from the run that holds them."""
    mean, se = mean_and_se(values, weights)
    line = f"{label}: {mean:.3f} [{mean - 1.96 * se:.3f}, {mean + 1.96 * se:.3f}] ({len(values)} sessions)"
    print(line)
    return line
