"""Demand, benchmarks and price grids against the published figures (Calvano et al. 2020) and closed forms."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from algocomp.markets import (
    Benchmarks,
    compute_benchmarks,
    consumer_surplus,
    libm,
    nearest_index,
    price_grid,
    profits,
    quantities,
    total_welfare,
)
from algocomp.markets.benchmarks import unit_grid_equilibria
from algocomp.scenarios.model import (
    BenchmarkGrid,
    BertrandDemand,
    ExplicitPrices,
    LinearDemand,
    LogitDemand,
    MarketSpec,
    RangeGrid,
    UnitDemand,
)

BASELINE = MarketSpec()
ASYMMETRIC_LOGIT = MarketSpec(demand=LogitDemand(quality=[2.2, 2.0]), costs=[1.0, 0.9])
KLEIN = MarketSpec(demand=BertrandDemand(), costs=0.0)
# Asker, Fershtman & Pakes (2021, 2022): unit demand up to V = 10, cost 2, 100 prices on [0.01, 10].
AFP_UNIT = MarketSpec(demand=UnitDemand(reservation_price=10.0), costs=2.0)
AFP_PRICES = RangeGrid(low=0.01, high=10.0, m=100)


@pytest.fixture(scope="module")
def baseline() -> Benchmarks:
    return compute_benchmarks(BASELINE)


# --------------------------------------------------------------------------------------------- Calvano figures


@pytest.mark.reproduction
def test_calvano_baseline_benchmarks(baseline: Benchmarks) -> None:
    np.testing.assert_allclose(baseline.nash_price, [1.47293, 1.47293], atol=1e-5)
    np.testing.assert_allclose(baseline.monopoly_price, [1.92498, 1.92498], atol=1e-5)
    np.testing.assert_allclose(baseline.nash_profit, [0.22293, 0.22293], atol=1e-5)
    np.testing.assert_allclose(baseline.monopoly_profit, [0.33749, 0.33749], atol=1e-5)
    np.testing.assert_allclose(baseline.nash_quantity, [0.47138, 0.47138], atol=1e-5)
    np.testing.assert_allclose(baseline.monopoly_quantity, [0.36486, 0.36486], atol=1e-5)
    assert baseline.nash_consumer_surplus == pytest.approx(0.7151, abs=1e-4)
    assert baseline.monopoly_consumer_surplus == pytest.approx(0.3271, abs=1e-4)
    assert baseline.nash_welfare == pytest.approx(0.7151 + 2 * 0.22293, abs=2e-4)
    assert baseline.monopoly_welfare == pytest.approx(0.3271 + 2 * 0.33749, abs=2e-4)


def test_baseline_nash_satisfies_its_foc_to_solver_precision(baseline: Benchmarks) -> None:
    markup = baseline.nash_price - 1.0
    np.testing.assert_allclose(markup, 0.25 / (1.0 - baseline.nash_quantity), atol=1e-10)


@pytest.mark.parametrize(
    ("n_firms", "nash_price", "monopoly_price"),
    [(2, 1.47293, 1.92498), (3, 1.37016, 2.00000), (4, 1.33146, 2.05441)],
)
def test_calvano_prices_by_number_of_firms(n_firms: int, nash_price: float, monopoly_price: float) -> None:
    benchmarks = compute_benchmarks(MarketSpec(n_firms=n_firms))
    np.testing.assert_allclose(benchmarks.nash_price, np.full(n_firms, nash_price), atol=1e-5)
    np.testing.assert_allclose(benchmarks.monopoly_price, np.full(n_firms, monopoly_price), atol=1e-5)


def test_consumer_surplus_at_published_prices() -> None:
    assert float(consumer_surplus(BASELINE, np.array([1.47293, 1.47293]))) == pytest.approx(0.7151, abs=1e-4)
    assert float(consumer_surplus(BASELINE, np.array([1.92498, 1.92498]))) == pytest.approx(0.3271, abs=1e-4)


# --------------------------------------------------------------------------------------------- logit demand


def test_logit_quantities_match_the_textbook_formula() -> None:
    prices = np.array([1.6, 1.8])
    utilities = np.exp((2.0 - prices) / 0.25)
    expected = utilities / (utilities.sum() + 1.0)
    np.testing.assert_allclose(quantities(BASELINE, prices), expected, rtol=1e-12)
    np.testing.assert_allclose(profits(BASELINE, prices), (prices - 1.0) * expected, rtol=1e-12)


def test_logit_is_numerically_stable_for_tiny_mu() -> None:
    market = MarketSpec(demand=LogitDemand(mu=1e-3, quality=50.0, outside_quality=-10.0))
    prices = np.array([1.0, 1.2])
    q = quantities(market, prices)
    assert np.all(np.isfinite(q))
    np.testing.assert_allclose(q, [1.0, 0.0], atol=1e-12)
    assert float(consumer_surplus(market, prices)) == pytest.approx(49.0, rel=1e-12)


def test_asymmetric_logit_nash_satisfies_the_foc_and_is_a_best_response() -> None:
    benchmarks = compute_benchmarks(ASYMMETRIC_LOGIT)
    costs = np.array([1.0, 0.9])
    q = quantities(ASYMMETRIC_LOGIT, benchmarks.nash_price)
    np.testing.assert_allclose(benchmarks.nash_price - costs, 0.25 / (1.0 - q), atol=1e-9)
    assert benchmarks.nash_price[0] != pytest.approx(benchmarks.nash_price[1], abs=1e-3)
    for firm in range(2):
        deviations = np.tile(benchmarks.nash_price, (401, 1))
        deviations[:, firm] = np.linspace(0.9, 2.5, 401)
        best_deviation = profits(ASYMMETRIC_LOGIT, deviations)[:, firm].max()
        assert best_deviation <= benchmarks.nash_profit[firm] + 1e-12


def test_logit_nash_is_robust_when_one_firm_dominates() -> None:
    """Small mu and a large quality gap give shares within 1e-10 of 1, where mu / (1 - q) is numerically useless;
    the equilibrium must still be found and be a best response for every firm."""
    market = MarketSpec(n_firms=3, demand=LogitDemand(mu=0.01, quality=[5.0, 1.0, 2.0]), costs=[0.1, 1.5, 0.5])
    benchmarks = compute_benchmarks(market)
    assert np.all(np.isfinite(benchmarks.nash_price))
    for firm in range(3):
        deviations = np.tile(benchmarks.nash_price, (2001, 1))
        deviations[:, firm] = benchmarks.nash_price[firm] + np.linspace(-0.2, 0.2, 2001)
        assert profits(market, deviations)[:, firm].max() <= benchmarks.nash_profit[firm] * (1 + 1e-12) + 1e-15
    assert benchmarks.monopoly_profit.sum() > benchmarks.nash_profit.sum()


def test_asymmetric_logit_monopoly_has_common_markup_and_beats_nearby_prices() -> None:
    benchmarks = compute_benchmarks(ASYMMETRIC_LOGIT)
    markup = benchmarks.monopoly_price - np.array([1.0, 0.9])
    assert markup[0] == pytest.approx(markup[1], abs=1e-9)
    joint = benchmarks.monopoly_profit.sum()
    rng = np.random.default_rng(0)
    perturbed = benchmarks.monopoly_price + rng.normal(0.0, 0.05, size=(500, 2))
    assert np.all(profits(ASYMMETRIC_LOGIT, perturbed).sum(axis=-1) <= joint + 1e-12)


@pytest.mark.parametrize(
    "market",
    [BASELINE, MarketSpec(n_firms=4), ASYMMETRIC_LOGIT, MarketSpec(demand=LinearDemand(), costs=0.2), KLEIN],
    ids=["baseline", "logit-n4", "logit-asymmetric", "linear", "bertrand"],
)
def test_monopoly_beats_nash_in_joint_profit_and_hurts_consumers(market: MarketSpec) -> None:
    benchmarks = compute_benchmarks(market)
    assert benchmarks.monopoly_profit.sum() > benchmarks.nash_profit.sum()
    assert benchmarks.monopoly_consumer_surplus < benchmarks.nash_consumer_surplus
    assert benchmarks.monopoly_welfare < benchmarks.nash_welfare
    assert np.all(benchmarks.monopoly_price > benchmarks.nash_price)


@pytest.mark.parametrize(
    "market",
    [BASELINE, MarketSpec(demand=LinearDemand(), costs=0.2), KLEIN],
    ids=["logit", "linear", "bertrand"],
)
def test_consumer_surplus_falls_when_prices_rise(market: MarketSpec) -> None:
    levels = np.linspace(0.1, 1.9, 50)
    surplus = consumer_surplus(market, np.stack([levels, levels], axis=-1))
    assert np.all(np.diff(surplus) <= 0.0)
    assert surplus[0] > surplus[-1]
    # Raising one firm's price alone hurts consumers of differentiated goods; with a homogeneous good only the
    # lowest price matters.
    one_up = float(consumer_surplus(market, np.array([0.7, 0.5])))
    both_low = float(consumer_surplus(market, np.array([0.5, 0.5])))
    if isinstance(market.demand, BertrandDemand):
        assert one_up == both_low > 0.0
    else:
        assert one_up < both_low


# --------------------------------------------------------------------------------------------- linear demand


@pytest.mark.parametrize(
    ("n_firms", "a", "b", "d", "c"),
    [
        (2, 1.0, 1.0, 0.5, 0.0),
        (2, 1.0, 1.0, 0.5, 0.2),
        (2, 3.0, 2.0, 1.5, 0.7),
        (3, 1.0, 1.0, 0.25, 0.1),
        (3, 2.0, 1.5, 0.6, 0.5),
        (4, 1.0, 1.0, 0.3, 0.0),
        (4, 5.0, 2.0, 0.5, 1.0),
    ],
)
def test_linear_benchmarks_match_closed_forms(n_firms: int, a: float, b: float, d: float, c: float) -> None:
    market = MarketSpec(n_firms=n_firms, demand=LinearDemand(intercept=a, own_slope=b, cross_slope=d), costs=c)
    benchmarks = compute_benchmarks(market)
    nash_price = (a + b * c) / (2 * b - (n_firms - 1) * d)
    monopoly_price = (a + (b - (n_firms - 1) * d) * c) / (2 * (b - (n_firms - 1) * d))
    np.testing.assert_allclose(benchmarks.nash_price, np.full(n_firms, nash_price), atol=1e-12)
    np.testing.assert_allclose(benchmarks.monopoly_price, np.full(n_firms, monopoly_price), atol=1e-12)
    # Own-price FOC at Nash: q_i = b (p_i - c).
    np.testing.assert_allclose(benchmarks.nash_quantity, b * (benchmarks.nash_price - c), atol=1e-12)
    # Symmetric CS is the triangle under aggregate demand Q = n (a - (b - (n-1) d) p).
    slope = b - (n_firms - 1) * d
    aggregate = n_firms * (a - slope * nash_price)
    assert benchmarks.nash_consumer_surplus == pytest.approx(aggregate**2 / (2 * n_firms * slope), rel=1e-12)


def test_linear_asymmetric_costs_solve_the_first_order_conditions() -> None:
    demand = LinearDemand(intercept=2.0, own_slope=1.5, cross_slope=0.4)
    market = MarketSpec(n_firms=3, demand=demand, costs=[0.2, 0.5, 0.3])
    benchmarks = compute_benchmarks(market)
    costs = np.array([0.2, 0.5, 0.3])
    np.testing.assert_allclose(benchmarks.nash_quantity, 1.5 * (benchmarks.nash_price - costs), atol=1e-12)
    # Joint-profit gradient q - M (p - c) vanishes at the monopoly prices.
    matrix = 1.9 * np.eye(3) - 0.4 * np.ones((3, 3))
    gradient = benchmarks.monopoly_quantity - matrix @ (benchmarks.monopoly_price - costs)
    np.testing.assert_allclose(gradient, 0.0, atol=1e-12)


def test_linear_demand_floors_at_zero_and_rejects_a_priced_out_benchmark() -> None:
    market = MarketSpec(demand=LinearDemand(), costs=0.0)
    np.testing.assert_allclose(quantities(market, np.array([3.0, 0.5])), [0.0, 2.0])
    with pytest.raises(ValueError, match="sell nothing"):
        compute_benchmarks(MarketSpec(demand=LinearDemand(), costs=[0.0, 3.0]))


def test_linear_consumer_surplus_is_the_representative_consumers_surplus() -> None:
    """CS = U(q) - p.q with U(q) = q.M^-1 a1 - q.M^-1 q / 2, computed here with an explicit inverse."""
    b, d, a = 1.5, 0.4, 2.0
    market = MarketSpec(n_firms=3, demand=LinearDemand(intercept=a, own_slope=b, cross_slope=d), costs=0.0)
    prices = np.array([0.9, 1.1, 1.3])
    q = quantities(market, prices)
    inverse = np.linalg.inv((b + d) * np.eye(3) - d * np.ones((3, 3)))
    utility = q @ inverse @ np.full(3, a) - 0.5 * q @ inverse @ q
    assert float(consumer_surplus(market, prices)) == pytest.approx(utility - prices @ q, rel=1e-12)


# --------------------------------------------------------------------------------------------- bertrand


def test_bertrand_lowest_price_takes_the_market_and_ties_split() -> None:
    market = MarketSpec(n_firms=3, demand=BertrandDemand(intercept=1.0, slope=1.0), costs=0.0)
    np.testing.assert_allclose(quantities(market, np.array([0.3, 0.5, 0.4])), [0.7, 0.0, 0.0])
    np.testing.assert_allclose(quantities(market, np.array([0.4, 0.4, 0.6])), [0.3, 0.3, 0.0])
    np.testing.assert_allclose(quantities(market, np.array([0.5, 0.5, 0.5])), [0.5 / 3] * 3)
    np.testing.assert_allclose(quantities(market, np.array([1.2, 1.5, 1.3])), [0.0, 0.0, 0.0])
    np.testing.assert_allclose(profits(market, np.array([0.4, 0.4, 0.6])), [0.12, 0.12, 0.0])
    assert float(consumer_surplus(market, np.array([0.4, 0.4, 0.6]))) == pytest.approx(0.18)
    assert float(consumer_surplus(market, np.array([1.2, 1.5, 1.3]))) == 0.0


def test_bertrand_benchmarks_klein() -> None:
    benchmarks = compute_benchmarks(KLEIN)
    np.testing.assert_allclose(benchmarks.nash_price, [0.0, 0.0])
    np.testing.assert_allclose(benchmarks.nash_profit, [0.0, 0.0])
    np.testing.assert_allclose(benchmarks.monopoly_price, [0.5, 0.5])
    np.testing.assert_allclose(benchmarks.monopoly_profit, [0.125, 0.125])  # half the monopoly profit each
    assert benchmarks.nash_consumer_surplus == pytest.approx(0.5)
    assert benchmarks.monopoly_consumer_surplus == pytest.approx(0.125)


def test_bertrand_asymmetric_costs_limit_price() -> None:
    market = MarketSpec(n_firms=3, demand=BertrandDemand(intercept=1.0, slope=1.0), costs=[0.2, 0.1, 0.3])
    benchmarks = compute_benchmarks(market)
    np.testing.assert_allclose(benchmarks.nash_price, [0.2, 0.2, 0.3])
    np.testing.assert_allclose(benchmarks.nash_quantity, [0.0, 0.8, 0.0])
    np.testing.assert_allclose(benchmarks.nash_profit, [0.0, 0.08, 0.0])
    np.testing.assert_allclose(benchmarks.monopoly_price, [0.55, 0.55, 0.55])
    # A cost advantage larger than the monopoly markup: the leader charges its monopoly price.
    drastic = compute_benchmarks(MarketSpec(demand=BertrandDemand(), costs=[0.0, 0.8]))
    np.testing.assert_allclose(drastic.nash_price, [0.5, 0.8])
    np.testing.assert_allclose(drastic.nash_profit, [0.25, 0.0])


def test_bertrand_without_profitable_demand_is_rejected() -> None:
    with pytest.raises(ValueError, match="choke price"):
        compute_benchmarks(MarketSpec(demand=BertrandDemand(intercept=1.0, slope=2.0), costs=0.6))


def test_unit_demand_lowest_price_sells_to_everyone_and_ties_split() -> None:
    market = MarketSpec(n_firms=3, demand=UnitDemand(reservation_price=10.0, mass=3.0), costs=2.0)
    np.testing.assert_array_equal(quantities(market, np.array([3.0, 5.0, 4.0])), [3.0, 0.0, 0.0])
    np.testing.assert_array_equal(quantities(market, np.array([4.0, 4.0, 6.0])), [1.5, 1.5, 0.0])
    np.testing.assert_array_equal(quantities(market, np.array([5.0, 5.0, 5.0])), [1.0, 1.0, 1.0])
    # A consumer indifferent at p = V buys (Asker et al.: demand is 1 for p <= 10); nobody buys above V.
    np.testing.assert_array_equal(quantities(market, np.array([10.0, 10.5, 12.0])), [3.0, 0.0, 0.0])
    np.testing.assert_array_equal(quantities(market, np.array([10.01, 10.5, 12.0])), [0.0, 0.0, 0.0])
    # Profits are (p - c) q, losses below cost included; demand does not fall with the price below V.
    np.testing.assert_allclose(profits(market, np.array([4.0, 4.0, 6.0])), [3.0, 3.0, 0.0])
    np.testing.assert_allclose(profits(market, np.array([1.0, 4.0, 6.0])), [-3.0, 0.0, 0.0])
    np.testing.assert_allclose(profits(market, np.array([9.0, 9.0, 9.0])), [7.0, 7.0, 7.0])


def test_unit_demand_consumer_surplus_is_the_rectangle() -> None:
    market = MarketSpec(n_firms=2, demand=UnitDemand(reservation_price=10.0, mass=2.0), costs=2.0)
    assert float(consumer_surplus(market, np.array([3.0, 5.0]))) == pytest.approx(14.0)  # 2 (10 - 3)
    assert float(consumer_surplus(market, np.array([10.0, 10.0]))) == 0.0
    surplus_above = consumer_surplus(market, np.array([11.0, 12.0]))
    assert float(surplus_above) == 0.0 and not np.signbit(surplus_above)
    # Every sale moves surplus between consumers and firms: welfare is mass (V - c) whenever anybody buys.
    for prices in ([3.0, 5.0], [4.0, 4.0], [9.5, 9.9], [1.0, 1.0]):
        assert float(total_welfare(market, np.array(prices))) == pytest.approx(16.0)
    assert float(total_welfare(market, np.array([11.0, 12.0]))) == 0.0


def test_unit_demand_grid_equilibria_of_asker_fershtman_pakes() -> None:
    """AFP (2022 AEA P&P, p. 1; 2021 NBER w28535, p. 16 and fn. 28): on 100 prices over [0.01, 10] with c = 2 the
    static Nash prices are 2.0282 and 2.1291 for two to four firms, and only 2.0282 from five firms on; on their
    25-point grid (w28535 Fig. 5-6) they are 2.09 and 2.51."""
    row = price_grid(AFP_PRICES, compute_benchmarks(AFP_UNIT, AFP_PRICES))[0]
    step = 9.99 / 99
    np.testing.assert_allclose(unit_grid_equilibria(AFP_UNIT, row), [0.01 + 20 * step, 0.01 + 21 * step])
    np.testing.assert_allclose(unit_grid_equilibria(AFP_UNIT, row), [2.0282, 2.1291], atol=5e-5)
    for n_firms, expected in ((3, [2.0282, 2.1291]), (4, [2.0282, 2.1291]), (5, [2.0282]), (8, [2.0282])):
        market = MarketSpec(n_firms=n_firms, demand=UnitDemand(), costs=2.0)
        np.testing.assert_allclose(unit_grid_equilibria(market, row), expected, atol=5e-5)
    np.testing.assert_allclose(unit_grid_equilibria(AFP_UNIT, np.linspace(0.01, 10.0, 25)), [2.09, 2.51], atol=3e-3)


def test_unit_demand_benchmarks_by_hand() -> None:
    benchmarks = compute_benchmarks(AFP_UNIT, AFP_PRICES)
    nash = 0.01 + 21 * 9.99 / 99  # the higher of the two grid equilibria
    np.testing.assert_allclose(benchmarks.nash_price, [nash, nash])
    np.testing.assert_allclose(benchmarks.nash_profit, [(nash - 2.0) / 2] * 2)
    np.testing.assert_allclose(benchmarks.nash_quantity, [0.5, 0.5])
    np.testing.assert_allclose(benchmarks.monopoly_price, [10.0, 10.0])
    np.testing.assert_allclose(benchmarks.monopoly_profit, [4.0, 4.0])  # AFP: 4 per firm when they share
    assert benchmarks.nash_consumer_surplus == pytest.approx(10.0 - nash)
    assert benchmarks.monopoly_consumer_surplus == 0.0
    assert benchmarks.nash_welfare == pytest.approx(8.0) and benchmarks.monopoly_welfare == pytest.approx(8.0)
    # A coarse grid, c = 1, V = 5. All at p is an equilibrium iff (p - 1) / 2 >= (p' - 1) for the next price
    # p' below: 1.2 (0.1 vs a loss), 1.5 (0.25 vs 0.2), 2.5 (0.75 vs 0.5) and 4 (1.5 vs 1.5) are; 5 is not (2 vs
    # 3 from undercutting to 4), nor 0.5 (a loss) or 6 (nobody buys; undercutting to 5 earns 4).
    market = MarketSpec(demand=UnitDemand(reservation_price=5.0), costs=1.0)
    prices = ExplicitPrices(values=[0.5, 1.2, 1.5, 2.5, 4.0, 5.0, 6.0])
    np.testing.assert_allclose(unit_grid_equilibria(market, np.asarray(prices.values)), [1.2, 1.5, 2.5, 4.0])
    coarse = compute_benchmarks(market, prices)
    np.testing.assert_allclose(coarse.nash_price, [4.0, 4.0])
    np.testing.assert_allclose(coarse.nash_profit, [1.5, 1.5])
    np.testing.assert_allclose(coarse.monopoly_price, [5.0, 5.0])  # the highest price anyone pays, not 6
    np.testing.assert_allclose(coarse.monopoly_profit, [2.0, 2.0])
    # A price at cost is an equilibrium with zero profit; here it is the only one below the sharing threshold.
    at_cost = compute_benchmarks(market, ExplicitPrices(values=[1.0, 3.0, 5.0]))
    np.testing.assert_allclose(unit_grid_equilibria(market, np.array([1.0, 3.0, 5.0])), [1.0, 3.0, 5.0])
    np.testing.assert_allclose(at_cost.nash_price, [5.0, 5.0])


def test_unit_demand_benchmarks_need_the_grid_and_a_profitable_price() -> None:
    with pytest.raises(ValueError, match="range or explicit"):
        compute_benchmarks(AFP_UNIT)
    with pytest.raises(ValueError, match="range or explicit"):
        compute_benchmarks(AFP_UNIT, BenchmarkGrid())
    with pytest.raises(ValueError, match="no sale is profitable"):
        compute_benchmarks(AFP_UNIT, ExplicitPrices(values=[0.5, 1.5, 10.5]))


# --------------------------------------------------------------------------------------------- broadcasting


@pytest.mark.parametrize(
    "market",
    [BASELINE, ASYMMETRIC_LOGIT, MarketSpec(demand=LinearDemand(), costs=0.2), KLEIN, AFP_UNIT],
    ids=["logit", "logit-asymmetric", "linear", "bertrand", "unit"],
)
def test_functions_broadcast_over_leading_dimensions(market: MarketSpec) -> None:
    rng = np.random.default_rng(1)
    prices = rng.choice(np.linspace(0.0, 2.2, 12), size=(5, 7, 2))
    q, pi = quantities(market, prices), profits(market, prices)
    cs, welfare = consumer_surplus(market, prices), total_welfare(market, prices)
    assert q.shape == pi.shape == (5, 7, 2)
    assert cs.shape == welfare.shape == (5, 7)
    for i, j in [(0, 0), (2, 3), (4, 6)]:
        np.testing.assert_allclose(q[i, j], quantities(market, prices[i, j]), rtol=1e-13)
        assert cs[i, j] == pytest.approx(float(consumer_surplus(market, prices[i, j])), rel=1e-13)
    np.testing.assert_allclose(welfare, cs + pi.sum(axis=-1), rtol=1e-13)


def test_prices_with_the_wrong_number_of_firms_are_rejected() -> None:
    with pytest.raises(ValueError, match="n_firms = 2"):
        quantities(BASELINE, np.ones((4, 3)))


# --------------------------------------------------------------------------------------------- benchmarks object


def test_benchmarks_are_frozen_and_json_ready(baseline: Benchmarks) -> None:
    data = baseline.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert isinstance(data["nash_price"], list) and isinstance(data["nash_price"][0], float)
    assert isinstance(data["nash_welfare"], float)
    assert set(data) == {
        "nash_price", "monopoly_price", "nash_profit", "monopoly_profit", "nash_quantity", "monopoly_quantity",
        "nash_consumer_surplus", "monopoly_consumer_surplus", "nash_welfare", "monopoly_welfare",
    }  # fmt: skip
    with pytest.raises(AttributeError):
        baseline.nash_price = np.zeros(2)  # type: ignore[misc]
    with pytest.raises(ValueError):
        baseline.nash_price[0] = 0.0
    assert baseline.n_firms == 2


# --------------------------------------------------------------------------------------------- grids


def test_baseline_grid_matches_calvano(baseline: Benchmarks) -> None:
    grid = price_grid(BenchmarkGrid(), baseline)
    assert grid.shape == (2, 15)
    np.testing.assert_array_equal(grid[0], grid[1])
    # ECONOMICS.md's endpoints come from the 5-decimal p_N and p_M; the exact benchmarks move them by < 4e-6.
    assert grid[0, 0] == pytest.approx(1.4277250, abs=1e-5)
    assert grid[0, -1] == pytest.approx(1.9701850, abs=1e-5)
    np.testing.assert_allclose(np.diff(grid[0]), 0.0387471, atol=1e-6)
    width = baseline.monopoly_price[0] - baseline.nash_price[0]
    assert grid[0, 0] == pytest.approx(baseline.nash_price[0] - 0.1 * width, abs=1e-12)
    assert grid[0, -1] == pytest.approx(baseline.monopoly_price[0] + 0.1 * width, abs=1e-12)


def test_grid_from_the_published_benchmarks_reproduces_the_published_grid(baseline: Benchmarks) -> None:
    published = Benchmarks(**{**vars(baseline), "nash_price": [1.47293] * 2, "monopoly_price": [1.92498] * 2})
    grid = price_grid(BenchmarkGrid(m=15, xi=0.1), published)
    np.testing.assert_allclose(grid[:, 0], 1.4277250, atol=1e-6)
    np.testing.assert_allclose(grid[:, -1], 1.9701850, atol=1e-6)
    np.testing.assert_allclose(np.diff(grid, axis=-1), 0.0387471, atol=1e-6)


def test_benchmark_grid_is_per_firm_for_asymmetric_markets() -> None:
    benchmarks = compute_benchmarks(ASYMMETRIC_LOGIT)
    grid = price_grid(BenchmarkGrid(m=10, xi=0.0), benchmarks)
    assert grid.shape == (2, 10)
    np.testing.assert_allclose(grid[:, 0], benchmarks.nash_price, atol=1e-12)
    np.testing.assert_allclose(grid[:, -1], benchmarks.monopoly_price, atol=1e-12)
    assert np.all(np.diff(grid, axis=-1) > 0)


def test_range_and_explicit_grids_repeat_for_every_firm(baseline: Benchmarks) -> None:
    klein = price_grid(RangeGrid(low=0.0, high=1.0, m=7), compute_benchmarks(KLEIN))
    np.testing.assert_allclose(klein, np.tile(np.arange(7) / 6, (2, 1)), atol=1e-15)
    explicit = price_grid(ExplicitPrices(values=[1.5, 1.7, 1.9]), baseline)
    np.testing.assert_array_equal(explicit, [[1.5, 1.7, 1.9], [1.5, 1.7, 1.9]])


def test_degenerate_or_negative_benchmark_grids_are_rejected() -> None:
    independent = compute_benchmarks(MarketSpec(demand=LinearDemand(cross_slope=0.0), costs=0.2))
    np.testing.assert_allclose(independent.nash_price, independent.monopoly_price)
    with pytest.raises(ValueError, match="degenerate"):
        price_grid(BenchmarkGrid(), independent)
    with pytest.raises(ValueError, match="negative price"):
        price_grid(BenchmarkGrid(xi=0.1), compute_benchmarks(KLEIN))
    assert price_grid(BenchmarkGrid(xi=0.0, m=3), compute_benchmarks(KLEIN))[0].tolist() == [0.0, 0.25, 0.5]


def test_nearest_index(baseline: Benchmarks) -> None:
    row = price_grid(BenchmarkGrid(), baseline)[0]
    assert nearest_index(row, float(baseline.nash_price[0])) == 1
    assert nearest_index(row, float(baseline.monopoly_price[0])) == 13
    assert nearest_index(row, -5.0) == 0
    assert nearest_index(row, 99.0) == 14
    assert nearest_index(np.array([0.0, 1.0]), 0.5) == 0  # a midpoint goes to the lower price
    with pytest.raises(ValueError):
        nearest_index(np.zeros((2, 2)), 0.5)


def test_libm_functions_are_the_c_librarys_with_numpys_edge_values():
    x = np.array([-800.0, -1.5, 0.0, 0.3, 709.0, 710.0])
    assert libm.exp(x).tolist() == [math.exp(-800.0), math.exp(-1.5), 1.0, math.exp(0.3), math.exp(709.0), math.inf]
    logs = libm.log(np.array([0.0, -1.0, 1e-300, 2.0]))
    assert logs[0] == -math.inf and math.isnan(logs[1]) and logs[2:].tolist() == [math.log(1e-300), math.log(2.0)]
    assert libm.power(0.95, np.arange(4)).tolist() == [math.pow(0.95, k) for k in range(4)]
    assert libm.power(10.0, 400.0) == math.inf and math.isnan(libm.power(-8.0, 1 / 3))
    assert libm.exp(1.0).shape == () and float(libm.exp(1.0)) == math.e and libm.exp(np.ones((2, 3))).shape == (2, 3)
