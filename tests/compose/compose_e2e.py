#!/usr/bin/env python3
"""`make test-compose`: the real docker-compose.yml, end to end, with the project's own image.

    .venv/bin/python tests/compose/compose_e2e.py [--keep] [--standins auto|always|never]

1. Docker: a running engine and the compose v2 plugin (as root, installed and started when missing:
   docker/standins.py); images: the official ones when they are present or can be pulled, else stand-ins built
   from Debian packages and PyPI (ALGOCOMP_STANDIN_IMAGES=auto|always|never, or --standins).
2. `docker compose build` (the algocomp image) and `up -d` under a project name of its own and free host ports,
   so it never touches a developer's stack or a service of this machine; waits until every service is healthy.
3. Through the API: one scenario run and a small sweep; every file of the run downloaded from this machine
   through its presigned S3 URL (and the ?redirect=true answer), byte-equal to what the API streams.
4. MLflow recorded the run (tag algocomp.run_id); Flower lists the workers. Both answer 401 without their
   credentials (the secrets come from an env file made for the test from .env.example, like `make up`'s .env);
   no secret of it is in any API response, in the compose logs or in any process's arguments on this machine.
5. `docker compose up -d --scale worker=3`; a batch of runs spread over the three workers (each ran at least
   one: the run rows record the worker node, runs@<container hostname>).
6. `docker compose down` (volumes kept) and `up -d` again: the earlier runs, sweep, results and files are all
   still there, byte for byte.
7. `docker compose down -v`, checking no volume is left behind; the test's image tag is removed (its layers
   stay in the build cache, so the next build takes seconds); the stand-in images stay.

Runs are tiny (20 000 periods, 2 sessions). The workers run one run at a time (WORKER_CONCURRENCY=1) so that,
with late acknowledgement and prefetch 1, six runs queued at once reach all three worker containers.

It prints its progress with timings and exits non-zero on failure; the compose logs then go to
out/compose-test/compose.log (and their tail to the terminal); the logs of the first start are always kept in
out/compose-test/compose-before-restart.log, the build logs in out/compose-test/build-logs/. It is not a pytest
module: `make test` does not
collect it (tests/compose/conftest.py).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import secrets
import shlex
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import httpx

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "out" / "compose-test"
T = TypeVar("T")

# Runs short enough for a test, long enough to have a panel and plots (as in tests/services).
TINY_OVERRIDES = ["horizon.max_periods=20000", "logging.interval=1000"]
SCALED_WORKERS = 3
SPREAD_RUNS = 6
# One run process per worker container while spreading: each container then holds at most one unacknowledged
# task (late ack, prefetch 1), so six runs queued at once reach all three containers.
WORKER_CONCURRENCY = "1"
PORT_VARIABLES = ["API_PORT", "FLOWER_PORT", "POSTGRES_PORT", "REDIS_PORT", "S3_PORT", "S3_CONSOLE_PORT", "MLFLOW_PORT"]
HEALTH_TIMEOUT_S = 420
RUN_TIMEOUT_S = 300
MLFLOW_TIMEOUT_S = 180


def _load(name: str, path: Path) -> Any:
    """A module loaded by path (docker/standins.py: a `docker` package, e.g. docker-py, may be importable)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


standins = _load("algocomp_standins", REPO / "docker" / "standins.py")
make_env = _load("algocomp_make_env", REPO / "scripts" / "make_env.py")
SECRET_VARIABLES = ["POSTGRES_PASSWORD", "S3_SECRET_KEY", "FLOWER_PASSWORD", "MLFLOW_PASSWORD", "MLFLOW_SECRET_KEY"]


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            values[name.strip()] = value.strip()
    return values


class Failure(AssertionError):
    """A check of the test failed."""


START = time.monotonic()


def log(message: str) -> None:
    print(f"[{time.monotonic() - START:7.1f}s] {message}", flush=True)


def check(condition: object, message: str) -> None:
    if not condition:
        raise Failure(message)


