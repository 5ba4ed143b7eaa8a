"""Stored scenarios: one row per scenario fingerprint (scenario_hash), never changed once written."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from algocomp.platform.db.models import ScenarioRecord
from algocomp.scenarios import Scenario, scenario_hash


class ScenarioRepository:
    """Scenarios, read and stored within one session's transaction."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def store(self, scenario: Scenario) -> tuple[ScenarioRecord, bool]:
        """The record of `scenario`, inserted unless one with the same fingerprint exists; (record, created).

        INSERT ... ON CONFLICT DO NOTHING on the unique hash makes two concurrent stores of one scenario end with
        one row, without an IntegrityError for the slower one."""
        fingerprint = scenario_hash(scenario)
        inserted_id = self.session.execute(
            insert(ScenarioRecord)
            .values(
                id=uuid.uuid4(), name=scenario.name, scenario_hash=fingerprint, spec=scenario.model_dump(mode="json")
            )
            .on_conflict_do_nothing(index_elements=[ScenarioRecord.scenario_hash])
            .returning(ScenarioRecord.id)
        ).scalar_one_or_none()
        record = self.session.execute(
            select(ScenarioRecord).where(ScenarioRecord.scenario_hash == fingerprint)
        ).scalar_one()
        return record, inserted_id is not None

    def get(self, scenario_id: uuid.UUID) -> ScenarioRecord | None:
        return self.session.get(ScenarioRecord, scenario_id)

    def page(self, *, limit: int, offset: int) -> tuple[list[ScenarioRecord], int]:
        """A page of scenarios, newest first, and the total count."""
        total = self.session.execute(select(func.count()).select_from(ScenarioRecord)).scalar_one()
        records = self.session.execute(
            select(ScenarioRecord)
            .order_by(ScenarioRecord.created_at.desc(), ScenarioRecord.id)
            .limit(limit)
            .offset(offset)
        ).scalars()
        return list(records), total
