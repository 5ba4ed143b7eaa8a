"""Stored scenarios: one row per team and scenario fingerprint (scenario_hash), never changed once written."""

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

    def store(self, scenario: Scenario, *, team_id: uuid.UUID) -> tuple[ScenarioRecord, bool]:
        """The team's record of `scenario`, inserted unless the team has one with the same fingerprint;
        (record, created).

        INSERT ... ON CONFLICT DO NOTHING on the unique (team, hash) makes two concurrent stores of one scenario
        end with one row, without an IntegrityError for the slower one."""
        fingerprint = scenario_hash(scenario)
        inserted_id = self.session.execute(
            insert(ScenarioRecord)
            .values(
                id=uuid.uuid4(),
                team_id=team_id,
                name=scenario.name,
                scenario_hash=fingerprint,
                spec=scenario.model_dump(mode="json"),
            )
            .on_conflict_do_nothing(index_elements=[ScenarioRecord.team_id, ScenarioRecord.scenario_hash])
            .returning(ScenarioRecord.id)
        ).scalar_one_or_none()
        record = self.session.execute(
            select(ScenarioRecord).where(ScenarioRecord.team_id == team_id, ScenarioRecord.scenario_hash == fingerprint)
        ).scalar_one()
        return record, inserted_id is not None

    def get(self, scenario_id: uuid.UUID, *, team_id: uuid.UUID | None = None) -> ScenarioRecord | None:
        """The scenario, or None if there is none (or it is another team's, when `team_id` is given)."""
        record = self.session.get(ScenarioRecord, scenario_id)
        if record is None or (team_id is not None and record.team_id != team_id):
            return None
        return record

    def page(self, *, team_id: uuid.UUID, limit: int, offset: int) -> tuple[list[ScenarioRecord], int]:
        """A page of the team's scenarios, newest first, and the total count."""
        mine = ScenarioRecord.team_id == team_id
        total = self.session.execute(select(func.count()).select_from(ScenarioRecord).where(mine)).scalar_one()
        records = self.session.execute(
            select(ScenarioRecord)
            .where(mine)
            .order_by(ScenarioRecord.created_at.desc(), ScenarioRecord.id)
            .limit(limit)
            .offset(offset)
        ).scalars()
        return list(records), total
