#!/usr/bin/env python3
"""Create the Docker stack's .env from .env.example, each value `generate` replaced by a fresh random secret.

    python3 scripts/make_env.py [--output PATH] [--force]

Never overwrites an existing file unless --force. The file is written with mode 0600. `make up` and `make
test-compose` call it; standard library only (it runs before .venv exists).
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / ".env.example"
PLACEHOLDER = "generate"


def render(example: str) -> str:
    """The example's text with every `NAME=generate` given a random URL-safe secret (no `:`, `@`, `/`, `%`:
    they go into URLs and `user:password` pairs)."""
    lines = []
    for line in example.splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#") and value.strip() == PLACEHOLDER:
            line = f"{name}={secrets.token_urlsafe(24)}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def write_env(output: Path, *, force: bool = False) -> bool:
    """Write `output` from .env.example unless it exists (or `force`); returns whether it was written."""
    if output.exists() and not force:
        return False
    output.parent.mkdir(parents=True, exist_ok=True)
    text = render(EXAMPLE.read_text())
    descriptor = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(text)
    os.chmod(output, 0o600)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=REPO / ".env")
    parser.add_argument("--force", action="store_true", help="replace an existing file")
    args = parser.parse_args(argv)
    if write_env(args.output, force=args.force):
        print(f"wrote {args.output} with fresh random secrets (from {EXAMPLE.name}; keep it out of git)")
    else:
        print(f"{args.output} exists; left as it is")
    return 0


if __name__ == "__main__":
    sys.exit(main())
