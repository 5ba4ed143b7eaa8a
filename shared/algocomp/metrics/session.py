"""Metrics of one session, measured where the literature measures them: on the limit cycle of the converged
greedy strategies (prices, profit gain, surplus, market structure) and on the impulse response to a forced
one-period deviation (punishment and whether deviating pays). The measures are defined in the README's
"Reproducing the literature"; Calvano et al.'s equilibrium and deviation checks are in engine.deviations."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from algocomp.engine.build import CompiledScenario
from algocomp.engine.deviations import DeviationCheck
from algocomp.markets import libm

# Klein's label: a focal price if p_t == p_{t-2} throughout the last this many periods, otherwise a cycle.
FOCAL_WINDOW = 50


def _finite(x: float | np.floating) -> float | None:
    """JSON has no NaN: undefined metrics are reported as null."""
    x = float(x)
    return x if math.isfinite(x) else None


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.abs(den) > 1e-15, num / den, np.nan)


def cycle_outcomes(cs: CompiledScenario, cycle: np.ndarray) -> dict[str, Any]:
    """Average outcomes over the periods of a (limit) cycle of joint actions, shape (P, n)."""
    n = cs.n_firms
    firms = np.arange(n)
    joint = cycle @ cs.powers
    prices = cs.grid[firms[None, :], cycle]
    profits = (cs.profit - cs.expected_fine)[joint]
    q = cs.quantity[joint]
    surplus = cs.consumer_surplus[joint]
    b = cs.benchmarks
    nash_profit, monopoly_profit = np.asarray(b.nash_profit), np.asarray(b.monopoly_profit)
    nash_price, monopoly_price = np.asarray(b.nash_price), np.asarray(b.monopoly_price)
    mean_profit = profits.mean(axis=0)
    mean_price = prices.mean(axis=0)
    gain = _ratio(mean_profit - nash_profit, monopoly_profit - nash_profit)
    index = _ratio(mean_price - nash_price, monopoly_price - nash_price)
    consumer_surplus = float(surplus.mean())
    cs_loss = b.nash_consumer_surplus - consumer_surplus
    cs_span = b.nash_consumer_surplus - b.monopoly_consumer_surplus
    total_q = q.sum(axis=1, keepdims=True)
    shares = _ratio(q, total_q)
    with np.errstate(divide="ignore", invalid="ignore"):
        lerner = np.where(prices > 0, (prices - cs.costs[None, :]) / prices, np.nan)
    return {
        "profit_gain": _finite(np.nanmean(gain)) if np.isfinite(gain).any() else None,
        "profit_gain_by_firm": [_finite(g) for g in gain],
        "mean_price": float(mean_price.mean()),
        "mean_price_by_firm": [float(p) for p in mean_price],
        "price_index": _finite(np.nanmean(index)) if np.isfinite(index).any() else None,
        "mean_profit": float(mean_profit.mean()),
        "mean_profit_by_firm": [float(p) for p in mean_profit],
        "consumer_surplus": consumer_surplus,
        "consumer_surplus_loss": float(cs_loss),
        "consumer_surplus_loss_index": _finite(cs_loss / cs_span) if abs(cs_span) > 1e-15 else None,
        "total_welfare": float(consumer_surplus + mean_profit.sum()),
        "lerner_index": _finite(np.nanmean(lerner)) if np.isfinite(lerner).any() else None,
        "hhi": _finite(np.nanmean(np.nansum(shares**2, axis=1)) * 10_000) if np.isfinite(shares).any() else None,
    }


def focal_or_cycle(path: np.ndarray) -> str:
    """Klein's label on the greedy path: 'focal' if prices are constant over the last FOCAL_WINDOW periods,
    else 'edgeworth'. With alternating moves this is Klein's p_t == p_{t-2} test (a firm's price can only
    change on its turn); with simultaneous moves it is the same test on every period."""
    window = path[-FOCAL_WINDOW:]
    return "focal" if np.all(window == window[-1]) else "edgeworth"


def comovement(interval_prices: np.ndarray) -> float | None:
    """Mean pairwise correlation of the firms' price changes between logged intervals of the learning path."""
    rows, n_firms = interval_prices.shape
    if rows < 3 or n_firms < 2:
        return None
    changes = np.diff(interval_prices, axis=0)
    pairs = []
    for a in range(n_firms):
        for b in range(a + 1, n_firms):
            x, y = changes[:, a], changes[:, b]
            if x.std() > 0 and y.std() > 0:
                pairs.append(correlation(x, y))
    return _finite(np.mean(pairs)) if pairs else None


def correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson's correlation of two series, from elementwise products and numpy's sums only: np.corrcoef's dot
    products go to the BLAS, whose kernels (chosen by the CPU) round differently, and a summary must be the same
    bits on every machine."""
    dx, dy = x - x.mean(), y - y.mean()
    r = np.sum(dx * dy) / np.sqrt(np.sum(dx * dx) * np.sum(dy * dy))
    return float(np.clip(r, -1.0, 1.0))


def impulse_metrics(
    cs: CompiledScenario, deviation: np.ndarray, counterfactual: np.ndarray, cycle: np.ndarray, deviating_firm: int
) -> dict[str, Any]:
    """Punishment and deviation gain from the two greedy paths (joint actions, rows tau = -1, 0, 1, ...).

    The rival's response is measured against the counterfactual (the cycle continued without the deviation).
    Prices count as back once every firm is within one grid step of some profile of the limit cycle, so a
    path that returns to the cycle out of phase has returned too.
    """
    n = cs.n_firms
    firms = np.arange(n)
    price = cs.grid[firms[None, :], deviation]
    cf_price = cs.grid[firms[None, :], counterfactual]
    net = cs.profit - cs.expected_fine
    profit = net[deviation @ cs.powers]
    cf_profit = net[counterfactual @ cs.powers]
    rivals = [k for k in range(n) if k != deviating_firm]
    rival_change = float(np.mean(price[2, rivals] - cf_price[2, rivals]))
    step = np.median(np.diff(cs.grid, axis=1), axis=1)
    cycle_prices = cs.grid[firms[None, :], cycle]
    distance = np.abs(price[:, None, :] - cycle_prices[None, :, :])  # (tau, cycle profile, firm)
    back = np.any(np.all(distance <= step[None, None, :] + 1e-12, axis=2), axis=1)
    after = np.flatnonzero(back[2:])  # tau >= 1
    horizon = price.shape[0] - 2
    punishment_length = int(after[0]) if after.size else horizon
    agent = cs.scenario.agent_list()[deviating_firm]
    delta = float(getattr(agent, "delta", 0.95))
    discount = libm.power(delta, np.arange(price.shape[0] - 1))
    gain = float(np.sum(discount * (profit[1:, deviating_firm] - cf_profit[1:, deviating_firm])))
    return {
        "ir_deviation_price_change": float(price[1, deviating_firm] - cf_price[1, deviating_firm]),
        "ir_rival_price_change": rival_change,
        "ir_punishment": bool(rival_change < -1e-12),
        "ir_punishment_length": punishment_length,
        "ir_returned": bool(after.size > 0),
        "ir_deviation_gain": gain,
        "ir_deviation_pays": bool(gain > 1e-12),
    }


def session_metrics(
    cs: CompiledScenario,
    *,
    session: int,
    seed: int,
    periods: int,
    converged_at: int,
    cycle: np.ndarray,
    cycle_length: int,
    path: np.ndarray,
    interval_prices: np.ndarray,
    deviation: np.ndarray,
    counterfactual: np.ndarray,
    shocks: list | None = None,
    check: DeviationCheck | None = None,
    tail_profit: np.ndarray | None = None,
) -> dict[str, Any]:
    metrics: dict[str, Any] = {
        "session": session,
        "seed": str(seed),  # 64-bit: a string survives JSON readers that parse numbers as doubles
        "periods": periods,
        "converged": converged_at >= 0,
        "convergence_period": converged_at if converged_at >= 0 else None,
    }
    metrics.update(cycle_outcomes(cs, cycle))
    metrics["cycle_length"] = cycle_length if cycle_length else None
    metrics["cycle_label"] = focal_or_cycle(path)
    # Klein's profitability: the mean profit per firm and period over the last periods of learning (his 1,000 when
    # logging.tail is 1,000), exploration and all, where the cycle figures above describe the greedy play after it
    metrics["tail_profit"] = float(tail_profit.mean()) if tail_profit is not None and tail_profit.size else None
    metrics["cycle_prices"] = [[float(cs.grid[i, a]) for i, a in enumerate(row)] for row in cycle[:64]]
    metrics["comovement"] = comovement(interval_prices)
    metrics.update(impulse_metrics(cs, deviation, counterfactual, cycle, cs.scenario.logging.deviating_firm))
    # Calvano et al.'s measures, over every cycle state and every deviating firm (engine.session.shock_lengths)
    metrics["shock_length"] = float(np.mean([shock.length for shock in shocks])) if shocks else None
    metrics["shock_deviations"] = len(shocks) if shocks else 0
    metrics["shock_return_share"] = float(np.mean([shock.returned for shock in shocks])) if shocks else None
    responses = np.array([shock.rival_relative_change for shock in shocks], dtype=float) if shocks else np.zeros(0)
    metrics["shock_rival_relative_change"] = (
        float(responses.mean()) if responses.size and np.isfinite(responses).all() else None
    )
    # ... and their equilibrium and incentive checks (engine.deviations), where the strategies allow them
    metrics["equilibrium_on_path"] = check.equilibrium_on_path if check is not None else None
    metrics["equilibrium_state_share"] = check.equilibrium_state_share if check is not None else None
    unprofitable = check.unprofitable_static_deviation if check is not None else None
    metrics["static_deviation_unprofitable_share"] = float(unprofitable.mean()) if unprofitable is not None else None
    metrics["static_deviations"] = int(unprofitable.size) if unprofitable is not None else 0
    return metrics
