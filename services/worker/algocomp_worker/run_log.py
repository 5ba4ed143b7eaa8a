"""The run's own log: the lines written while it executes, uploaded as its run.log."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from algocomp.platform.storage import ARTIFACTS

RUN_LOG_FILE = ARTIFACTS["log"]
RUN_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RunLogCapture(logging.Handler):
    """Keeps the log lines written while one run executes.

    A prefork worker process executes one task at a time, so every record of the process during the run belongs
    to it (the engine's, the writer's, the storage client's warnings).
    """

    def __init__(self, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter(RUN_LOG_FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # noqa: BLE001 - a record that cannot be formatted must not break the run
            self.handleError(record)

    def write(self, folder: Path) -> Path:
        path = folder / RUN_LOG_FILE
        path.write_text("\n".join(self.lines) + "\n", encoding="utf-8")
        return path


@contextmanager
def capturing_run_log() -> Iterator[RunLogCapture]:
    capture = RunLogCapture()
    root = logging.getLogger()
    root.addHandler(capture)
    # The run log wants this package's INFO lines even when the process logs only warnings.
    own = logging.getLogger("algocomp_worker")
    previous_level = own.level
    if own.getEffectiveLevel() > logging.INFO:
        own.setLevel(logging.INFO)
    try:
        yield capture
    finally:
        root.removeHandler(capture)
        own.setLevel(previous_level)
