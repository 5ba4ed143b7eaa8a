"""The web dashboard's build and the browser its tests drive: `python tools/dashboard_build.py build|chromium`.

`build` (what `make dashboard`, and so `make install`, runs) installs the front end's packages exactly as
dashboard/package-lock.json pins them (`npm ci`, from the npm registry; no install script runs), type-checks the
sources (`tsc --noEmit`) and builds the bundle into services/api/algocomp_api/dashboard/static/, which the API
serves at /. The bundle is generated output: never committed, rebuilt when a source changes. Node.js (18 or newer)
and npm are taken from the machine, or installed with apt-get (Debian's `nodejs` and `npm`) when missing and this
is root; otherwise the error names the command to run.

`chromium` makes sure Debian's Chromium is at /usr/bin/chromium (installed with apt-get as root when missing) and
prints its path: the browser tests (tests/services/test_dashboard.py) drive it headless with Playwright.

Standard library only, so it runs before the virtual environment exists.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SOURCE_DIR = REPO_ROOT / "dashboard"
BUNDLE_DIR = REPO_ROOT / "services" / "api" / "algocomp_api" / "dashboard" / "static"
CHROMIUM = Path("/usr/bin/chromium")
MIN_NODE_MAJOR = 18


class DashboardError(RuntimeError):
    """The dashboard cannot be built (or its browser installed); the message says what to do."""


def say(message: str) -> None:
    print(f"[dashboard] {message}", flush=True)


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def apt_install(packages: list[str], why: str) -> None:
    """Install Debian packages as root; otherwise fail naming the command to run."""
    command = f"apt-get install -y {' '.join(packages)}"
    if shutil.which("apt-get") is None:
        raise DashboardError(
            f"{why}: {', '.join(packages)} missing and this machine has no apt-get; install them with its package "
            "manager and try again"
        )
    if not _is_root():
        raise DashboardError(f"{why}: {', '.join(packages)} missing; run `sudo {command}` and try again")
    say(f"{why}: installing {', '.join(packages)} with apt-get (a few minutes the first time)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", *packages]):
        result = subprocess.run(argv, env=env, text=True, capture_output=True)
        if result.returncode != 0:
            raise DashboardError(
                f"`{' '.join(argv)}` failed ({result.returncode}):\n{(result.stdout + result.stderr)[-3000:]}"
            )


def node_major(node: str) -> int | None:
    result = subprocess.run([node, "--version"], text=True, capture_output=True)
    match = re.match(r"v(\d+)\.", result.stdout.strip())
    return int(match.group(1)) if match else None


def ensure_node() -> tuple[str, str]:
    """(node, npm) paths, installing Debian's nodejs and npm when either is missing."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        apt_install(["nodejs", "npm"], "building the dashboard needs Node.js and npm")
        node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise DashboardError("node or npm is still missing after installing them; install Node.js 18 or newer")
    major = node_major(node)
    if major is None or major < MIN_NODE_MAJOR:
        raise DashboardError(
            f"the dashboard's build needs Node.js {MIN_NODE_MAJOR} or newer; {node} is version {major}: install a "
            "newer Node.js (e.g. Debian 12's nodejs package) and try again"
        )
    return node, npm


def _npm(npm: str, *args: str) -> None:
    say("$ npm " + " ".join(args))
    result = subprocess.run([npm, *args], cwd=SOURCE_DIR)
    if result.returncode != 0:
        raise DashboardError(f"`npm {' '.join(args)}` failed in {SOURCE_DIR} (exit {result.returncode}); see above")


def build() -> Path:
    """Install the locked packages, type-check and build the bundle; returns the bundle's folder."""
    _, npm = ensure_node()
    # exactly the lock file's versions; --ignore-scripts: no package runs code at install (esbuild's binary comes
    # as its platform's optional package, which needs no script)
    _npm(npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error")
    _npm(npm, "run", "check")
    _npm(npm, "run", "build")
    index = BUNDLE_DIR / "index.html"
    if not index.is_file():
        raise DashboardError(f"the build wrote no {index}")
    say(f"built {BUNDLE_DIR.relative_to(REPO_ROOT)}/ (served by the API at /)")
    return BUNDLE_DIR


def ensure_chromium() -> Path:
    """Debian's Chromium at /usr/bin/chromium, installed with apt-get when missing (as root)."""
    if not CHROMIUM.exists():
        apt_install(["chromium"], "the dashboard's browser tests need Chromium")
    if not CHROMIUM.exists():
        raise DashboardError(f"{CHROMIUM} is still missing after installing Debian's chromium package")
    return CHROMIUM


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["build", "chromium"])
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            build()
        else:
            print(ensure_chromium())
    except DashboardError as error:
        print(f"[dashboard] error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