def wait_for(what: str, probe: Callable[[], T | None], timeout_s: float, interval_s: float = 2.0) -> T:
    """Poll `probe` until it returns something other than None (exceptions count as not yet)."""
    deadline = time.monotonic() + timeout_s
    last_error: str | None = None
    while True:
        try:
            value = probe()
            if value is not None:
                return value
        except (httpx.HTTPError, OSError, ValueError, KeyError) as error:
            last_error = f"{type(error).__name__}: {error}"
        if time.monotonic() > deadline:
            raise Failure(
                f"timed out after {timeout_s:.0f}s waiting for {what}"
                + (f" (last error: {last_error})" if last_error else "")
            )
        time.sleep(interval_s)


def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 now (held open together, so they are distinct)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Stack:
    """docker compose on the repository's docker-compose.yml under the test's project name and variables."""

    def __init__(self, project: str, variables: dict[str, str], env_file: Path) -> None:
        self.project = project
        self.env = {**os.environ, **variables, "COMPOSE_PROJECT_NAME": project}
        self.variables = variables
        self.env_file = env_file
        self.secrets = read_env_file(env_file)

    def argv(self, *args: str) -> list[str]:
        """`docker compose ARGS` for this stack: its file, env file and project name."""
        return [
            "docker",
            "compose",
            "--project-directory",
            str(REPO),
            "-f",
            str(REPO / "docker-compose.yml"),
            "--env-file",
            str(self.env_file),
            "-p",
            self.project,
            *args,
        ]

    def compose(
        self, *args: str, check: bool = True, capture: bool = False, timeout: float = 1800, quiet: bool = False
    ) -> subprocess.CompletedProcess[str]:
        argv = self.argv("--progress", "quiet" if not capture else "plain", *args)
        if not quiet:
            log(f"$ docker compose {shlex.join(args)}")
        result = subprocess.run(
            argv,
            env=self.env,
            cwd=REPO,
            text=True,
            timeout=timeout,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.PIPE if capture else None,
        )
        if check and result.returncode != 0:
            detail = ((result.stderr or "") + (result.stdout or "")).strip()[-3000:] if capture else ""
            raise Failure(f"`docker compose {shlex.join(args)}` failed (exit {result.returncode}) {detail}")
        return result

    def containers(self) -> list[dict[str, Any]]:
        out = self.compose("ps", "-a", "--format", "json", capture=True, quiet=True).stdout.strip()
        if not out:
            return []
        if out.startswith("["):
            return json.loads(out)
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def wait_healthy(self, expected: dict[str, int] | None = None, timeout_s: float = HEALTH_TIMEOUT_S) -> None:
        """Every long-running container running (and healthy where it has a healthcheck), every one-shot exited
        0, and `expected` = {service: containers} met."""
        expected = expected or {}
        last: list[str] = []

        def probe() -> bool | None:
            nonlocal last
            containers = self.containers()
            pending, by_service = [], {}
            for c in containers:
                service, state, health = c["Service"], c.get("State", ""), c.get("Health", "")
                by_service[service] = by_service.get(service, 0) + 1
                if state == "exited":
                    if c.get("ExitCode", 0) != 0:
                        raise Failure(f"{c['Name']} exited with {c.get('ExitCode')}: see the logs")
                    if service not in ONE_SHOTS:
                        raise Failure(f"{c['Name']} exited (code 0) but is a long-running service")
                    continue
                if state != "running" or health not in ("", "healthy"):
                    short = c["Name"].removeprefix(f"{self.project}-")
                    pending.append(f"{short}={state}{'/' + health if health else ''}")
            for service, count in expected.items():
                if by_service.get(service, 0) != count:
                    pending.append(f"{service}: {by_service.get(service, 0)} of {count} containers")
            if not containers:
                pending.append("no containers yet")
            if pending != last:
                log("  waiting for: " + (", ".join(pending) or "nothing"))
                last = pending
            return True if not pending else None

        wait_for("the stack to be healthy", probe, timeout_s, interval_s=3)

    def worker_hostnames(self) -> list[str]:
        ids = self.compose("ps", "-q", "worker", capture=True, quiet=True).stdout.split()
        if not ids:
            return []
        result = subprocess.run(
            ["docker", "inspect", "--format", "{{.Config.Hostname}}", *ids], text=True, capture_output=True, check=True
        )
        return sorted(result.stdout.split())


ONE_SHOTS = {"postgres-create-mlflow-db"}


