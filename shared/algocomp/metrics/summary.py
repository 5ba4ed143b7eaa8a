"""The summary over an experiment's sessions: benchmarks, means with 95% intervals, shares and the average
impulse response. JSON-ready (undefined values are None)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from algocomp.engine.build import CompiledScenario
from algocomp.metrics.session import _finite

# Session metrics averaged over sessions under the same name.
_MEANS = (
    "profit_gain",
    "mean_price",
    "price_index",
    "mean_profit",
    "consumer_surplus",
    "consumer_surplus_loss",
    "consumer_surplus_loss_index",
    "total_welfare",
    "lerner_index",
    "hhi",
    "comovement",
    "ir_rival_price_change",
    "ir_deviation_gain",
    "tail_profit",
)


def _values(sessions: list[dict[str, Any]], key: str) -> np.ndarray:
    return np.array([s[key] for s in sessions if s.get(key) is not None], dtype=float)


def mean_ci(values: np.ndarray, level_z: float = 1.959963984540054) -> tuple[float | None, float | None, float | None]:
    """Mean, and a normal-approximation 95% interval (t-free: experiments run hundreds of sessions)."""
    if values.size == 0:
        return None, None, None
    mean = float(values.mean())
    if values.size < 2:
        return mean, None, None
    half = level_z * float(values.std(ddof=1)) / math.sqrt(values.size)
    return mean, mean - half, mean + half


def _nanmean(values: np.ndarray) -> list:
    """Mean over sessions (axis 0) ignoring undefined entries; None where every session's is undefined."""
    finite = np.isfinite(values)
    counts = finite.sum(axis=0)
    sums = np.where(finite, values, 0.0).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        means = np.where(counts > 0, sums / counts, np.nan)
    return [[_finite(v) for v in row] for row in means]


def mean_impulse_path(impulse: pd.DataFrame) -> dict[str, Any]:
    """Mean price by tau and firm over sessions, with and without the deviation, and the mean price relative to
    the firm's own price before the deviation (tau = -1), the form of Calvano et al.'s figures."""
    if impulse.empty:
        return {"tau": [], "price": [], "relative_price": [], "counterfactual_price": []}
    taus = np.unique(impulse["tau"].to_numpy())
    firms = int(impulse["firm"].max()) + 1
    block = taus.size * firms
    if len(impulse) % block == 0:
        # The engine's layout: each session's rows in (tau, firm) order. Averaging reshaped arrays is ~50x faster
        # than a group-by, which matters for the many tiny runs a service executes.
        expected_tau = np.repeat(taus, firms)
        tau = impulse["tau"].to_numpy().reshape(-1, block)
        firm = impulse["firm"].to_numpy().reshape(-1, block)
        if (tau == expected_tau).all() and (firm == np.tile(np.arange(firms), taus.size)).all():
            shape = (-1, taus.size, firms)
            return {
                "tau": [int(t) for t in taus],
                "price": impulse["price"].to_numpy().reshape(shape).mean(axis=0).tolist(),
                "relative_price": _nanmean(impulse["relative_price"].to_numpy().reshape(shape)),
                "counterfactual_price": impulse["counterfactual_price"].to_numpy().reshape(shape).mean(axis=0).tolist(),
            }
    grouped = impulse.groupby(["tau", "firm"])[["price", "relative_price", "counterfactual_price"]].mean()
    price = grouped["price"].unstack("firm")
    relative = grouped["relative_price"].unstack("firm")
    cf = grouped["counterfactual_price"].unstack("firm")
    return {
        "tau": [int(t) for t in price.index],
        "price": price.to_numpy().tolist(),
        "relative_price": [[_finite(v) for v in row] for row in relative.to_numpy()],
        "counterfactual_price": cf.to_numpy().tolist(),
    }


