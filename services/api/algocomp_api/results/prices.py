"""A succeeded run's price paths as a small JSON series, for charts (the dashboard's), from its panel on S3.

The panel holds one row per session, firm and logged interval (`kind` = interval: the interval's mean, `period` its
last period) and the last periods one by one (`kind` = tail). A chart needs neither every session nor every row:
the series here is the interval rows binned on the period axis into at most `points` bins, the mean price of each
firm in each bin over the sessions asked for (all of them, or one), with the bin's mean period as its x. One
session's series also carries its tail (the limit cycle), its last `points` periods.

Bounded: the panel is spooled from S3 (to a temporary file past SPOOL_BYTES) and read by record batches of a few
columns, so memory stays a few batches whatever the run's size; the answer has at most `points` values per firm
(plus the tail). A succeeded run's panel never changes, so answers are kept in a small per-process cache. pyarrow is
imported on the first such request, not with the API.
"""

from __future__ import annotations

import math
import tempfile
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from algocomp.platform.db import Result
from algocomp.platform.storage import Storage
from algocomp_api.errors import ApiError
from algocomp_api.results.service import artifact_key

DEFAULT_POINTS = 500
MAX_POINTS = 2000
SPOOL_BYTES = 8 * 2**20
BATCH_ROWS = 65_536
CACHE_ENTRIES = 64

_cache: OrderedDict[tuple[uuid.UUID, int | None, int], dict[str, Any]] = OrderedDict()
_cache_lock = threading.Lock()


@dataclass(frozen=True)
class PanelSource:
    """What the price paths of a succeeded run are read from: its panel's key and its summary's benchmarks."""

    run_id: uuid.UUID
    key: str
    n_firms: int
    nash_price: list[Any]
    monopoly_price: list[Any]

    @classmethod
    def of(cls, result: Result) -> PanelSource:
        """From the run's result row (404 `artifact_not_found` when the run stored no panel)."""
        benchmarks = result.summary.get("benchmarks") or {}
        return cls(
            run_id=result.run_id,
            key=artifact_key(result, "panel"),
            n_firms=int(result.summary.get("n_firms") or 0),
            nash_price=list(benchmarks.get("nash_price") or []),
            monopoly_price=list(benchmarks.get("monopoly_price") or []),
        )


def price_paths(storage: Storage, source: PanelSource, *, session: int | None, points: int) -> dict[str, Any]:
    """The run's binned price paths (see the module's doc); 404 naming `session` when the panel has no such
    session."""
    cache_key = (source.run_id, session, points)
    with _cache_lock:
        cached = _cache.get(cache_key)
        if cached is not None:
            _cache.move_to_end(cache_key)
            return cached
    answer = _compute(storage, source, session=session, points=points)
    with _cache_lock:
        _cache[cache_key] = answer
        while len(_cache) > CACHE_ENTRIES:
            _cache.popitem(last=False)
    return answer


def _compute(storage: Storage, source: PanelSource, *, session: int | None, points: int) -> dict[str, Any]:
    # imported on the first request for a price path, not with the API: pyarrow adds ~45 MB to a process, which
    # every API process would carry otherwise (tests/services/test_limits.py holds the API's memory)
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    n_firms = source.n_firms
    try:
        chunks, _, _ = storage.open_stream(source.key)
    except KeyError as absent:
        raise ApiError(
            404, "artifact_not_found", f"the panel of run {source.run_id} is recorded but missing from storage"
        ) from absent
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spooled:
        for chunk in chunks:
            spooled.write(chunk)
        spooled.seek(0)
        panel = pq.ParquetFile(spooled)
        columns = ["session", "kind", "period", "firm", "price"]
        max_period = 0
        sessions: set[int] = set()
        for batch in panel.iter_batches(batch_size=BATCH_ROWS, columns=["session", "period"]):
            if batch.num_rows:
                max_period = max(max_period, int(pc.max(batch.column("period")).as_py()))
                sessions.update(np.unique(batch.column("session").to_numpy()).tolist())
        if session is not None and session not in sessions:
            raise ApiError(
                404,
                "session_not_found",
                f"run {source.run_id} has no session {session}; its panel holds sessions "
                f"{min(sessions, default=0)} to {max(sessions, default=-1)}",
                field="session",
            )
        n_firms = max(n_firms, 1)
        width = max(1.0, max_period / points)
        count = np.zeros((n_firms, points))
        price_sum = np.zeros((n_firms, points))
        period_sum = np.zeros((n_firms, points))
        tail: dict[int, dict[int, float]] = {}
        for batch in panel.iter_batches(batch_size=BATCH_ROWS, columns=columns):
            table = pa.Table.from_batches([batch])
            if session is not None:
                table = table.filter(pc.equal(table.column("session"), session))
            kinds = pc.cast(table.column("kind"), pa.string())
            intervals = table.filter(pc.equal(kinds, "interval"))
            period = intervals.column("period").to_numpy().astype(np.float64)
            firm = intervals.column("firm").to_numpy().astype(np.int64)
            price = intervals.column("price").to_numpy()
            finite = np.isfinite(price) & (firm >= 0) & (firm < n_firms)
            bins = np.minimum(np.floor(period / width), points - 1).astype(np.int64)
            flat = (firm * points + bins)[finite]
            size = n_firms * points
            count += np.bincount(flat, minlength=size).reshape(n_firms, points)
            price_sum += np.bincount(flat, weights=price[finite], minlength=size).reshape(n_firms, points)
            period_sum += np.bincount(flat, weights=period[finite], minlength=size).reshape(n_firms, points)
            if session is not None:
                tails = table.filter(pc.equal(kinds, "tail"))
                rows = zip(*(tails.column(name).to_pylist() for name in ("period", "firm", "price")))
                for p, f, v in rows:
                    tail.setdefault(int(p), {})[int(f)] = v
    used = count.sum(axis=0) > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        means = price_sum[:, used] / count[:, used]
        periods = period_sum[:, used].sum(axis=0) / count[:, used].sum(axis=0)
    answer: dict[str, Any] = {
        "run_id": str(source.run_id),
        "session": session,
        "sessions": 1 if session is not None else len(sessions),
        "n_firms": n_firms,
        "period": [round(float(p), 3) for p in periods],
        "price": [[_number(v) for v in row] for row in means],
        "nash_price": [_number(v) for v in source.nash_price],
        "monopoly_price": [_number(v) for v in source.monopoly_price],
        "tail": None,
    }
    if session is not None:
        last = sorted(tail)[-points:]
        answer["tail"] = {
            "period": last,
            "price": [[_number(tail[p].get(f)) for p in last] for f in range(n_firms)],
        }
    return answer


def _number(value: Any) -> float | None:
    """A float for JSON: NaN and infinities (and None) as null."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None
