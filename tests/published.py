"""The published figures the reproduction tests hold, and how they compare ours to them.

Calvano, Calzolari, Denicolò & Pastorello (2020), online appendix Table A11, from the replication package's output
(AER_online_appendix_Rscripts/table_A11/table_A11.txt), 1,000 sessions per row.
"""

from __future__ import annotations

import numpy as np

CALVANO_SESSIONS = 1000
CALVANO_A11 = {
    1: {"profit_gain": 0.849, "equilibrium_on_path": 0.505, "rival_relative_change": -0.127,
        "unprofitable_deviations": 0.936, "punishment_length": 5.705},
    2: {"profit_gain": 0.574, "equilibrium_on_path": 0.371, "rival_relative_change": -0.030,
        "unprofitable_deviations": 0.441, "punishment_length": 24.038},
}


# Three firms: online appendix Table A4, first row (alpha 0.15, beta 4e-6 per period)
CALVANO_A4_N3 = {"profit_gain": 0.643, "equilibrium_on_path": 0.184, "rival_relative_change": -0.078,
                 "unprofitable_deviations": 0.882, "punishment_length": 11.686}


def within_sampling_error(values: np.ndarray, published: float, *, weights: np.ndarray | None = None,
                          published_sessions: int = CALVANO_SESSIONS) -> bool:
    """Whether our mean over sessions is within 1.96 standard errors of the difference from a published mean over
    `published_sessions` sessions, taking their spread to be ours. With weights, `values` are per-session sums and
    the mean is a ratio of sums (figures pooled over every deviation of every session), with a standard error
    clustered by session."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    if weights is None:
        mean, se = values.mean(), values.std(ddof=1) / np.sqrt(n)
    else:
        weights = np.asarray(weights, dtype=float)
        mean = values.sum() / weights.sum()
        se = np.sqrt(np.sum((values - mean * weights) ** 2) * n / (n - 1)) / weights.sum()
    return bool(abs(mean - published) <= 1.96 * se * np.sqrt(1 + n / published_sessions))


def report(label: str, values, *, weights=None) -> str:
    """'label: mean [low, high] (n sessions)', the 95% interval clustered by session when weighted; printed by the
    reproduction tests (run them with -s) so the README's figures come from the run that holds them."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    if weights is None:
        mean, se = values.mean(), values.std(ddof=1) / np.sqrt(n)
    else:
        weights = np.asarray(weights, dtype=float)
        mean = values.sum() / weights.sum()
        se = np.sqrt(np.sum((values - mean * weights) ** 2) * n / (n - 1)) / weights.sum()
    line = f"{label}: {mean:.3f} [{mean - 1.96 * se:.3f}, {mean + 1.96 * se:.3f}] ({n} sessions)"
    print(line)
    return line
