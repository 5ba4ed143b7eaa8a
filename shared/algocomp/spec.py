"""The base of every section of a scenario (algocomp.scenarios.model) and of every agent spec (algocomp.agents), and
the error of a scenario at fault (re-exported as algocomp.scenarios.ScenarioError; here so that agent modules the
scenario format imports can raise it)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, model_serializer


class Spec(BaseModel):
    """Base for every section: unknown keys are errors, so a typo never silently keeps a default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Fields added after scenarios were first stored: a dump leaves them out while they hold their default, so
    # every scenario written before they existed keeps its dump and its fingerprint (scenario_hash).
    later_fields: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _dump(self, handler):
        data = handler(self)
        for name in self.later_fields:
            if name in data and getattr(self, name) == type(self).model_fields[name].default:
                del data[name]
        return data


class ScenarioError(ValueError):
    """A scenario that cannot be read or does not validate.

    `field` is the dotted path of the field at fault ("horizon.max_periods", "agents.0.alpha"), or "" when the
    problem is not about one field (a missing file, malformed YAML); `problem` says what is wrong.
    """

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}" if field else problem)
