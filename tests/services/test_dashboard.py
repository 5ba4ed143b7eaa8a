"""The web dashboard in headless Chromium against the real stack (Postgres, Redis, the S3 endpoint, the API under
uvicorn, the Celery worker and aggregator processes): sign in; launch the Calvano baseline (4 sessions, a short
horizon) from the editor and watch its progress reach 100% over SSE; its summary and price chart; a 2x2 sweep and
its heatmap; two runs compared; a wrong override's error naming the field; another team's run not reachable; the
runs list paged.

Chromium is Debian's (/usr/bin/chromium, installed with apt-get when missing: tools/dashboard_build.py), driven by
Playwright; the bundle is built first when missing. Every page's screenshot is written to out/screenshots/
(git-ignored). The tests run in file order in one browser page: the later ones use the runs the earlier made.
No page may break its Content-Security-Policy: every console message about it fails the test.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dashboard_build
import httpx
import pytest
from bench_dashboard import insert_runs
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright
from sqlalchemy import Engine

from algocomp.platform.settings import Settings

from .conftest import ServiceProcess, bearer, create_user, start_api, team_of, wait_until

SCREENSHOTS = dashboard_build.REPO_ROOT / "out" / "screenshots"
RUN_TIMEOUT_MS = 180_000
# long enough (about 2 s of simulation on a busy core) for the page to show it running before it succeeds
SHORT_RUN = ["horizon.max_periods=4000000", "logging.interval=20000"]
RUN_ID = re.compile(r"#/runs/([0-9a-f-]{36})$")
SWEEP_ID = re.compile(r"#/sweeps/([0-9a-f-]{36})$")

# what the tests pass to each other (the run launched first, the sweep's)
state: dict[str, Any] = {}


@pytest.fixture(scope="module")
def chromium() -> Path:
    try:
        return dashboard_build.ensure_chromium()
    except dashboard_build.DashboardError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="module")
def bundle() -> Path:
    """The dashboard's bundle, built when missing (`make test` builds it before the suite)."""
    if not (dashboard_build.BUNDLE_DIR / "index.html").is_file():
        try:
            dashboard_build.build()
        except dashboard_build.DashboardError as error:
            pytest.fail(str(error), pytrace=False)
    return dashboard_build.BUNDLE_DIR


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def stack(
    bundle: Path,
    service_env: Settings,
    worker_process: ServiceProcess,
    aggregator_process: ServiceProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """The base URL of an API process of this module's own (its memory, grown by the price paths' reads, is not
    the session's API's, whose peak tests/services/test_limits.py holds), with the workers and the aggregator."""
    process, base_url = start_api(tmp_path_factory.mktemp("dashboard-api"))
    try:
        yield base_url
    finally:
        process.stop()


@pytest.fixture(scope="module")
def page(browser: Browser, stack: str) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1366, "height": 768}, base_url=stack)
    page = context.new_page()
    page.set_default_timeout(20_000)
    problems: list[str] = []
    page.on("console", lambda message: _watch_console(message, problems))
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.problems = problems  # type: ignore[attr-defined]
    yield page
    context.close()


def _watch_console(message: ConsoleMessage, problems: list[str]) -> None:
    if "Content Security Policy" in message.text or "Refused to" in message.text:
        problems.append(message.text)


@pytest.fixture(autouse=True)
def no_csp_violation(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "page" in request.fixturenames:
        page: Page = request.getfixturevalue("page")
        problems: list[str] = page.problems  # type: ignore[attr-defined]
        assert not problems, f"the page broke its policy or raised: {problems}"


def needs(key: str) -> str:
    """What an earlier test of this module made (the run, the sweep); skips when it was not run or failed."""
    if key not in state:
        pytest.skip(f"needs the {key} an earlier test of this module launches")
    return str(state[key])


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"dashboard-{name}.png"), full_page=True)


def go(page: Page, stack: str, fragment: str) -> None:
    """Open a page's URL as a shared link would be (a fresh load, the tab's session kept)."""
    page.goto("about:blank")
    page.goto(f"{stack}/{fragment}")


def open_editor(page: Page, stack: str, preset: str = "calvano-2020-baseline") -> None:
    go(page, stack, "#/scenarios")
    page.get_by_role("link", name=f"Open {preset} in the editor").click()
    expect(page.get_by_test_id("check-status")).to_contain_text("valid", timeout=20_000)


