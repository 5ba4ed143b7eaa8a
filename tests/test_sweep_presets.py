"""The built-in sweeps: each names an existing preset, every cell of its grid is a valid scenario, and a name is
never both a scenario preset and a sweep preset (`algocomp sweep NAME` must mean one thing)."""

from __future__ import annotations

import pytest

from algocomp.scenarios import ScenarioError, list_presets
from algocomp.scenarios.sweep_presets import cell_scenarios, is_sweep_preset, list_sweep_presets, load_sweep_preset

SWEEPS = list_sweep_presets()


def test_there_are_built_in_sweeps_and_no_name_is_also_a_scenario_preset() -> None:
    assert "calvano-2020-figure1" in SWEEPS
    assert not set(SWEEPS) & set(list_presets())


@pytest.mark.parametrize("name", sorted(SWEEPS))
def test_every_cell_of_a_built_in_sweep_is_a_valid_scenario(name: str) -> None:
    preset = SWEEPS[name]
    scenarios = cell_scenarios(preset)
    assert len(scenarios) == preset.cells
    for scenario in scenarios:
        if preset.sessions is not None:
            assert scenario.sessions == preset.sessions
    # the grid's values reach the scenarios, the last path varying fastest
    paths = list(preset.grid)
    first, last = scenarios[0].model_dump(), scenarios[-1].model_dump()
    for path in paths:
        section, field = path.split(".")
        assert first[section][field] == preset.grid[path][0]
        assert last[section][field] == preset.grid[path][-1]


def test_figure1_covers_the_papers_ranges() -> None:
    preset = SWEEPS["calvano-2020-figure1"]
    alphas, betas = preset.grid["agents.alpha"], preset.grid["agents.beta"]
    assert (len(alphas), len(betas), preset.sessions) == (10, 10, 100)
    assert (min(alphas), max(alphas)) == (0.025, 0.25)
    assert (min(betas), max(betas)) == (2e-6, 2e-5)
    assert alphas == sorted(alphas) and betas == sorted(betas)
    assert 0.15 in alphas and 4e-6 in betas  # the baseline is one of its cells


@pytest.mark.parametrize("name", ["calvano-2020-figure9", "../presets/calvano-2020-baseline", "", ".hidden"])
def test_an_unknown_sweep_is_refused_naming_the_field_and_listing_the_sweeps(name: str) -> None:
    assert not is_sweep_preset(name)
    with pytest.raises(ScenarioError) as refused:
        load_sweep_preset(name)
    assert refused.value.field == "sweep_preset"
    assert "calvano-2020-figure1" in refused.value.problem
