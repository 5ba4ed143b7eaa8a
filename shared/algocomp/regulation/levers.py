"""Regulation levers, turned into what the simulation loop acts on.

A price cap or floor removes prices from a firm's choice set (its Q-values there are -inf, it never explores
them); an audit is a per-period random fine on firms priced above a threshold; platform steering reshapes
demand, so it enters the profit tables; the repricing limit and hidden rival prices act in the kernel and in
the agents' state encoding. Each one changes the environment the agents learn in, never the results after.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from algocomp.markets import Benchmarks
from algocomp.scenarios import ScenarioError
from algocomp.scenarios.model import PriceLevel, Regulation


def price_level(level: PriceLevel, costs: np.ndarray, bench: Benchmarks) -> np.ndarray:
    """A cap, floor or audit threshold per firm: absolute, c (1 + value) or p_N (1 + value)."""
    if level.basis == "absolute":
        return np.full(costs.shape, float(level.value))
    if level.basis == "cost_markup":
        return costs * (1.0 + level.value)
    return np.asarray(bench.nash_price, dtype=float) * (1.0 + level.value)


def steer(prices: np.ndarray, q: np.ndarray, share: float) -> np.ndarray:
    """Move `share` of all demand to the lowest-priced firm(s), split equally on ties."""
    lowest = prices == prices.min(axis=1, keepdims=True)
    total = q.sum(axis=1, keepdims=True)
    return (1.0 - share) * q + share * total * lowest / lowest.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class AllowedPrices:
    allowed: np.ndarray  # (n, m) allowed action indices, the first n_allowed[i] valid
    n_allowed: np.ndarray  # (n,)
    mask: np.ndarray  # (n, m) bool


def allowed_prices(regulation: Regulation, grid: np.ndarray, costs: np.ndarray, bench: Benchmarks) -> AllowedPrices:
    """The grid prices each firm may charge under the cap and floor; an empty set is a scenario error."""
    n, m = grid.shape
    allowed_mask = np.ones((n, m), dtype=bool)
    if regulation.price_cap is not None:
        cap = price_level(regulation.price_cap, costs, bench)
        allowed_mask &= grid <= cap[:, None] + 1e-12
    if regulation.price_floor is not None:
        floor = price_level(regulation.price_floor, costs, bench)
        allowed_mask &= grid >= floor[:, None] - 1e-12
    for i in range(n):
        if not allowed_mask[i].any():
            field = "regulation.price_cap" if regulation.price_cap is not None else "regulation.price_floor"
            raise ScenarioError(
                field,
                f"leaves firm {i} no price on its grid ({grid[i, 0]:.5g} .. {grid[i, -1]:.5g}); "
                "the cap must be at or above some grid price and above the floor",
            )
    allowed = np.zeros((n, m), dtype=np.int64)
    n_allowed = allowed_mask.sum(axis=1).astype(np.int64)
    for i in range(n):
        idx = np.flatnonzero(allowed_mask[i])
        allowed[i, : idx.size] = idx

    return AllowedPrices(allowed=allowed, n_allowed=n_allowed, mask=allowed_mask)


@dataclass(frozen=True)
class AuditTerms:
    probability: float
    fine: float
    threshold: np.ndarray  # (n,) a firm is fined when its action index is above this
    expected_fine: np.ndarray  # (J, n) probability x fine where the firm's price is above the threshold


def audit_terms(
    regulation: Regulation, grid: np.ndarray, costs: np.ndarray, bench: Benchmarks, actions: np.ndarray
) -> AuditTerms:
    n, m = grid.shape
    audit = regulation.audit
    if audit is None or audit.probability == 0 or audit.fine == 0:
        return AuditTerms(0.0, 0.0, np.full(n, m, dtype=np.int64), np.zeros((actions.shape[0], n)))
    threshold = price_level(audit.threshold, costs, bench)
    index = np.array([np.sum(grid[i] <= threshold[i] + 1e-12) - 1 for i in range(n)], dtype=np.int64)
    expected = audit.probability * audit.fine * (actions > index[None, :])
    return AuditTerms(float(audit.probability), float(audit.fine), index, np.ascontiguousarray(expected))
