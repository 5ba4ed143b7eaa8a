"""Cross-run coordination metrics: what a sweep cell did, with its uncertainty, and what a regulation changed.

The engine's summary of one experiment reports normal-approximation intervals, which suit hundreds of sessions.
A sweep cell often has ten; profit gains there are bounded, skewed and sometimes bimodal, so the intervals here
are percentile bootstraps over sessions, which need no distributional assumption and also cover the median.
Regulation effects are paired: the engine derives each session's seed from the experiment seed and the session
index, so a regulated cell and the unregulated cell run with the same seed face the same random draws session by
session. Differencing those pairs removes the between-session variance that would swamp an unpaired comparison.

Everything here is pure (lists of session dicts in, JSON-ready dicts out) so the aggregator service, the command
line and the tests compute the same numbers. Undefined values are None, never NaN.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

Statistic = Callable[..., Any]
Session = dict[str, Any]

# Bound on the resample-index matrix (resamples x n) held at once, ~32 MB of int64: a cell of many thousands of
# sessions is bootstrapped in row blocks instead of exhausting a worker's memory.
_MAX_MATRIX = 1 << 22

# Profit gain above which a session counts as collusive in the literature's shares (Calvano et al. 2020).
COLLUSION_THRESHOLD = 0.5


def _clean(values: Iterable[Any]) -> np.ndarray:
    """The finite values as floats: sessions report undefined metrics as None (and a caller may pass NaN)."""
    x = np.array([v for v in values if v is not None], dtype=float)
    return x[np.isfinite(x)]


def _finite(x: Any) -> float | None:
    """A plain float for JSON, or None when the value is undefined."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _apply(statistic: Statistic, samples: np.ndarray) -> np.ndarray:
    """The statistic of each row. numpy reductions take axis= and run vectorised; any other callable of a 1-D
    array still works, row by row."""
    try:
        out = np.asarray(statistic(samples, axis=1), dtype=float)
        if out.shape == (samples.shape[0],):
            return out
    except TypeError:
        pass
    return np.array([float(statistic(row)) for row in samples], dtype=float)


