"""Demand and profit noise, UCB-tuned, and Hansen, Misra & Pai (2021).

Fast tests: each mean-preserving noise kind leaves the sample mean of what it shocks within a few standard errors
of the expected value, the floored form is biased by exactly its analytic bias, scenarios must say which form
they mean, UCB-tuned's index and play match a hand computation. The slow test reproduces Hansen et al.'s
qualitative result over a sweep of signal-to-noise ratios.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from algocomp.engine.build import compile_scenario
from algocomp.engine.experiment import run_experiment
from algocomp.engine.kernel import ucb_tuned_index
from algocomp.engine.session import run_session
from algocomp.scenarios import ScenarioError, apply_overrides, load_scenario, scenario_hash

PERIODS = 40_000


def fixed_pair(noise: str, price: float = 0.8):
    """Hansen et al.'s linear duopoly with both firms fixed at one price: every period is a fresh draw of the
    same expected outcome, logged one by one in the tail."""
    return apply_overrides(
        load_scenario("hansen-2021-ucb"),
        [
            f"market.noise={noise}",
            f"agents={{type: fixed, price: {price}}}",
            f"horizon.max_periods={PERIODS}",
            f"logging.tail={PERIODS}",
            "logging.interval=1000",
            "sessions=1",
        ],
    )


def realised_tail(scenario, seed: int = 12345):
    """(realised quantities, realised profits) of every period, and the expected ones of the price pair."""
    cs = compile_scenario(scenario)
    result = run_session(cs, 0, seed)
    pc = result.panel_columns
    tail = pc["kind"] == "tail"
    q = pc["quantity"][tail].reshape(-1, cs.n_firms)
    pi = pc["profit"][tail].reshape(-1, cs.n_firms)
    assert q.shape[0] == PERIODS
    joint = int(cs.grid.shape[1] - 1) * int(cs.powers.sum())  # both firms at their highest price
    return q, pi, cs.quantity[joint], cs.profit[joint]


def standard_errors(sample: np.ndarray, expected: np.ndarray) -> np.ndarray:
    return (sample.mean(axis=0) - expected) / (sample.std(axis=0, ddof=1) / math.sqrt(sample.shape[0]))


@pytest.mark.parametrize(
    "noise",
    ["{kind: additive_unfloored, sd: 0.3}", "{kind: multiplicative, sd: 0.5}"],
)
def test_demand_noise_is_mean_preserving(noise):
    q, pi, q_expected, pi_expected = realised_tail(fixed_pair(noise))
    assert q.std(axis=0).min() > 0.05, "the noise must move demand"
    assert np.all(np.abs(standard_errors(q, q_expected)) < 4), (q.mean(axis=0), q_expected)
    assert np.all(np.abs(standard_errors(pi, pi_expected)) < 4), (pi.mean(axis=0), pi_expected)


def test_profit_uniform_is_mean_preserving_and_uniform_on_its_interval():
    snr = 5.0
    q, pi, q_expected, pi_expected = realised_tail(fixed_pair(f"{{kind: profit_uniform, snr: {snr}}}"))
    np.testing.assert_array_equal(q, np.broadcast_to(q_expected, q.shape))  # demand itself is not shocked
    assert np.all(np.abs(standard_errors(pi, pi_expected)) < 4), (pi.mean(axis=0), pi_expected)
    shock = pi - pi_expected
    assert shock.min() >= -1 / snr and shock.max() <= 1 / snr
    assert shock.min() < -0.99 / snr and shock.max() > 0.99 / snr
    # uniform on [-1/snr, 1/snr]: variance 1 / (3 snr^2)
    assert shock.var() == pytest.approx(1 / (3 * snr**2), rel=0.03)


def test_floored_additive_noise_raises_expected_demand_by_its_analytic_bias():
    sd = 0.3
    q, _, q_expected, _ = realised_tail(fixed_pair(f"{{kind: additive_floored, sd: {sd}}}"))
    assert (q >= 0).all()
    unit = NormalDist()
    bias = sd * unit.pdf(q_expected[0] / sd) - q_expected[0] * unit.cdf(-q_expected[0] / sd)
    assert bias > 0.03  # demand 0.24 at the collusive price: the floor adds 15% to it
    se = q.std(axis=0, ddof=1) / math.sqrt(q.shape[0])
    assert np.all(q.mean(axis=0) - q_expected > 10 * se), "the floored form must be visibly biased upwards"
    assert np.all(np.abs(q.mean(axis=0) - q_expected - bias) < 4 * se), (q.mean(axis=0) - q_expected, bias)


def test_unfloored_noise_can_sell_negative_quantities():
    q, _, _, _ = realised_tail(fixed_pair("{kind: additive_unfloored, sd: 0.3}"))
    assert (q < 0).mean() > 0.1  # P(0.24 + 0.3 z < 0) = 0.21


# --------------------------------------------------------------------------------------------- validation


def hansen_error(overrides) -> ScenarioError:
    with pytest.raises(ScenarioError) as caught:
        apply_overrides(load_scenario("hansen-2021-ucb"), overrides)
    return caught.value


def test_additive_is_refused_with_both_replacements_named():
    err = hansen_error(["market.noise={kind: additive, sd: 0.1}"])
    assert err.field == "market.noise.kind"
    assert "additive_floored" in err.problem and "additive_unfloored" in err.problem
    assert "not mean-preserving" in err.problem


def test_noise_size_fields_are_checked_against_the_kind():
    assert hansen_error(["market.noise={kind: profit_uniform}"]).field == "market.noise.snr"
    assert hansen_error(["market.noise.snr=0"]).field == "market.noise.snr"
    err = hansen_error(["market.noise={kind: profit_uniform, snr: 2, sd: 0.1}"])
    assert err.field == "market.noise.sd" and "snr" in err.problem
    err = hansen_error(["market.noise={kind: multiplicative, sd: 0.1, snr: 2}"])
    assert err.field == "market.noise.snr" and "profit_uniform" in err.problem
    assert hansen_error(["agents.scale_reward=true"]).field == "agents.scale_reward"


def test_scenarios_without_snr_keep_their_fingerprint():
    # Values computed before snr existed: adding the field must not change any existing scenario's hash.
    baseline = load_scenario("calvano-2020-baseline")
    assert scenario_hash(baseline) == "35d883ac2e277d11818b3062d809deab80dea029e07ecd1a6c7072a702e3f22c"
    noisy = apply_overrides(baseline, ["market.noise={kind: multiplicative, sd: 0.1}"])
    assert scenario_hash(noisy) == "27088ac00006724fc34e07d04d56754bf6d0788a04e41cf51e426fabe7a02a64"
    assert "snr" not in baseline.model_dump()["market"]["noise"]


# --------------------------------------------------------------------------------------------- UCB-tuned


def test_newcombe_interval_by_hand():
    # Newcombe (1998), table II, example (a): 56/70 against 48/80, difference 0.2, 95% interval 0.0524 to 0.3339.
    assert difference_lower_bound((48, 80), (56, 70)) == pytest.approx(0.0524, abs=1e-4)
    assert wilson(0, 200)[0] == pytest.approx(0.0, abs=1e-12) and wilson(0, 200)[1] == pytest.approx(0.01885, abs=1e-4)


def test_ucb_tuned_index_by_hand():
    # Arm rewards 0.2, 0.6, 0.4 after 10 plays in all: mean 0.4, mean of squares 0.56/3, variance 0.02667,
    # V = 0.02667 + sqrt(2 ln 10 / 3) = 1.2656 > 1/4, so the index is 0.4 + sqrt(ln 10 / 3 / 4) = 0.838043.
    assert ucb_tuned_index(0.4, 0.56 / 3, 3.0, math.log(10)) == pytest.approx(0.8380434808, abs=1e-9)
    # 1,000 plays of 2,000, mean 0.5, variance 0.01: V = 0.01 + sqrt(2 ln 2000 / 1000) = 0.133296 < 1/4,
    # index 0.5 + sqrt(ln 2000 / 1000 * 0.133296) = 0.531830.
    assert ucb_tuned_index(0.5, 0.26, 1000.0, math.log(2000)) == pytest.approx(0.5318302820, abs=1e-9)


def reference_ucb_tuned(rewards: dict[int, float], periods: int) -> list[int]:
    """UCB-tuned written out from Auer et al. (2002) for deterministic rewards: the arms played, in order."""
    n = {a: 0 for a in rewards}
    s1 = {a: 0.0 for a in rewards}
    s2 = {a: 0.0 for a in rewards}
    played = []
    for _ in range(periods):
        unplayed = [a for a in sorted(rewards) if n[a] == 0]
        if unplayed:
            arm = unplayed[0]
        else:
            total = sum(n.values())
            best = -math.inf
            for a in sorted(rewards):
                mean = s1[a] / n[a]
                v = s2[a] / n[a] - mean**2 + math.sqrt(2 * math.log(total) / n[a])
                index = mean + math.sqrt(math.log(total) / n[a] * min(0.25, v))
                if index > best:
                    best, arm = index, a
        n[arm] += 1
        s1[arm] += rewards[arm]
        s2[arm] += rewards[arm] ** 2
        played.append(arm)
    return played


@pytest.mark.parametrize("scale", [False, True])
def test_ucb_tuned_plays_as_auer_et_al_against_a_fixed_rival(scale):
    periods = 3_000
    scenario = apply_overrides(
        load_scenario("hansen-2021-ucb"),
        [
            "market.noise={kind: none}",
            f"agents=[{{type: ucb_tuned, scale_rewards: {str(scale).lower()}}}, {{type: fixed, price: 0.8}}]",
            f"horizon.max_periods={periods}",
            f"logging.tail={periods}",
            "sessions=1",
        ],
    )
    cs = compile_scenario(scenario)
    result = run_session(cs, 0, 99)
    pc = result.panel_columns
    tail = pc["kind"] == "tail"
    prices = pc["price"][tail].reshape(-1, 2)[:, 0]
    played = [int(np.argmin(np.abs(cs.grid[0] - p))) for p in prices]
    scale_by = cs.profit[:, 0].max() if scale else 1.0  # 0.24, the deviation profit
    rewards = {0: 0.24 / scale_by, 1: 0.192 / scale_by}  # against a rival at 0.8: undercut 0.24, match 0.192
    assert played == reference_ucb_tuned(rewards, periods)
    assert 0 < played.count(1) < periods // 2  # it explores the worse price, and mostly plays the better one


# --------------------------------------------------------------------------------------------- Hansen et al.


def test_hansen_preset_is_the_papers_setup():
    scenario = load_scenario("hansen-2021-ucb")
    cs = compile_scenario(scenario)
    # alpha 0.48, beta 0.9, gamma 0.6, zero cost: Nash 0.4, joint-profit 0.8, the two prices of the grid
    np.testing.assert_allclose(cs.benchmarks.nash_price, [0.4, 0.4])
    np.testing.assert_allclose(cs.benchmarks.monopoly_price, [0.8, 0.8])
    np.testing.assert_allclose(cs.grid, [[0.4, 0.8], [0.4, 0.8]])
    # a prisoner's dilemma: undercutting pays 0.24 > 0.192 (both high) > 0.144 (both low) > 0 (undercut);
    # profiles (firm 0, firm 1): (0.4, 0.4), (0.8, 0.4), (0.4, 0.8), (0.8, 0.8)
    np.testing.assert_allclose(cs.profit[:, 0], [0.144, 0.0, 0.24, 0.192], atol=1e-12)  # firm 0: fastest digit
    assert scenario.market.noise.kind == "profit_uniform"
    assert scenario.agents.type == "ucb_tuned" and not scenario.agents.scale_rewards
    assert scenario.horizon.max_periods == 2_000_000 and not scenario.horizon.stop_at_convergence
    assert scenario.logging.tail == 1000


# --------------------------------------------------------------------------------------------- slow

SWEEP_SNR = (1.0, 2.5, 5.0, 10.0)
SWEEP_SESSIONS = 200
SWEEP_PERIODS = 500_000


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion."""
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def difference_lower_bound(low: tuple[int, int], high: tuple[int, int]) -> float:
    """Lower end of Newcombe's (1998) 95% score interval for the difference of two proportions, high - low, each
    given as (successes, n): above 0 when the higher proportion is higher beyond sampling error."""
    (k1, n1), (k2, n2) = low, high
    p1, p2 = k1 / n1, k2 / n2
    _, u1 = wilson(k1, n1)
    l2, _ = wilson(k2, n2)
    return (p2 - p1) - math.sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2)


