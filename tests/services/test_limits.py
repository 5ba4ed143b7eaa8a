"""Limits against the real API process (uvicorn, Postgres, Redis, S3): every request that asked for unbounded work
or memory in issue 10 is now a 4xx naming the field and the limit, answered within a second, while a thread polls
GET /healthz (each answer under 100 ms) and samples the API process's resident memory (under 300 MB); a 500 is a
JSON response on a connection that stays open.

Every request goes through `api_headers()`, so that a credential the API comes to require is added in one place.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import select
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from test_yaml_limits import anchor_bomb  # tests/, on the path pytest gives the service tests

from algocomp.platform.settings import Settings
from algocomp.scenarios import list_presets, load_scenario
from algocomp_api import limits
from devstack import free_port

ANSWER_WITHIN_S = 1.0
HEALTHZ_WITHIN_S = 0.1
HEALTHZ_OUTLIER_S = 0.5
API_RSS_LIMIT_BYTES = 300 * 1024 * 1024
TINY_OVERRIDES = ["horizon.max_periods=2000", "horizon.convergence_periods=100", "logging.interval=100"]


def api_headers() -> dict[str, str]:
    """Headers of every request to the API: the session's test user's token (exported by service_env)."""
    return {"Authorization": f"Bearer {os.environ['ALGOCOMP_API_TOKEN']}"}


def nested_json(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


# --------------------------------------------------------------------------------------------- the API process


def server_pid(base_url: str) -> int:
    """The pid of the uvicorn process the api_server fixture started (`... uvicorn ... --port PORT`)."""
    port = str(urlsplit(base_url).port)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [word.decode(errors="replace") for word in argv]
        if "uvicorn" in words and "--port" in words and words[words.index("--port") + 1] == port:
            return int(entry.name)
    raise AssertionError(f"no uvicorn process serves port {port}")


def memory_kb(pid: int, key: str) -> int:
    """A VmRSS / VmHWM line of /proc/PID/status, in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {key} in /proc/{pid}/status")


@dataclass
class Watch:
    """GET /healthz every 20 ms and the API's RSS, in a thread, for as long as the module's tests run."""

    base_url: str
    pid: int
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    peak_rss_kb: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(base_url=self.base_url, headers=api_headers(), timeout=5.0) as client:
            while not self._stop.is_set():
                started = time.perf_counter()
                try:
                    response = client.get("/healthz")
                    elapsed = time.perf_counter() - started
                    if response.status_code != 200:
                        self.failures.append(f"/healthz answered {response.status_code}")
                    self.latencies.append(elapsed)
                except httpx.HTTPError as error:
                    self.failures.append(f"/healthz failed: {error!r}")
                self.peak_rss_kb = max(self.peak_rss_kb, memory_kb(self.pid, "VmRSS"))
                self._stop.wait(0.02)

    def stop(self) -> None:
        self._stop.set()


@pytest.fixture(scope="module")
def watch(api_server: str) -> Iterator[Watch]:
    watcher = Watch(api_server, server_pid(api_server))
    thread = threading.Thread(target=watcher.run, name="healthz-watch", daemon=True)
    thread.start()
    yield watcher
    watcher.stop()
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def api(api_server: str, watch: Watch) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_server, headers=api_headers(), timeout=30.0) as client:
        yield client


def refused(response: httpx.Response, elapsed: float, status: int, field: str, *, says: str | None = None) -> dict:
    """Assert a fast error of `status` naming `field` (and stating the limit when `says` is given)."""
    assert response.status_code == status, response.text[:500]
    assert elapsed < ANSWER_WITHIN_S, f"answered in {elapsed:.2f} s"
    error = response.json()["error"]
    assert error["field"] == field, error
    if says is not None:
        assert says in error["message"], error
    return error


