"""Structured logs for every service: one JSON object per line off a terminal, one readable line on it, and
the id of the run being worked on in every record logged while it is bound.

    configure_logging("worker")
    with bind_run(run_id):
        logger.info("claimed")        # {"time": ..., "level": "INFO", "service": "worker", "run_id": "...", ...}

The run id lives in a contextvar, so it follows the code that works on the run (threads started inside the block
excepted) and asyncio tasks keep their own.

No secret reaches a log line: every formatted record (message, exception, extras) has the passwords of URLs in it
and each secret of the settings masked (`algocomp.platform.settings.redact`), whatever logger emitted it
(uvicorn, Celery, SQLAlchemy, boto3's debug output).
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TextIO

_run_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("algocomp_run_id", default=None)

# attributes every LogRecord has; anything else on a record came from `extra=` and is worth keeping
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
_HANDLER_MARK = "_algocomp_handler"
# extras that only make sense on a terminal (uvicorn's ANSI-coloured copy of its message)
_TERMINAL_ONLY_EXTRAS = frozenset({"color_message"})


def current_run_id() -> str | None:
    """The run id bound in this context, if any."""
    return _run_id.get()


@contextmanager
def bind_run(run_id: Any) -> Iterator[None]:
    """Tag every log record emitted inside the block with `run_id`."""
    token = _run_id.set(str(run_id) if run_id is not None else None)
    try:
        yield
    finally:
        _run_id.reset(token)


class RunIdFilter(logging.Filter):
    """Adds `run_id` (from bind_run, unless the call passed one in `extra`) and the service name to records."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "run_id", None) is None:
            record.run_id = _run_id.get()
        record.service = self.service
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, service, logger, message, run_id, exception, and any extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": getattr(record, "service", None),
            "logger": record.name,
            "message": record.getMessage(),
        }
        run_id = getattr(record, "run_id", None)
        if run_id is not None:
            entry["run_id"] = str(run_id)
        if record.exc_info:
            entry["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        for key, value in vars(record).items():
            if (
                key not in _RECORD_ATTRIBUTES
                and key not in entry
                and key not in {"service", "run_id"}
                and key not in _TERMINAL_ONLY_EXTRAS
            ):
                entry[key] = value
        return json.dumps(entry, default=str, ensure_ascii=False)


class ConsoleFormatter(logging.Formatter):
    """A readable line for a terminal: `12:00:01 INFO  worker run=<id> algocomp.x: message`."""

    def __init__(self) -> None:
        super().__init__(datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        run_id = getattr(record, "run_id", None)
        run = f" run={run_id}" if run_id else ""
        line = (
            f"{self.formatTime(record, self.datefmt)} {record.levelname:<5} {getattr(record, 'service', '')}{run} "
            f"{record.name}: {record.getMessage()}"
        )
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class RedactingFormatter(logging.Formatter):
    """Formats with `inner`, then masks URL passwords and each of `secrets` in the line."""

    def __init__(self, inner: logging.Formatter, secrets: Sequence[str] = ()) -> None:
        super().__init__()
        self.inner = inner
        # a secret inside a JSON line appears JSON-escaped
        self.secrets = sorted({*secrets, *(json.dumps(s)[1:-1] for s in secrets)}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        from algocomp.platform.settings import redact

        return redact(self.inner.format(record), self.secrets)


def _settings_secrets() -> list[str]:
    """The secrets of the process's settings; none when the settings cannot be read (logging must not fail)."""
    try:
        from algocomp.platform.settings import get_settings

        return get_settings().secrets()
    except Exception:  # noqa: BLE001 - e.g. invalid settings: that error is then reported, through these logs
        return []


def configure_logging(
    service: str,
    level: str | int = "INFO",
    *,
    stream: TextIO | None = None,
    json_lines: bool | None = None,
    secrets: Sequence[str] | None = None,
) -> logging.Handler:
    """Send the root logger's records to `stream` (stderr): JSON lines unless it is a terminal, with URL
    passwords and `secrets` (default: those of the process's settings) masked.

    Idempotent: calling it again (Celery's setup signals, uvicorn reloads) replaces the handler it installed
    before instead of adding a second one. Returns the handler.
    """
    stream = stream if stream is not None else sys.stderr
    if json_lines is None:
        json_lines = not (hasattr(stream, "isatty") and stream.isatty())
    handler = logging.StreamHandler(stream)
    inner = JsonFormatter() if json_lines else ConsoleFormatter()
    handler.setFormatter(RedactingFormatter(inner, _settings_secrets() if secrets is None else secrets))
    handler.addFilter(RunIdFilter(service))
    setattr(handler, _HANDLER_MARK, True)

    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, _HANDLER_MARK, False):
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else level.upper())
    logging.captureWarnings(True)
    return handler
