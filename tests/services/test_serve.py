"""`python -m algocomp_api.serve --processes 2`, as `make dev` and compose run the API: both processes get a fair
share of 100 keep-alive connections opened at once (with `uvicorn --workers 2`, 128 of 200 went to one process),
a process that dies is started again, and SIGTERM stops the whole server. Linux only: the connections are
counted per process from /proc."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from algocomp.platform.settings import Settings

from .conftest import free_port, wait_until

pytestmark = pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="counts connections from /proc")

CONNECTIONS = 100


def children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(child) for child in found]


def api_processes(supervisor: int) -> list[int]:
    """The supervisor's children that serve (multiprocessing's resource tracker, also a child, listens nowhere)."""
    return [pid for pid in children(supervisor) if socket_inodes(pid, state="0A")]


def socket_inodes(pid: int, *, state: str | None = None, port: int | None = None) -> set[str]:
    """Inodes of the TCP sockets process `pid` holds (optionally only those in `state`, hex as in /proc/net/tcp,
    0A = LISTEN, 01 = ESTABLISHED, on local `port`)."""
    try:
        held = {
            os.readlink(f"/proc/{pid}/fd/{fd}")[len("socket:[") : -1]
            for fd in os.listdir(f"/proc/{pid}/fd")
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:[")
        }
    except FileNotFoundError:
        return set()
    matching = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].split(":")[1], 16)
        if fields[9] in held and (state is None or fields[3] == state) and (port is None or local_port == port):
            matching.add(fields[9])
    return matching


def healthz_ok(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    except httpx.HTTPError:  # not up yet, or slow on a loaded machine
        return False


@pytest.fixture
def served(service_env: Settings, tmp_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    env = {**os.environ, "ALGOCOMP_BEAT_MAX_AGE_S": "0"}
    process = subprocess.Popen(
        [sys.executable, "-m", "algocomp_api.serve", "--port", str(port), "--processes", "2"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    try:
        wait_until(lambda: len(api_processes(process.pid)) == 2, "two API processes listening", 60)
        wait_until(lambda: healthz_ok(port), "/healthz answering", 60)
        yield process, port
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        log.close()


def test_connections_are_spread_over_the_processes(served: tuple[subprocess.Popen[bytes], int]) -> None:
    process, port = served
    connections = [socket.create_connection(("127.0.0.1", port)) for _ in range(CONNECTIONS)]
    try:
        for connection in connections:  # one request each, so every connection has been accepted
            connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        for connection in connections:
            assert connection.recv(4096).startswith(b"HTTP/1.1 200")
        shares = [len(socket_inodes(pid, state="01", port=port)) for pid in api_processes(process.pid)]
    finally:
        for connection in connections:
            connection.close()
    assert sum(shares) == CONNECTIONS, shares
    # a fair split is 50/50; by the kernel's hashing of addresses, rarely beyond 35/65
    assert min(shares) >= CONNECTIONS * 0.3, shares


def test_a_dead_process_is_replaced_and_sigterm_stops_the_server(served: tuple[subprocess.Popen[bytes], int]) -> None:
    process, port = served
    first, second = api_processes(process.pid)
    os.kill(first, signal.SIGKILL)
    wait_until(
        lambda: len(api_processes(process.pid)) == 2 and first not in api_processes(process.pid),
        "a new API process in place of the killed one",
        60,
    )
    assert second in api_processes(process.pid)
    for _ in range(10):
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=30).status_code == 200
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    time.sleep(0.5)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