class Api:
    def __init__(self, base_url: str) -> None:
        # every response is kept (headers and body; file downloads excepted) for the search for secrets
        self.seen: list[str] = []
        self.http = httpx.Client(base_url=base_url, timeout=30.0, event_hooks={"response": [self._keep]})

    def _keep(self, response: httpx.Response) -> None:
        response.read()
        kind = response.headers.get("content-type", "")
        body = response.text if kind.startswith(("application/json", "text/")) else ""
        self.seen.append(
            f"{response.request.method} {response.request.url} {response.status_code} {dict(response.headers)} {body}"
        )

    def sign_in(self, token: str) -> None:
        """Send `token` with every later request (the API answers 401 without one)."""
        self.http.headers["Authorization"] = f"Bearer {token}"

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(path, **kwargs)

    def json(self, path: str, **kwargs: Any) -> Any:
        response = self.http.get(path, **kwargs)
        check(response.status_code == 200, f"GET {path}: {response.status_code} {response.text[:500]}")
        return response.json()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        response = self.http.post(path, json=body)
        check(response.status_code in (200, 201, 202), f"POST {path}: {response.status_code} {response.text[:800]}")
        return response.json()

    def wait_run(self, run_id: str, timeout_s: float = RUN_TIMEOUT_S) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            run = self.json(f"/runs/{run_id}")
            if run["status"] in ("failed", "cancelled"):
                raise Failure(f"run {run_id} {run['status']}: {run.get('error')}")
            return run if run["status"] == "succeeded" else None

        return wait_for(f"run {run_id}", probe, timeout_s)

    def wait_runs(self, run_ids: Iterable[str], timeout_s: float = RUN_TIMEOUT_S) -> dict[str, dict[str, Any]]:
        done: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + timeout_s
        for run_id in run_ids:
            done[run_id] = self.wait_run(run_id, max(10.0, deadline - time.monotonic()))
        return done


# ------------------------------------------------------------------------------------------------- checks


def result_files(api: Api, run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The run's files as the API lists them: {name: {url, presigned_url, ...}}."""
    result = api.json(run["links"]["results"])
    files = result.get("artifacts") or result.get("files") or {}
    check(files, f"the results of run {run['id']} list no files: {json.dumps(result)[:500]}")
    return files


def check_presigned_downloads(api: Api, run: dict[str, Any], s3_port: int) -> dict[str, str]:
    """Every file of the run: streamed by the API, and fetched from this machine through its presigned URL (and
    through the ?redirect=true answer for one of them); the bytes must be equal. Returns {name: sha256}."""
    public = f"http://localhost:{s3_port}/"
    digests: dict[str, str] = {}
    contents: dict[str, bytes] = {}
    for name, link in sorted(result_files(api, run).items()):
        streamed = api.get(link["url"])
        check(streamed.status_code == 200, f"GET {link['url']}: {streamed.status_code} {streamed.text[:300]}")
        contents[name] = streamed.content
    # listed again: the plots, drawn on their first request just above, now have presigned URLs too
    files = result_files(api, run)
    check(set(files) == set(contents), f"the run's files changed from {sorted(contents)} to {sorted(files)}")
    with httpx.Client(timeout=60.0, follow_redirects=False) as outside:
        for name, link in sorted(files.items()):
            streamed_content = contents[name]
            presigned = link.get("presigned_url") or ""
            check(
                presigned.startswith(public),
                f"the presigned URL of {name} is not signed for the public endpoint {public}: {presigned[:120]}",
            )
            direct = outside.get(presigned)
            check(
                direct.status_code == 200,
                f"GET {presigned[:100]}… from the host: {direct.status_code} {direct.text[:300]}",
            )
            check(
                direct.content == streamed_content,
                f"{name}: the presigned download ({len(direct.content)} bytes) differs from the API's stream "
                f"({len(streamed_content)} bytes)",
            )
            digests[name] = sha256(direct.content)
        name, link = sorted(files.items())[0]
        redirect = api.get(link["url"], params={"redirect": "true"})
        check(redirect.status_code in (302, 303, 307), f"{link['url']}?redirect=true: {redirect.status_code}")
        location = redirect.headers["location"]
        check(location.startswith(public), f"?redirect=true points at {location[:100]}, not at {public}")
        followed = outside.get(location)
        check(
            followed.status_code == 200 and sha256(followed.content) == digests[name],
            f"the ?redirect=true download of {name} differs ({followed.status_code})",
        )
    log(
        f"  {len(digests)} files of run {run['id']} fetched from the host through presigned URLs on {public} "
        f"(and one through ?redirect=true): byte-equal to the API's stream "
        f"({', '.join(sorted(digests))})"
    )
    return digests


def check_mlflow(mlflow_url: str, run_id: str, auth: tuple[str, str]) -> str:
    """The MLflow run tagged with algocomp.run_id = run_id (the worker's follow-up task logs it)."""
    with httpx.Client(base_url=mlflow_url, timeout=20.0, auth=auth) as http:

        def probe() -> str | None:
            experiment = http.get("/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": "algocomp"})
            if experiment.status_code != 200:
                return None
            experiment_id = experiment.json()["experiment"]["experiment_id"]
            found = http.post(
                "/api/2.0/mlflow/runs/search",
                json={
                    "experiment_ids": [experiment_id],
                    "filter": f"tags.`algocomp.run_id` = '{run_id}'",
                    "max_results": 1,
                },
            )
            found.raise_for_status()
            runs = found.json().get("runs") or []
            if not runs:
                return None
            info = runs[0]["info"]
            if info["status"] != "FINISHED":  # the worker logs params, tags, metrics, then ends the run
                return None
            metrics = {m["key"] for m in runs[0].get("data", {}).get("metrics", [])}
            check("profit_gain" in metrics, f"MLflow run {info['run_id']} has no profit_gain metric: {metrics}")
            return f"{info['run_id']} ({info['status']}, {len(metrics)} metrics)"

        return wait_for(f"MLflow to record run {run_id}", probe, MLFLOW_TIMEOUT_S, interval_s=3)