def long_run_prices(result) -> np.ndarray:
    """Hansen et al.'s outcome of each session: each firm's median price over the last 1,000 periods."""
    out = []
    for session in result.sessions:
        pc = session.panel_columns
        tail = pc["kind"] == "tail"
        out.append(np.median(pc["price"][tail].reshape(-1, 2), axis=0))
    return np.array(out)


@pytest.mark.slow
def test_hansen_supra_competitive_and_correlated_prices_rise_with_the_signal_to_noise_ratio():
    """Hansen, Misra & Pai (2021): with a high signal-to-noise ratio the two UCB-tuned firms end at the collusive
    price together; as it falls they end at the competitive one. Over snr 1, 2.5, 5, 10 the share of sessions
    where both firms' long-run price is the collusive one rises at each step beyond sampling error (the 95%
    interval of the difference excludes 0), from almost none at snr 1 (competitive) to most at snr 10, and so does
    the mean price index; the firms' price changes comove throughout (correlated
    experiments) and their long-run prices move together across sessions. A quarter of the paper's horizon
    (500,000 of 2,000,000 periods) and 200 sessions per level keep it near two minutes on two cores."""
    rows = []
    for snr in SWEEP_SNR:
        scenario = apply_overrides(
            load_scenario("hansen-2021-ucb"),
            [
                f"market.noise.snr={snr}",
                f"sessions={SWEEP_SESSIONS}",
                f"horizon.max_periods={SWEEP_PERIODS}",
                f"horizon.convergence_periods={SWEEP_PERIODS}",
            ],
        )
        result = run_experiment(scenario, workers=2)
        prices = long_run_prices(result)
        collusive = int((prices == 0.8).all(axis=1).sum())
        comovement = np.array([s.metrics["comovement"] for s in result.sessions], dtype=float)
        index = ((prices - 0.4) / 0.4).mean(axis=1)
        rows.append(
            {
                "snr": snr,
                "collusive": collusive,
                "interval": wilson(collusive, SWEEP_SESSIONS),
                "index": index.mean(),
                "index_se": index.std(ddof=1) / math.sqrt(SWEEP_SESSIONS),
                "comovement": np.nanmean(comovement),
                "comovement_se": np.nanstd(comovement, ddof=1) / math.sqrt(np.isfinite(comovement).sum()),
                "cross_firm": np.corrcoef(prices[:, 0], prices[:, 1])[0, 1] if prices.std(axis=0).min() > 0 else None,
            }
        )
    report = "\n".join(str(r) for r in rows)
    # Competitive at the low end: (almost) every session ends at the Nash price.
    assert rows[0]["interval"][1] < 0.05, report
    # Supra-competitive at the high end: most sessions end with both firms at the collusive price.
    assert rows[-1]["interval"][0] > 0.6, report
    # Monotone beyond sampling error: at each step up in snr the 95% interval of the increase excludes 0.
    for low, high in zip(rows, rows[1:]):
        gap = difference_lower_bound((low["collusive"], SWEEP_SESSIONS), (high["collusive"], SWEEP_SESSIONS))
        assert gap > 0, report
        rise = high["index"] - low["index"]
        assert rise - 1.96 * math.hypot(high["index_se"], low["index_se"]) > 0, report
    # Correlated experiments: the firms' price changes comove at every level, and where some sessions end high
    # and others low, the two firms end high or low together.
    for row in rows:
        assert row["comovement"] - 1.96 * row["comovement_se"] > 0.5, report
        if row["cross_firm"] is not None:
            assert row["cross_firm"] > 0.8, report
