"""The two figures every run gets: how prices evolved while the agents learned, and how they answer a deviation.

matplotlib is imported inside the functions, so importing algocomp (and starting the command-line tool) does not
pay for it. The figures are drawn on a bare `matplotlib.figure.Figure` with the Agg canvas rather than through
pyplot: no global backend switch, no figure registry to leak, safe in worker threads and inside a notebook.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FIGURE_SIZE_IN = (8.0, 4.5)
FIGURE_DPI = 120

# Beyond this many distinct logged periods the sessions are sampled on a common grid of this many points.
MAX_PLOTTED_PERIODS = 2_000

# A period axis spanning at least this ratio (two decades) is drawn on a log scale; see plot_price_paths.
LOG_AXIS_MIN_SPAN = 100.0

NASH_STYLE: dict[str, Any] = {"color": "0.45", "linestyle": (0, (5, 3)), "linewidth": 1.2}
MONOPOLY_STYLE: dict[str, Any] = {"color": "0.05", "linestyle": (0, (9, 3)), "linewidth": 1.2}


def plot_price_paths(
    panel: pd.DataFrame,
    benchmarks: Any,
    path: str | Path,
    *,
    scenario_name: str | None = None,
) -> Path:
    """Mean price per firm over the sessions against the period, with the interquartile band across sessions and
    the Nash and monopoly prices as dashed reference lines; written as PNG to `path`.

    Uses the panel's kind == "interval" rows (each the mean over `periods` periods ending at `period`).

    Sessions do not share one period grid: a session that stops at convergence has no rows after it, and a long
    session's rows merge once it exceeds logging.max_intervals. So each session is read as a step function (a row
    stands for the periods it averages) on a common grid of periods, and a session that has ended is held at its
    last logged price (the price it converged to) instead of dropping out, which would make the late mean an
    average over the slowest learners only. The figure says so when it happens.

    The period axis is logarithmic when the run spans two decades or more (the usual 1e3 to 2e6 periods): learning
    runs on exponentially decaying exploration, so the early exploration phase, the collapse of exploration and
    the settled prices each get a readable share of the width; on a linear axis the first tenth of a run, where
    most of the change in behaviour happens for the fast learners, would be squeezed against the left edge.
    Shorter spans are drawn linearly.

    `benchmarks` is an algocomp.markets Benchmarks (or a mapping with nash_price and monopoly_price per firm, or
    None for no reference lines).
    """
    path = Path(path)
    figure, axes = _new_figure()
    title = _title("Mean price per firm", scenario_name)
    intervals = _interval_rows(panel)
    if intervals.empty:
        _draw_message(figure, axes, "no price path recorded", title)
        return _save(figure, path)

    periods = _common_periods(intervals)
    firms = sorted(int(firm) for firm in intervals["firm"].unique())
    n_sessions = int(intervals["session"].nunique())
    held_share = 0.0
    for colour_index, firm in enumerate(firms):
        firm_rows = intervals[intervals["firm"] == firm]
        prices, ended = _prices_on_periods(firm_rows, periods)
        held_share = max(held_share, float(ended.mean()))
        mean_price = np.nanmean(prices, axis=0)
        colour = f"C{colour_index % 10}"
        if prices.shape[0] > 1:
            lower, upper = np.nanpercentile(prices, [25.0, 75.0], axis=0)
            axes.fill_between(periods, lower, upper, color=colour, alpha=0.2, linewidth=0, step="pre")
        axes.plot(periods, mean_price, color=colour, linewidth=1.6, drawstyle="steps-pre", label=f"firm {firm}")
    _draw_benchmarks(axes, benchmarks, firms)

    if periods[-1] / max(periods[0], 1) >= LOG_AXIS_MIN_SPAN:
        axes.set_xscale("log")
        axes.set_xlabel("period (log scale)")
    else:
        axes.set_xlabel("period")
    axes.set_ylabel("price")
    session_word = "session" if n_sessions == 1 else "sessions"
    axes.set_title(f"{title}\nmean over {n_sessions} {session_word}", fontsize=11)
    _legend(
        axes,
        band_label="interquartile range\nacross sessions" if n_sessions > 1 else None,
        note="converged sessions are held\nat their last logged price" if held_share > 0 else None,
    )
    return _save(figure, path)


def plot_impulse_response(
    impulse: pd.DataFrame,
    benchmarks: Any,
    path: str | Path,
    *,
    deviating_firm: int = 0,
    scenario_name: str | None = None,
) -> Path:
    """Mean price per firm by tau around a forced deviation, against the path without it; written as PNG to `path`.

    The deviating firm is the one forced to its static best response at tau = 0 (logging.deviating_firm); every
    other firm is a rival, and a rival's price cut at tau = 1 followed by a return towards the pre-deviation level
    is the punishment that marks the high prices as collusive (Calvano et al. 2020, Fig. 4). The counterfactual
    (the limit cycle continued without a deviation) is dashed in the firm's colour. An empty table (no session
    recorded an impulse response) gives a figure that says so, so a run folder always has the same files.
    """
    path = Path(path)
    figure, axes = _new_figure()
    title = _title("Impulse response to a forced deviation", scenario_name)
    if impulse is None or impulse.empty:
        _draw_message(figure, axes, "no impulse response recorded", title)
        return _save(figure, path)

    from matplotlib.ticker import MaxNLocator

    means = impulse.groupby(["firm", "tau"], sort=True)[["price", "counterfactual_price"]].mean()
    firms = sorted(int(firm) for firm in impulse["firm"].unique())
    n_sessions = int(impulse["session"].nunique())
    for colour_index, firm in enumerate(firms):
        firm_means = means.loc[firm]
        taus = firm_means.index.to_numpy()
        colour = f"C{colour_index % 10}"
        role = "deviates at τ = 0" if firm == deviating_firm else "rival"
        axes.plot(
            taus,
            firm_means["price"].to_numpy(),
            color=colour,
            linewidth=1.8,
            marker="o",
            markersize=3.5,
            label=f"firm {firm} ({role})",
        )
        axes.plot(
            taus,
            firm_means["counterfactual_price"].to_numpy(),
            color=colour,
            linewidth=1.2,
            linestyle="--",
            alpha=0.8,
            label=f"firm {firm} without deviation",
        )
    axes.axvline(0.0, color="tab:red", linewidth=1.0, linestyle=":", label="forced deviation (τ = 0)")
    _draw_benchmarks(axes, benchmarks, firms)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("periods after the deviation (τ)")
    axes.set_ylabel("price")
    session_word = "session" if n_sessions == 1 else "sessions"
    axes.set_title(f"{title}\nmean over {n_sessions} {session_word}", fontsize=11)
    _legend(axes)
    return _save(figure, path)


# --------------------------------------------------------------------------------------------- helpers


def benchmark_prices(benchmarks: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """(nash_price, monopoly_price) per firm from a Benchmarks object or a mapping (e.g. Benchmarks.to_dict());
    None when no benchmarks are given."""
    if benchmarks is None:
        return None
    if isinstance(benchmarks, Mapping):
        nash, monopoly = benchmarks["nash_price"], benchmarks["monopoly_price"]
    else:
        nash, monopoly = benchmarks.nash_price, benchmarks.monopoly_price
    return np.atleast_1d(np.asarray(nash, dtype=float)), np.atleast_1d(np.asarray(monopoly, dtype=float))


def _interval_rows(panel: pd.DataFrame | None) -> pd.DataFrame:
    if panel is None or panel.empty:
        return pd.DataFrame(columns=["session", "firm", "period", "periods", "price"])
    rows = panel[panel["kind"].astype(str) == "interval"]
    rows = rows[["session", "firm", "period", "price"]].dropna(subset=["period", "price"])
    return rows.astype({"session": np.int64, "firm": np.int64, "period": np.int64, "price": np.float64})


def _common_periods(intervals: pd.DataFrame) -> np.ndarray:
    """The periods the sessions are compared at: every logged period end, or a grid over their range when there
    are too many to draw (log-spaced when the axis will be logarithmic)."""
    ends = np.unique(intervals["period"].to_numpy())
    if len(ends) <= MAX_PLOTTED_PERIODS:
        return ends.astype(float)
    first, last = float(max(ends[0], 1)), float(ends[-1])
    if last / first >= LOG_AXIS_MIN_SPAN:
        return np.geomspace(first, last, MAX_PLOTTED_PERIODS)
    return np.linspace(first, last, MAX_PLOTTED_PERIODS)


def _prices_on_periods(firm_rows: pd.DataFrame, periods: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One firm's price in every session at every period of `periods` (sessions x periods), reading each row as the
    mean over the periods up to its end; and, per session, whether it ended before the last period."""
    sessions = []
    ended = []
    for _, rows in firm_rows.groupby("session", sort=True):
        ordered = rows.sort_values("period")
        ends = ordered["period"].to_numpy()
        prices = ordered["price"].to_numpy()
        # The row covering period t is the first whose end is at or after t; past the last row, hold the last price.
        covering = np.minimum(np.searchsorted(ends, periods, side="left"), len(ends) - 1)
        sessions.append(prices[covering])
        ended.append(ends[-1] < periods[-1])
    return np.vstack(sessions), np.asarray(ended, dtype=bool)


