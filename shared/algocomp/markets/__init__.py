"""Market primitives: demand, surplus and profits, the static Nash and monopoly benchmarks, and price grids."""

from algocomp.markets.benchmarks import Benchmarks, compute_benchmarks
from algocomp.markets.demand import (
    consumer_surplus,
    cost_array,
    outside_share,
    profits,
    quality_array,
    quantities,
    total_welfare,
)
from algocomp.markets.grid import nearest_index, price_grid

__all__ = [
    "Benchmarks",
    "compute_benchmarks",
    "consumer_surplus",
    "cost_array",
    "nearest_index",
    "outside_share",
    "price_grid",
    "profits",
    "quality_array",
    "quantities",
    "total_welfare",
]
