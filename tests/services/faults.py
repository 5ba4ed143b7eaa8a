"""Real faults for the service tests: an S3 server (`rclone serve s3`) that a test stops and starts again on the
same port and folder, and a TCP relay in front of Postgres or Redis that a test takes down (the listening socket
closed, every relayed connection reset) and brings back on the same port.

Nothing here mocks a service: the processes under test talk to the real servers, only through a door the test can
shut.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import subprocess
import threading
import time
from pathlib import Path

from devstack import free_port, port_open, rclone_s3_argv, rclone_s3_env

START_TIMEOUT_S = 30.0


class RcloneS3:
    """`rclone serve s3` on a folder and port of its own, stoppable and restartable (the same port and folder:
    what was stored before the stop is there after it)."""

    def __init__(self, folder: Path, access_key: str, secret_key: str, log_path: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._env = {**os.environ, **rclone_s3_env(access_key, secret_key)}
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self._log_path.open("ab") as log:
            self._process = subprocess.Popen(
                rclone_s3_argv(self.folder, self.port),
                env=self._env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not port_open(self.port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"rclone serve s3 did not start:\n{self._log_path.read_text(errors='replace')}")
            time.sleep(0.05)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.kill()  # an outage, not a shutdown
        process.wait(timeout=10)
        deadline = time.monotonic() + START_TIMEOUT_S
        while port_open(self.port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"port {self.port} still answers after rclone was killed")
            time.sleep(0.05)


class TcpRelay:
    """A TCP relay from a local port to `target` (host, port). `down()` closes the listening socket and resets
    every relayed connection (what a server's clients see when it dies); `up()` listens again on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()  # one per up(): a down() ends that generation's threads only
        self._thread: threading.Thread | None = None

    def up(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        listener.settimeout(0.2)
        self._listener = listener
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, args=(listener, self._stop), daemon=True, name="tcp-relay")
        self._thread.start()

    def down(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            connections, self._connections = self._connections, set()
        for connection in connections:
            with contextlib.suppress(OSError):
                # SO_LINGER 0: close with a reset, as a dead server's kernel would answer
                connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                connection.close()

    def _accept(self, listener: socket.socket, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._connections.update({client, server})
            threading.Thread(target=self._pump, args=(client, server, stop), daemon=True, name="tcp-relay-pump").start()

    def _pump(self, client: socket.socket, server: socket.socket, stop: threading.Event) -> None:
        selector = selectors.DefaultSelector()
        try:
            client.setblocking(False)
            server.setblocking(False)
            selector.register(client, selectors.EVENT_READ, server)
            selector.register(server, selectors.EVENT_READ, client)
            while not stop.is_set():
                for key, _ in selector.select(timeout=0.2):
                    source: socket.socket = key.fileobj  # type: ignore[assignment]
                    data = source.recv(65536)
                    if not data:
                        return
                    key.data.setblocking(True)
                    key.data.sendall(data)
                    key.data.setblocking(False)
        except OSError:
            return
        finally:
            selector.close()
            with self._lock:
                self._connections.discard(client)
                self._connections.discard(server)
            for connection in (client, server):
                with contextlib.suppress(OSError):
                    connection.close()