def bootstrap_ci(
    values: Iterable[Any],
    statistic: Statistic = np.mean,
    *,
    level: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[float | None, float | None, float | None]:
    """(estimate, low, high): the statistic of the values and its percentile-bootstrap interval over sessions.

    None and NaN values are ignored (a session whose metric is undefined says nothing about it). With no values
    everything is None; with one value there is an estimate but no interval. Resampling uses
    numpy's Generator(PCG64(seed)), so the interval is a pure function of (values, statistic, level, resamples,
    seed): the aggregator can recompute it after a restart and get the same bytes.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be between 0 and 1 (exclusive), got {level}")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    x = _clean(values)
    if x.size == 0:
        return None, None, None
    estimate = _finite(_apply(statistic, x[None, :])[0])
    if x.size < 2:
        return estimate, None, None
    rng = np.random.Generator(np.random.PCG64(seed))
    block = max(1, _MAX_MATRIX // x.size)
    stats = np.empty(resamples, dtype=float)
    for start in range(0, resamples, block):
        rows = min(block, resamples - start)
        index = rng.integers(0, x.size, size=(rows, x.size))
        stats[start : start + rows] = _apply(statistic, x[index])
    stats = stats[np.isfinite(stats)]
    if stats.size == 0:
        return estimate, None, None
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(stats, [tail, 1.0 - tail])
    return estimate, _finite(low), _finite(high)


def _values(sessions: Sequence[Session], key: str) -> np.ndarray:
    return _clean(s.get(key) for s in sessions)


def _mean(values: np.ndarray) -> float | None:
    return float(values.mean()) if values.size else None


def _share(flags: Iterable[Any]) -> float | None:
    """Share of True among the defined flags (None means the session could not say)."""
    known = [bool(f) for f in flags if f is not None]
    return sum(known) / len(known) if known else None


def cell_metrics(sessions: Sequence[Session], *, resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """The coordination indicators of one sweep cell, pooled over the sessions of all its runs.

    Intervals are 95% percentile bootstraps over sessions (sessions are the independent units; periods within a
    session are not). Rates count over the sessions where the flag is defined, the punishment length only over
    punished sessions (an unpunished session has no punishment to measure) and the convergence period only over
    converged ones. Punishment is taken from every session's impulse response, as the engine's own summary does.
    Flat keys of floats, ints and None, so the result is a JSON object and a CSV row alike.
    """
    sessions = list(sessions)
    out: dict[str, Any] = {"sessions": len(sessions)}

    def with_ci(name: str, key: str, statistic: Statistic = np.mean) -> None:
        estimate, low, high = bootstrap_ci(_values(sessions, key), statistic, resamples=resamples, seed=seed)
        out[name], out[f"{name}_low"], out[f"{name}_high"] = estimate, low, high

    gains = _values(sessions, "profit_gain")
    with_ci("profit_gain_mean", "profit_gain", np.mean)
    with_ci("profit_gain_median", "profit_gain", np.median)
    out["share_profit_gain_above_half"] = float(np.mean(gains > COLLUSION_THRESHOLD)) if gains.size else None
    out["mean_price"] = _mean(_values(sessions, "mean_price"))
    out["price_index_mean"] = _mean(_values(sessions, "price_index"))
    out["consumer_surplus_mean"] = _mean(_values(sessions, "consumer_surplus"))
    with_ci("consumer_surplus_loss_mean", "consumer_surplus_loss")
    with_ci("consumer_surplus_loss_index_mean", "consumer_surplus_loss_index")
    out["total_welfare_mean"] = _mean(_values(sessions, "total_welfare"))

    out["convergence_rate"] = _share(s.get("converged") for s in sessions)
    converged = [s for s in sessions if s.get("converged")]
    out["convergence_period_mean"] = _mean(_values(converged, "convergence_period"))

    out["punishment_rate"] = _share(s.get("ir_punishment") for s in sessions)
    punished = [s for s in sessions if s.get("ir_punishment")]
    out["punishment_length_mean"] = _mean(_values(punished, "ir_punishment_length"))

    labels = [s.get("cycle_label") for s in sessions if s.get("cycle_label") is not None]
    out["focal_share"] = sum(label == "focal" for label in labels) / len(labels) if labels else None
    out["edgeworth_share"] = sum(label == "edgeworth" for label in labels) / len(labels) if labels else None
    out["comovement_mean"] = _mean(_values(sessions, "comovement"))
    return {k: (_finite(v) if isinstance(v, float) else v) for k, v in out.items()}


def _by_seed(sessions: Sequence[Session], side: str) -> dict[str, Session]:
    """Sessions keyed by their engine seed. A repeated seed would make the pairing ambiguous (the same run
    counted twice), so it is an error rather than a silent choice."""
    keyed: dict[str, Session] = {}
    for s in sessions:
        if s.get("seed") is None:
            raise ValueError(f"a {side} session has no 'seed'; paired effects need the engine's session summaries")
        seed = str(s["seed"])
        if seed in keyed:
            raise ValueError(f"{side} sessions repeat seed {seed}; was the same run included twice?")
        keyed[seed] = s
    return keyed


def paired_effects(
    treated: Sequence[Session],
    control: Sequence[Session],
    *,
    keys: Sequence[str] = ("profit_gain", "mean_price", "consumer_surplus"),
    resamples: int = 2000,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """The effect of a treatment (a regulation) on each key: the mean of paired differences treated - control.

    Sessions pair by their per-session seed (a string, as the engine reports it), which is equal exactly when the
    two experiments share the experiment seed and the session index. Only matched seeds count; a key's pairs are
    those where both sides define the value. The 95% interval is a percentile bootstrap over pairs, with the same
    resample draws for every key that has the same pairs. Raises ValueError when no seed matches: that means the
    cells were not run with the same seeds, and an unpaired difference must not pass for a paired one.
    """
    t_by_seed = _by_seed(treated, "treated")
    c_by_seed = _by_seed(control, "control")
    common = [s for s in t_by_seed if s in c_by_seed]  # treated order: deterministic for a given input
    if not common:
        raise ValueError(
            f"no session seeds match between treated ({len(t_by_seed)} sessions) and control "
            f"({len(c_by_seed)} sessions); run both cells with the same experiment seed"
        )
    effects: dict[str, dict[str, Any]] = {}
    for key in keys:
        diffs = []
        for s in common:
            a, b = _finite(t_by_seed[s].get(key)), _finite(c_by_seed[s].get(key))
            if a is not None and b is not None:
                diffs.append(a - b)
        effect, low, high = bootstrap_ci(diffs, np.mean, resamples=resamples, seed=seed)
        effects[key] = {"effect": effect, "low": low, "high": high, "pairs": len(diffs)}
    return effects
