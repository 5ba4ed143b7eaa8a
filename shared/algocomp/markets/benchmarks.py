"""The static benchmarks every outcome is measured against: one-shot Bertrand–Nash and joint monopoly.

They are solved on continuous prices, not on the price grid (Calvano et al. 2020), because the grid itself is
built from them and because the profit gain Delta = (pi - pi_N) / (pi_M - pi_N) must not depend on how finely
prices are discretised. The exception is unit (rectangular) demand, whose continuous Nash equilibrium (price at
cost, zero profit) is never on a grid: as in Asker, Fershtman & Pakes, its benchmarks are the equilibria of the
price grid itself, which the scenario must then give explicitly (a range or explicit prices).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from algocomp.markets import libm
from algocomp.markets.demand import (
    consumer_surplus,
    cost_array,
    outside_share,
    profits,
    quality_array,
    quantities,
)
from algocomp.scenarios.model import (
    BertrandDemand,
    ExplicitPrices,
    LinearDemand,
    LogitDemand,
    MarketSpec,
    PriceSpec,
    RangeGrid,
    UnitDemand,
)

__all__ = ["Benchmarks", "compute_benchmarks", "unit_grid_equilibria"]

# Convergence targets of the numerical (logit) solvers. The published figures have 5 decimals; these leave
# several orders of magnitude of headroom so rounding, not the solver, decides the last digit.
_FOC_TOLERANCE = 1e-10
_GRADIENT_TOLERANCE = 1e-9

_ARRAY_FIELDS = (
    "nash_price",
    "monopoly_price",
    "nash_profit",
    "monopoly_profit",
    "nash_quantity",
    "monopoly_quantity",
)
_SCALAR_FIELDS = (
    "nash_consumer_surplus",
    "monopoly_consumer_surplus",
    "nash_welfare",
    "monopoly_welfare",
)


@dataclass(frozen=True, eq=False)
class Benchmarks:
    """Static Nash and joint-monopoly outcomes of one market, per firm where they differ across firms.

    Equality is identity (eq=False): field-wise equality of numpy arrays is ambiguous, and two benchmark sets
    are compared with np.allclose when it matters. The arrays are stored as read-only copies, so "frozen" also
    protects their contents from an agent that would otherwise mutate a shared benchmark in place.
    """

    nash_price: np.ndarray
    monopoly_price: np.ndarray
    nash_profit: np.ndarray
    monopoly_profit: np.ndarray
    nash_quantity: np.ndarray
    monopoly_quantity: np.ndarray
    nash_consumer_surplus: float
    monopoly_consumer_surplus: float
    nash_welfare: float
    monopoly_welfare: float

    def __post_init__(self) -> None:
        shape = None
        for name in _ARRAY_FIELDS:
            value = np.array(getattr(self, name), dtype=float)
            if value.ndim != 1:
                raise ValueError(f"{name} must be one value per firm (1-D); got shape {value.shape}")
            if shape is not None and value.shape != shape:
                raise ValueError(f"{name} has shape {value.shape} but nash_price has shape {shape}")
            shape = value.shape
            value.setflags(write=False)
            object.__setattr__(self, name, value)
        for name in _SCALAR_FIELDS:
            object.__setattr__(self, name, float(getattr(self, name)))

    @property
    def n_firms(self) -> int:
        return int(self.nash_price.shape[0])

    def to_dict(self) -> dict[str, list[float] | float]:
        """Plain lists and floats, so the benchmarks can go straight into a JSON or YAML results file."""
        out: dict[str, list[float] | float] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = [float(x) for x in value] if f.name in _ARRAY_FIELDS else float(value)
        return out


def compute_benchmarks(market: MarketSpec, prices: PriceSpec | None = None) -> Benchmarks:
    """Solve the static Bertrand–Nash equilibrium and the joint-profit optimum of `market`.

    `prices` is needed only for unit demand, whose benchmarks are defined on the price grid; the other models
    are solved on continuous prices and ignore it.

    logit: Nash where every firm satisfies p_i - c_i = mu / (1 - q_i) (exact best responses iterated to their
        fixed point, polished by scipy root); monopoly by
        maximising joint profit over the price vector (scipy BFGS with the analytic gradient).
    linear: both from their first-order conditions, which are linear in prices and so solved exactly; this is
        valid while every firm sells at the solution, and a ValueError says so when it does not.
    bertrand: Nash at marginal cost (limit pricing by a strictly cheapest firm); monopoly at the price a monopolist
        with the lowest cost would charge, set by every firm. See `_bertrand_prices` for the conventions.
    unit: on the price grid. Nash is the highest-priced symmetric pure-strategy equilibrium of the grid game and
        monopoly is every firm at the highest grid price a consumer pays (<= V). See `_unit_prices`.
    """
    demand = market.demand
    if isinstance(demand, LogitDemand):
        nash_price = _logit_nash_price(market)
        monopoly_price = _logit_monopoly_price(market)
        return _assemble(market, nash_price, monopoly_price)
    if isinstance(demand, LinearDemand):
        nash_price, monopoly_price = _linear_prices(market)
        return _assemble(market, nash_price, monopoly_price)
    if isinstance(demand, BertrandDemand):
        nash_price, monopoly_price, nash_quantity = _bertrand_prices(market)
        return _assemble(market, nash_price, monopoly_price, nash_quantity=nash_quantity)
    if isinstance(demand, UnitDemand):
        nash_price, monopoly_price = _unit_prices(market, _unit_grid_row(prices))
        return _assemble(market, nash_price, monopoly_price)
    raise TypeError(f"unsupported demand model: {type(demand).__name__}")


def _assemble(
    market: MarketSpec,
    nash_price: np.ndarray,
    monopoly_price: np.ndarray,
    nash_quantity: np.ndarray | None = None,
) -> Benchmarks:
    """Evaluate quantities, profits and surplus at the benchmark prices with the same demand functions the
    simulation uses, so a firm that plays the benchmark price earns exactly the benchmark profit. The only
    exception is an explicit `nash_quantity` (Bertrand limit pricing, where the equilibrium is a limit)."""
    costs = cost_array(market)
    if nash_quantity is None:
        nash_quantity = quantities(market, nash_price)
        nash_profit = profits(market, nash_price)
    else:
        nash_profit = (nash_price - costs) * nash_quantity
    monopoly_quantity = quantities(market, monopoly_price)
    monopoly_profit = profits(market, monopoly_price)
    nash_cs = float(consumer_surplus(market, nash_price))
    monopoly_cs = float(consumer_surplus(market, monopoly_price))
    return Benchmarks(
        nash_price=nash_price,
        monopoly_price=monopoly_price,
        nash_profit=nash_profit,
        monopoly_profit=monopoly_profit,
        nash_quantity=nash_quantity,
        monopoly_quantity=monopoly_quantity,
        nash_consumer_surplus=nash_cs,
        monopoly_consumer_surplus=monopoly_cs,
        nash_welfare=nash_cs + float(nash_profit.sum()),
        monopoly_welfare=monopoly_cs + float(monopoly_profit.sum()),
    )


# --------------------------------------------------------------------------------------------- logit


def _lambert_w_of_exp(z: np.ndarray) -> np.ndarray:
    """W(e^z), the x > 0 with x e^x = e^z, for any real z without forming e^z (which overflows for z > 709).

    Writing x = e^y turns it into g(y) = e^y + y - z = 0; g is increasing and convex, so Newton's method
    converges from any start (monotonically after at most one overshoot).
    """
    y = np.where(z > 1.0, libm.log(np.maximum(z, 1.0)), z)
    for _ in range(100):
        grown = libm.exp(y)
        step = (grown + y - z) / (grown + 1.0)
        y = y - step
        if np.all(np.abs(step) <= 1e-15 * np.maximum(1.0, np.abs(y))):
            break
    return libm.exp(y)


def _logit_best_response(market: MarketSpec, costs: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Every firm's exact best response to the others' prices in `p`.

    Firm i's FOC p_i - c_i = mu / (1 - q_i) = mu (1 + E_i / R_i), with E_i = exp((a_i - p_i)/mu) and R_i the
    rest of the logit denominator, is solved by markup mu (1 + x) with x e^x = exp((a_i - c_i)/mu - 1) / R_i,
    i.e. x = W(e^z_i), z_i = (a_i - c_i)/mu - 1 - ln R_i. ln R_i is a log-sum-exp, so nothing overflows even when
    one firm holds almost the whole market (where mu / (1 - q_i) itself is numerically useless).
    """
    demand = market.demand
    assert isinstance(demand, LogitDemand)
    mu = demand.mu
    quality = quality_array(demand, market.n_firms)
    utilities = (quality - p) / mu
    outside = demand.outside_quality / mu
    # ln R_i = ln(sum_{j != i} e^{u_j} + e^{u_0}), by log-sum-exp over a matrix with firm i's own term masked.
    terms = np.broadcast_to(utilities, (market.n_firms, market.n_firms)).copy()
    np.fill_diagonal(terms, -np.inf)
    terms = np.concatenate([terms, np.full((market.n_firms, 1), outside)], axis=1)
    shift = terms.max(axis=1)
    log_rest = shift + libm.log(libm.exp(terms - shift[:, None]).sum(axis=1))
    z = (quality - costs) / mu - 1.0 - log_rest
    return costs + mu * (1.0 + _lambert_w_of_exp(z))


