"""The one home of sweep state: how a sweep row is built, its live state derived from its runs, the record of
its end, and its cancellation.

A sweep has no status of its own while it runs: its state is read from its runs' light columns (status,
progress, cell), so it is right after any restart. The first reader that sees every run over records the
terminal status and finish time (a conditional update, so concurrent readers agree), which lets lists show
finished sweeps without reading their runs. The repository works inside its caller's transaction and never
commits (see algocomp.platform.unit_of_work).
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from algocomp.aggregate.grid import cell_overrides, cell_values
from algocomp.platform.db.models import TERMINAL_STATUSES, Run, RunStatus, Sweep
from algocomp.platform.db.runs import RunRepository
from algocomp.scenarios import Scenario

STATUS_NAMES = [status.value for status in RunStatus]


@dataclass
class CellState:
    """One cell of the grid: its coordinates, its runs (one per seed) and how far they are."""

    index: int
    overrides: list[str]
    values: dict[str, Any]
    counts: dict[str, int]
    progress: float
    run_ids: list[uuid.UUID]


@dataclass
class SweepState:
    """A sweep's aggregate state, derived from its runs."""

    status: RunStatus
    counts: dict[str, int]
    progress: float
    runs: int
    per_cell: list[CellState] = field(default_factory=list)
    last_finished_at: datetime | None = None

    @property
    def over(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def snapshot(self) -> dict[str, Any]:
        """The JSON of a stream event: overall and per-cell counts and progress."""
        return {
            "status": self.status.value,
            "runs": self.runs,
            "counts": self.counts,
            "progress": self.progress,
            "cells": [{"index": c.index, "counts": c.counts, "progress": c.progress} for c in self.per_cell],
        }


def derive_status(counts: Counter[str], cancel_requested: bool) -> RunStatus:
    """queued until a run starts, running until every run is over; then succeeded if all succeeded, cancelled if
    the sweep was cancelled (or runs were, none failing), else failed."""
    total = sum(counts.values())
    terminal = sum(counts[s.value] for s in TERMINAL_STATUSES)
    if total and terminal == total:
        if counts[RunStatus.succeeded.value] == total:
            return RunStatus.succeeded
        if cancel_requested or counts[RunStatus.failed.value] == 0:
            return RunStatus.cancelled
        return RunStatus.failed
    if counts[RunStatus.running.value] or terminal:
        return RunStatus.running
    return RunStatus.queued


def _zero_counts() -> Counter[str]:
    return Counter({name: 0 for name in STATUS_NAMES})


def new_sweep(
    name: str,
    base: Scenario,
    grid: dict[str, list[Any]],
    seeds: list[int],
    sessions: int,
    *,
    team_id: uuid.UUID,
    owner_id: uuid.UUID | None,
) -> Sweep:
    """A queued sweep of `base` over `grid` for a team, launched by `owner_id`, not yet added to a session."""
    return Sweep(
        id=uuid.uuid4(),
        team_id=team_id,
        owner_id=owner_id,
        name=name,
        base_spec=base.model_dump(mode="json"),
        grid=grid,
        seeds=seeds,
        sessions=sessions,
        status=RunStatus.queued.value,
        cancel_requested=False,
    )


class SweepRepository:
    """Sweeps, read and changed within one session's transaction."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, sweep: Sweep) -> None:
        self.session.add(sweep)
        self.session.flush()
        self.session.refresh(sweep)  # created_at

    def get(self, sweep_id: uuid.UUID, *, team_id: uuid.UUID | None = None) -> Sweep | None:
        """The sweep, or None if there is none (or it is another team's, when `team_id` is given)."""
        sweep = self.session.get(Sweep, sweep_id)
        if sweep is None or (team_id is not None and sweep.team_id != team_id):
            return None
        return sweep

    def page(self, *, team_id: uuid.UUID, limit: int, offset: int) -> tuple[list[Sweep], int]:
        """A page of the team's sweeps, newest first, and the total count."""
        mine = Sweep.team_id == team_id
        total = self.session.execute(select(func.count()).select_from(Sweep).where(mine)).scalar_one()
        sweeps = self.session.execute(
            select(Sweep).where(mine).order_by(Sweep.created_at.desc(), Sweep.id).limit(limit).offset(offset)
        ).scalars()
        return list(sweeps), total

    def state(self, sweep: Sweep) -> SweepState:
        """The sweep's state from one read of its runs' light columns; records the end the first time it is seen
        (see record_if_over)."""
        rows = self.session.execute(
            select(Run.id, Run.cell, Run.status, Run.progress, Run.finished_at)
            .where(Run.sweep_id == sweep.id)
            .order_by(Run.cell, Run.seed)
        ).all()
        cells: dict[int, list[Any]] = defaultdict(list)
        for row in rows:
            cells[row.cell].append(row)
        counts = _zero_counts()
        per_cell = []
        for index, values in enumerate(cell_values(sweep.grid)):
            members = cells.get(index, [])
            cell_counts = _zero_counts()
            for row in members:
                cell_counts[row.status.value] += 1
            counts.update(cell_counts)
            per_cell.append(
                CellState(
                    index=index,
                    overrides=cell_overrides(values),
                    values=values,
                    counts=dict(cell_counts),
                    progress=sum(r.progress for r in members) / len(members) if members else 0.0,
                    run_ids=[r.id for r in members],
                )
            )
        finished = [row.finished_at for row in rows if row.finished_at is not None]
        state = SweepState(
            status=derive_status(counts, sweep.cancel_requested),
            counts=dict(counts),
            progress=sum(r.progress for r in rows) / len(rows) if rows else 0.0,
            runs=len(rows),
            per_cell=per_cell,
            last_finished_at=max(finished) if finished else None,
        )
        self.record_if_over(sweep, state)
        return state

    def record_if_over(self, sweep: Sweep, state: SweepState) -> None:
        """Store the terminal status and finish time the first time a reader sees every run over."""
        if state.over and sweep.finished_at is None:
            self.session.execute(
                update(Sweep)
                .where(Sweep.id == sweep.id, Sweep.finished_at.is_(None))
                .values(status=state.status.value, finished_at=state.last_finished_at or func.now())
            )
            self.session.flush()
            self.session.refresh(sweep)

    def reopen(self, sweep_id: uuid.UUID) -> None:
        """A run of the sweep is queued again (RunRepository.retry): the sweep is not over any more; its end is
        recorded again when its readers next see every run over."""
        self.session.execute(
            update(Sweep)
            .where(Sweep.id == sweep_id, Sweep.finished_at.is_not(None))
            .values(status=RunStatus.running.value, finished_at=None)
        )

    def cancel(self, sweep: Sweep) -> list[Run]:
        """Mark the sweep cancelled, cancel its queued runs at once and ask its running ones to stop; returns the
        runs cancelled now (each is owed its terminal event)."""
        sweep.cancel_requested = True
        self.session.flush()
        cancelled = RunRepository(self.session).cancel_sweep_runs(sweep.id)
        self.session.refresh(sweep)
        return cancelled
