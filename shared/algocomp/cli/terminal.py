"""Terminal helpers shared by the local and the remote subcommands."""

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
