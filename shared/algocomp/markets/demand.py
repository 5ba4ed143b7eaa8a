"""Static demand, consumer surplus and profits for the four market models a scenario can name.

Every function takes the market and a price array of shape (..., n_firms) and broadcasts over the leading
dimensions, so the engine can tabulate a whole price grid (shape (m, m, n) for a duopoly) or a batch of
periods in one call instead of looping in Python.

These are the *expected* (noise-free) demands. Per-period demand shocks (`MarketSpec.noise`) are drawn by the
engine on top of them, and the static benchmarks are defined on the expected demand, as in the literature.
"""

from __future__ import annotations

import numpy as np

from algocomp.markets import libm
from algocomp.scenarios.model import (
    BertrandDemand,
    LinearDemand,
    LogitDemand,
    MarketSpec,
    UnitDemand,
)

__all__ = [
    "cost_array",
    "quality_array",
    "quantities",
    "outside_share",
    "consumer_surplus",
    "profits",
    "total_welfare",
]


def cost_array(market: MarketSpec) -> np.ndarray:
    """Marginal costs as a float array of shape (n_firms,), ready to broadcast against prices."""
    return np.asarray(market.cost_vector(), dtype=float)


def quality_array(demand: LogitDemand, n_firms: int) -> np.ndarray:
    """The logit quality indices a_i, shape (n_firms,), whether the scenario gave one value or one per firm."""
    if isinstance(demand.quality, list):
        return np.asarray(demand.quality, dtype=float)
    return np.full(n_firms, float(demand.quality))


def _as_prices(market: MarketSpec, prices: np.ndarray) -> np.ndarray:
    """Coerce to float and insist on one price per firm in the last axis, so a transposed table fails loudly
    instead of broadcasting into nonsense."""
    p = np.asarray(prices, dtype=float)
    if p.ndim == 0 or p.shape[-1] != market.n_firms:
        raise ValueError(f"prices must have shape (..., n_firms) with n_firms = {market.n_firms}; got shape {p.shape}")
    return p


