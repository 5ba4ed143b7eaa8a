"""The scenario format: presets, defaults, validation messages, overrides, fingerprint and round trips."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from algocomp.scenarios import (
    ScenarioError,
    apply_overrides,
    dump_scenario,
    format_validation_error,
    list_presets,
    load_scenario,
    parse_override,
    preset_path,
    scenario_hash,
)
from algocomp.scenarios.model import (
    BenchmarkGrid,
    LinearDemand,
    LogitDemand,
    QLearning,
    RangeGrid,
    Scenario,
)

EXPECTED_PRESETS = {
    "calvano-2020-baseline",
    "calvano-2020-n3",
    "calvano-2020-n4",
    "klein-2021-sequential",
    "hansen-2021-ucb",
    "myopic-vs-bandit",
    "asker-2022-calvano-market-synchronous",
    "asker-2022-unit-demand-synchronous",
    "asker-2022-unit-demand-synchronous-delta95",
    "johnson-2023-steering",
    "calvano-2020-price-cap",
}


@pytest.fixture
def baseline() -> Scenario:
    return load_scenario("calvano-2020-baseline")


def error_of(source) -> ScenarioError:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(source)
    return caught.value


def override_error(scenario: Scenario, overrides) -> ScenarioError:
    with pytest.raises(ScenarioError) as caught:
        apply_overrides(scenario, overrides)
    return caught.value


# --------------------------------------------------------------------------------------------- presets


def test_the_required_presets_exist_with_descriptions():
    presets = list_presets()
    assert set(presets) >= EXPECTED_PRESETS
    for name, description in presets.items():
        assert description, f"preset {name} has no description"


@pytest.mark.parametrize("name", sorted(list_presets()))
def test_every_preset_loads_and_is_named_after_its_file(name):
    scenario = load_scenario(name)
    assert isinstance(scenario, Scenario)
    assert scenario.name == name
    assert preset_path(name).stem == name
    assert load_scenario(preset_path(name)) == scenario  # by path as well as by name
    assert len(scenario.agent_list()) == scenario.market.n_firms


def test_calvano_baseline_has_the_papers_parameters(baseline):
    market = baseline.market
    assert market.n_firms == 2 and market.timing == "simultaneous"
    assert market.demand == LogitDemand(quality=2.0, outside_quality=0.0, mu=0.25)
    assert market.cost_vector() == [1.0, 1.0]
    assert baseline.prices == BenchmarkGrid(m=15, xi=0.1)
    assert baseline.agents == QLearning(
        alpha=0.15, delta=0.95, beta=4e-6, memory=1, update="asynchronous", q_init="calvano"
    )
    assert isinstance(baseline.agents.beta, float) and baseline.agents.beta == pytest.approx(4e-6)
    assert baseline.horizon.max_periods == 1_000_000_000
    assert baseline.horizon.convergence_periods == 100_000 and baseline.horizon.stop_at_convergence
    assert (baseline.logging.interval, baseline.logging.tail, baseline.logging.impulse_periods) == (10_000, 100, 25)
    assert baseline.sessions == 1000 and baseline.seed == 0
    assert not baseline.regulation.is_active


@pytest.mark.parametrize("name, n_firms", [("calvano-2020-n3", 3), ("calvano-2020-n4", 4)])
def test_calvano_more_firms_differs_from_the_baseline_only_in_n(baseline, name, n_firms):
    scenario = load_scenario(name)
    assert scenario.market.n_firms == n_firms
    same = apply_overrides(baseline, {"market.n_firms": n_firms, "name": name, "description": scenario.description})
    assert same == scenario


def test_klein_preset():
    scenario = load_scenario("klein-2021-sequential")
    assert scenario.market.timing == "sequential"
    assert scenario.market.demand.model == "bertrand"
    assert (scenario.market.demand.intercept, scenario.market.demand.slope) == (1.0, 1.0)
    assert scenario.market.cost_vector() == [0.0, 0.0]
    assert scenario.prices == RangeGrid(low=0.0, high=1.0, m=7)
    assert scenario.agents.type == "klein_qlearning"
    assert (scenario.agents.alpha, scenario.agents.delta) == (0.3, 0.95)
    # Klein's schedule and horizon: exploration at 0.1% after 250,000 periods, every run learns 500,000 periods
    assert math.exp(-scenario.agents.beta * 250_000) == pytest.approx(0.001, rel=1e-3)
    assert scenario.horizon.max_periods == 500_000 and not scenario.horizon.stop_at_convergence


def test_asker_unit_demand_presets_are_the_authors_set_up():
    """AFP 2022 (AEA P&P) section I-II and NBER w28535 p. 16 (delta = 0) and Fig. 5 / Table 3 (delta = 0.95): two
    firms, cost 2, unit demand up to 10, alpha 0.1, greedy play from optimistic uniform initial values; 100 prices
    on [0.01, 10], one state, W0 ~ U[10, 20] without discounting; 25 prices, last period's prices as the state,
    W0 ~ U[200, 210] with discount 0.95. The two differ in exactly those things."""
    myopic = load_scenario("asker-2022-unit-demand-synchronous")
    patient = load_scenario("asker-2022-unit-demand-synchronous-delta95")
    for scenario in (myopic, patient):
        market, agents = scenario.market, scenario.agents
        assert market.n_firms == 2 and market.cost_vector() == [2.0, 2.0] and market.timing == "simultaneous"
        assert market.demand.model == "unit" and (market.demand.reservation_price, market.demand.mass) == (10.0, 1.0)
        assert agents.type == "qlearning" and agents.update == "synchronous" and agents.alpha == 0.1
        assert math.exp(-agents.beta) == 0.0  # no exploration after period 0
        assert (scenario.prices.low, scenario.prices.high) == (0.01, 10.0)
    assert myopic.prices.m == 100 and myopic.agents.delta == 0.0 and myopic.agents.memory == 0
    assert myopic.agents.q_init.uniform == (10.0, 20.0)
    assert patient.prices.m == 25 and patient.agents.delta == 0.95 and patient.agents.memory == 1
    assert patient.agents.q_init.uniform == (200.0, 210.0)
    assert "agents.update=asynchronous" in myopic.description and "agents.update=asynchronous" in patient.description


def test_hansen_preset():
    scenario = load_scenario("hansen-2021-ucb")
    assert isinstance(scenario.market.demand, LinearDemand)
    assert scenario.market.noise.kind == "profit_uniform" and scenario.market.noise.snr == 10.0
    assert scenario.agents.type == "ucb_tuned" and not scenario.agents.scale_rewards
    assert scenario.horizon.max_periods == 2_000_000 and not scenario.horizon.stop_at_convergence
    assert scenario.sessions == 500 and scenario.logging.tail == 1000


def test_mixed_population_preset():
    scenario = load_scenario("myopic-vs-bandit")
    assert [agent.type for agent in scenario.agent_list()] == ["myopic", "epsilon_greedy"]
    assert scenario.agents[1].epsilon == 0.1 and scenario.agents[1].beta == pytest.approx(1e-4)
    assert scenario.horizon.max_periods == 200_000 and not scenario.horizon.stop_at_convergence


@pytest.mark.parametrize(
    "name, override",
    [
        ("asker-2022-calvano-market-synchronous", "agents.update=synchronous"),
        ("johnson-2023-steering", "regulation.steering={share: 0.5}"),
        ("calvano-2020-price-cap", "regulation.price_cap={basis: nash_markup, value: 0.1}"),
    ],
)
def test_baseline_variants_change_exactly_one_thing(baseline, name, override):
    scenario = load_scenario(name)
    expected = apply_overrides(baseline, [override, f"name={name}"])
    assert scenario.model_copy(update={"description": ""}) == expected.model_copy(update={"description": ""})


def test_unknown_preset_error_lists_the_presets():
    err = error_of("calvano-2021-nonsense")
    assert "calvano-2021-nonsense" in str(err)
    for name in EXPECTED_PRESETS:
        assert name in err.problem
    with pytest.raises(ScenarioError, match="calvano-2020-baseline"):
        preset_path("nope")


def test_missing_file_error_names_the_file_and_lists_presets(tmp_path):
    missing = tmp_path / "nowhere.yaml"
    err = error_of(missing)
    assert str(missing) in str(err) and "calvano-2020-baseline" in str(err)
    assert "nowhere.json" in str(error_of("nowhere.json"))


# --------------------------------------------------------------------------------------------- defaults


def test_an_empty_document_is_the_calvano_baseline_with_default_name():
    scenario = load_scenario({})
    assert scenario.name == "custom"
    assert scenario.market.n_firms == 2
    assert scenario.market.demand == LogitDemand()
    assert scenario.market.demand.mu == 0.25 and scenario.market.costs == 1.0
    assert scenario.prices == BenchmarkGrid(m=15, xi=0.1)
    assert scenario.agents == QLearning()
    assert scenario.agents.alpha == 0.15 and scenario.agents.beta == 4e-6
    assert scenario.horizon.max_periods == 10**9 and scenario.sessions == 1000
    assert not scenario.regulation.is_active
    # The baseline preset spells out exactly the defaults, apart from its name and description.
    baseline = load_scenario("calvano-2020-baseline")
    assert baseline.model_copy(update={"name": "custom", "description": ""}) == scenario


def test_defaults_fill_a_partial_section():
    scenario = load_scenario({"agents": {"type": "qlearning", "alpha": 0.05}})
    assert scenario.agents.alpha == 0.05 and scenario.agents.delta == 0.95 and scenario.agents.memory == 1


# --------------------------------------------------------------------------------------------- validation


def test_per_firm_lists_must_have_one_entry_per_firm():
    ok = load_scenario({"market": {"n_firms": 3, "costs": [1.0, 1.1, 1.2]}})
    assert ok.market.cost_vector() == [1.0, 1.1, 1.2]
    err = error_of({"market": {"n_firms": 3, "costs": [1.0, 1.1]}})
    assert err.field == "market" and "costs has 2 values but there are 3 firms" in err.problem

    err = error_of({"market": {"demand": {"model": "logit", "quality": [2.0, 2.0, 2.0]}}})
    assert err.field == "market" and "demand.quality has 3 values" in err.problem

    err = error_of({"agents": [{"type": "qlearning"}] * 3})
    assert "agents lists 3 specs but market.n_firms is 2" in str(err)

    two = load_scenario({"agents": [{"type": "myopic"}, {"type": "qlearning"}]})
    assert [a.type for a in two.agent_list()] == ["myopic", "qlearning"]


UNIT_MARKET = {"demand": {"model": "unit", "reservation_price": 10.0}, "costs": 2.0}
UNIT_PRICES = {"kind": "range", "low": 0.01, "high": 10.0, "m": 100}


def test_unit_demand_is_validated_with_the_field_named():
    ok = load_scenario({"market": UNIT_MARKET, "prices": UNIT_PRICES})
    assert ok.market.demand.model == "unit" and ok.market.demand.mass == 1.0

    err = error_of({"market": UNIT_MARKET})  # the default prices are a benchmark grid
    assert err.field == "prices" and "range or explicit" in err.problem
    err = error_of({"market": UNIT_MARKET, "prices": {"kind": "benchmark_grid", "m": 15}})
    assert err.field == "prices" and "range or explicit" in err.problem

    err = error_of({"market": {**UNIT_MARKET, "costs": [2.0, 2.5]}, "prices": UNIT_PRICES})
    assert err.field == "market" and err.problem.startswith("costs:") and "one cost for every firm" in err.problem

    err = error_of({"market": {**UNIT_MARKET, "costs": 10.0}, "prices": UNIT_PRICES})
    assert err.field == "market" and "demand.reservation_price" in err.problem

    err = error_of({"market": {"demand": {"model": "unit", "reservation_price": 0}}, "prices": UNIT_PRICES})
    assert err.field == "market.demand.reservation_price" and "greater than 0" in err.problem

    err = error_of({"market": {"demand": {"model": "unit", "mass": -1}}, "prices": UNIT_PRICES})
    assert err.field == "market.demand.mass"


def test_unknown_field_error_names_the_field():
    err = error_of({"horizon": {"max_period": 10}})
    assert err.field == "horizon.max_period"
    assert "unknown field" in err.problem and "max_periods" in err.problem

    err = error_of({"agents": {"type": "qlearning", "alhpa": 0.1}})
    assert err.field == "agents.alhpa" and "alpha" in err.problem


def test_negative_periods_error_names_horizon_max_periods():
    err = error_of({"horizon": {"max_periods": -5}})
    assert err.field == "horizon.max_periods"
    assert "greater than 0" in err.problem and "-5" in err.problem
    assert str(err) == f"horizon.max_periods: {err.problem}"


def test_a_single_price_grid_error_names_prices_m(baseline):
    err = error_of({"prices": {"kind": "benchmark_grid", "m": 1}})
    assert err.field == "prices.m"
    err = override_error(baseline, ["prices.m=1"])
    assert err.field == "prices.m" and "greater than or equal to 2" in err.problem


def test_discriminator_tags_are_dropped_from_error_paths():
    assert error_of({"agents": {"type": "qlearning", "alpha": 2}}).field == "agents.alpha"
    assert error_of({"agents": [{"type": "qlearning", "alpha": 2}, {"type": "myopic"}]}).field == "agents.0.alpha"
    assert error_of({"market": {"demand": {"model": "logit", "mu": -1}}}).field == "market.demand.mu"
    assert error_of({"market": {"costs": [1.0, -2.0]}}).field == "market.costs.1"
    assert error_of({"regulation": {"price_cap": {"value": "high"}}}).field == "regulation.price_cap.value"


def test_a_union_reports_the_member_the_value_was_meant_for():
    # a list of agents with a bad learning rate reports that rate, not "should be a single spec"
    err = error_of({"agents": [{"type": "qlearning"}, {"type": "qlearning", "delta": 1.0}]})
    assert err.field == "agents.1.delta" and "less than 1" in err.problem
    err = error_of({"agents": {"type": "gradient_descent"}})
    assert err.field == "agents" and "gradient_descent" in err.problem and "valid list" not in err.problem
    err = error_of({"agents": {"alpha": 0.1}})
    assert err.field == "agents" and "missing 'type'" in err.problem and "qlearning" in err.problem
    err = error_of({"prices": {"m": 21}})
    assert err.field == "prices" and "benchmark_grid" in err.problem


def test_format_validation_error_lists_every_problem():
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as caught:
        Scenario.model_validate({"horizon": {"max_periods": 0}, "sessions": 0})
    problems = format_validation_error(caught.value)
    assert [field for field, _ in problems] == ["horizon.max_periods", "sessions"]


def test_malformed_files_raise_scenario_error(tmp_path):
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("market: {n_firms: 2\n")
    assert "not valid YAML" in str(error_of(bad_yaml))
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"market": }')
    assert "not valid JSON" in str(error_of(bad_json))
    a_list = tmp_path / "list.yaml"
    a_list.write_text("- 1\n- 2\n")
    assert "mapping" in str(error_of(a_list))
    text = tmp_path / "scenario.txt"
    text.write_text("seed: 1\n")
    assert "unsupported file type" in str(error_of(text))


def test_a_key_given_twice_is_an_error(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text("agents: {type: qlearning}\nseed: 1\nagents: {type: myopic}\n")
    err = error_of(path)
    assert "duplicate key 'agents'" in str(err) and "line 3" in str(err)


def test_yaml_reads_scientific_notation_as_numbers(tmp_path):
    path = tmp_path / "sci.yaml"
    path.write_text("agents: {type: qlearning, beta: 1e-6}\nhorizon: {max_periods: 2e6}\n")
    scenario = load_scenario(path)
    assert scenario.agents.beta == pytest.approx(1e-6)
    assert scenario.horizon.max_periods == 2_000_000


# --------------------------------------------------------------------------------------------- overrides


def test_override_values_are_parsed_as_yaml():
    assert parse_override("agents.alpha=0.05") == ("agents.alpha", 0.05)
    assert parse_override("horizon.stop_at_convergence=false") == ("horizon.stop_at_convergence", False)
    assert parse_override("regulation.price_cap=null") == ("regulation.price_cap", None)
    assert parse_override("market.costs=[1, 1.2]") == ("market.costs", [1, 1.2])
    assert parse_override("agents={type: ucb1}") == ("agents", {"type": "ucb1"})
    for text, number in [("1e-6", 1e-6), ("4E-6", 4e-6), ("1e9", 1e9), ("-2.5e+3", -2500.0), (".5e1", 5.0)]:
        _, value = parse_override(f"x={text}")
        assert isinstance(value, float) and value == pytest.approx(number), text


def test_override_float(baseline):
    changed = apply_overrides(baseline, ["agents.alpha=0.05"])
    assert changed.agents.alpha == 0.05
    assert baseline.agents.alpha == 0.15  # the original is untouched


def test_override_scientific_notation(baseline):
    changed = apply_overrides(baseline, ["agents.beta=1e-5"])
    assert isinstance(changed.agents.beta, float) and changed.agents.beta == pytest.approx(1e-5)
    assert apply_overrides(baseline, ["horizon.max_periods=2e6"]).horizon.max_periods == 2_000_000


def test_override_bool_and_top_level(baseline):
    changed = apply_overrides(baseline, ["horizon.stop_at_convergence=false", "seed=7", "sessions=10"])
    assert changed.horizon.stop_at_convergence is False
    assert (changed.seed, changed.sessions) == (7, 10)


def test_override_bare_leaf_name(baseline):
    changed = apply_overrides(baseline, ["alpha=0.05", "mu=0.5", "m=21", "n_firms=3"])
    assert changed.agents.alpha == 0.05
    assert changed.market.demand.mu == 0.5
    assert changed.prices.m == 21
    assert changed.market.n_firms == 3
    # a bare name finds the only firm that has the field
    mixed = apply_overrides(load_scenario("myopic-vs-bandit"), ["beta=1e-3"])
    assert mixed.agents[1].beta == pytest.approx(1e-3)


def test_override_indexed_firm(baseline):
    changed = apply_overrides(baseline, ["agents.1.alpha=0.05"])
    assert isinstance(changed.agents, list)  # the shared spec became one spec per firm
    assert [agent.alpha for agent in changed.agents] == [0.15, 0.05]
    mixed = apply_overrides(load_scenario("myopic-vs-bandit"), ["agents.1.epsilon=0.2"])
    assert mixed.agents[1].epsilon == 0.2 and mixed.agents[0].type == "myopic"
    costs = apply_overrides(baseline, ["market.costs.0=1.2"])
    assert costs.market.cost_vector() == [1.2, 1.0]


def test_override_broadcasts_over_the_agents_list(baseline):
    two = apply_overrides(baseline, ["agents=[{type: qlearning}, {type: qlearning, alpha: 0.3}]"])
    changed = apply_overrides(two, ["agents.beta=1e-5"])
    assert [agent.beta for agent in changed.agents] == pytest.approx([1e-5, 1e-5])
    assert [agent.alpha for agent in changed.agents] == [0.15, 0.3]


def test_broadcast_needs_the_field_in_every_firms_spec():
    mixed = load_scenario("myopic-vs-bandit")  # [myopic, epsilon_greedy]: only firm 1 has a beta
    err = override_error(mixed, ["agents.beta=1e-3"])
    assert err.field == "agents.0.beta" and "unknown field" in err.problem


def test_override_whole_sub_object(baseline):
    changed = apply_overrides(baseline, ["regulation.price_cap={basis: absolute, value: 1.8}"])
    assert changed.regulation.price_cap.basis == "absolute"
    assert changed.regulation.price_cap.value == 1.8
    demand = apply_overrides(baseline, ["market.demand={model: linear}", "market.costs=0", "intercept=2"])
    assert demand.market.demand == LinearDemand(intercept=2.0)
    cleared = apply_overrides(changed, ["regulation.price_cap=null"])
    assert cleared.regulation.price_cap is None


def test_override_creates_a_null_section(baseline):
    assert baseline.regulation.price_cap is None
    changed = apply_overrides(baseline, ["regulation.price_cap.value=1.8"])
    assert changed.regulation.price_cap.value == 1.8 and changed.regulation.price_cap.basis == "absolute"
    changed = apply_overrides(baseline, ["price_cap.value=0.1", "price_cap.basis=nash_markup"])
    assert (changed.regulation.price_cap.basis, changed.regulation.price_cap.value) == ("nash_markup", 0.1)
    steering = apply_overrides(baseline, ["regulation.steering.share=0.3"])
    assert steering.regulation.steering.share == 0.3


def test_override_ambiguous_name_lists_the_candidates(baseline):
    two = apply_overrides(baseline, ["agents=[{type: qlearning}, {type: qlearning}]"])
    err = override_error(two, ["beta=1e-5"])
    assert err.field == "beta"
    assert "ambiguous" in err.problem and "beta=1e-5" in err.problem
    assert "agents.0.beta" in err.problem and "agents.1.beta" in err.problem


def test_override_unknown_path(baseline):
    err = override_error(baseline, ["alhpa=0.1"])
    assert err.field == "alhpa" and "alhpa=0.1" in err.problem and "agents.alpha" in err.problem
    err = override_error(baseline, ["epsilon=0.1"])  # a field of another agent type
    assert err.field == "epsilon" and "no field" in err.problem
    err = override_error(baseline, ["agents.epsilon=0.1"])
    assert err.field == "agents.epsilon" and "unknown field" in err.problem
    err = override_error(baseline, ["horizon.max_period=10"])
    assert err.field == "horizon.max_period"
    err = override_error(baseline, ["agents.5.alpha=0.1"])
    assert "out of range" in err.problem
    err = override_error(baseline, ["market.n_firms.x=3"])
    assert err.field == "market.n_firms" and "not a section" in err.problem


def test_override_bad_syntax(baseline):
    err = override_error(baseline, ["alpha"])
    assert "no '='" in str(err) and "alpha" in str(err)
    with pytest.raises(ScenarioError):
        apply_overrides(baseline, ["=0.1"])
    with pytest.raises(ScenarioError):
        apply_overrides(baseline, ["agents..alpha=0.1"])


def test_override_invalid_value_names_the_field(baseline):
    err = override_error(baseline, ["agents.alpha=2"])
    assert err.field == "agents.alpha" and "agents.alpha=2" in err.problem
    err = override_error(baseline, ["horizon.max_periods=-1"])
    assert err.field == "horizon.max_periods"
    err = override_error(baseline, ["market.timing=sequential"])
    assert "klein_qlearning" in str(err)


def test_overrides_apply_in_order(baseline):
    # raising n_firms first leaves an intermediate state that does not validate; the end state does
    changed = apply_overrides(baseline, ["market.costs=[1, 1]", "market.n_firms=3", "market.costs=[1, 1, 1.5]"])
    assert changed.market.cost_vector() == [1.0, 1.0, 1.5]
    changed = apply_overrides(baseline, ["market.n_firms=3", "agents.2.alpha=0.3"])
    assert [agent.alpha for agent in changed.agents] == [0.15, 0.15, 0.3]


def test_override_dict_form(baseline):
    changed = apply_overrides(baseline, {"agents.alpha": 0.05, "regulation.price_cap": {"value": 1.8}})
    assert changed.agents.alpha == 0.05 and changed.regulation.price_cap.value == 1.8
    assert apply_overrides(baseline, []) is baseline


# --------------------------------------------------------------------------------------------- hash


def test_hash_is_stable_across_key_order_and_format(baseline):
    forward = {"market": {"n_firms": 2, "costs": 1.0}, "agents": {"type": "qlearning", "alpha": 0.1}, "seed": 3}
    backward = {"seed": 3, "agents": {"alpha": 0.1, "type": "qlearning"}, "market": {"costs": 1.0, "n_firms": 2}}
    assert scenario_hash(load_scenario(forward)) == scenario_hash(load_scenario(backward))
    assert scenario_hash(baseline) == scenario_hash(load_scenario("calvano-2020-baseline"))
    digest = scenario_hash(baseline)
    assert len(digest) == 64 and int(digest, 16) >= 0
    canonical = json.dumps(baseline.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    import hashlib

    assert digest == hashlib.sha256(canonical.encode()).hexdigest()


@pytest.mark.parametrize(
    "override",
    [
        "agents.alpha=0.150001",
        "agents.beta=4.1e-6",
        "market.demand.mu=0.26",
        "market.costs.1=1.01",
        "prices.xi=0.11",
        "seed=1",
        "sessions=999",
        "horizon.convergence_periods=100001",
        "logging.tail=99",
        "regulation.reprice_every=2",
        "name=another",
        "description=changed",
    ],
)
def test_hash_changes_with_any_parameter(baseline, override):
    assert scenario_hash(apply_overrides(baseline, [override])) != scenario_hash(baseline)


def test_preset_hashes_are_distinct():
    hashes = {scenario_hash(load_scenario(name)) for name in list_presets()}
    assert len(hashes) == len(list_presets())


# --------------------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".yml"])
@pytest.mark.parametrize("name", sorted(EXPECTED_PRESETS))
def test_dump_and_load_round_trip(tmp_path: Path, name, suffix):
    scenario = apply_overrides(load_scenario(name), ["agents.1.beta=1e-7"] if name == "myopic-vs-bandit" else [])
    path = dump_scenario(scenario, tmp_path / "out" / f"scenario{suffix}")
    assert path.is_file()
    text = path.read_text()
    document = json.loads(text) if suffix == ".json" else yaml.safe_load(text)  # plain parsers read it too
    assert document == scenario.model_dump(mode="json")
    again = load_scenario(path)
    assert again == scenario
    assert scenario_hash(again) == scenario_hash(scenario)
