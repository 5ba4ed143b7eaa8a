"""Progress reporting of a running run: the engine's progress callback and should_stop.

Each report is one unit of work: the heartbeat (with the progress columns) commits, then the `progress` event
goes out. Progress is reported after every finished session, at most once per settings.progress_interval_s
except the first and the last, so even a run shorter than the interval shows progress. should_stop refreshes the
heartbeat too (at most every CANCEL_CHECK_INTERVAL_S) and is how a cancel request reaches the engine. The lease
itself does not depend on either: the run's Heartbeat thread (algocomp_worker.heartbeat) keeps it whatever the
engine does, and what that thread learns (a cancel request, a lost claim) is acted on here, at the engine's next
check.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from algocomp.engine.results import ProgressEvent
from algocomp.output.writer import json_ready
from algocomp.platform.db.runs import Claim
from algocomp.platform.unit_of_work import UnitOfWork
from algocomp_worker.context import WorkerContext
from algocomp_worker.heartbeat import Heartbeat

log = logging.getLogger(__name__)

# How often should_stop may hit the database: the engine polls it between every chunk of every session.
CANCEL_CHECK_INTERVAL_S = 0.5


def progress_data(event: ProgressEvent) -> dict[str, Any]:
    """The payload of a "progress" event (docs/architecture.md, "Progress events"); NaN becomes null."""
    return json_ready(
        {
            "sessions_done": event.sessions_done,
            "sessions_total": event.sessions_total,
            "share_done": event.share_done,
            "periods_done": event.periods_done,
            "mean_price": event.mean_price,
            "profit_gain": event.profit_gain,
            "elapsed_s": event.elapsed_s,
        }
    )


class ProgressReporter:
    """Throttled writes of a claimed run's progress to its row and its stream. A lost claim raises ClaimLost out
    of the engine's callback, which ends the attempt."""

    def __init__(self, context: WorkerContext, claim: Claim, heartbeat: Heartbeat | None = None) -> None:
        self.context = context
        self.claim = claim
        self.heartbeat = heartbeat
        self.interval_s = context.settings.progress_interval_s
        self._last_report = -math.inf
        self._last_check = -math.inf
        self._cancel_requested = False

    def progress(self, event: ProgressEvent) -> None:
        if self.heartbeat is not None:
            self.heartbeat.check()
        now = time.monotonic()
        final = event.sessions_done >= event.sessions_total
        if not final and now - self._last_report < self.interval_s:
            return
        self._last_report = self._last_check = now

        def report(uow: UnitOfWork) -> bool:
            requested = uow.runs.heartbeat(
                self.claim,
                progress=event.share_done,
                sessions_done=event.sessions_done,
                periods_done=event.periods_done,
            )
            uow.publish(self.claim.run_id, "progress", progress_data(event))
            return requested

        requested = self.context.units_of_work.run(report, what=f"report the progress of run {self.claim.run_id}")
        self._cancel_requested = self._cancel_requested or requested

    def should_stop(self) -> bool:
        if self.heartbeat is not None:
            self.heartbeat.check()  # a lost claim ends the attempt (ClaimLost out of the engine)
            self._cancel_requested = self._cancel_requested or self.heartbeat.cancel_requested
        if self._cancel_requested:
            return True
        now = time.monotonic()
        if now - self._last_check >= CANCEL_CHECK_INTERVAL_S:
            self._last_check = now
            self._cancel_requested = self.context.units_of_work.run(
                lambda uow: uow.runs.heartbeat(self.claim), what=f"check run {self.claim.run_id} for a cancel"
            )
            if self._cancel_requested:
                log.info("cancellation requested for run %s; stopping at the next chunk", self.claim.run_id)
        return self._cancel_requested
