"""How fast the dashboard's runs page loads with 1,000 runs in the database: `make bench-dashboard`.

    python benchmarks/bench_dashboard.py [--api-url http://127.0.0.1:8000] [--runs 1000] [--loads 10]

Against the running stack (`make dev`; its database is the settings' ALGOCOMP_DATABASE_URL): a team of its own
(`bench-dashboard`) and a user with a fresh token are created, the team is given `--runs` finished runs (inserted
directly, as the worker would have left them: succeeded, failed or cancelled, so no worker picks one up), and
headless Chromium (Debian's, at /usr/bin/chromium, driven by Playwright) then loads the dashboard's runs page
`--loads` times, each in a fresh browser context (nothing cached, the token put in sessionStorage as the sign-in
page does). One load is timed from the navigation's start to the moment the page shows its first page of runs
(25 rows and the pager's "of 1,000"): the document, the bundle, the API's GET /runs and the rendering. The target
is under 1 s; the script prints every load and exits 1 when the median misses it.

`insert_runs` is shared with the paging test (tests/services/test_dashboard.py).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.orm import Session

from algocomp.platform.db import Run, RunStatus
from algocomp.platform.db.accounts import AccountRepository
from algocomp.platform.db.models import Team
from algocomp.platform.db.runs import new_run
from algocomp.platform.db.scenarios import ScenarioRepository
from algocomp.platform.settings import get_settings
from algocomp.scenarios import apply_overrides, load_scenario

TARGET_S = 1.0
TEAM = "bench-dashboard"
FINISHED = (RunStatus.succeeded, RunStatus.failed, RunStatus.cancelled)
TOKEN_KEY = "algocomp.token"  # dashboard/src/api.ts


def insert_runs(engine: Engine, team_id: uuid.UUID, owner_id: uuid.UUID | None, count: int) -> list[uuid.UUID]:
    """`count` finished runs of the Calvano baseline (seeds 0..count-1) for the team, created a second apart (the
    newest last), in one transaction; their ids, oldest first. No result rows: they are for lists, not run pages."""
    base = load_scenario("calvano-2020-baseline")
    now = datetime.now(UTC)
    ids = []
    with Session(engine) as session, session.begin():
        record, _ = ScenarioRepository(session).store(base, team_id=team_id)
        for index in range(count):
            scenario = apply_overrides(base, {"seed": index, "sessions": 4})
            run = new_run(record.id, scenario, [f"seed={index}"], team_id=team_id, owner_id=owner_id)
            run.status = FINISHED[index % len(FINISHED)]
            run.created_at = now - timedelta(seconds=count - index)
            run.queued_at = run.created_at
            run.finished_at = run.created_at + timedelta(seconds=1)
            run.progress = 1.0 if run.status is RunStatus.succeeded else 0.5
            run.sessions_done = 4 if run.status is RunStatus.succeeded else 2
            session.add(run)
            ids.append(run.id)
    return ids


def bench_user(engine: Engine) -> tuple[uuid.UUID, str]:
    """(team id, token) of a fresh member of the benchmark's team."""
    with Session(engine) as session, session.begin():
        _, token = AccountRepository(session).create_user(f"bench-dashboard-{uuid.uuid4().hex[:8]}", TEAM)
    with Session(engine) as session:
        team_id = session.execute(select(Team.id).where(Team.name == TEAM)).scalar_one()
    return team_id, token


def team_runs(engine: Engine, team_id: uuid.UUID) -> int:
    with Session(engine) as session:
        return int(session.execute(select(func.count()).select_from(Run).where(Run.team_id == team_id)).scalar_one())


def load_once(browser, api_url: str, token: str, expect_total: str) -> float:  # browser: playwright Browser
    """Seconds from the navigation's start until the runs page shows its first page of runs."""
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    try:
        context.add_init_script(f"sessionStorage.setItem({TOKEN_KEY!r}, {token!r})")
        page = context.new_page()
        page.goto(f"{api_url}/#/runs", wait_until="commit")
        page.wait_for_function(
            "total => document.querySelectorAll('table.runs tbody tr').length === 25 && "
            "(document.querySelector('.pager span')?.textContent || '').includes('of ' + total)",
            arg=expect_total,
            timeout=30_000,
        )
        return float(page.evaluate("performance.now()")) / 1000
    finally:
        context.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--api-url", default="http://127.0.0.1:8000")
    parser.add_argument("--runs", type=int, default=1000, help="runs the benchmark's team holds (default 1000)")
    parser.add_argument("--loads", type=int, default=10, help="page loads timed (default 10)")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    engine = create_engine(get_settings().database_url)
    try:
        team_id, token = bench_user(engine)
        missing = args.runs - team_runs(engine, team_id)
        if missing > 0:
            started = time.perf_counter()
            insert_runs(engine, team_id, None, missing)
            print(f"inserted {missing} runs for team {TEAM} in {time.perf_counter() - started:.1f} s")
        total = team_runs(engine, team_id)
    finally:
        engine.dispose()
    print(f"team {TEAM} has {total:,} runs; loading {args.api_url}/#/runs {args.loads} times (fresh context each)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, headless=True)
        try:
            load_once(browser, args.api_url, token, f"{total:,}")  # warm-up: the API's first query, the OS's caches
            times = []
            for index in range(args.loads):
                seconds = load_once(browser, args.api_url, token, f"{total:,}")
                times.append(seconds)
                print(f"  load {index + 1}: {seconds * 1000:.0f} ms")
        finally:
            browser.close()
    median = statistics.median(times)
    print(
        f"runs page with {total:,} runs in the database: median {median * 1000:.0f} ms, min {min(times) * 1000:.0f} "
        f"ms, max {max(times) * 1000:.0f} ms (target < {TARGET_S * 1000:.0f} ms)"
    )
    return 0 if median < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