def timed(call: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = call()
    return response, time.perf_counter() - started


# --------------------------------------------------------------------------------------------- request body


def raw_upload(base_url: str, head: bytes, chunks: Iterator[bytes]) -> tuple[bytes, float]:
    """Send `head` then `chunks` on a raw socket until the server answers; (the answer's first bytes, seconds)."""
    url = urlsplit(base_url)
    started = time.perf_counter()
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(head)
        for chunk in chunks:
            if select.select([sock], [], [], 0)[0]:
                break  # the server has answered
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
        answer = read_answer(sock)
    return answer, time.perf_counter() - started


def read_answer(sock: socket.socket) -> bytes:
    """The whole HTTP answer: its head, then as many body bytes as its Content-Length says (it may come in parts)."""
    answer = b""
    while b"\r\n\r\n" not in answer:
        part = sock.recv(65536)
        if not part:
            return answer
        answer += part
    head, _, body = answer.partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
    while length is not None and len(body) < int(length.group(1)):
        part = sock.recv(65536)
        if not part:
            break
        body += part
    return head + b"\r\n\r\n" + body


def parse_answer(answer: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body.decode())


def test_a_200_mb_body_is_refused_from_its_content_length(api_server: str, watch: Watch) -> None:
    size = 200 * 1024 * 1024
    head = (
        f"POST /runs HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n"
        + "".join(f"{name}: {value}\r\n" for name, value in api_headers().items())
        + "\r\n"
    ).encode()
    answer, elapsed = raw_upload(api_server, head, (b"x" * 65536 for _ in range(size // 65536)))
    status, body = parse_answer(answer)
    assert (status, body["error"]["code"], body["error"]["field"]) == (413, "payload_too_large", "body")
    assert "1,048,576 bytes" in body["error"]["message"]
    assert elapsed < ANSWER_WITHIN_S


def test_a_chunked_body_is_refused_once_it_passes_the_limit(api_server: str, watch: Watch) -> None:
    head = (
        "POST /runs HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
        + "".join(f"{name}: {value}\r\n" for name, value in api_headers().items())
        + "\r\n"
    ).encode()
    chunk = b"10000\r\n" + b"x" * 65536 + b"\r\n"  # 64 KiB chunks, 200 MB in all unless the server answers first
    answer, elapsed = raw_upload(api_server, head, (chunk for _ in range(3200)))
    status, body = parse_answer(answer)
    assert (status, body["error"]["field"]) == (413, "body")
    assert elapsed < ANSWER_WITHIN_S


def test_a_body_under_the_limit_still_reaches_the_route(api: httpx.Client) -> None:
    padding = "x" * 900_000  # a description: well under 1 MiB with the rest of the request
    response = api.post("/scenarios", json={"scenario": {"name": "padded", "description": padding, "sessions": 2}})
    assert response.status_code in (200, 201), response.text[:300]


# --------------------------------------------------------------------------------------------- work per run


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"sessions": 10**9}, "sessions", "at most 10,000"),
        ({"sessions": 10**30}, "sessions", "at most 10,000"),
        ({"sessions": 5_000}, "sessions", "1,000,000,000,000 periods"),  # 5,000 x 10^9: the work budget
        ({"overrides": ["horizon.max_periods=1000000000000"]}, "horizon.max_periods", "at most 1,000,000,000"),
        ({"overrides": ["sessions=1000000000"]}, "sessions", "at most 10,000"),
        ({"log_interval": 10**30}, "log_interval", "at most 1,000,000,000"),
        ({"overrides": ["logging.tail=1000000000"]}, "logging.tail", "at most 1,000,000"),
        ({"overrides": ["logging.cycle_search=1000000000000000000000000000000"]}, "logging.cycle_search", None),
        (
            {"sessions": 10_000, "overrides": ["horizon.max_periods=1000000", "logging.tail=1000"]},
            "sessions",
            "25,000,000 rows",
        ),
        ({"seed": 2**63}, "seed", None),
        ({"overrides": ["agents.beta=1e-5"] * 101}, "overrides", "at most 100"),
        ({"overrides": ["description=" + "x" * 5000]}, "overrides.0", "at most 4,096 characters"),
        ({"overrides": ["agents.alpha=" + anchor_bomb()]}, "agents.alpha", "anchors and aliases"),
        ({"overrides": ["agents.alpha=" + "[" * 40 + "]" * 40]}, "agents.alpha", "deeper than 32 levels"),
        ({"overrides": ["agents.alpha=" + "[" * 5000 + "]" * 5000]}, "overrides.0", "at most 4,096"),
        ({"preset": None, "scenario": {"market": nested_json(100)}}, "scenario.market" + ".0" * 31, "32 levels"),
        ('{"scenario": {"market": ' + "[" * 5_000 + "]" * 5_000 + "}}", "body", "nests too deeply"),
        ({"preset": "x" * 100_000}, "preset", "200 characters"),
    ],
    ids=lambda value: json.dumps(value)[:40] if not isinstance(value, str) else value[:20],
)
def test_a_run_beyond_a_limit_is_a_fast_422(api: httpx.Client, body: dict | str, field: str, says: str | None) -> None:
    """`body` adds to a request for the Calvano preset (None removes a member); a str is the whole JSON body."""
    if isinstance(body, str):  # nested deeper than json.dumps can write
        send: dict[str, Any] = {"content": body, "headers": {"content-type": "application/json"}}
    else:
        request = {"preset": "calvano-2020-baseline", **body}
        send = {"json": {key: value for key, value in request.items() if value is not None}}
    before = api.get("/runs", params={"limit": 1}).json()["total"]
    response, elapsed = timed(lambda: api.post("/runs", **send))
    refused(response, elapsed, 422, field, says=says)
    assert api.get("/runs", params={"limit": 1}).json()["total"] == before


