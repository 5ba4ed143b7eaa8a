"""A bounded schemathesis run against the real API: every operation of /openapi.json, cases generated from the
schema (valid and invalid), sent with a token. No answer may be a 5xx or break the documented schema (status
codes, content types, response bodies).

The API under test is a uvicorn process of its own, with a Redis key prefix no worker listens on, so the runs
and sweeps the fuzzer manages to create stay queued instead of loading the session's workers; they are
cancelled afterwards, and their team is the fuzzer's own.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import Engine, text

from algocomp.platform.settings import Settings

from .conftest import bearer, create_user, start_api

# Up to this many cases per operation; with about 20 operations, over 2,000 in all.
CASES_PER_OPERATION = 110
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def fuzzed_api(service_env: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = {"ALGOCOMP_KEY_PREFIX": f"{service_env.key_prefix}fuzz-{uuid.uuid4().hex[:6]}:"}
    process, base_url = start_api(tmp_path_factory.mktemp("fuzzed-api"), env)
    try:
        yield base_url
    finally:
        process.stop()


@pytest.fixture(scope="module")
def fuzz_token(service_env: Settings, db_engine: Engine) -> Iterator[str]:
    team = f"fuzz-{uuid.uuid4().hex[:8]}"
    yield create_user(service_env.database_url, f"fuzzer-{uuid.uuid4().hex[:8]}", team)
    with db_engine.begin() as connection:  # nothing the fuzzer queued may reach a later test's sweeper
        connection.execute(
            text(
                "UPDATE runs SET status = 'cancelled', finished_at = now() WHERE status IN ('queued', 'running') "
                "AND team_id = (SELECT id FROM teams WHERE name = :team)"
            ),
            {"team": team},
        )


def _label(operation: Any) -> str:
    return f"{operation.method.upper()} {operation.path}"


def test_no_5xx_and_every_answer_as_documented(fuzzed_api: str, fuzz_token: str) -> None:
    """Every operation, valid and invalid cases (schemathesis' positive and negative generation), each answer
    checked: no 5xx, a documented status code and content type, a body that fits its documented schema. The
    failures of all operations are collected, then reported together."""
    schema = schemathesis.openapi.from_url(f"{fuzzed_api}/openapi.json")
    token = bearer(fuzz_token)
    cases: Counter[str] = Counter()
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 18, [_label(operation) for operation in operations]
    for operation in operations:
        label = _label(operation)
        strategy = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE, headers=token),
            operation.as_strategy(GenerationMode.NEGATIVE, headers=token),
        )

        @given(case=strategy)
        @settings(
            max_examples=CASES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def fuzz(case: schemathesis.Case) -> None:
            cases[label] += 1  # noqa: B023 - run at once, inside this iteration
            case.call_and_validate(headers=token, checks=CHECKS, timeout=30)

        try:
            fuzz()
        except (Exception, BaseExceptionGroup) as error:  # noqa: BLE001 - collect every operation's failure
            failures.append(f"{label}: {error}"[:3000])
    assert not failures, "\n\n".join(failures)
    assert set(cases) == {_label(operation) for operation in operations}
    assert sum(cases.values()) >= 2000, cases
