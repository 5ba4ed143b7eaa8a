"""The heartbeat of a claimed run: a thread of the worker process refreshes `heartbeat_at` every
settings.heartbeat_interval_s for as long as the run executes, whatever the engine is doing (a long session, the
upload of a large run folder), so a lease of a few heartbeats (settings.lease_s) is enough and a dead worker's run
is claimed again within it.

The thread only writes the heartbeat and reads two answers: whether cancellation was requested, and whether the
claim was lost (another attempt took the run over after this one stalled past its lease). The run's own thread
acts on them (ProgressReporter.should_stop, `check()` before uploading and finishing): a lost claim stops the run.
The thread stops when the run's block ends, and it never writes after it was told to stop; a heartbeat that
could still land after the finish matches no row (every write is conditional on `status = running` and the
attempt), so it cannot touch the outcome.

The engine's kernels hold the GIL for one chunk of a session at a time (a fraction of a second); the lease must
be longer than the longest such stretch, which it is by far.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from types import TracebackType

from algocomp.platform.db.runs import Claim, ClaimLost
from algocomp_worker.context import WorkerContext

log = logging.getLogger(__name__)

# How long stop() waits for a heartbeat in flight (one UPDATE) before leaving the daemon thread behind.
STOP_TIMEOUT_S = 10.0


class Heartbeat:
    """A context manager: the heartbeat thread of one claim, started on entry and stopped on exit."""

    def __init__(self, context: WorkerContext, claim: Claim, interval_s: float | None = None) -> None:
        self.context = context
        self.claim = claim
        self.interval_s = interval_s if interval_s is not None else context.settings.heartbeat_interval_s
        self.cancel_requested = False
        self.lost: ClaimLost | None = None
        self.beats = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Heartbeat:
        # the thread runs in a copy of this context: its log lines carry the run id (algocomp.platform.logs)
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._loop,), name=f"heartbeat-{self.claim.run_id}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread and wait for it (idempotent)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(STOP_TIMEOUT_S)
            if thread.is_alive():
                log.warning("the heartbeat of run %s did not stop within %.0f s", self.claim.run_id, STOP_TIMEOUT_S)

    def check(self) -> None:
        """Raise ClaimLost if a heartbeat found the run taken over."""
        if self.lost is not None:
            raise ClaimLost(str(self.lost))

    def __enter__(self) -> Heartbeat:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                with self.context.units_of_work() as uow:
                    requested = uow.runs.heartbeat(self.claim)
            except ClaimLost as lost:
                if not self._stop.is_set():  # after stop() the run may be finished: no longer ours, as expected
                    self.lost = lost
                    log.warning("%s; the run stops at its next check", lost)
                return
            except Exception:  # noqa: BLE001 - a failed heartbeat is retried at the next interval; the lease allows it
                log.warning(
                    "heartbeat of run %s failed; retrying in %.1f s", self.claim.run_id, self.interval_s, exc_info=True
                )
                continue
            self.beats += 1
            if requested and not self.cancel_requested:
                self.cancel_requested = True
                log.info("cancellation requested for run %s (seen by its heartbeat)", self.claim.run_id)
