"""The run's files: written to a scratch folder and uploaded under runs/{id}/ before the run is marked
succeeded, so a reader who sees the status finds them. A run that ends failed or cancelled keeps only its run.log,
and an attempt that takes over a run first removes what the attempt before it left (remove_partial_files)."""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from pathlib import Path

from algocomp.engine.results import ExperimentResult
from algocomp.output.writer import write_run
from algocomp.platform.db.runs import Claim
from algocomp.platform.storage import Storage, run_key, run_prefix, upload_run_folder
from algocomp_worker.run_log import RunLogCapture

log = logging.getLogger(__name__)

# The run folder is scratch, uploaded then deleted: in memory where the system offers it, so its durable writes
# (fsync) cost nothing.
SCRATCH_DIR = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def upload_results(storage: Storage, claim: Claim, result: ExperimentResult, run_log: RunLogCapture) -> dict[str, str]:
    """Write the run's tables, summary, scenario, config and log, upload them; returns name -> S3 key. Plots are
    drawn later by the follow-up task, off the run's critical path."""
    with tempfile.TemporaryDirectory(prefix=f"algocomp-run-{claim.run_id}-", dir=SCRATCH_DIR) as scratch:
        folder = Path(scratch)
        write_run(result, folder, workers=1, command=["algocomp-worker", "run", str(claim.run_id)], plots=False)
        log.info("uploading the run folder to s3://%s/runs/%s/", storage.bucket, claim.run_id)
        run_log.write(folder)
        return upload_run_folder(storage, claim.run_id, folder)


def upload_log(storage: Storage, claim: Claim, run_log: RunLogCapture) -> None:
    """Upload run.log alone (for a failed or cancelled run). A failing upload is logged: it must not hide the
    run's own outcome."""
    try:
        with tempfile.TemporaryDirectory(prefix=f"algocomp-run-{claim.run_id}-") as scratch:
            run_log.write(Path(scratch))
            upload_run_folder(storage, claim.run_id, scratch)
    except Exception:
        log.exception("could not upload the log of run %s", claim.run_id)


def remove_partial_files(storage: Storage, run_id: uuid.UUID, *, keep_log: bool) -> list[str]:
    """Delete what is stored under the run's prefix (all of it, or all but run.log); returns the keys deleted.
    Best effort: a failure is logged (the files are unreferenced, never listed as a result's artifacts)."""
    keep = {run_key(run_id, "log")} if keep_log else set()
    deleted: list[str] = []
    try:
        for key in storage.list(run_prefix(run_id)):
            if key not in keep:
                storage.delete(key)
                deleted.append(key)
    except Exception:
        log.exception("could not remove the partial files of run %s (removed: %s)", run_id, deleted or "none")
    if deleted:
        log.info("removed %d partial files of run %s: %s", len(deleted), run_id, ", ".join(deleted))
    return deleted
