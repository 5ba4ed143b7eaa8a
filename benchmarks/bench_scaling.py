"""How a sweep's wall time falls with the number of run-worker processes (`make bench-scaling`), on the native stack
or, with --compose, on the Docker stack scaled with `docker compose up --scale worker=N`.

    python benchmarks/bench_scaling.py [--processes 1,2,4] [--sessions 5]
    python benchmarks/bench_scaling.py --compose [--processes 1,2,4] [--sessions 5]

For each count N it restarts the native stack of `make dev` with N run-worker processes (WORKER_CONCURRENCY=N,
as `docker compose up --scale worker=K` gives K containers of WORKER_CONCURRENCY processes each), then runs the
built-in sweep calvano-2020-figure1 with --sessions sessions per cell (100 runs) through the API and times it from
the POST to the sweep's end (bench_stack.bench_figure1). It prints wall time, speed-up against the first count and
efficiency (speed-up / N). The stack is left up with the last count; `make dev` restarts it as usual.

A sweep's runs are its unit of distribution: each run goes to one free worker process and runs its sessions
there, so the wall time falls with the processes while there are at least as many runs left as processes and
cores to run them on. It leaves out start-up of the stack (timed from the POST) and the aggregator's metrics.

--compose builds the project's image and starts docker-compose.yml under a project name and ports of its own
(tests/compose/compose_e2e.py's set-up: Docker installed and stand-in images built when missing), with one run
process per worker container (WORKER_CONCURRENCY=1), so N containers are N processes; each count scales the
worker service to N containers. The stack and its volumes are removed at the end (--keep leaves them).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from algocomp.client.credentials import TOKEN_ENV

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_stack import bench_figure1, wait_until_idle  # noqa: E402 - benchmarks/ is not a package

REPO_ROOT = Path(__file__).resolve().parents[1]
DEVSTACK = REPO_ROOT / "tools" / "devstack.py"


def restart_stack(processes: int) -> None:
    env = {**os.environ, "WORKER_CONCURRENCY": str(processes)}
    for command in ("down", "up"):
        subprocess.run([sys.executable, str(DEVSTACK), command], env=env, check=True, stdout=subprocess.DEVNULL)


def compose_e2e():  # -> the module tests/compose/compose_e2e.py (its Docker set-up and Stack)
    spec = importlib.util.spec_from_file_location("algocomp_compose_e2e", REPO_ROOT / "tests/compose/compose_e2e.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@contextmanager
def compose_stack(keep: bool) -> Iterator[tuple[Callable[[int], None], str]]:
    """The Docker stack, up with one worker container and a user; yields (scale to N containers, API URL). The
    user's token goes into the environment (ALGOCOMP_API_TOKEN), where the benchmark's client finds it."""
    e2e = compose_e2e()
    e2e.standins.ensure_docker(lambda m: e2e.log("  " + m), e2e.OUT)
    e2e.standins.copy_certs(log=lambda m: e2e.log("  " + m))
    images = e2e.standins.image_environment("auto", lambda m: e2e.log("  " + m), e2e.OUT / "build-logs")
    ports = dict(zip(e2e.PORT_VARIABLES, e2e.free_ports(len(e2e.PORT_VARIABLES)), strict=True))
    suffix = secrets.token_hex(3)
    variables = {
        **images,
        **{name: str(port) for name, port in ports.items()},
        "ALGOCOMP_IMAGE_TAG": f"bench-scaling-{suffix}",
        "WORKER_CONCURRENCY": "1",
    }
    env_file = e2e.OUT / f"bench-scaling-{suffix}.env"
    e2e.make_env.write_env(env_file, force=True)
    stack = e2e.Stack(f"algocomp-scaling-{suffix}", variables, env_file)
    try:
        stack.compose("build", "api")
        stack.compose("up", "-d")
        stack.wait_healthy({"worker": 1})
        created = stack.compose(
            "exec", "-T", "api", "algocomp", "users", "create", "bench-scaling", "--team", "bench", capture=True
        )
        os.environ[TOKEN_ENV] = created.stdout.strip().splitlines()[-1]

        def scale(containers: int) -> None:
            stack.compose("up", "-d", "--scale", f"worker={containers}")
            stack.wait_healthy({"worker": containers})

        yield scale, f"http://127.0.0.1:{ports['API_PORT']}"
    finally:
        if keep:
            print(f"scaling: --keep: docker compose -p {stack.project} down -v removes the stack", file=sys.stderr)
        else:
            stack.compose("down", "-v", "--remove-orphans", check=False)
            subprocess.run(
                ["docker", "image", "rm", f"algocomp:{variables['ALGOCOMP_IMAGE_TAG']}"], capture_output=True
            )
            env_file.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", default="1,2,4", help="comma-separated run-worker process counts")
    parser.add_argument("--sessions", type=int, default=5, help="sessions per cell of the sweep (its own: 100)")
    parser.add_argument("--api", default=os.environ.get("ALGOCOMP_API_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--compose", action="store_true", help="the Docker stack, scaled by worker containers")
    parser.add_argument("--keep", action="store_true", help="--compose: leave the stack up at the end")
    args = parser.parse_args(argv)
    try:
        counts = [int(part) for part in args.processes.split(",") if part.strip()]
    except ValueError:
        parser.error(f"--processes {args.processes!r}: give whole numbers separated by commas, e.g. 1,2,4")
    if not counts or min(counts) < 1:
        parser.error("--processes: at least one count, each 1 or more")
    rows: list[tuple[int, float]] = []
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="algocomp-scaling-") as scratch:
        if args.compose:
            scale, api = stack.enter_context(compose_stack(args.keep))
        else:
            scale, api = restart_stack, args.api
        for processes in counts:
            what = "worker containers of one process" if args.compose else "run-worker processes"
            print(f"scaling: {processes} {what} ...", file=sys.stderr)
            scale(processes)
            if not args.compose:
                wait_until_idle()  # the native stack's queues (the Docker stack's are empty after each sweep)
            measurement = bench_figure1(api, args.sessions, Path(scratch) / f"heatmap-{processes}.png")
            assert measurement.seconds is not None
            wall = measurement.seconds
            rows.append((processes, wall))
            print(f"scaling: {processes} processes: {wall:.0f} s ({measurement.detail})", file=sys.stderr)
    first_n, first_wall = rows[0]
    where = "Docker stack, one process per worker container" if args.compose else "native stack"
    print(f"calvano-2020-figure1, {args.sessions} sessions per cell (100 runs), {os.cpu_count()} cores, {where}")
    print(f"{'processes':>9}  {'wall':>7}  {'speed-up':>8}  {'efficiency':>10}")
    for processes, wall in rows:
        speedup = first_wall / wall
        print(f"{processes:>9}  {wall:>6.0f}s  {speedup:>8.2f}  {speedup * first_n / processes:>10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