def _draw_benchmarks(axes: Axes, benchmarks: Any, firms: list[int]) -> None:
    prices = benchmark_prices(benchmarks)
    if prices is None:
        return
    nash, monopoly = prices
    for name, values, style in (("Nash", nash, NASH_STYLE), ("monopoly", monopoly, MONOPOLY_STYLE)):
        if np.allclose(values, values[0]):
            axes.axhline(values[0], label=f"{name} price {values[0]:.4g}", **style)
            continue
        # Asymmetric firms: one reference line per firm, in the firm's colour.
        for colour_index, firm in enumerate(firms):
            if firm < len(values):
                firm_style: dict[str, Any] = {**style, "color": f"C{colour_index % 10}", "alpha": 0.7}
                axes.axhline(values[firm], label=f"{name} price, firm {firm}: {values[firm]:.4g}", **firm_style)


def _new_figure() -> tuple[Figure, Axes]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=FIGURE_SIZE_IN, dpi=FIGURE_DPI, layout="constrained")
    axes = figure.add_subplot()
    axes.grid(True, which="major", color="0.9", linewidth=0.8)
    axes.set_axisbelow(True)
    return figure, axes


def _legend(axes: Axes, *, band_label: str | None = None, note: str | None = None) -> None:
    """The legend outside the axes, on the right: with several firms, counterfactuals and two reference lines,
    any spot inside hides data. `band_label` adds one neutral swatch for the firms' shaded bands; `note` a line
    of explanation without a symbol."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles, labels = axes.get_legend_handles_labels()
    if band_label:
        handles.append(Patch(facecolor="0.55", alpha=0.3, linewidth=0))
        labels.append(band_label)
    if note:
        handles.append(Line2D([], [], linestyle="none"))
        labels.append(note)
    axes.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)


def _draw_message(figure: Figure, axes: Axes, message: str, title: str) -> None:
    axes.set_axis_off()
    axes.set_title(title, fontsize=11)
    axes.text(0.5, 0.5, message, ha="center", va="center", fontsize=14, color="0.3", transform=axes.transAxes)


def _title(subject: str, scenario_name: str | None) -> str:
    return f"{scenario_name}: {subject[0].lower()}{subject[1:]}" if scenario_name else subject


def _save(figure: Figure, path: Path) -> Path:
    figure.savefig(path, dpi=FIGURE_DPI, format=path.suffix.lstrip(".") or "png")
    return path