def flower_workers(flower_url: str, auth: tuple[str, str], refresh: bool = True) -> dict[str, Any]:
    response = httpx.get(
        f"{flower_url}/api/workers", params={"refresh": "1"} if refresh else None, timeout=30.0, auth=auth
    )
    check(response.status_code == 200, f"Flower /api/workers: {response.status_code} {response.text[:300]}")
    return response.json()


def wait_flower_lists(flower_url: str, hostnames: list[str], auth: tuple[str, str]) -> list[str]:
    """Flower lists runs@<hostname> for every worker container (and the aggregator)."""
    wanted = {f"runs@{h}" for h in hostnames}

    def probe() -> list[str] | None:
        names = set(flower_workers(flower_url, auth))
        if wanted <= names and any(n.startswith("aggregate@") for n in names):
            return sorted(names)
        return None

    return wait_for(f"Flower to list {sorted(wanted)}", probe, 180, interval_s=3)


def check_authentication(flower_url: str, mlflow_url: str) -> None:
    """Flower and MLflow refuse requests without credentials, and wrong ones."""
    for url in (f"{flower_url}/", f"{flower_url}/api/workers", f"{flower_url}/tasks/datatable"):
        for auth in (None, ("algocomp", "wrong")):
            response = httpx.get(url, timeout=20.0, auth=auth)
            check(response.status_code == 401, f"Flower {url} with auth {auth}: {response.status_code}, not 401")
    mlflow_api = f"{mlflow_url}/api/2.0/mlflow/experiments/search"
    for auth in (None, ("algocomp", "wrong")):
        response = httpx.post(mlflow_api, json={"max_results": 1}, timeout=20.0, auth=auth)
        check(response.status_code == 401, f"MLflow {mlflow_api} with auth {auth}: {response.status_code}, not 401")
    log("  Flower and MLflow answer 401 without their credentials (and with wrong ones)")


def check_no_secret_leaks(stack: Stack, api: Api) -> None:
    """No secret of the env file in an API response, the compose logs or any process's arguments (`ps`)."""
    secrets_ = {name: stack.secrets[name] for name in SECRET_VARIABLES}
    logs = stack.compose("logs", "--no-color", capture=True, quiet=True).stdout
    command_lines = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command_lines.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
            except OSError:
                continue
    places = {
        "API responses": "\n".join(api.seen),
        "compose logs": logs,
        "process arguments": "\n".join(command_lines),
    }
    check(len(api.seen) > 10 and len(logs) > 1000, "too little to search for secrets")
    leaks = [
        f"{name} in {where}" for name, value in secrets_.items() for where, text in places.items() if value in text
    ]
    check(not leaks, f"secrets leaked: {leaks}")
    log(
        f"  no secret ({', '.join(secrets_)}) in {len(api.seen)} API responses, {len(logs)} characters of compose "
        f"logs or the arguments of {len(command_lines)} processes"
    )