def _logit_nash_price(market: MarketSpec) -> np.ndarray:
    """The static Nash equilibrium: the fixed point of the exact best responses, for any qualities and costs.

    Logit price competition is a supermodular game (best responses rise with rivals' prices) with a unique
    equilibrium, so iterating best responses from p = c + mu, which lies below every best response, climbs
    monotonically to it. A joint root of p = BR(p) (Powell's hybrid method) then polishes the last digits and
    rescues the rare case where the iteration is slow; whichever solution has the smaller residual is kept.
    """
    demand = market.demand
    assert isinstance(demand, LogitDemand)
    costs = cost_array(market)
    mu = demand.mu

    def residual(p: np.ndarray) -> np.ndarray:
        return p - _logit_best_response(market, costs, p)

    price = costs + mu
    for _ in range(5_000):
        updated = _logit_best_response(market, costs, price)
        converged = np.max(np.abs(updated - price)) <= 1e-14 * max(1.0, float(np.max(np.abs(updated))))
        price = updated
        if converged:
            break
    if not np.max(np.abs(residual(price))) <= 1e-13 * max(1.0, mu):
        # scipy is imported only here: most markets never need it, and it costs a CLI start ~0.3 s.
        from scipy.optimize import root

        polished = root(residual, price, method="hybr", options={"xtol": 1e-14})
        if np.all(np.isfinite(polished.x)) and np.max(np.abs(residual(polished.x))) < np.max(np.abs(residual(price))):
            price = polished.x
    error = float(np.max(np.abs(residual(price))))
    if not np.isfinite(error) or error > _FOC_TOLERANCE * max(1.0, mu):
        raise RuntimeError(f"logit Nash solver did not converge (max best-response gap {error:.3g})")
    return price


