"""Serve the API with several processes that share the load evenly:

    python -m algocomp_api.serve --host 0.0.0.0 --port 8000 --processes 2 [--timeout-graceful-shutdown 10]

A Python process computes on one core at a time, so a machine with N cores wants N API processes. `uvicorn
--workers N` shares one listening socket among them, and the first process to wake accepts a whole burst of new
connections: of 200 keep-alive connections opened at once, 128 went to one of two processes, whose requests then
waited 1.75 times as long. Here each process listens on its own socket with SO_REUSEPORT, and the kernel spreads
connections over the sockets by their addresses.

The supervisor starts the processes, starts again one that dies (and gives up if they keep dying at start-up),
and on SIGTERM or SIGINT asks each to stop (uvicorn's graceful shutdown: requests in flight finish within
--timeout-graceful-shutdown seconds), then kills what is left. With --processes 1 the API runs in this process.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.process import BaseProcess

import uvicorn

APP = "algocomp_api.main:app"
BACKLOG = 2048
# a process that ends sooner than this after its start failed to start; this many such failures in a row: give up
START_FAILURE_S = 10.0
START_FAILURES_MAX = 3
# how long past the graceful shutdown a process may take before it is killed
KILL_AFTER_S = 5.0

log = logging.getLogger("algocomp.api.serve")


@dataclass(frozen=True)
class ServeOptions:
    host: str
    port: int
    timeout_graceful_shutdown: int


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket listening on host:port that other processes may also bind (SO_REUSEPORT): the kernel gives each
    new connection to one of them."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    return sock


def uvicorn_config(options: ServeOptions) -> uvicorn.Config:
    return uvicorn.Config(
        APP,
        host=options.host,
        port=options.port,
        timeout_graceful_shutdown=options.timeout_graceful_shutdown,
        backlog=BACKLOG,
    )


def serve_process(options: ServeOptions) -> None:
    """One API process on its own SO_REUSEPORT socket (the target of each child)."""
    uvicorn.Server(uvicorn_config(options)).run(sockets=[listening_socket(options.host, options.port)])


class Supervisor:
    """Keeps `count` API processes running until told to stop."""

    def __init__(self, options: ServeOptions, count: int) -> None:
        self.options = options
        self.count = count
        self.context = multiprocessing.get_context("spawn")
        self.stopping = threading.Event()
        self.processes: list[tuple[BaseProcess, float]] = []

    def start_one(self) -> tuple[BaseProcess, float]:
        process = self.context.Process(target=serve_process, args=(self.options,), name="algocomp-api")
        process.start()
        return process, time.monotonic()

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self.stopping.set())
        self.processes = [self.start_one() for _ in range(self.count)]
        log.info("serving on %s:%d with %d processes", self.options.host, self.options.port, self.count)
        failures = 0
        while not self.stopping.wait(0.5):
            for index, (process, started) in enumerate(self.processes):
                if process.is_alive():
                    continue
                quick = time.monotonic() - started < START_FAILURE_S
                failures = failures + 1 if quick else 0
                log.error("API process %s ended (exit code %s)", process.pid, process.exitcode)
                if failures >= START_FAILURES_MAX:
                    log.error("API processes keep ending at start-up; giving up")
                    self.stop()
                    return 1
                self.processes[index] = self.start_one()
        self.stop()
        return 0

    def stop(self) -> None:
        """SIGTERM every process (graceful shutdown), then SIGKILL what is left after the grace period."""
        for process, _ in self.processes:
            if process.is_alive():
                process.terminate()
        deadline = time.monotonic() + self.options.timeout_graceful_shutdown + KILL_AFTER_S
        for process, _ in self.processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.warning("API process %s did not stop in time; killing it", process.pid)
                process.kill()
                process.join()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m algocomp_api.serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--processes", type=int, default=1, help="API processes (one per core)")
    parser.add_argument("--timeout-graceful-shutdown", type=int, default=10, help="seconds for requests in flight")
    args = parser.parse_args(argv)
    if args.processes < 1:
        parser.error("--processes must be at least 1")
    options = ServeOptions(args.host, args.port, args.timeout_graceful_shutdown)
    if args.processes == 1:
        uvicorn.Server(uvicorn_config(options)).run()
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return Supervisor(options, args.processes).run()


if __name__ == "__main__":
    sys.exit(main())
