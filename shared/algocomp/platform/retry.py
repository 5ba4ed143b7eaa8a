"""Retrying transient faults: exponential backoff with full jitter, bounded by a total budget.

One helper for every backend (S3 in algocomp.platform.storage, Postgres in algocomp.platform.unit_of_work, the
broker in Messaging.send_tasks): the caller says what is transient (`transient(error) -> bool`, one predicate per
backend, defined beside its client) and what it is doing (for the log line each retry writes). Any other error
goes through at once; a transient one is retried after a wait drawn uniformly from
[0, min(max_delay_s, base_s * 2**retry)) ("full jitter": many workers hit by the same outage do not come back in
step), until the budget (wall time since the first try, the tries themselves included) would be passed; then
`RetriesExhausted` is raised from the last error, saying how many tries over how long.

The clock, the sleep and the random draw are parameters, so the tests are deterministic.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from algocomp.platform.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")


class RetriesExhausted(Exception):
    """A transient fault outlasted the retry budget: `what` failed `tries` times over `elapsed_s` seconds; the last
    error is `__cause__` (and `last`)."""

    def __init__(self, what: str, tries: int, elapsed_s: float, last: BaseException) -> None:
        super().__init__(f"{what} failed {tries} times over {elapsed_s:.1f} s: {last}")
        self.what = what
        self.tries = tries
        self.elapsed_s = elapsed_s
        self.last = last

    def __reduce__(self) -> tuple[type[RetriesExhausted], tuple[str, int, float, BaseException]]:
        # picklable (Celery's pool sends a task's exception to its parent process)
        return type(self), (self.what, self.tries, self.elapsed_s, self.last)


@dataclass(frozen=True)
class Backoff:
    """How long to keep trying (`budget_s`, 0: one try only) and how to wait between tries."""

    budget_s: float
    base_s: float = 0.2
    max_delay_s: float = 5.0
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)
    random: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def delay(self, retry: int) -> float:
        """The wait before retry number `retry` (0 for the first retry): full jitter over the exponential step."""
        ceiling = min(self.max_delay_s, self.base_s * 2.0 ** min(retry, 60))
        return ceiling * self.random()

    def call(self, operation: Callable[[], T], *, transient: Callable[[BaseException], bool], what: str) -> T:
        """`operation()`, retried while it raises an error `transient` accepts and the budget allows."""
        start = self.clock()
        deadline = start + self.budget_s
        tries = 0
        while True:
            tries += 1
            try:
                return operation()
            except Exception as error:
                if not transient(error):
                    raise
                now = self.clock()
                if now >= deadline:
                    if tries == 1 and self.budget_s <= 0:
                        raise  # no retry asked for: the error as it is
                    raise RetriesExhausted(what, tries, now - start, error) from error
                wait = min(self.delay(tries - 1), deadline - now)
                log.warning(
                    "%s failed (try %d, %.1f s of a %.0f s budget left): %s; retrying in %.2f s",
                    what,
                    tries,
                    deadline - now,
                    self.budget_s,
                    describe(error),
                    wait,
                )
                self.sleep(wait)


def backoff_from(settings: Settings, budget_s: float | None = None) -> Backoff:
    """The settings' backoff (retry_base_s, retry_max_delay_s) with their retry_budget_s, or `budget_s`."""
    return Backoff(
        budget_s=settings.retry_budget_s if budget_s is None else budget_s,
        base_s=settings.retry_base_s,
        max_delay_s=settings.retry_max_delay_s,
    )


def describe(error: BaseException) -> str:
    """`Type: message` of an error, on one line."""
    message = " ".join(str(error).split())
    return f"{type(error).__name__}: {message}" if message else type(error).__name__
