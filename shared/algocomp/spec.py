"""The base of every section of a scenario (algocomp.scenarios.model) and of every agent spec (algocomp.agents)."""

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
