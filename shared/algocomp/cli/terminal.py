"""Terminal helpers shared by the local and the remote subcommands: progress bars and number formatting."""

from __future__ import annotations

import os
import sys
from typing import Any


def terminal_columns(stream: Any) -> int | None:
    """The terminal's width, or None when the stream is not a terminal or reports no size."""
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError):
        return None
    return columns or None


def session_bar(total: int | None) -> Any:
    """A tqdm progress bar of sessions on stderr (callers only create one when stderr is a terminal)."""
    from tqdm import tqdm

    # A pseudo-terminal that reports no size (some CI runners, `script`) would make tqdm draw a bar 0 wide.
    width = terminal_columns(sys.stderr)
    return tqdm(
        total=total,
        unit="session",
        desc="sessions",
        file=sys.stderr,
        dynamic_ncols=width is not None,
        ncols=None if width is not None else 100,
        nrows=None if width is not None else 24,
    )


def is_number(value: Any) -> bool:
    """A value worth printing as a number (not None, not a flag, not NaN)."""
    try:
        return value is not None and not isinstance(value, bool) and float(value) == float(value)
    except (TypeError, ValueError):
        return False


def fmt_number(value: Any, digits: int = 4) -> str:
    if isinstance(value, (list, tuple)) or getattr(value, "ndim", 0) == 1:
        return " ".join(fmt_number(v, digits) for v in value)
    return f"{float(value):.{digits}f}" if is_number(value) else "n/a"


def fmt_share(value: Any) -> str:
    return f"{100 * float(value):.0f}%" if is_number(value) else "n/a"


def fmt_count(value: Any) -> str:
    return f"{float(value):,.0f}" if is_number(value) else "n/a"


def fmt_rate(value: Any) -> str:
    return f"{float(value):.3g}" if is_number(value) else "n/a"


def labelled(label: str, text: str) -> str:
    return f"  {label:<18}{text}"