# --------------------------------------------------------------------------------------------- the scenario


def scenario(stack: Stack, ports: dict[str, int], timings: dict[str, float]) -> None:
    api = Api(f"http://127.0.0.1:{ports['API_PORT']}")
    flower_url = f"http://127.0.0.1:{ports['FLOWER_PORT']}"
    mlflow_url = f"http://127.0.0.1:{ports['MLFLOW_PORT']}"
    flower_auth = (stack.secrets["FLOWER_USER"], stack.secrets["FLOWER_PASSWORD"])
    mlflow_auth = (stack.secrets["MLFLOW_USER"], stack.secrets["MLFLOW_PASSWORD"])

    def step(name: str) -> Callable[[], None]:
        t0 = time.monotonic()
        log(f"== {name}")

        def done() -> None:
            timings[name] = time.monotonic() - t0
            log(f"   {name}: {timings[name]:.0f}s")

        return done

    done = step("build the algocomp image (docker compose build)")
    build_log = OUT / "build-logs" / "algocomp-image.log"
    build_log.parent.mkdir(parents=True, exist_ok=True)
    log(f"  output in {build_log.relative_to(REPO)}")
    with build_log.open("w") as out:
        built = subprocess.run(
            stack.argv("--progress", "plain", "build", "api"),
            env=stack.env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=1800,
        )
    if built.returncode != 0:
        print("\n".join(build_log.read_text(errors="replace").splitlines()[-40:]))
        raise Failure(f"docker compose build failed (exit {built.returncode}): see {build_log}")
    done()

    done = step("up and healthy")
    stack.compose("up", "-d")
    stack.wait_healthy({"worker": 1})
    check(api.json("/healthz"), "/healthz")
    check(api.get("/runs").status_code == 401, "GET /runs without a token must answer 401")
    created = stack.compose(
        "exec", "-T", "api", "algocomp", "users", "create", "compose-e2e", "--team", "e2e", capture=True, quiet=True
    )
    api.sign_in(created.stdout.strip().splitlines()[-1])
    check(api.get("/runs").status_code == 200, "GET /runs with the operator-issued token")
    log("  `algocomp users create` in the api container issued a token; 401 without it")
    page = api.get("/")
    check(page.status_code == 200 and 'id="app"' in page.text, f"the dashboard at / ({page.status_code})")
    script = page.text.split('src="', 1)[-1].split('"', 1)[0]
    check(script.startswith("/assets/") and api.get(script).status_code == 200, f"the dashboard's bundle {script}")
    check("script-src 'self'" in page.headers.get("content-security-policy", ""), "the dashboard's policy")
    log(f"  the image serves the dashboard at / (its bundle {script})")
    done()

    done = step("a scenario and a small sweep through the API")
    accepted = api.post(
        "/runs", {"preset": "calvano-2020-baseline", "sessions": 2, "seed": 1, "overrides": TINY_OVERRIDES}
    )
    sweep = api.post(
        "/sweeps",
        {
            "preset": "calvano-2020-baseline",
            "name": "compose-test",
            "sessions": 2,
            "seeds": [0],
            "overrides": TINY_OVERRIDES,
            "grid": {"agents.alpha": [0.1, 0.15]},
        },
    )
    run = api.wait_run(accepted["id"])
    log(f"  run {run['id']} succeeded on {run['worker']}")

    def sweep_over() -> dict[str, Any] | None:
        state = api.json(f"/sweeps/{sweep['id']}")
        if state["status"] in ("failed", "cancelled"):
            raise Failure(f"sweep {sweep['id']} {state['status']}: {state['counts']}")
        return state if state["status"] == "succeeded" else None

    sweep_state = wait_for(f"sweep {sweep['id']}", sweep_over, RUN_TIMEOUT_S)
    log(f"  sweep {sweep['id']} succeeded: {sweep_state['runs']} runs, counts {sweep_state['counts']}")
    done()

    # MLflow first: the worker's follow-up task logs the run to MLflow (its plots are drawn when first asked for)
    done = step("MLflow recorded the run; Flower lists the workers; both need their credentials")
    log(f"  MLflow run {check_mlflow(mlflow_url, run['id'], mlflow_auth)} for algocomp run {run['id']}")
    names = wait_flower_lists(flower_url, stack.worker_hostnames(), flower_auth)
    log(f"  Flower lists {', '.join(names)}")
    check_authentication(flower_url, mlflow_url)
    done()

    done = step("presigned downloads from the host")
    digests = check_presigned_downloads(api, run, ports["S3_PORT"])
    done()

    done = step(f"scale to {SCALED_WORKERS} workers; runs spread over them")
    stack.compose("up", "-d", "--scale", f"worker={SCALED_WORKERS}")
    stack.wait_healthy({"worker": SCALED_WORKERS})
    hostnames = stack.worker_hostnames()
    check(len(hostnames) == SCALED_WORKERS, f"{SCALED_WORKERS} worker containers expected, found {hostnames}")
    names = wait_flower_lists(flower_url, hostnames, flower_auth)
    log(f"  Flower lists {', '.join(names)}")
    spread_ids = [
        api.post(
            "/runs", {"preset": "calvano-2020-baseline", "sessions": 2, "seed": 100 + i, "overrides": TINY_OVERRIDES}
        )["id"]
        for i in range(SPREAD_RUNS)
    ]
    spread = api.wait_runs(spread_ids)
    per_host: dict[str, int] = {h: 0 for h in hostnames}
    for r in spread.values():
        node = (r["worker"] or "").split("/")[0]
        host = node.split("@", 1)[-1]
        check(host in per_host, f"run {r['id']} ran on {r['worker']!r}, not on one of the workers {hostnames}")
        per_host[host] += 1
    log("  runs per worker container: " + ", ".join(f"{h}: {n}" for h, n in per_host.items()))
    check(all(n >= 1 for n in per_host.values()), f"a worker ran no run: {per_host}")
    done()

    before = {r["id"]: r for r in api.json("/runs", params={"limit": 100})["items"]}
    expected_ids = {run["id"], *spread_ids}
    check(expected_ids <= set(before), "GET /runs does not list every run of the test")
    check(len(before) == 1 + sweep_state["runs"] + SPREAD_RUNS, f"unexpected runs listed: {len(before)}")
    result_before = api.json(run["links"]["results"])

    done = step("no secret in API responses, compose logs or process arguments")
    for path in ("/readyz", "/healthz", "/docs", "/openapi.json", "/no/such/route", f"/runs/{run['id']}/nothing"):
        api.get(path)
    check_no_secret_leaks(stack, api)
    done()

    done = step("down (volumes kept), up again: the data is still there")
    dump_logs(stack, "compose-before-restart.log")
    stack.compose("down")
    check(not [c for c in stack.containers()], "containers left after docker compose down")
    stack.compose("up", "-d")
    stack.wait_healthy({"worker": 1})
    after = {r["id"]: r for r in api.json("/runs", params={"limit": 100})["items"]}
    check(set(after) == set(before), f"runs before the restart {len(before)}, after {len(after)}")
    check(
        all(r["status"] == "succeeded" for r in after.values()),
        f"runs not succeeded after the restart: {[r['id'] for r in after.values() if r['status'] != 'succeeded']}",
    )
    result_after = api.json(run["links"]["results"])
    check(result_after["summary"] == result_before["summary"], "the run's summary changed across the restart")
    digests_after = check_presigned_downloads(api, run, ports["S3_PORT"])
    changed = sorted(
        name for name in digests.keys() | digests_after.keys() if digests.get(name) != digests_after.get(name)
    )
    check(not changed, f"the run's files changed across the restart: {changed}")
    sweeps = {s["id"]: s for s in api.json("/sweeps")["items"]}
    check(sweeps.get(sweep["id"], {}).get("status") == "succeeded", f"sweep after the restart: {sweeps}")
    for r in spread.values():
        check(api.get(r["links"]["results"]).status_code == 200, f"results of run {r['id']} after the restart")
    log(f"  {len(after)} runs (all succeeded), the sweep and every file of run {run['id']} survived the restart")
    done()


