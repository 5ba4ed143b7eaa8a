"""Accounts against the real stack: every route behind a token, teams that cannot see each other, cancellation
by the owner or an admin only, revocation at once, the operator's `algocomp users` command and the team quota."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from algocomp.platform.db.accounts import AccountRepository
from algocomp.platform.settings import Settings
from algocomp_api.main import create_app

from .conftest import TEST_TEAM, bearer, create_user

OPEN_PATHS = {"/healthz", "/readyz"}
TINY = {"preset": "calvano-2020-baseline", "sessions": 1, "overrides": ["horizon.max_periods=2000"]}


def _unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def algocomp(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed `algocomp` command, against the session's database (ALGOCOMP_DATABASE_URL is exported)."""
    return subprocess.run(
        [sys.executable, "-m", "algocomp.cli.main", *args], capture_output=True, text=True, timeout=120, env=os.environ
    )


@pytest.fixture(scope="module")
def client(api_server: str) -> Iterator[httpx.Client]:
    """A client without a token: each request says whose it is."""
    with httpx.Client(base_url=api_server, timeout=30.0) as http:
        yield http


@pytest.fixture(scope="module")
def team_a_objects(client: httpx.Client, api_token: str) -> dict[str, str]:
    """A scenario, a run and a sweep of the test user's team (the runs cancelled before a worker can take them is
    not guaranteed, so only ids are used)."""
    me = bearer(api_token)
    scenario = client.post("/scenarios", json={"preset": "calvano-2020-baseline"}, headers=me)
    assert scenario.status_code in (200, 201), scenario.text
    run = client.post(
        "/runs", json={"scenario_id": scenario.json()["id"], "sessions": 1, "overrides": TINY["overrides"]}, headers=me
    )
    assert run.status_code == 202, run.text
    sweep = client.post(
        "/sweeps",
        json={**TINY, "grid": {"agents.alpha": [0.1, 0.15]}},
        headers=me,
    )
    assert sweep.status_code == 202, sweep.text
    return {"scenario_id": scenario.json()["id"], "run_id": run.json()["id"], "sweep_id": sweep.json()["id"]}


