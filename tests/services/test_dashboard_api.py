"""The API routes the dashboard needs: POST /scenarios/check (validation as you type, nothing stored) and
GET /results/{id}/prices (a run's price paths binned from its panel); and the dashboard's page and bundle with
their own Content-Security-Policy."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, delete
from sqlalchemy.orm import Session

from algocomp.output.panel import write_table
from algocomp.platform.db import Result, Run, RunStatus
from algocomp.platform.db.runs import new_run
from algocomp.platform.db.scenarios import ScenarioRepository
from algocomp.platform.settings import Settings
from algocomp.platform.storage import Storage, run_key, run_prefix
from algocomp.scenarios import apply_overrides, load_scenario
from algocomp_api.dashboard import routes as dashboard_routes
from algocomp_api.main import create_app
from algocomp_api.security import API_CSP, DASHBOARD_CSP

from .conftest import bearer, create_user, start_api, team_of

PERIODS = np.arange(1000, 20001, 1000)
SESSIONS = 3
TAIL = 8


@pytest.fixture(scope="module")
def api_url(service_env: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An API process of this module's own: reading price paths grows a process (pyarrow, the arrow memory pool),
    and tests/services/test_limits.py holds the session's API to its peak memory."""
    process, base_url = start_api(tmp_path_factory.mktemp("dashboard-api"))
    try:
        yield base_url
    finally:
        process.stop()


@pytest.fixture
def client(api_url: str, api_token: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_url, headers=bearer(api_token), timeout=30) as client:
        yield client


# ------------------------------------------------------------------------------------------- /scenarios/check


def test_check_answers_the_effective_scenario_and_stores_nothing(client: httpx.Client) -> None:
    stored_before = client.get("/scenarios?limit=1").json()["total"]
    answer = client.post(
        "/scenarios/check",
        json={"preset": "calvano-2020-baseline", "overrides": ["agents.alpha=0.1"], "sessions": 4, "seed": 7},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["name"] == "calvano-2020-baseline" and len(body["scenario_hash"]) == 64
    assert (body["spec"]["agents"]["alpha"], body["spec"]["sessions"], body["spec"]["seed"]) == (0.1, 4, 7)
    inline = client.post("/scenarios/check", json={"scenario": body["spec"]})
    assert inline.status_code == 200 and inline.json()["scenario_hash"] == body["scenario_hash"]
    assert client.get("/scenarios?limit=1").json()["total"] == stored_before


@pytest.mark.parametrize(
    ("request_body", "field", "words"),
    [
        ({"preset": "calvano-2020-baseline", "overrides": ["agents.alpha=abc"]}, "agents.alpha", "valid number"),
        ({"preset": "calvano-2020-baseline", "overrides": ["agents.nope=1"]}, "agents.nope", "unknown field"),
        ({"scenario": {"market": {"n_firms": 0}}}, "market.n_firms", "greater"),
        ({"preset": "calvano-2020-baseline", "sessions": 10**9}, "sessions", "max_sessions_per_run"),
        ({}, "scenario_id", "exactly one"),
        ({"preset": "no-such-preset"}, "preset", ""),
    ],
)
def test_check_names_the_field_at_fault(
    client: httpx.Client, request_body: dict[str, Any], field: str, words: str
) -> None:
    answer = client.post("/scenarios/check", json=request_body)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["field"] == field and words in error["message"]


def test_check_of_another_teams_scenario_is_not_found(
    client: httpx.Client, api_url: str, service_env: Settings
) -> None:
    stranger = create_user(service_env.database_url, f"stranger-{uuid.uuid4().hex[:6]}", "other-check-team")
    theirs = httpx.post(f"{api_url}/scenarios", json={"preset": "myopic-vs-bandit"}, headers=bearer(stranger))
    assert theirs.status_code in (200, 201), theirs.text
    answer = client.post("/scenarios/check", json={"scenario_id": theirs.json()["id"]})
    assert answer.status_code == 404 and answer.json()["error"]["field"] == "scenario_id"
    assert httpx.post(f"{api_url}/scenarios/check", json={"preset": "myopic-vs-bandit"}).status_code == 401


# ------------------------------------------------------------------------------------------------ /prices


def _panel() -> pd.DataFrame:
    """Sessions x firms x logged periods, with a price that tells them apart, and a tail per session."""
    rows = []
    for session in range(SESSIONS):
        for period in PERIODS:
            for firm in range(2):
                price = 1.5 + 0.01 * session + 0.1 * firm + period / 1e6
                rows.append((session, "interval", int(period), 1000, firm, price))
        for period in range(int(PERIODS[-1]) + 1, int(PERIODS[-1]) + 1 + TAIL):
            for firm in range(2):
                rows.append((session, "tail", period, 1, firm, 1.6 + 0.01 * (period % 2) + 0.1 * firm))
    columns = ["session", "kind", "period", "periods", "firm", "price"]
    frame = pd.DataFrame(rows, columns=columns)
    for column in ("cost", "quantity", "profit", "consumer_surplus", "total_welfare"):
        frame[column] = 0.5
    return frame


@pytest.fixture
def run_with_panel(db_engine: Engine, storage: Storage, tmp_path: Path) -> Iterator[tuple[uuid.UUID, pd.DataFrame]]:
    """A succeeded run of the test team as the worker leaves one: a result row and its panel on S3 (inserted
    directly: no worker must take it)."""
    team_id = team_of(db_engine)
    scenario = apply_overrides(load_scenario("calvano-2020-baseline"), {"sessions": SESSIONS})
    panel = _panel()
    path = write_table(panel, tmp_path / "panel.parquet")
    with Session(db_engine) as session, session.begin():
        record, _ = ScenarioRepository(session).store(scenario, team_id=team_id)
        run = new_run(record.id, scenario, [], team_id=team_id, owner_id=None)
        run.status, run.progress, run.sessions_done = RunStatus.succeeded, 1.0, SESSIONS
        session.add(run)
        run_id = run.id
    storage.put_file(run_key(run_id, "panel"), path)
    summary = {"n_firms": 2, "benchmarks": {"nash_price": [1.47, 1.47], "monopoly_price": [1.92, 1.92]}}
    with Session(db_engine) as session, session.begin():
        session.add(Result(run_id=run_id, summary=summary, artifacts={"panel": run_key(run_id, "panel")}))
    yield run_id, panel
    with Session(db_engine) as session, session.begin():
        session.execute(delete(Result).where(Result.run_id == run_id))
        session.execute(delete(Run).where(Run.id == run_id))
    storage.delete_prefix(run_prefix(run_id))


def test_prices_are_the_panels_means_binned(
    client: httpx.Client, run_with_panel: tuple[uuid.UUID, pd.DataFrame]
) -> None:
    run_id, panel = run_with_panel
    answer = client.get(f"/results/{run_id}/prices")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["n_firms"], body["sessions"], body["session"], body["tail"]) == (2, SESSIONS, None, None)
    assert body["nash_price"] == [1.47, 1.47] and body["monopoly_price"] == [1.92, 1.92]
    # fewer logged periods than points: one bin per period, the mean over the sessions
    intervals = panel[panel.kind == "interval"]
    expected = intervals.groupby(["firm", "period"]).price.mean().unstack("period")
    assert body["period"] == [float(p) for p in PERIODS]
    for firm in range(2):
        assert np.allclose(body["price"][firm], expected.loc[firm].to_numpy())

    coarse = client.get(f"/results/{run_id}/prices", params={"points": 10}).json()
    assert len(coarse["period"]) <= 10 and all(len(firm) == len(coarse["period"]) for firm in coarse["price"])
    assert np.isclose(np.mean(coarse["price"][0]), expected.loc[0].mean(), atol=1e-3)

    one = client.get(f"/results/{run_id}/prices", params={"session": 1}).json()
    assert one["session"] == 1 and one["sessions"] == 1
    mine = intervals[(intervals.session == 1) & (intervals.firm == 1)].price.to_numpy()
    assert np.allclose(one["price"][1], mine)
    assert len(one["tail"]["period"]) == TAIL and len(one["tail"]["price"][0]) == TAIL


