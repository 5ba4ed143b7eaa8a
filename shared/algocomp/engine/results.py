"""What an experiment returns: per-session results, the panel, the impulse responses and the summaries.

The panel is long: one row per session, logged row and firm, with these columns
    session, kind ("interval": means over `periods` periods ending at `period`; "tail": one period),
    period, periods, firm, price, cost, quantity, profit, consumer_surplus, total_welfare
(consumer_surplus and total_welfare are market-level and repeat on each firm's row).

The impulse table has one row per session, firm and tau (tau = -1 is the period before the forced deviation,
tau = 0 the deviation itself): session, firm, tau, price, relative_price (price over the firm's price at tau = -1,
the form of Calvano et al.'s impulse-response figures), profit, counterfactual_price, counterfactual_profit,
where the counterfactual is the limit cycle continued without the deviation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

PANEL_COLUMNS = [
    "session",
    "kind",
    "period",
    "periods",
    "firm",
    "price",
    "cost",
    "quantity",
    "profit",
    "consumer_surplus",
    "total_welfare",
]

IMPULSE_COLUMNS = [
    "session",
    "firm",
    "tau",
    "price",
    "relative_price",
    "profit",
    "counterfactual_price",
    "counterfactual_profit",
]


@dataclass
class ProgressEvent:
    """Reported after every finished session (and so at least once per experiment)."""

    sessions_done: int
    sessions_total: int
    periods_done: int  # periods simulated by the finished sessions
    mean_price: float  # over finished sessions' limit cycles
    profit_gain: float  # mean over finished sessions
    elapsed_s: float

    @property
    def share_done(self) -> float:
        return self.sessions_done / self.sessions_total if self.sessions_total else 1.0


def _frame(columns: list[str], parts: list[dict[str, np.ndarray]]) -> pd.DataFrame:
    """One DataFrame from many sessions' column arrays (building it once is far cheaper than concatenating
    a frame per session)."""
    if not parts:
        return pd.DataFrame(columns=columns)
    return pd.DataFrame({c: np.concatenate([p[c] for p in parts]) for c in columns}, columns=columns)


@dataclass
class SessionResult:
    """One session: its logged rows and impulse response as column arrays, and its scalar metrics
    (see metrics.session)."""

    session: int
    seed: int
    panel_columns: dict[str, np.ndarray]  # PANEL_COLUMNS
    impulse_columns: dict[str, np.ndarray]  # IMPULSE_COLUMNS
    metrics: dict[str, Any]

    @property
    def panel(self) -> pd.DataFrame:
        return _frame(PANEL_COLUMNS, [self.panel_columns])

    @property
    def impulse(self) -> pd.DataFrame:
        return _frame(IMPULSE_COLUMNS, [self.impulse_columns])


@dataclass
class ExperimentResult:
    scenario: Any  # algocomp.scenarios.model.Scenario, with seed and sessions as run
    benchmarks: Any  # algocomp.markets.benchmarks.Benchmarks
    grid: np.ndarray  # the price grid, one row per firm (shape n_firms x m)
    sessions: list[SessionResult] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    elapsed_s: float = 0.0
    cancelled: bool = False

    @property
    def panel(self) -> pd.DataFrame:
        return _frame(PANEL_COLUMNS, [s.panel_columns for s in self.sessions])

    @property
    def impulse(self) -> pd.DataFrame:
        return _frame(IMPULSE_COLUMNS, [s.impulse_columns for s in self.sessions])

    @property
    def session_summaries(self) -> list[dict[str, Any]]:
        return [s.metrics for s in self.sessions]