def test_the_page_is_served_at_root_with_its_own_policy(stack: str) -> None:
    answer = httpx.get(f"{stack}/")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "style-src 'self';" in policy and "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    script = re.search(r'src="(/assets/[^"]+\.js)"', answer.text)
    assert script is not None and "<script>" not in answer.text  # no inline script
    asset = httpx.get(f"{stack}{script.group(1)}")
    assert asset.status_code == 200 and "immutable" in asset.headers["cache-control"]
    assert httpx.get(f"{stack}/assets/..%2Fmain.py").status_code == 404


def test_sign_in(page: Page, stack: str, api_token: str) -> None:
    go(page, stack, "#/runs")
    page.get_by_label("API token").fill("not-a-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("unknown, revoked or expired")
    screenshot(page, "sign-in")
    page.get_by_label("API token").fill(api_token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("navigation", name="sections")).to_be_visible()
    expect(page.get_by_role("heading", name="Runs", level=1)).to_be_visible()
    # the token is kept for the tab's session only, and sent as a header
    assert page.evaluate("sessionStorage.getItem('algocomp.token')") == api_token
    assert page.evaluate("localStorage.length") == 0


def test_scenarios_page_lists_presets(page: Page, stack: str) -> None:
    go(page, stack, "#/scenarios")
    presets = page.get_by_role("region", name="Built-in presets")
    expect(presets.get_by_role("link", name="calvano-2020-baseline", exact=True)).to_be_visible()
    expect(page.get_by_role("region", name="Stored scenarios of your team")).to_be_visible()
    screenshot(page, "scenarios")
    presets.get_by_role("link", name="calvano-2020-baseline", exact=True).click()
    expect(page.locator("pre.spec")).to_contain_text('"alpha": 0.15')
    screenshot(page, "scenario")


def test_launch_the_baseline_and_watch_it_live(page: Page, stack: str) -> None:
    open_editor(page, stack)
    page.get_by_label("Sessions").fill("4")
    page.get_by_label("Overrides (one PATH=VALUE per line)").fill("\n".join(SHORT_RUN))
    expect(page.get_by_test_id("check-status")).to_contain_text("valid")
    screenshot(page, "editor")
    page.get_by_role("button", name="Launch run").click()
    page.wait_for_url(RUN_ID)
    run_id = RUN_ID.search(page.url).group(1)  # type: ignore[union-attr]
    state["run"] = run_id

    bar = page.get_by_role("progressbar", name="run progress")
    seen: list[int] = []
    deadline = time.monotonic() + RUN_TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        value = int(bar.get_attribute("aria-valuenow") or 0)
        if not seen or seen[-1] != value:
            seen.append(value)
        if value == 100:
            break
        time.sleep(0.1)
    assert seen[-1] == 100, f"the progress stopped at {seen}"
    assert seen[0] < 100, f"the run was over before the page showed it: {seen}"  # so it moved live, no reload
    # the page was never reloaded: the sessions count comes from the stream's progress events
    expect(page.get_by_test_id("progress-detail")).to_contain_text("4 of 4 sessions")
    expect(page.locator(".status-line .status")).to_have_text("succeeded", timeout=30_000)
    summary = page.get_by_test_id("summary")
    expect(summary).to_contain_text("Δ (profit gain)", timeout=30_000)
    expect(summary).to_contain_text("Consumer surplus loss")
    expect(summary).to_contain_text("Punishment after a deviation")
    expect(page.get_by_test_id("price-chart").locator("canvas")).to_be_visible(timeout=30_000)
    expect(page.get_by_test_id("price-chart")).to_contain_text("Nash price")
    expect(page.get_by_test_id("impulse-chart").locator("canvas")).to_be_visible()
    expect(page.get_by_test_id("delta-chart").locator("canvas")).to_be_visible()
    expect(page.get_by_role("link", name="Panel (Parquet)")).to_have_attribute("href", re.compile("panel.parquet"))
    screenshot(page, "run")
    # one session's path and its limit cycle
    page.get_by_label("Sessions shown").select_option("1")
    expect(page.get_by_text("Last periods of session 1")).to_be_visible()
    # the run is in the list, succeeded
    go(page, stack, "#/runs")
    row = page.locator(f"tr[data-run='{run_id}']")
    expect(row).to_contain_text("succeeded")
    expect(row.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
    screenshot(page, "runs")


def test_a_wrong_override_shows_the_fields_error(page: Page, stack: str) -> None:
    open_editor(page, stack)
    page.get_by_label("Overrides (one PATH=VALUE per line)").fill("agents.alpha=abc")
    error = page.locator("#overrides-error")
    expect(error).to_contain_text("agents.alpha")
    expect(error).to_contain_text("valid number")
    page.get_by_role("button", name="Launch run").click()
    expect(error).to_contain_text("agents.alpha")
    assert "#/editor" in page.url  # nothing launched
    screenshot(page, "editor-error")


def test_a_2x2_sweep_shows_its_heatmap(page: Page, stack: str) -> None:
    open_editor(page, stack)
    page.get_by_label("Sessions").fill("2")
    page.get_by_label("Overrides (one PATH=VALUE per line)").fill("horizon.max_periods=5000\nlogging.interval=500")
    page.get_by_label("Grid axes (one PATH = [VALUES] per line)").fill(
        'agents.alpha = [0.1, 0.2]\nregulation.price_cap = [null, {"basis": "absolute", "value": 1.75}]'
    )
    page.get_by_role("button", name="Launch sweep").click()
    page.wait_for_url(SWEEP_ID)
    state["sweep"] = SWEEP_ID.search(page.url).group(1)  # type: ignore[union-attr]
    expect(page.get_by_role("progressbar", name="sweep progress")).to_have_attribute(
        "aria-valuenow", "100", timeout=RUN_TIMEOUT_MS
    )
    heatmap = page.get_by_test_id("heatmap")
    expect(heatmap.locator("td.heat")).to_have_count(4, timeout=30_000)
    expect(heatmap).not_to_contain_text("no run yet", timeout=30_000)
    expect(page.get_by_test_id("effects")).to_contain_text("pairs")
    expect(page.get_by_role("button", name="Download metrics (CSV)")).to_be_enabled()
    screenshot(page, "sweep")
    go(page, stack, "#/sweeps")
    expect(page.get_by_role("row").filter(has_text="succeeded").first).to_be_visible()
    screenshot(page, "sweeps")


def test_compare_two_runs(page: Page, stack: str, api_token: str) -> None:
    first = needs("run")
    sweep = httpx.get(f"{stack}/sweeps/{needs('sweep')}", headers=bearer(api_token)).json()
    other = sweep["per_cell"][1]["run_ids"][0]  # agents.alpha 0.1 under the price cap
    go(page, stack, "#/runs")
    for run_id in (first, other):
        page.locator(f"tr[data-run='{run_id}'] input[type=checkbox]").check()
    page.get_by_role("button", name="Compare selected (2)").click()
    page.wait_for_url(re.compile(r"#/compare\?runs="))
    table = page.get_by_test_id("compare-table")
    expect(table.locator("thead th")).to_have_count(3)
    expect(table).to_contain_text("Δ (profit gain)")
    expect(page.get_by_test_id("compare-chart").locator("canvas")).to_be_visible()
    screenshot(page, "compare")


def test_another_teams_run_is_not_reachable(page: Page, stack: str, service_env: Settings) -> None:
    token = create_user(service_env.database_url, f"stranger-{uuid.uuid4().hex[:6]}", "another-team")
    launched = httpx.post(
        f"{stack}/runs",
        json={"preset": "calvano-2020-baseline", "sessions": 1, "overrides": ["horizon.max_periods=1000"]},
        headers=bearer(token),
    )
    assert launched.status_code == 202, launched.text
    foreign = launched.json()["id"]
    go(page, stack, f"#/runs/{foreign}")
    alert = page.locator(".not-found")
    expect(alert).to_contain_text("Not found")
    expect(alert).to_contain_text("No run with this id is visible to your team")
    screenshot(page, "not-found")
    go(page, stack, f"#/compare?runs={needs('run')},{foreign}")
    expect(page.locator(".not-found")).to_be_visible()
    go(page, stack, "#/runs")
    expect(page.locator(f"tr[data-run='{needs('run')}']")).to_be_visible()
    expect(page.locator(f"tr[data-run='{foreign}']")).to_have_count(0)


def test_the_runs_list_is_paged(page: Page, stack: str, db_engine: Engine, api_token: str) -> None:
    insert_runs(db_engine, team_of(db_engine), None, 60)
    total = httpx.get(f"{stack}/runs?limit=1", headers=bearer(api_token)).json()["total"]
    assert total > 50
    go(page, stack, "#/runs")
    rows = page.locator("table.runs tbody tr")
    expect(rows).to_have_count(25)
    pager = page.get_by_role("navigation", name="pages")
    expect(pager).to_contain_text(f"1–25 of {total}")
    pager.get_by_role("button", name="Next →").click()
    expect(pager).to_contain_text(f"26–50 of {total}")
    expect(rows).to_have_count(25)
    assert "offset=25" in page.url  # the page has its own URL
    page.reload()
    expect(pager).to_contain_text(f"26–50 of {total}")
    # filters too
    page.get_by_label("Status").select_option("failed")
    expect(rows.first).to_contain_text("failed")
    assert "status=failed" in page.url
    wait_until(lambda: rows.count() <= 25, "a page of failed runs")
    screenshot(page, "runs-paged")


def test_keyboard_navigation(page: Page, stack: str) -> None:
    go(page, stack, "#/runs")
    # a page starts at its heading; the next Tab reaches its first control
    expect(page.get_by_role("heading", name="Runs", level=1)).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_label("Status")).to_be_focused()
    # the sections are links: Enter opens one, and the focus moves to its heading
    page.get_by_role("link", name="Sweeps").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Sweeps", level=1)).to_be_focused()
    assert page.url.endswith("#/sweeps")