def _operations(client: httpx.Client) -> list[tuple[str, str]]:
    schema = client.get("/openapi.json").json()
    return [
        (method.upper(), path)
        for path, item in schema["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    ]


def _fill(path: str, ids: dict[str, str]) -> str:
    return path.format(**ids, name="panel")


def test_every_route_but_health_and_docs_needs_a_token(client: httpx.Client, team_a_objects: dict[str, str]) -> None:
    operations = _operations(client)
    assert len(operations) > 15
    for method, path in operations:
        url = _fill(path, team_a_objects)
        for headers in (
            {},
            {"Authorization": "Basic abc"},
            bearer("alc_not-a-real-token"),
            {"Authorization": "Bearer"},
        ):
            response = client.request(method, url, headers=headers, json={} if method == "POST" else None)
            if path in OPEN_PATHS:
                assert response.status_code in (200, 503), (method, path, response.status_code)
                continue
            assert response.status_code == 401, (method, path, headers, response.status_code, response.text)
            assert response.json()["error"]["code"] == "unauthorized"
            assert response.headers["www-authenticate"].startswith("Bearer")
    for open_path in ("/docs", "/openapi.json"):
        assert client.get(open_path).status_code == 200


def test_another_teams_objects_answer_404_everywhere(
    client: httpx.Client, service_env: Settings, team_a_objects: dict[str, str]
) -> None:
    outsider = bearer(create_user(service_env.database_url, _unique("outsider"), _unique("other-team")))
    checked = 0
    for method, path in _operations(client):
        if "{" not in path:
            continue
        response = client.request(method, _fill(path, team_a_objects), headers=outsider)
        assert response.status_code == 404, (method, path, response.status_code, response.text)
        checked += 1
    assert checked >= 12
    # and absent from its lists
    for listing, key in (("/runs", "run_id"), ("/sweeps", "sweep_id"), ("/scenarios", "scenario_id")):
        page = client.get(listing, headers=outsider).json()
        assert page["total"] == 0 and team_a_objects[key] not in {item["id"] for item in page["items"]}
    assert client.get("/aggregates", headers=outsider).json()["total"] == 0
    # a run of another team's stored scenario cannot be launched either
    taken = client.post("/runs", json={"scenario_id": team_a_objects["scenario_id"]}, headers=outsider)
    assert taken.status_code == 404 and taken.json()["error"]["field"] == "scenario_id"


def test_only_the_owner_or_a_team_admin_cancels(client: httpx.Client, service_env: Settings, api_token: str) -> None:
    owner = bearer(api_token)
    colleague = bearer(create_user(service_env.database_url, _unique("colleague"), TEST_TEAM))
    admin = bearer(create_user(service_env.database_url, _unique("admin"), TEST_TEAM, admin=True))
    run_id = client.post("/runs", json=TINY, headers=owner).json()["id"]
    assert client.get(f"/runs/{run_id}", headers=colleague).status_code == 200  # a member reads
    refused = client.post(f"/runs/{run_id}/cancel", headers=colleague)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    assert client.post(f"/runs/{run_id}/cancel", headers=admin).status_code in (200, 202, 409)

    sweep_id = client.post("/sweeps", json={**TINY, "grid": {"agents.alpha": [0.1]}}, headers=owner).json()["id"]
    assert client.post(f"/sweeps/{sweep_id}/cancel", headers=colleague).status_code == 403
    assert client.post(f"/sweeps/{sweep_id}/cancel", headers=owner).status_code in (200, 202, 409)


def test_the_users_command_creates_lists_and_revokes_at_once(client: httpx.Client) -> None:
    name, team = _unique("analyst"), _unique("lab")
    created = algocomp("users", "create", name, "--team", team)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip().splitlines()[-1]
    assert token.startswith("alc_") and len(token) > 40
    assert client.get("/runs", headers=bearer(token)).status_code == 200

    listed = algocomp("users", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    mine = [user for user in json.loads(listed.stdout) if user["name"] == name]
    assert mine == [{**mine[0], "team": team, "admin": False, "active_tokens": 1}]
    assert token not in listed.stdout

    again = algocomp("users", "create", name, "--team", team)
    assert again.returncode == 2 and "exists already" in again.stderr

    revoked = algocomp("users", "revoke", name)
    assert revoked.returncode == 0, revoked.stderr
    refused = client.get("/runs", headers=bearer(token))
    assert refused.status_code == 401

    second = algocomp("users", "token", name)
    assert second.returncode == 0
    assert client.get("/runs", headers=bearer(second.stdout.strip().splitlines()[-1])).status_code == 200


def test_an_expired_token_is_refused(client: httpx.Client, db_engine: Engine) -> None:
    with Session(db_engine) as session, session.begin():
        accounts = AccountRepository(session)
        user, _ = accounts.create_user(_unique("temp"), _unique("temps"))
        past = accounts.issue_token(user, expires_at=datetime.now(UTC) - timedelta(seconds=1))
        future = accounts.issue_token(user, expires_at=datetime.now(UTC) + timedelta(hours=1))
    assert client.get("/runs", headers=bearer(past)).status_code == 401
    assert client.get("/runs", headers=bearer(future)).status_code == 200


def test_the_team_quota_answers_429_with_retry_after(service_env: Settings) -> None:
    """With a quota of 2 queued or running runs (and a broker prefix no worker listens on, so they stay
    queued): two runs pass, a third and a sweep that would go over are refused, and nothing of theirs is stored."""
    settings = service_env.model_copy(
        update={"team_active_runs_max": 2, "key_prefix": f"{service_env.key_prefix}quota-{uuid.uuid4().hex[:6]}:"}
    )
    token = create_user(service_env.database_url, _unique("busy"), _unique("busy-team"))
    with TestClient(create_app(settings), headers=bearer(token)) as api:
        ids = [api.post("/runs", json=TINY).json()["id"] for _ in range(2)]
        over = api.post("/runs", json=TINY)
        assert over.status_code == 429, over.text
        assert over.headers["retry-after"] == str(settings.team_quota_retry_after_s)
        body: dict[str, Any] = over.json()["error"]
        assert body["code"] == "quota_exceeded" and body["active"] == 2 and body["limit"] == 2
        sweep = api.post("/sweeps", json={**TINY, "grid": {"agents.alpha": [0.1]}})
        assert sweep.status_code == 429
        assert api.get("/runs").json()["total"] == 2 and api.get("/sweeps").json()["total"] == 0
        assert api.post(f"/runs/{ids[0]}/cancel").status_code == 200  # a slot frees
        last = api.post("/runs", json=TINY)
        assert last.status_code == 202
        for run_id in (ids[1], last.json()["id"]):  # leave nothing queued for a later test's sweeper to send
            assert api.post(f"/runs/{run_id}/cancel").status_code == 200