def volume_names() -> list[str]:
    return subprocess.run(["docker", "volume", "ls", "-q"], capture_output=True, text=True).stdout.split()


def dump_logs(stack: Stack, name: str = "compose.log") -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / name
    with path.open("w") as out:
        for args in (["ps", "-a"], ["logs", "--no-color", "--timestamps"]):
            out.write(f"$ docker compose {' '.join(args)}\n")
            out.flush()
            subprocess.run(
                stack.argv(*args),
                env=stack.env,
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=120,
            )
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="end-to-end test of docker-compose.yml")
    parser.add_argument(
        "--standins",
        choices=["auto", "always", "never"],
        default=os.environ.get("ALGOCOMP_STANDIN_IMAGES", "auto"),
        help="stand-in images instead of the official ones (default: auto = when they cannot be pulled)",
    )
    parser.add_argument("--keep", action="store_true", help="leave the stack running at the end (and on failure)")
    args = parser.parse_args(argv)

    timings: dict[str, float] = {}
    OUT.mkdir(parents=True, exist_ok=True)
    stack: Stack | None = None
    failed: BaseException | None = None
    volumes_before: set[str] = set()
    try:
        t0 = time.monotonic()
        log("== docker and images")
        standins.ensure_docker(lambda m: log("  " + m), OUT)
        standins.copy_certs(log=lambda m: log("  " + m))
        images = standins.image_environment(args.standins, lambda m: log("  " + m), OUT / "build-logs")
        timings["docker and images"] = time.monotonic() - t0
        ports = dict(zip(PORT_VARIABLES, free_ports(len(PORT_VARIABLES)), strict=True))
        suffix = secrets.token_hex(3)
        project = f"algocomp-composetest-{suffix}"
        variables = {
            **images,
            **{k: str(v) for k, v in ports.items()},
            "ALGOCOMP_IMAGE_TAG": f"compose-test-{suffix}",
            "WORKER_CONCURRENCY": WORKER_CONCURRENCY,
        }
        # the stack's secrets, fresh for this run, as `make up` makes .env (a developer's .env is not used)
        env_file = OUT / "compose-test.env"
        make_env.write_env(env_file, force=True)
        stack = Stack(project, variables, env_file)
        volumes_before = set(volume_names())
        log(f"  project {project}; ports " + ", ".join(f"{k}={v}" for k, v in ports.items()))
        scenario(stack, ports, timings)
    except BaseException as error:  # noqa: BLE001 - report, tear down, exit non-zero (Ctrl-C included)
        failed = error
        log(f"FAILED: {type(error).__name__}: {error}")
        if not isinstance(error, (Failure, KeyboardInterrupt)):
            traceback.print_exc()
        if stack is not None:
            try:
                path = dump_logs(stack)
                log(f"compose logs written to {path.relative_to(REPO)}; their end:")
                print("\n".join(path.read_text(errors="replace").splitlines()[-60:]), flush=True)
            except Exception as dump_error:  # noqa: BLE001
                log(f"could not collect the compose logs: {dump_error}")
    finally:
        if stack is not None and not args.keep:
            t0 = time.monotonic()
            log("== tear down: docker compose down -v")
            stack.compose("down", "-v", "--remove-orphans", check=False)
            # the image's tag only: its layers stay in Docker's build cache, so the next build takes seconds
            subprocess.run(
                ["docker", "image", "rm", f"algocomp:{stack.variables['ALGOCOMP_IMAGE_TAG']}"], capture_output=True
            )
            left = set(volume_names()) - volumes_before
            if left and failed is None:
                failed = Failure(f"volumes left after docker compose down -v: {sorted(left)}")
                log(f"FAILED: {failed}")
            timings["tear down"] = time.monotonic() - t0
        elif stack is not None:
            log(f"--keep: the stack is still up (docker compose -p {stack.project} down -v to remove it)")

    total = time.monotonic() - START
    log("timings: " + ", ".join(f"{name} {seconds:.0f}s" for name, seconds in timings.items()))
    if failed is not None:
        log(f"compose test FAILED after {total:.0f}s")
        return 1
    log(f"compose test passed in {total:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