def _logit_terms(demand: LogitDemand, n_firms: int, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shifted exponentials of the logit choice probabilities.

    Returns (inside, denominator, shift) with inside = exp(u_i - shift), denominator = sum_j inside_j +
    exp(u_0 - shift) (keepdims) and shift = max(max_i u_i, u_0), where u_i = (a_i - p_i)/mu. Shifting by the
    largest utility keeps every exponent <= 0, so a small mu or large qualities cannot overflow, and the
    denominator is >= 1, so its log is safe.
    """
    mu = demand.mu
    utilities = (quality_array(demand, n_firms) - p) / mu
    outside = demand.outside_quality / mu
    shift = np.maximum(utilities.max(axis=-1, keepdims=True), outside)
    inside = libm.exp(utilities - shift)
    denominator = inside.sum(axis=-1, keepdims=True) + libm.exp(outside - shift)
    return inside, denominator, shift


def _linear_interior_quantities(demand: LinearDemand, p: np.ndarray) -> np.ndarray:
    """q_i = a - b p_i + d sum_{j != i} p_j before flooring, written as a - (b + d) p_i + d sum_j p_j so it
    costs one sum instead of an (n, n) matrix product."""
    a, b, d = demand.intercept, demand.own_slope, demand.cross_slope
    return a - (b + d) * p + d * p.sum(axis=-1, keepdims=True)


def _bertrand_market_demand(demand: BertrandDemand, lowest_price: np.ndarray) -> np.ndarray:
    return np.maximum(0.0, demand.intercept - demand.slope * lowest_price)


def _unit_market_demand(demand: UnitDemand, lowest_price: np.ndarray) -> np.ndarray:
    """The whole mass buys at a lowest price up to and including V (Asker et al.: demand is 1 for p <= 10)."""
    return np.where(lowest_price <= demand.reservation_price, demand.mass, 0.0)


def quantities(market: MarketSpec, prices: np.ndarray) -> np.ndarray:
    """Quantity sold by each firm, shape (..., n_firms).

    logit: the Calvano et al. (2020) choice probabilities with an outside good (unit mass of consumers).
    linear: Singh–Vives direct demand q_i = max(0, a - b p_i + d sum_{j != i} p_j). The floor is applied to each
        firm separately and the other firms' quantities are *not* recomputed: a firm priced out simply sells
        nothing while its (ignored) price still enters the rivals' demand. This is the usual simulation
        convention; the exact Singh–Vives demand would switch to the reduced system of the goods still bought.
        On any grid around the benchmarks every firm sells, so the floor only matters for extreme deviations.
    bertrand: homogeneous good; market demand max(0, A - B p_min) goes to the firm(s) at the lowest price and is
        split equally on ties. Ties use exact equality: prices come from a grid, and a tolerance would make two
        adjacent grid prices tie on a fine grid.
    unit: rectangular demand; the whole mass of consumers buys one unit each from the firm(s) at the lowest price
        if that price is at most the reservation price V (a consumer indifferent at p = V buys), split equally on
        ties (exact equality, as bertrand); nobody buys above V.
    """
    p = _as_prices(market, prices)
    demand = market.demand
    if isinstance(demand, LogitDemand):
        inside, denominator, _ = _logit_terms(demand, market.n_firms, p)
        return inside / denominator
    if isinstance(demand, LinearDemand):
        return np.maximum(0.0, _linear_interior_quantities(demand, p))
    if isinstance(demand, BertrandDemand):
        lowest = p.min(axis=-1, keepdims=True)
        at_lowest = p == lowest
        sellers = at_lowest.sum(axis=-1, keepdims=True)
        return np.where(at_lowest, _bertrand_market_demand(demand, lowest) / sellers, 0.0)
    if isinstance(demand, UnitDemand):
        lowest = p.min(axis=-1, keepdims=True)
        at_lowest = p == lowest
        sellers = at_lowest.sum(axis=-1, keepdims=True)
        return np.where(at_lowest, _unit_market_demand(demand, lowest) / sellers, 0.0)
    raise TypeError(f"unsupported demand model: {type(demand).__name__}")


def outside_share(market: MarketSpec, prices: np.ndarray) -> np.ndarray:
    """Logit share of the outside good, 1 - sum_i q_i, shape (...), computed directly rather than as a difference
    so it stays accurate when the inside goods hold almost the whole market (small mu, high qualities)."""
    p = _as_prices(market, prices)
    demand = market.demand
    if not isinstance(demand, LogitDemand):
        raise TypeError("only logit demand has an outside good")
    _, denominator, shift = _logit_terms(demand, market.n_firms, p)
    return libm.exp(demand.outside_quality / demand.mu - shift[..., 0]) / denominator[..., 0]


def consumer_surplus(market: MarketSpec, prices: np.ndarray) -> np.ndarray:
    """Consumer surplus of the whole market, shape (...).

    logit: mu * ln(sum_j exp((a_j - p_j)/mu) + exp(a_0/mu)), the expected maximum utility of a unit mass of
        consumers (Calvano et al.'s normalisation, so CS is defined up to the same additive constant in every
        scenario and only differences are meaningful). Computed as a shifted log-sum-exp.
    linear: the surplus of the Singh–Vives representative consumer whose quadratic utility generates this
        demand. Writing q = a 1 - M p with M = (b + d) I - d 1 1^T, utility is U(q) = q^T M^-1 a 1 - q^T M^-1 q / 2
        and CS = U(q) - p^T q = q^T M^-1 q / 2. By Sherman–Morrison,
        M^-1 = (I + d 1 1^T / (b - (n-1) d)) / (b + d), so CS = (|q|^2 + d (sum q)^2 / (b - (n-1) d)) / (2 (b + d)),
        which needs no matrix inverse. The floored quantities are used, so CS is exact whenever every firm sells
        and an approximation when the floor binds (see `quantities`).
    bertrand: the triangle under market demand, (A - B p_min)^2 / (2 B), zero when nobody buys.
    unit: the rectangle mass * (V - p_min) when the consumers buy (p_min <= V), zero otherwise.
    """
    p = _as_prices(market, prices)
    demand = market.demand
    if isinstance(demand, LogitDemand):
        _, denominator, shift = _logit_terms(demand, market.n_firms, p)
        return demand.mu * (shift[..., 0] + libm.log(denominator[..., 0]))
    if isinstance(demand, LinearDemand):
        b, d, n = demand.own_slope, demand.cross_slope, market.n_firms
        q = np.maximum(0.0, _linear_interior_quantities(demand, p))
        quadratic = (q * q).sum(axis=-1) + d * q.sum(axis=-1) ** 2 / (b - (n - 1) * d)
        return quadratic / (2.0 * (b + d))
    if isinstance(demand, BertrandDemand):
        market_demand = _bertrand_market_demand(demand, p.min(axis=-1))
        return market_demand**2 / (2.0 * demand.slope)
    if isinstance(demand, UnitDemand):
        lowest = p.min(axis=-1)
        return np.where(lowest <= demand.reservation_price, demand.mass * (demand.reservation_price - lowest), 0.0)
    raise TypeError(f"unsupported demand model: {type(demand).__name__}")


def profits(market: MarketSpec, prices: np.ndarray) -> np.ndarray:
    """Per-firm profit (p_i - c_i) q_i, shape (..., n_firms); below-cost prices give losses, not zeros."""
    p = _as_prices(market, prices)
    return (p - cost_array(market)) * quantities(market, p)


def total_welfare(market: MarketSpec, prices: np.ndarray) -> np.ndarray:
    """Total surplus, consumer surplus plus the sum of profits, shape (...)."""
    p = _as_prices(market, prices)
    return consumer_surplus(market, p) + profits(market, p).sum(axis=-1)
