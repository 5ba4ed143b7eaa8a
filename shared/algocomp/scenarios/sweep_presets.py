"""Built-in sweeps: a published grid over a preset, by name (`algocomp sweep calvano-2020-figure1`, or
POST /sweeps with {"sweep_preset": ...}).

A sweep preset is a YAML file in sweeps/ beside the scenario presets:

    name: calvano-2020-figure1
    description: one line on what it reproduces, then what our runs showed
    scenario: calvano-2020-baseline   # the base: a scenario preset
    grid: {agents.alpha: [...], agents.beta: [...]}   # the cells: the product of the paths' values
    seeds: [0]                        # experiment seeds of each cell (or N for 0..N-1)
    sessions: 100                     # sessions of each run
    overrides: []                     # "PATH=VALUE" changes of the base before the grid

Every run it makes is the base scenario with the preset's overrides, then the cell's values (algocomp.aggregate.grid).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from algocomp.aggregate.grid import cell_overrides, cell_values
from algocomp.scenarios.loader import PRESETS_DIR, format_validation_error, load_scenario, parse_yaml
from algocomp.scenarios.overrides import apply_overrides
from algocomp.spec import ScenarioError

SWEEP_PRESETS_DIR = Path(__file__).resolve().parent / "sweeps"


class SweepPreset(BaseModel):
    """A named sweep: its base preset, grid, seeds, sessions per run and overrides."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100)
    description: str = ""
    scenario: str = Field(description="the base scenario: a preset's name")
    grid: dict[str, list[Any]] = Field(min_length=1, description="{dotted path: [values]}; cells are their product")
    seeds: list[int] | int = Field([0], description="experiment seeds of every cell, or N for seeds 0..N-1")
    sessions: int | None = Field(None, ge=1, description="sessions of each run (default: the base scenario's)")
    overrides: list[str] = Field(default_factory=list, description='"PATH=VALUE" changes of the base, before the grid')

    @field_validator("grid")
    @classmethod
    def _non_empty_axes(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for path, values in grid.items():
            if not values:
                raise ValueError(f"grid.{path} needs at least one value")
        return grid

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, seeds: list[int] | int) -> list[int] | int:
        if isinstance(seeds, int) and seeds < 1:
            raise ValueError("a seed count must be at least 1")
        if isinstance(seeds, list) and not seeds:
            raise ValueError("needs at least one seed")
        return seeds

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

    @property
    def cells(self) -> int:
        count = 1
        for values in self.grid.values():
            count *= len(values)
        return count

    @property
    def runs(self) -> int:
        return self.cells * len(self.seed_list)

    def first_line(self) -> str:
        return self.description.strip().splitlines()[0] if self.description.strip() else ""


def list_sweep_presets() -> dict[str, SweepPreset]:
    """The built-in sweeps by name, sorted."""
    return {path.stem: load_sweep_preset(path.stem) for path in sorted(SWEEP_PRESETS_DIR.glob("*.yaml"))}


def is_sweep_preset(name: str) -> bool:
    return (
        bool(name)
        and "/" not in name
        and "\\" not in name
        and not name.startswith(".")
        and (SWEEP_PRESETS_DIR / f"{name}.yaml").is_file()
    )


def load_sweep_preset(name: str) -> SweepPreset:
    """The built-in sweep `name`; ScenarioError naming the field at fault, or listing the sweeps if none is named so."""
    if not is_sweep_preset(name):
        known = ", ".join(path.stem for path in sorted(SWEEP_PRESETS_DIR.glob("*.yaml")))
        raise ScenarioError("sweep_preset", f"no sweep preset named {name!r}; available: {known or 'none'}")
    path = SWEEP_PRESETS_DIR / f"{name}.yaml"
    document = parse_yaml(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict):
        raise ScenarioError("", f"sweep preset {name}: the file is not a mapping")
    try:
        preset = SweepPreset.model_validate(document)
    except ValidationError as error:
        where, message = format_validation_error(error)[0]
        raise ScenarioError(where, f"sweep preset {name}: {message}") from error
    if preset.name != name:
        raise ScenarioError("name", f"sweep preset {name}: its name field says {preset.name!r}")
    if not (PRESETS_DIR / f"{preset.scenario}.yaml").is_file():
        raise ScenarioError("scenario", f"sweep preset {name}: no scenario preset named {preset.scenario!r}")
    return preset


def cell_scenarios(preset: SweepPreset) -> list[Any]:
    """Every cell's scenario (the base, the preset's overrides, the cell's values), validated: a ScenarioError
    names the cell's field at fault. Seeds and sessions are the runs' business, not the cells'."""
    base = apply_overrides(load_scenario(preset.scenario), preset.overrides)
    if preset.sessions is not None:
        base = apply_overrides(base, [f"sessions={preset.sessions}"])
    return [apply_overrides(base, cell_overrides(values)) for values in cell_values(preset.grid)]
