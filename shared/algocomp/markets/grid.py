"""The discrete price sets the agents choose from, and the map from a continuous price to a grid index."""

from __future__ import annotations

import numpy as np

from algocomp.markets.benchmarks import Benchmarks
from algocomp.scenarios.model import BenchmarkGrid, ExplicitPrices, PriceSpec, RangeGrid

__all__ = ["price_grid", "nearest_index"]

# A benchmark interval narrower than this (relative to the price level) cannot be split into distinct prices.
_RELATIVE_WIDTH_TOLERANCE = 1e-9


def price_grid(scenario_prices: PriceSpec, benchmarks: Benchmarks) -> np.ndarray:
    """Each firm's price grid, shape (n_firms, m), every row strictly increasing.

    BenchmarkGrid: m evenly spaced prices from p_N - xi (p_M - p_N) to p_M + xi (p_M - p_N), per firm from that
    firm's own benchmarks (Calvano et al. 2020), so rows coincide in symmetric markets and differ with
    asymmetric costs or qualities. A zero-width interval (p_M == p_N, e.g. linear demand with d = 0, where
    each firm is already a monopolist) and a grid reaching below zero are rejected, because neither gives a
    usable action set; a range grid or explicit prices are the way out.
    RangeGrid and ExplicitPrices: the same row for every firm.
    """
    n_firms = benchmarks.n_firms
    if isinstance(scenario_prices, BenchmarkGrid):
        nash, monopoly = benchmarks.nash_price, benchmarks.monopoly_price
        width = monopoly - nash
        scale = np.maximum(1.0, np.maximum(np.abs(nash), np.abs(monopoly)))
        degenerate = np.flatnonzero(width <= _RELATIVE_WIDTH_TOLERANCE * scale)
        if degenerate.size:
            firm = int(degenerate[0])
            raise ValueError(
                f"benchmark grid is degenerate for firm {firm}: monopoly price {monopoly[firm]:.6g} is not above "
                f"the Nash price {nash[firm]:.6g}; use a range grid or explicit prices for this market"
            )
        low = nash - scenario_prices.xi * width
        high = monopoly + scenario_prices.xi * width
        negative = np.flatnonzero(low < 0.0)
        if negative.size:
            firm = int(negative[0])
            raise ValueError(
                f"benchmark grid for firm {firm} would start at the negative price {low[firm]:.6g} "
                f"(p_N = {nash[firm]:.6g}, p_M = {monopoly[firm]:.6g}, xi = {scenario_prices.xi}); lower xi or "
                "use a range grid"
            )
        grid = np.linspace(low, high, scenario_prices.m, axis=-1)
    elif isinstance(scenario_prices, RangeGrid):
        row = np.linspace(scenario_prices.low, scenario_prices.high, scenario_prices.m)
        grid = np.tile(row, (n_firms, 1))
    elif isinstance(scenario_prices, ExplicitPrices):
        grid = np.tile(np.asarray(scenario_prices.values, dtype=float), (n_firms, 1))
    else:
        raise TypeError(f"unsupported price specification: {type(scenario_prices).__name__}")

    if not np.all(np.diff(grid, axis=-1) > 0.0):
        raise ValueError("price grid is not strictly increasing (prices too close together to be distinct)")
    return grid


def nearest_index(grid_row: np.ndarray, price: float) -> int:
    """Index of the grid price closest to `price`; an exact midpoint goes to the lower price.

    Used to place the continuous benchmarks (and price references such as a cap) on the grid, where the agents
    actually act.
    """
    row = np.asarray(grid_row, dtype=float)
    if row.ndim != 1 or row.size == 0:
        raise ValueError(f"grid_row must be a non-empty 1-D array; got shape {row.shape}")
    if not np.isfinite(price):
        raise ValueError(f"price must be finite; got {price}")
    return int(np.argmin(np.abs(row - float(price))))
