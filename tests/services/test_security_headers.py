"""Security headers on every API response (200, 404, 500, the docs page) and CORS only for configured origins."""

from __future__ import annotations

import httpx
import pytest
from fastapi.testclient import TestClient

from algocomp.platform.settings import Settings
from algocomp_api.main import create_app
from algocomp_api.security import API_CSP, DOCS_CSP

EXPECTED = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


def _assert_secure(response: httpx.Response, csp: str = API_CSP) -> None:
    for name, value in EXPECTED.items():
        assert response.headers.get(name) == value, (response.status_code, name, dict(response.headers))
    assert response.headers["content-security-policy"] == csp


@pytest.mark.usefixtures("in_process_logging")
def test_security_headers_on_success_errors_and_crashes(service_env: Settings) -> None:
    app = create_app(service_env)

    @app.get("/explode")
    def explode() -> None:
        raise RuntimeError("boom")

    with TestClient(app, raise_server_exceptions=False) as client:
        ok = client.get("/healthz")
        missing = client.get("/no/such/route")
        crashed = client.get("/explode")
        docs = client.get("/docs")
        openapi = client.get("/openapi.json")
    assert (ok.status_code, missing.status_code, crashed.status_code) == (200, 404, 500)
    for response in (ok, missing, crashed, openapi):
        _assert_secure(response)
        assert response.headers["cache-control"] == "no-store"
    assert docs.status_code == 200 and "swagger-ui" in docs.text
    _assert_secure(docs, DOCS_CSP)
    # the CDN the docs page loads Swagger UI from is allowed there, and only there
    assert "https://cdn.jsdelivr.net" in docs.text and "https://cdn.jsdelivr.net" in DOCS_CSP
    assert "cdn.jsdelivr.net" not in API_CSP


def test_security_headers_on_the_live_server(api_server: str) -> None:
    _assert_secure(httpx.get(f"{api_server}/healthz", timeout=10))
    _assert_secure(httpx.get(f"{api_server}/runs/00000000-0000-0000-0000-000000000000", timeout=10))


def _preflight(client: TestClient, origin: str) -> httpx.Response:
    return client.options(
        "/runs",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )


@pytest.mark.usefixtures("in_process_logging")
def test_cors_only_for_configured_origins(service_env: Settings) -> None:
    allowed = "https://app.example.org"
    configured = service_env.model_copy(update={"cors_origins": [allowed]})
    with TestClient(create_app(configured)) as client:
        granted = _preflight(client, allowed)
        refused = _preflight(client, "https://evil.example.com")
        simple = client.get("/healthz", headers={"Origin": allowed})
        foreign = client.get("/healthz", headers={"Origin": "https://evil.example.com"})
    assert granted.status_code == 200
    assert granted.headers["access-control-allow-origin"] == allowed
    assert "POST" in granted.headers["access-control-allow-methods"]
    _assert_secure(granted)
    assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers
    assert simple.headers["access-control-allow-origin"] == allowed
    assert "access-control-allow-origin" not in foreign.headers

    assert service_env.cors_origins == []  # the default: no origin at all
    with TestClient(create_app(service_env)) as client:
        default = _preflight(client, allowed)
        plain = client.get("/healthz", headers={"Origin": allowed})
    assert "access-control-allow-origin" not in default.headers and default.status_code >= 400
    assert "access-control-allow-origin" not in plain.headers


def test_cors_origins_setting_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALGOCOMP_CORS_ORIGINS", "https://a.example, https://b.example")
    assert Settings(_env_file=None).cors_origins == ["https://a.example", "https://b.example"]  # type: ignore[call-arg]
    monkeypatch.setenv("ALGOCOMP_CORS_ORIGINS", '["https://c.example"]')
    assert Settings(_env_file=None).cors_origins == ["https://c.example"]  # type: ignore[call-arg]
    monkeypatch.delenv("ALGOCOMP_CORS_ORIGINS")
    assert Settings(_env_file=None).cors_origins == []  # type: ignore[call-arg]