def _logit_joint_profit(market: MarketSpec, costs: np.ndarray, mu: float, p: np.ndarray) -> tuple[float, np.ndarray]:
    """Negative joint profit and its gradient, for a minimiser.

    With markups m_i = p_i - c_i and dq_i/dp_j = q_i (q_j - [i = j]) / mu, the gradient of sum_j m_j q_j is
    d/dp_i = q_i (1 - (m_i - sum_j m_j q_j) / mu).
    """
    q = quantities(market, p)
    markup = p - costs
    total = float(np.sum(markup * q))  # not a dot product: the BLAS's rounding depends on the CPU
    gradient = q * (1.0 - (markup - total) / mu)
    return -total, -gradient


def _logit_common_markup(market: MarketSpec, costs: np.ndarray, mu: float) -> float:
    """The markup m solving m (1 - Q(c + m)) = mu, Q the total inside share (1 - Q is the outside share,
    computed directly so it keeps its precision when Q is close to 1).

    Setting the joint-profit gradient to zero gives m_i = mu + sum_j m_j q_j for every i, so the joint optimum
    has one common markup even with asymmetric qualities and costs; for a symmetric market this is the
    symmetric solution. The left side rises from 0 to infinity in m, so the root is unique; bisection finds it
    to the last representable digit.
    """

    def excess(markup: float) -> float:
        return markup * float(outside_share(market, costs + markup)) - mu

    upper = mu
    while excess(upper) <= 0.0:
        upper *= 2.0
    lower = 0.0
    while True:
        middle = 0.5 * (lower + upper)
        if middle <= lower or middle >= upper:
            return middle
        if excess(middle) <= 0.0:
            lower = middle
        else:
            upper = middle