def test_the_heaviest_preset_is_still_accepted(api: httpx.Client) -> None:
    """Calvano et al.'s 1,000 sessions of at most 10^9 periods are exactly the default work budget; stored, and
    cancelled at once (200 while queued; 202 if a worker of the session took it first, which then stops it)."""
    response = api.post("/runs", json={"preset": "calvano-2020-baseline"})
    assert response.status_code == 202, response.text
    assert api.post(f"/runs/{response.json()['id']}/cancel").status_code in (200, 202)


@pytest.mark.parametrize("name", sorted(list_presets()))
def test_every_preset_is_within_the_default_limits(name: str) -> None:
    limits.check_run_size(load_scenario(name), Settings())


def test_a_scenario_beyond_a_limit_is_not_stored(api: httpx.Client) -> None:
    response, elapsed = timed(lambda: api.post("/scenarios", json={"scenario": {"sessions": 10**30}}))
    error = refused(response, elapsed, 422, "sessions", says="at most 10,000")
    assert (error["code"], error["limit"]) == ("limit_exceeded", 10_000)
    response, elapsed = timed(lambda: api.post("/scenarios", json={"preset": "y" * 100_000}))
    refused(response, elapsed, 422, "preset")


# --------------------------------------------------------------------------------------------- sweeps


@pytest.mark.parametrize(
    ("body", "status", "field", "says"),
    [
        ({"seeds_per_cell": 10**7}, 422, "seeds_per_cell", "at most 2,000"),
        ({"seeds_per_cell": 10**30}, 422, "seeds_per_cell", "at most 2,000"),
        ({"seeds": list(range(20_000))}, 422, "seeds", "at most 2,000"),
        ({"seeds": [2**63]}, 422, "seeds", None),
        ({"sessions": 10**30}, 422, "sessions", "at most 10,000"),
        ({"grid": {"agents.alpha": [0.1] * 41, "agents.beta": [1e-5] * 50}}, 422, "grid", "at most 2,000"),
        ({"grid": {"agents.alpha": [0.1] * 1_001}}, 422, "grid", "at most 1,000"),
        ({"grid": {f"agents.alpha{i}": [0.1, 0.2] for i in range(400)}}, 422, "grid", "at most 2,000"),
        ({"grid": {"agents.alpha": [nested_json(40)]}}, 422, "grid.agents.alpha.0" + ".0" * 32, "32 levels"),
        ({"grid": {"horizon.max_periods": [10**12]}}, 422, "horizon.max_periods", "at most 1,000,000,000"),
        ({"overrides": ["agents.alpha=" + anchor_bomb()]}, 422, "agents.alpha", "anchors and aliases"),
    ],
    ids=lambda value: json.dumps(value)[:40] if not isinstance(value, str) else value[:20],
)
def test_a_sweep_beyond_a_limit_is_a_fast_422(
    api: httpx.Client, body: dict, status: int, field: str, says: str | None
) -> None:
    request = {"preset": "calvano-2020-baseline", "sessions": 2, "grid": {"agents.alpha": [0.1]}, **body}
    if "seeds" in body or "seeds_per_cell" in body:
        request["overrides"] = TINY_OVERRIDES
    before = api.get("/sweeps", params={"limit": 1}).json()["total"]
    response, elapsed = timed(lambda: api.post("/sweeps", json=request))
    refused(response, elapsed, status, field, says=says)
    assert api.get("/sweeps", params={"limit": 1}).json()["total"] == before


# --------------------------------------------------------------------------------------------- pages and ids


