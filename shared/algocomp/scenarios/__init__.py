"""Scenarios: the validated description of an experiment, its presets, loading, overrides and fingerprint.

    from algocomp.scenarios import load_scenario, apply_overrides, scenario_hash
    scenario = apply_overrides(load_scenario("calvano-2020-baseline"), ["alpha=0.05"])

The format is documented in docs/scenario-format.md.
"""

from algocomp.agents import registry
from algocomp.scenarios.loader import (
    PRESETS_DIR,
    ScenarioError,
    dump_scenario,
    format_validation_error,
    list_presets,
    load_scenario,
    parse_yaml,
    preset_path,
    scenario_hash,
)
from algocomp.scenarios.model import (
    LEARNING_AGENT_TYPES,
    AgentSpec,
    Audit,
    BenchmarkGrid,
    BertrandDemand,
    DemandNoise,
    DemandSpec,
    ExplicitPrices,
    Horizon,
    LinearDemand,
    LoggingSpec,
    LogitDemand,
    MarketSpec,
    PriceLevel,
    PriceSpec,
    RangeGrid,
    Regulation,
    Scenario,
    Steering,
    UniformQInit,
    UnitDemand,
)
from algocomp.scenarios.overrides import apply_overrides, parse_override

# Agent kinds from modules named in ALGOCOMP_AGENTS join the format now that it is complete (agents.registry).
registry.load_agent_modules()

__all__ = [
    "LEARNING_AGENT_TYPES",
    "PRESETS_DIR",
    "AgentSpec",
    "Audit",
    "BenchmarkGrid",
    "BertrandDemand",
    "DemandNoise",
    "DemandSpec",
    "ExplicitPrices",
    "Horizon",
    "LinearDemand",
    "LoggingSpec",
    "LogitDemand",
    "MarketSpec",
    "PriceLevel",
    "PriceSpec",
    "RangeGrid",
    "Regulation",
    "Scenario",
    "ScenarioError",
    "Steering",
    "UniformQInit",
    "UnitDemand",
    "apply_overrides",
    "dump_scenario",
    "format_validation_error",
    "list_presets",
    "load_scenario",
    "parse_override",
    "parse_yaml",
    "preset_path",
    "scenario_hash",
]