def _logit_monopoly_price(market: MarketSpec) -> np.ndarray:
    """Maximise joint profit over the whole price vector, starting from the common-markup solution.

    The common-markup start is exact when the derivation in `_logit_common_markup` is right (the logit joint
    profit has a single stationary point, its maximum); the generic optimiser over the full vector is the
    independent safeguard that would move away from it if it were not, and the gradient check below turns
    any remaining failure into an error instead of a silently wrong benchmark.
    """
    demand = market.demand
    assert isinstance(demand, LogitDemand)
    costs = cost_array(market)
    mu = demand.mu
    start = costs + _logit_common_markup(market, costs, mu)
    if np.max(np.abs(_logit_joint_profit(market, costs, mu, start)[1])) <= 1e-3 * _GRADIENT_TOLERANCE:
        return start  # already stationary, and the logit joint profit has no other stationary point
    from scipy.optimize import (
        minimize,  # only when the start is not already the optimum (see above)
    )

    result = minimize(
        lambda p: _logit_joint_profit(market, costs, mu, p),
        start,
        jac=True,
        method="BFGS",
        options={"gtol": 1e-12, "maxiter": 1000},
    )
    # BFGS may stop with a "precision loss" flag when it starts at the optimum; judge it by the objective
    # and the gradient instead of its success flag.
    candidates = [start, result.x]
    price = min(candidates, key=lambda p: _logit_joint_profit(market, costs, mu, p)[0])
    gradient = _logit_joint_profit(market, costs, mu, price)[1]
    if not np.all(np.isfinite(price)) or np.max(np.abs(gradient)) > _GRADIENT_TOLERANCE:
        raise RuntimeError(
            f"logit joint-profit solver did not converge (max gradient {np.max(np.abs(gradient)):.3g}): "
            f"{result.message}"
        )
    return np.asarray(price, dtype=float)


# --------------------------------------------------------------------------------------------- linear