def summarise(
    cs: CompiledScenario,
    sessions: list[dict[str, Any]],
    *,
    impulse: pd.DataFrame,
    scenario_hash: str,
    elapsed_s: float,
    sessions_requested: int,
) -> dict[str, Any]:
    b = cs.benchmarks
    summary: dict[str, Any] = {
        "scenario": cs.scenario.name,
        "scenario_hash": scenario_hash,
        "seed": cs.scenario.seed,
        "sessions": len(sessions),
        "sessions_requested": sessions_requested,
        "n_firms": cs.n_firms,
        "nash_price": float(np.mean(b.nash_price)),
        "monopoly_price": float(np.mean(b.monopoly_price)),
        "nash_profit": float(np.mean(b.nash_profit)),
        "monopoly_profit": float(np.mean(b.monopoly_profit)),
        "nash_consumer_surplus": float(b.nash_consumer_surplus),
        "monopoly_consumer_surplus": float(b.monopoly_consumer_surplus),
        "nash_welfare": float(b.nash_welfare),
        "monopoly_welfare": float(b.monopoly_welfare),
        "benchmarks": b.to_dict(),
        "price_grid": cs.grid.tolist(),
    }
    for key in _MEANS:
        mean, low, high = mean_ci(_values(sessions, key))
        summary[key] = mean
        summary[f"{key}_ci95"] = [low, high]
    gains = _values(sessions, "profit_gain")
    summary["profit_gain_sd"] = float(gains.std(ddof=1)) if gains.size > 1 else None
    summary["profit_gain_median"] = float(np.median(gains)) if gains.size else None
    summary["share_profit_gain_above_half"] = float(np.mean(gains > 0.5)) if gains.size else None
    summary["profit_gain_by_firm"] = (
        np.nanmean(np.array([s["profit_gain_by_firm"] for s in sessions], dtype=float), axis=0).tolist()
        if sessions
        else []
    )
    summary["mean_price_by_firm"] = (
        np.mean(np.array([s["mean_price_by_firm"] for s in sessions]), axis=0).tolist() if sessions else []
    )
    converged = [s for s in sessions if s["converged"]]
    summary["converged_share"] = len(converged) / len(sessions) if sessions else None
    summary["mean_convergence_period"] = (
        float(np.mean([s["convergence_period"] for s in converged])) if converged else None
    )
    lengths = _values(sessions, "cycle_length")
    summary["mean_cycle_length"] = float(lengths.mean()) if lengths.size else None
    summary["cycle_length_counts"] = (
        {str(int(k)): int(v) for k, v in zip(*np.unique(lengths, return_counts=True))} if lengths.size else {}
    )
    summary["focal_share"] = float(np.mean([s["cycle_label"] == "focal" for s in sessions])) if sessions else None
    summary["edgeworth_share"] = (1.0 - summary["focal_share"]) if sessions else None
    summary["punishment_share"] = float(np.mean([s["ir_punishment"] for s in sessions])) if sessions else None
    summary["deviation_pays_share"] = float(np.mean([s["ir_deviation_pays"] for s in sessions])) if sessions else None
    lengths = _values([s for s in sessions if s["ir_punishment"]], "ir_punishment_length")
    summary["mean_punishment_length"] = float(lengths.mean()) if lengths.size else None
    # Calvano et al.'s punishment length: periods until the pre-deviation cycle is back, averaged as they do over
    # every deviation (each cycle state and deviating firm of every session), so longer cycles weigh more
    shocked = [s for s in sessions if s.get("shock_deviations")]
    weights = np.array([s["shock_deviations"] for s in shocked], dtype=float)
    summary["mean_shock_length"] = (
        float(np.average([s["shock_length"] for s in shocked], weights=weights)) if shocked else None
    )
    summary["shock_return_share"] = (
        float(np.average([s["shock_return_share"] for s in shocked], weights=weights)) if shocked else None
    )
    responded = [s for s in shocked if s.get("shock_rival_relative_change") is not None]
    summary["shock_rival_relative_change"] = (
        float(
            np.average(
                [s["shock_rival_relative_change"] for s in responded],
                weights=[s["shock_deviations"] for s in responded],
            )
        )
        if responded
        else None
    )
    # Their equilibrium check (share of sessions whose strategies are an equilibrium on the path) and incentive
    # check (share of deviations to the static best response that do not pay, pooled over every cycle state and firm)
    checked = [s for s in sessions if s.get("equilibrium_on_path") is not None]
    summary["equilibrium_on_path_share"] = (
        float(np.mean([s["equilibrium_on_path"] for s in checked])) if checked else None
    )
    deviated = [s for s in checked if s.get("static_deviations")]
    summary["static_deviation_unprofitable_share"] = (
        float(
            np.average(
                [s["static_deviation_unprofitable_share"] for s in deviated],
                weights=[s["static_deviations"] for s in deviated],
            )
        )
        if deviated
        else None
    )
    summary["impulse_response"] = mean_impulse_path(impulse)
    periods_total = int(sum(s["periods"] for s in sessions))
    summary["periods_total"] = periods_total
    summary["elapsed_s"] = float(elapsed_s)
    summary["periods_per_second"] = periods_total / elapsed_s if elapsed_s > 0 else None
    return {k: (_finite(v) if isinstance(v, float) else v) for k, v in summary.items()}