def test_prices_refuse_what_is_not_there(
    client: httpx.Client, api_url: str, service_env: Settings, run_with_panel: tuple[uuid.UUID, pd.DataFrame]
) -> None:
    run_id, _ = run_with_panel
    missing = client.get(f"/results/{run_id}/prices", params={"session": SESSIONS})
    assert missing.status_code == 404 and missing.json()["error"]["field"] == "session"
    assert client.get(f"/results/{run_id}/prices", params={"points": 5}).status_code == 422
    assert client.get(f"/results/{uuid.uuid4()}/prices").status_code == 404
    stranger = create_user(service_env.database_url, f"stranger-{uuid.uuid4().hex[:6]}", "other-prices-team")
    assert httpx.get(f"{api_url}/results/{run_id}/prices", headers=bearer(stranger)).status_code == 404
    assert httpx.get(f"{api_url}/results/{run_id}/prices").status_code == 401


# ------------------------------------------------------------------------------------------- the page itself


@pytest.mark.usefixtures("in_process_logging")
def test_the_dashboard_has_its_own_policy_and_says_when_it_is_not_built(
    service_env: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text('<!doctype html><script type="module" src="/assets/app-1.js"></script>')
    (tmp_path / "assets" / "app-1.js").write_text("console.log(1)")
    monkeypatch.setattr(dashboard_routes, "STATIC_DIR", tmp_path)
    with TestClient(create_app(service_env)) as client:
        page = client.get("/")
        head = client.head("/")
        script = client.get("/assets/app-1.js")
        unknown = client.get("/assets/nothing.js")
        sneaky = client.get("/assets/..%2F..%2Fmain.py")
        api = client.get("/healthz")
        monkeypatch.setattr(dashboard_routes, "STATIC_DIR", tmp_path / "absent")
        not_built = client.get("/")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    assert head.status_code == 200 and head.headers["content-security-policy"] == DASHBOARD_CSP
    assert page.headers["content-security-policy"] == DASHBOARD_CSP
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert script.headers["content-security-policy"] == DASHBOARD_CSP and "immutable" in script.headers["cache-control"]
    assert unknown.status_code == 404 and sneaky.status_code == 404
    assert api.headers["content-security-policy"] == API_CSP
    assert not_built.status_code == 404 and not_built.json()["error"]["code"] == "dashboard_not_built"
    assert "make dashboard" in not_built.json()["error"]["message"]
    # only its own scripts and styles, and calls to its own origin
    for directive in ("script-src 'self';", "style-src 'self';", "connect-src 'self';", "frame-ancestors 'none'"):
        assert directive in DASHBOARD_CSP
    assert "unsafe" not in DASHBOARD_CSP and "http" not in DASHBOARD_CSP