def _linear_prices(market: MarketSpec) -> tuple[np.ndarray, np.ndarray]:
    """Nash and joint-monopoly prices of Singh–Vives demand from their (linear) first-order conditions.

    With q = a 1 - M p, M = (b + d) I - d 1 1^T:
      Nash, dpi_i/dp_i = q_i - b (p_i - c_i) = 0   =>  ((2b + d) I - d 1 1^T) p = a 1 + b c;
      joint, grad sum_i pi_i = q - M (p - c) = 0   =>  p = (M^-1 a 1 + c) / 2.
    With a symmetric cost c these are p_N = (a + b c) / (2b - (n-1) d) and
    p_M = (a + (b - (n-1) d) c) / (2 (b - (n-1) d)). The model requires b > (n-1) d, which makes both matrices
    positive definite, so the solutions are unique and the joint profit is concave. They ignore the floor at
    zero quantity, so they are the benchmarks only if every firm sells at them; otherwise a ValueError names the
    firm (costs too high or too asymmetric for this intercept).
    """
    demand = market.demand
    assert isinstance(demand, LinearDemand)
    a, b, d, n = demand.intercept, demand.own_slope, demand.cross_slope, market.n_firms
    costs = cost_array(market)
    nash_price = _solve_identity_minus_ones(2 * b + d, 2 * b - (n - 1) * d, a + b * costs)
    monopoly_price = (_solve_identity_minus_ones(b + d, b - (n - 1) * d, np.full(n, a)) + costs) / 2.0
    for label, price in (("Nash", nash_price), ("joint-monopoly", monopoly_price)):
        unfloored = a - ((b + d) * price - d * np.sum(price))  # a 1 - M p
        if np.any(unfloored <= 0.0):
            firm = int(np.argmin(unfloored))
            raise ValueError(
                f"linear demand: firm {firm} would sell nothing at the {label} prices {price.round(6).tolist()} "
                f"(a = {a}, b = {b}, d = {d}, costs = {costs.tolist()}); the closed-form benchmarks assume every "
                "firm sells, so raise the intercept or lower that firm's cost"
            )
    return nash_price, monopoly_price


def _solve_identity_minus_ones(diagonal: float, remainder: float, v: np.ndarray) -> np.ndarray:
    """x solving (diagonal I - off 1 1^T) x = v for n = len(v), given diagonal and remainder = diagonal - n off > 0
    (the caller computes remainder from the model's parameters, so off itself is not needed), written out: with m
    the mean of v, x = (v - m) / diagonal + m / remainder (then sum x = n m / remainder, and diagonal x - off sum x
    = v). A symmetric v is one division, m / remainder, as in the closed forms above.

    Not np.linalg.solve: LAPACK's answer goes through the BLAS, whose kernels (chosen by the CPU) round
    differently, and a summary must be the same bits on every machine (an AVX-512 machine gave other last digits
    of the linear benchmarks than an AVX2 one)."""
    mean = float(np.sum(v)) / len(v)
    return (v - mean) / diagonal + mean / remainder


# --------------------------------------------------------------------------------------------- bertrand