@pytest.mark.parametrize("path", ["/runs", "/scenarios", "/sweeps", "/aggregates"])
@pytest.mark.parametrize(
    ("params", "field"),
    [({"offset": 2**63}, "offset"), ({"offset": 10**30}, "offset"), ({"limit": 10**30}, "limit")],
)
def test_a_page_beyond_the_limits_is_a_fast_422(api: httpx.Client, path: str, params: dict, field: str) -> None:
    response, elapsed = timed(lambda: api.get(path, params=params))
    refused(response, elapsed, 422, field, says="at most")


def test_a_last_event_id_beyond_64_bits_is_a_422(api: httpx.Client) -> None:
    run = api.post("/runs", json={"preset": "calvano-2020-baseline", "sessions": 1, "overrides": TINY_OVERRIDES})
    run_id = run.json()["id"]
    try:
        for value in (str(2**64) + "-0", "9" * 5000):
            response, elapsed = timed(lambda v=value: api.get(f"/streams/{run_id}", params={"last_event_id": v}))
            refused(response, elapsed, 422, "last_event_id")
    finally:
        api.post(f"/runs/{run_id}/cancel")


# --------------------------------------------------------------------------------------------- a 500


def failing_app():  # uvicorn --factory: the API plus one route that fails like a bug would
    from algocomp_api.main import create_app

    app = create_app()

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("a bug, on purpose")

    return app


@pytest.fixture
def failing_api(start_service, service_env: Settings) -> str:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "uvicorn", f"{Path(__file__).stem}:failing_app", "--factory"]
    argv += ["--app-dir", str(Path(__file__).parent), "--host", "127.0.0.1", "--port", str(port)]
    env = {"PYTHONPATH": os.pathsep.join([*sys.path, os.environ.get("PYTHONPATH", "")])}
    start_service(argv, lambda: httpx.get(f"{base_url}/healthz", timeout=1.0).status_code == 200, env=env)
    return base_url


def test_a_500_is_json_and_keeps_the_connection(failing_api: str) -> None:
    url = urlsplit(failing_api)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=5)
    try:
        connection.request("GET", "/boom", headers=api_headers())
        failed = connection.getresponse()
        body = json.loads(failed.read())
        assert failed.status == 500
        assert body == {"error": {"code": "internal_error", "message": body["error"]["message"]}}
        sock = connection.sock
        assert sock is not None, "the client dropped the connection after the 500"
        # a closed connection becomes readable (EOF); a kept-alive one stays silent
        assert not select.select([sock], [], [], 0.5)[0], "the server closed the connection after the 500"
        connection.request("GET", "/healthz", headers=api_headers())
        again = connection.getresponse()
        assert again.status == 200 and json.loads(again.read()) == {"status": "ok"}
        assert connection.sock is sock  # the same connection
    finally:
        connection.close()
    with httpx.Client(base_url=failing_api, headers=api_headers(), timeout=5) as client:
        for _ in range(3):
            assert client.get("/boom").status_code == 500
            assert client.get("/healthz").status_code == 200


# --------------------------------------------------------------------------------------------- throughout


def test_healthz_answered_fast_and_memory_stayed_low_throughout(watch: Watch) -> None:
    """Last in the module: what the watcher saw while every request above was refused."""
    assert len(watch.latencies) > 10, "the watcher saw too little"
    assert not watch.failures, watch.failures[:5]
    slowest = max(watch.latencies)
    peak_kb = max(watch.peak_rss_kb, memory_kb(watch.pid, "VmHWM"))
    median = sorted(watch.latencies)[len(watch.latencies) // 2]
    print(
        f"\n/healthz: {len(watch.latencies)} polls, median {median * 1000:.1f} ms, max {slowest * 1000:.1f} ms; "
        f"API peak RSS {peak_kb / 1024:.0f} MB (VmHWM)"
    )
    # The watcher shares its process (and its GIL) with the test sending the bad requests, and the machine with
    # the session's workers: a lone poll can wait on either. So: 99 of 100 polls under 100 ms, none near a second
    # (before the limits, one request held /healthz for 1.5 s, and a YAML bomb for 43 s).
    p99 = sorted(watch.latencies)[int(len(watch.latencies) * 0.99)]
    assert p99 < HEALTHZ_WITHIN_S, f"/healthz: 99th percentile {p99 * 1000:.0f} ms"
    assert slowest < HEALTHZ_OUTLIER_S, f"/healthz took {slowest * 1000:.0f} ms"
    assert peak_kb * 1024 < API_RSS_LIMIT_BYTES, f"the API's peak RSS was {peak_kb / 1024:.0f} MB"