def _bertrand_prices(market: MarketSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nash and collusive prices for the homogeneous good, and the Nash quantities.

    Nash: with equal lowest costs, those firms price at that cost and split demand (zero profit), and every
    other firm prices at its own cost. With a strictly cheapest firm L, L limit-prices at the second-lowest
    cost c_2 (or at its own monopoly price (A/B + c_L)/2 if that is lower) and serves the whole market, the others
    price at cost. That equilibrium is the limit of L undercutting c_2 by epsilon, so its quantities are returned
    explicitly: the demand function would split an exact tie at c_2, which is not the equilibrium outcome.

    Monopoly: every firm sets (A/B + c_min)/2, the monopoly price of the lowest-cost technology, and demand is
    split equally, so with symmetric costs each of n firms earns 1/n of the monopoly profit. With asymmetric
    costs this is the common-price cartel the grid and profit gain are built around, not the side-payment
    optimum (which would let only the cheapest firm sell).
    """
    demand = market.demand
    assert isinstance(demand, BertrandDemand)
    costs = cost_array(market)
    choke_price = demand.intercept / demand.slope
    order = np.argsort(costs, kind="stable")
    lowest_cost, second_cost = costs[order[0]], costs[order[1]]
    if choke_price <= lowest_cost:
        raise ValueError(
            f"bertrand demand: the choke price A/B = {choke_price} is not above the lowest cost {lowest_cost}, "
            "so no firm can sell at a profit and the benchmarks are undefined"
        )

    nash_price = costs.copy()
    if second_cost > lowest_cost:
        leader = int(order[0])
        nash_price[leader] = min(second_cost, (choke_price + lowest_cost) / 2.0)
        nash_quantity = np.zeros(market.n_firms)
        nash_quantity[leader] = max(0.0, demand.intercept - demand.slope * nash_price[leader])
    else:
        nash_quantity = quantities(market, nash_price)

    monopoly_price = np.full(market.n_firms, (choke_price + lowest_cost) / 2.0)
    return nash_price, monopoly_price, nash_quantity


# --------------------------------------------------------------------------------------------- unit


def _unit_grid_row(prices: PriceSpec | None) -> np.ndarray:
    """The common price grid of a unit-demand market, built exactly as markets.grid.price_grid builds it."""
    if isinstance(prices, RangeGrid):
        return np.linspace(prices.low, prices.high, prices.m)
    if isinstance(prices, ExplicitPrices):
        return np.asarray(prices.values, dtype=float)
    raise ValueError(
        "unit demand: the benchmarks are equilibria of the price grid, so they need the scenario's prices as a "
        f"range or explicit list (got {type(prices).__name__ if prices is not None else 'none'})"
    )


def unit_grid_equilibria(market: MarketSpec, grid_row: np.ndarray) -> np.ndarray:
    """Every grid price p such that all firms charging p is a pure-strategy Nash equilibrium of the one-shot
    unit-demand game on `grid_row`, ascending.

    All at p is an equilibrium when no firm gains by a unilateral move to another grid price: sharing
    (p - c) mass / n must be at least undercutting's (p' - c) mass for the best p' < p (p' <= V), and at least the
    zero a higher price earns (so p >= c). If p_1 < p_2 are the two lowest grid prices at or above c (and <= V),
    all at p_1 is always an equilibrium and all at p_2 is one too when (p_2 - c) / n >= p_1 - c: Asker, Fershtman &
    Pakes's 2.0282 and 2.1291 for c = 2, V = 10, 100 prices on [0.01, 10], n = 2 (only 2.0282 from n = 5 on).
    Coarser grids can have more. Checked here by evaluating every unilateral deviation with the demand function,
    not by that formula.
    """
    demand = market.demand
    if not isinstance(demand, UnitDemand):
        raise TypeError("grid equilibria are defined here for unit demand only")
    row = np.asarray(grid_row, dtype=float)
    n = market.n_firms
    equilibria = []
    for p in row:
        profile = np.full(n, p)
        on_path = float(profits(market, profile)[0])
        deviations = np.repeat(profile[None, :], row.size, axis=0)
        deviations[:, 0] = row
        if float(profits(market, deviations)[:, 0].max()) <= on_path:
            equilibria.append(float(p))
    return np.asarray(equilibria)


def _unit_prices(market: MarketSpec, grid_row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nash and monopoly prices of the unit-demand grid game (symmetric costs, which the model enforces).

    Nash: the grid game can have several symmetric equilibria (see `unit_grid_equilibria`); the benchmark is the
    one with the highest price, the most profitable for the firms. So a price "above Nash" is above every static
    equilibrium, which is how Asker, Fershtman & Pakes count runs above the static Nash price (2.1291 on their
    grid, where runs at 2.0282 also count as Nash), and the profit gain of a session that settles on any static
    equilibrium is at most 0.
    Monopoly: joint profit is mass (p_min - c) whenever p_min <= V, so it is maximised by the highest grid price
    not above V, charged by every firm (each earns 1/n of it; on Asker et al.'s grid, p = 10 and 4 per firm).
    """
    row = np.asarray(grid_row, dtype=float)
    demand = market.demand
    assert isinstance(demand, UnitDemand)
    cost = float(cost_array(market)[0])
    sold = row[(row <= demand.reservation_price) & (row > cost)]
    if sold.size == 0:
        raise ValueError(
            f"unit demand: no grid price is above the cost {cost} and at most the reservation price "
            f"{demand.reservation_price}, so no sale is profitable"
        )
    # Now all at the lowest grid price in [c, V] is an equilibrium (undercutting it loses money), so there is one.
    equilibria = unit_grid_equilibria(market, row)
    n = market.n_firms
    return np.full(n, equilibria.max()), np.full(n, sold.max())
