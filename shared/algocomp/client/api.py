"""A synchronous Python client of the algocomp API: scenarios, runs, live progress, results as DataFrames.

    from algocomp.client import Client

    with Client("http://127.0.0.1:8000") as api:
        run = api.launch_run(preset="calvano-2020-baseline", seed=1, sessions=20)
        final = api.wait(run["id"], progress=lambda event: print(event["sessions_done"]))
        api.results(run["id"])["profit_gain"]
        panel = api.panel(run["id"])           # pandas.DataFrame of the long panel

It speaks only HTTP, so it runs wherever the API is reachable: on the machine of the stack or elsewhere. Errors
the API reports come back as ApiError with the API's code, message and the field at fault; an API that cannot be
reached at all raises ApiUnreachable (a subclass), whose message says how to start the local stack.

POST /runs and POST /sweeps (launch_run, create_sweep) carry a fresh `Idempotency-Key` per call, and are retried
with that same key after a connection error, a lost answer or a 5xx (POST_RETRIES times, with backoff): the API
answers a retry with its first answer, so a call that saw a failure and retried still creates one run or sweep.
Other POSTs are not retried.

Live progress comes from the run's Server-Sent Events stream. A dropped connection is resumed with
`Last-Event-ID`, so no event is lost or repeated (the API replays from the run's Redis stream); `wait` falls back
to polling the run if the stream keeps failing, since the run's row in Postgres is the source of truth.
"""

from __future__ import annotations

import io
import json
import random
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from algocomp.client.constants import DEFAULT_BASE_URL, TERMINAL_STATUSES
from algocomp.client.credentials import TOKEN_ENV, credentials_path, find_token
from algocomp.extras import raise_missing_extra

try:
    import httpx
except ImportError as _error:
    raise_missing_extra(_error, "client", "the algocomp API client (algocomp.client)")

if TYPE_CHECKING:
    import pandas as pd

TERMINAL_EVENTS = TERMINAL_STATUSES

# A stream that fails this many times in a row without delivering an event is given up on (wait() then polls).
MAX_STREAM_FAILURES = 5
# Longest silence on an SSE connection before it is treated as dead and resumed. The API sends keep-alive
# comments far more often than this, so only a broken connection runs into it.
STREAM_READ_TIMEOUT_S = 60.0
POLL_INTERVAL_S = 0.5
# A POST made with an Idempotency-Key (launch_run, create_sweep) is retried up to this many times, with the same
# key, after a connection error, a lost answer (a transport error after sending), a 5xx, or a 409 saying another
# request with the key is still being handled; waits grow from RETRY_BACKOFF_S, doubling, with jitter.
POST_RETRIES = 3
RETRY_BACKOFF_S = 0.5
RETRY_WAIT_MAX_S = 10.0
IDEMPOTENCY_HEADER = "Idempotency-Key"
RETRYABLE_STATUSES = frozenset({500, 502, 503, 504})

ProgressCallback = Callable[[dict[str, Any]], None]
SseEvent = tuple[str | None, str, Any]


class ApiError(Exception):
    """An error answer of the API: the HTTP status and the API's {"error": {"code", "message", "field"}}.

    `field` names the request field at fault (e.g. "scenario.agents.alpha"), or is None when the error is not
    about one field (an unknown run id, a run that has no results yet).
    """

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.field}: " if self.field else ""
        status = f" (HTTP {self.status} {self.code})" if self.status else ""
        return f"{where}{self.message}{status}"

    @property
    def is_user_error(self) -> bool:
        """A 4xx answer: the request was wrong (bad scenario, unknown id), not the server."""
        return 400 <= self.status < 500


class ApiUnreachable(ApiError):
    """No HTTP answer at all: connection refused, DNS failure, a timeout while connecting."""

    def __init__(self, base_url: str, reason: str = "") -> None:
        self.base_url = base_url
        self.reason = reason
        super().__init__(
            0, "unreachable", f"cannot reach the algocomp API at {base_url}: is the stack running? (make dev)"
        )

    def __str__(self) -> str:
        return self.message

    @property
    def is_user_error(self) -> bool:
        return True


class Client:
    """The algocomp API over HTTP (httpx, synchronous). Use as a context manager, or call close()."""

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 30,
        *,
        token: str | None = None,
        transport: httpx.BaseTransport | None = None,
        retries: int = POST_RETRIES,
        retry_backoff_s: float = RETRY_BACKOFF_S,
    ) -> None:
        """`token` is the API token to send; by default ALGOCOMP_API_TOKEN, else the one the credentials file
        holds for `base_url` (algocomp.client.credentials). `retries` and `retry_backoff_s` govern the retries of
        launch_run and create_sweep (0: none)."""
        self.base_url = base_url.rstrip("/")
        self.timeout = float(timeout)
        self.retries = max(0, int(retries))
        self.retry_backoff_s = float(retry_backoff_s)
        token = token or find_token(self.base_url)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.base_url, timeout=self.timeout, transport=transport, headers=headers)

    # ------------------------------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.base_url!r})"

    # ------------------------------------------------------------------------------------------ health

    def health(self) -> dict[str, Any]:
        """GET /healthz: the API process is up."""
        return self._json("GET", "/healthz")

    def ready(self) -> dict[str, Any]:
        """GET /readyz: Postgres, Redis and S3 are reachable from the API (ApiError 503 otherwise)."""
        return self._json("GET", "/readyz")

    # ------------------------------------------------------------------------------------------ scenarios

    def create_scenario(
        self, scenario: Mapping[str, Any] | str | None = None, *, preset: str | None = None
    ) -> dict[str, Any]:
        """Store a scenario (a dict in the scenario format) or a preset by name; returns the stored scenario with
        its id. A string as the first argument is taken as a preset name. Storing the same scenario twice returns
        the same record (scenarios are identified by their hash)."""
        if isinstance(scenario, str):
            scenario, preset = None, scenario
        if (scenario is None) == (preset is None):
            raise ValueError("give exactly one of scenario (a dict) or preset (a name)")
        body: dict[str, Any] = {"preset": preset} if preset is not None else {"scenario": dict(scenario)}  # type: ignore[arg-type]
        return self._json("POST", "/scenarios", json=body)

    def list_scenarios(self, **filters: Any) -> list[dict[str, Any]]:
        """The stored scenarios (one page; pass limit=/offset= for others)."""
        return _items(self._json("GET", "/scenarios", params=_params(filters)))

    def get_scenario(self, scenario_id: str) -> dict[str, Any]:
        return self._json("GET", f"/scenarios/{scenario_id}")

    # ------------------------------------------------------------------------------------------ runs

    def launch_run(
        self,
        *,
        scenario_id: str | None = None,
        scenario: Mapping[str, Any] | None = None,
        preset: str | None = None,
        seed: int | None = None,
        sessions: int | None = None,
        log_interval: int | None = None,
        overrides: Sequence[str] = (),
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Queue a run of a stored scenario, an inline scenario or a preset; returns {"id", "status", "links"} at
        once (the run is simulated by a worker). `overrides` are "PATH=VALUE" strings applied in order, as with
        `algocomp simulate --set`; seed, sessions and log_interval default to the scenario's.

        The request carries `idempotency_key` (default: a fresh UUID) and is retried with it after a failure, so
        it queues one run however often it is retried; pass a key of your own to retry across processes."""
        sources = [
            name
            for name, value in (("scenario_id", scenario_id), ("scenario", scenario), ("preset", preset))
            if value is not None
        ]
        if len(sources) != 1:
            raise ValueError("give exactly one of scenario_id, scenario or preset")
        body: dict[str, Any] = {}
        if scenario_id is not None:
            body["scenario_id"] = str(scenario_id)
        elif scenario is not None:
            body["scenario"] = dict(scenario)
        else:
            body["preset"] = preset
        for name, value in (("seed", seed), ("sessions", sessions), ("log_interval", log_interval)):
            if value is not None:
                body[name] = value
        if overrides:
            body["overrides"] = list(overrides)
        return self._post_idempotent("/runs", body, idempotency_key)

    def get_run(self, run_id: str) -> dict[str, Any]:
        """The run: status, progress, sessions_done, timestamps, error."""
        return self._json("GET", f"/runs/{run_id}")

    def list_runs(self, **filters: Any) -> list[dict[str, Any]]:
        """Runs, newest first; filters are the API's query parameters (scenario_id=, status=, limit=, offset=)."""
        return _items(self._json("GET", "/runs", params=_params(filters)))

    def count_runs(self, **filters: Any) -> int:
        """How many runs match the filters (the total of GET /runs, fetched with a one-item page)."""
        page = self._json("GET", "/runs", params=_params({**filters, "limit": 1}))
        if isinstance(page, dict) and isinstance(page.get("total"), int):
            return page["total"]
        return len(_items(page))

    def cancel_run(self, run_id: str) -> dict[str, Any]:
        """Ask for a run to stop: a queued run is cancelled at once, a running one at its next check."""
        return self._json("POST", f"/runs/{run_id}/cancel")

    def retry_run(self, run_id: str) -> dict[str, Any]:
        """Queue a failed or cancelled run again (the same run, its next attempt); ApiError 409 for any other."""
        return self._json("POST", f"/runs/{run_id}/retry")

    # ------------------------------------------------------------------------------------------ progress

    def events(self, run_id: str, last_event_id: str | None = None) -> Iterator[SseEvent]:
        """The run's progress events as (id, event, data) in order, from the start (or after `last_event_id`),
        ending after the terminal event (succeeded, failed or cancelled). `id` is the Redis stream id (pass it
        back as `last_event_id` to resume after that event); `data` is the decoded JSON.

        A connection that drops is reopened with Last-Event-ID, so each event is yielded once. After
        MAX_STREAM_FAILURES failed attempts in a row the last transport error is raised (httpx.TransportError).
        """
        return self._stream(f"/streams/{run_id}", f"run {run_id}", last_event_id)

    def _stream(self, path: str, subject: str, last_event_id: str | None) -> Iterator[SseEvent]:
        """The SSE events at `path` until a terminal one, resuming a dropped connection with Last-Event-ID (shared
        by the run and the sweep streams, which follow the same protocol)."""
        failures = 0
        retry_s = 0.5
        while True:
            headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
            if last_event_id is not None:
                headers["Last-Event-ID"] = last_event_id
            timeout = httpx.Timeout(self.timeout, read=max(self.timeout, STREAM_READ_TIMEOUT_S))
            try:
                with self._http.stream("GET", path, headers=headers, timeout=timeout) as response:
                    if response.status_code >= 400:
                        response.read()
                        raise _api_error(response)
                    for sse in parse_sse(response.iter_lines()):
                        if sse.retry_ms is not None:
                            retry_s = sse.retry_ms / 1000
                        if sse.id is not None:
                            last_event_id = sse.id
                        if sse.event is None:  # an id/retry-only block: nothing to hand out
                            continue
                        failures = 0  # the stream moves: only failures in a row without an event count
                        # The event's own id; an event without one (the API's synthetic terminal event for a run
                        # whose stream has expired) gets None, and resuming still uses the last id seen.
                        yield sse.id, sse.event, _decode(sse.data)
                        if sse.event in TERMINAL_EVENTS:
                            return
            except httpx.ConnectError as error:
                failures += 1
                if failures >= MAX_STREAM_FAILURES:
                    raise ApiUnreachable(self.base_url, str(error)) from error
            except httpx.TransportError:
                failures += 1
                if failures >= MAX_STREAM_FAILURES:
                    raise
            else:
                # The server closed the stream before a terminal event (a restart, a proxy timeout): resume.
                failures += 1
                if failures >= MAX_STREAM_FAILURES:
                    raise httpx.RemoteProtocolError(
                        f"the event stream of {subject} closed {failures} times without a terminal event"
                    )
            time.sleep(retry_s)

    def wait(
        self,
        run_id: str,
        progress: ProgressCallback | None = None,
        *,
        timeout: float | None = None,
        poll_interval: float = POLL_INTERVAL_S,
    ) -> dict[str, Any]:
        """Block until the run ends and return its final record (GET /runs/{id}).

        `progress` is called with the data of every `progress` event (sessions_done, sessions_total, share_done,
        periods_done, mean_price, profit_gain, elapsed_s). Follows the event stream; if that fails (an old proxy,
        a dropped Redis stream) it polls the run instead and calls `progress` with what the run record says.
        TimeoutError after `timeout` seconds (the run itself goes on).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            for _, event, data in self.events(run_id):
                if event == "progress" and progress is not None and isinstance(data, dict):
                    progress(data)
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"run {run_id} did not finish within {timeout} s")
        except ApiUnreachable:
            raise
        except ApiError as error:
            # An unknown run is the caller's mistake; a stream that is missing or failing while the run exists
            # (a 404 from an expired stream, a 5xx) is not: the run's record still tells when it ends.
            if error.status != 404 and error.is_user_error:
                raise
        except httpx.TransportError:
            pass  # the stream keeps failing: poll the run's record instead
        return self._poll_until_done(run_id, progress, deadline, poll_interval)

    def _poll_until_done(
        self, run_id: str, progress: ProgressCallback | None, deadline: float | None, poll_interval: float
    ) -> dict[str, Any]:
        last_done = None
        while True:
            run = self.get_run(run_id)
            if run.get("status") in TERMINAL_STATUSES:
                return run
            done = run.get("sessions_done")
            if progress is not None and run.get("status") == "running" and done != last_done:
                last_done = done
                progress(
                    {
                        "sessions_done": done,
                        "sessions_total": run.get("sessions"),
                        "share_done": run.get("progress"),
                        "periods_done": run.get("periods_done"),
                    }
                )
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} did not finish in time (status {run.get('status')})")
            time.sleep(poll_interval)

    # ------------------------------------------------------------------------------------------ results

    def result(self, run_id: str) -> dict[str, Any]:
        """GET /results/{id} as the API sends it: {"summary": {...}, "artifacts": {...}} (ApiError 409/404 while
        the run has no results)."""
        return self._json("GET", f"/results/{run_id}")

    def results(self, run_id: str) -> dict[str, Any]:
        """The run's summary metrics (profit_gain, profit_gain_sd, mean_price, consumer_surplus, converged_share,
        the benchmarks, ...), the same dict the library's run summary holds."""
        return self.result(run_id)["summary"]

    def panel(self, run_id: str) -> pd.DataFrame:
        """The run's long panel (one row per session, logged row and firm) as a DataFrame."""
        return _read_parquet(self.panel_bytes(run_id))

    def panel_bytes(self, run_id: str) -> bytes:
        """The run's panel.parquet as it is stored, for saving to a file."""
        return self._bytes(f"/results/{run_id}/panel")

    def artifact(self, run_id: str, name: str) -> bytes:
        """One file of the run as bytes: a name from the results' artifact list (scenario, config, log,
        prices_plot, ...) or its file name (scenario.json, run.log, plots/prices.png)."""
        return self._bytes(f"/results/{run_id}/artifacts/{name}")

    def sessions_frame(self, run_id: str) -> pd.DataFrame:
        """One row per session with its metrics (profit gain, mean price, convergence, ...). Taken from the
        summary when the API includes the per-session list, else from the run's summary.json artifact."""
        import pandas as pd

        sessions = self.results(run_id).get("sessions")
        if not isinstance(sessions, list):
            sessions = json.loads(self.artifact(run_id, "summary")).get("sessions")
        if not isinstance(sessions, list):
            raise ApiError(0, "no_sessions", f"run {run_id} has no per-session metrics in its summary")
        return pd.DataFrame.from_records(sessions)

    # ------------------------------------------------------------------------------------------ sweeps

    def create_sweep(
        self,
        scenario: Mapping[str, Any] | str | None = None,
        *,
        grid: Mapping[str, Sequence[Any]] | None = None,
        preset: str | None = None,
        scenario_id: str | None = None,
        sweep_preset: str | None = None,
        seeds: Sequence[int] | None = None,
        seeds_per_cell: int | None = None,
        sessions: int | None = None,
        overrides: Sequence[str] = (),
        name: str | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Queue a grid of runs of one base scenario (an inline dict, a preset name or a stored scenario's id):
        `grid` maps dotted paths to lists of values (lists, objects and None survive as they are); every cell
        runs once per seed (`seeds`, or `seeds_per_cell` = k for seeds 0..k-1) with `sessions` sessions.
        Or a built-in sweep by name (`sweep_preset`, see sweep_presets()), which brings its base scenario, grid,
        seeds and sessions; the arguments given beside it replace its own.
        Returns {"id", "status", "cells", "runs", "links"} at once; ApiError 422 names the cell and field at
        fault before anything is queued. Sent with `idempotency_key` (default: a fresh UUID) and retried with it,
        like launch_run."""
        if isinstance(scenario, str):
            scenario, preset = None, scenario
        sources = [
            n
            for n, v in (
                ("scenario", scenario),
                ("preset", preset),
                ("scenario_id", scenario_id),
                ("sweep_preset", sweep_preset),
            )
            if v is not None
        ]
        if len(sources) != 1:
            raise ValueError("give exactly one of scenario (a dict), preset, scenario_id or sweep_preset")
        if grid is None and sweep_preset is None:
            raise ValueError("a sweep needs a grid (or a sweep_preset that gives one)")
        if seeds is not None and seeds_per_cell is not None:
            raise ValueError("give seeds or seeds_per_cell, not both")
        body: dict[str, Any] = {}
        if grid is not None:
            body["grid"] = {path: list(values) for path, values in grid.items()}
        if scenario is not None:
            body["scenario"] = dict(scenario)
        elif preset is not None:
            body["preset"] = preset
        elif sweep_preset is not None:
            body["sweep_preset"] = sweep_preset
        else:
            body["scenario_id"] = str(scenario_id)
        if seeds is not None:
            body["seeds"] = list(seeds)
        if seeds_per_cell is not None:
            body["seeds_per_cell"] = seeds_per_cell
        if sessions is not None:
            body["sessions"] = sessions
        if overrides:
            body["overrides"] = list(overrides)
        if name is not None:
            body["name"] = name
        return self._post_idempotent("/sweeps", body, idempotency_key)

    def sweep_presets(self) -> list[dict[str, Any]]:
        """The built-in sweeps: name, description, base scenario, grid, seeds, sessions, cells and runs."""
        return list(self._json("GET", "/sweeps/presets"))

    def get_sweep(self, sweep_id: str) -> dict[str, Any]:
        """The sweep: status, counts per run status, mean progress, and per cell its overrides, counts and runs."""
        return self._json("GET", f"/sweeps/{sweep_id}")

    def list_sweeps(self, **filters: Any) -> list[dict[str, Any]]:
        """Sweeps, newest first (one page; pass limit=/offset= for others)."""
        return _items(self._json("GET", "/sweeps", params=_params(filters)))

    def cancel_sweep(self, sweep_id: str) -> dict[str, Any]:
        """Cancel the sweep's queued runs at once; its running ones stop at their next check."""
        return self._json("POST", f"/sweeps/{sweep_id}/cancel")

    def sweep_events(self, sweep_id: str, last_event_id: str | None = None) -> Iterator[SseEvent]:
        """The sweep's events as (id, event, data): `progress` whenever its runs' aggregate state changes (status,
        counts, progress, per-cell counts and progress), ending with the terminal event (succeeded, failed or
        cancelled). Resumed with Last-Event-ID like `events`."""
        return self._stream(f"/streams/sweeps/{sweep_id}", f"sweep {sweep_id}", last_event_id)

    def wait_sweep(
        self,
        sweep_id: str,
        progress: ProgressCallback | None = None,
        *,
        timeout: float | None = None,
        poll_interval: float = POLL_INTERVAL_S,
    ) -> dict[str, Any]:
        """Block until every run of the sweep is over and return the sweep (GET /sweeps/{id}). `progress` gets
        the data of each `progress` event (and of the terminal one). Falls back to polling the sweep if the
        stream keeps failing. TimeoutError after `timeout` seconds (the sweep goes on)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            for _, event, data in self.sweep_events(sweep_id):
                if progress is not None and isinstance(data, dict):
                    progress(data)
                if event in TERMINAL_EVENTS:
                    return self.get_sweep(sweep_id)
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"sweep {sweep_id} did not finish within {timeout} s")
        except ApiUnreachable:
            raise
        except ApiError as error:
            if error.is_user_error:
                raise
        except httpx.TransportError:
            pass  # the stream keeps failing: the sweep's record still tells when it ends
        while True:
            sweep = self.get_sweep(sweep_id)
            if progress is not None:
                progress(sweep)
            if sweep.get("status") in TERMINAL_STATUSES:
                return sweep
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"sweep {sweep_id} did not finish in time (status {sweep.get('status')})")
            time.sleep(poll_interval)

    def sweep_metrics_json(self, sweep_id: str) -> dict[str, Any]:
        """GET /sweeps/{id}/metrics as JSON: {"grid", "cells": [{index, overrides, values, runs, runs_succeeded,
        metrics, regulation_effect}], ...} (ApiError 409 while no run has succeeded)."""
        return self._json("GET", f"/sweeps/{sweep_id}/metrics")

    def sweep_metrics(self, sweep_id: str) -> pd.DataFrame:
        """The sweep's metrics, one row per cell (its coordinates, run counts, metrics with 95% intervals and
        the flattened regulation effects), read from the API's CSV form."""
        return _read_csv(self._request("GET", f"/sweeps/{sweep_id}/metrics", headers={"Accept": "text/csv"}).text)

    def sweep_file(self, sweep_id: str, name: str) -> bytes:
        """One of the files the aggregator wrote to S3 once the sweep ended (metrics_csv, metrics_parquet,
        delta_heatmap, regulation_effects; get_sweep(...)["files"] lists those present). ApiError 404 before."""
        return self._bytes(f"/sweeps/{sweep_id}/files/{name}")

    def sweep_metrics_csv(self, sweep_id: str) -> str:
        """The sweep's metrics as the API's CSV text (for writing sweep_results.csv unchanged)."""
        return self._request("GET", f"/sweeps/{sweep_id}/metrics", headers={"Accept": "text/csv"}).text

    # ------------------------------------------------------------------------------------------ aggregates

    def aggregates(self, *, page_size: int = 200, **filters: Any) -> pd.DataFrame:
        """Every finished run's coordination indicators (GET /aggregates, all pages) as one DataFrame; filters
        are the API's query parameters (sweep_id=, scenario_hash=, status=)."""
        import pandas as pd

        frames: list[pd.DataFrame] = []
        offset = 0
        while True:
            params = _params({**filters, "limit": page_size, "offset": offset})
            response = self._request("GET", "/aggregates", params=params, headers={"Accept": "text/csv"})
            frame = _read_csv(response.text)
            frames.append(frame)
            offset += len(frame)
            total = int(response.headers.get("X-Total-Count", offset))
            if len(frame) == 0 or offset >= total:
                break
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]

    # ------------------------------------------------------------------------------------------ transport

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:
            raise ApiUnreachable(self.base_url, str(error)) from error
        if response.status_code >= 400:
            failure = _api_error(response)
            if response.status_code == 401:
                failure.message += (
                    f"; set {TOKEN_ENV}, or store a token for {self.base_url} in {credentials_path()} "
                    "(an operator issues one with `algocomp users create NAME --team TEAM`)"
                )
            raise failure
        return response

    def _post_idempotent(self, path: str, body: Mapping[str, Any], key: str | None) -> Any:
        """POST `body` with an Idempotency-Key (`key`, or a fresh one), retried with the same key after a
        connection error, a lost answer, a 5xx or a 409 idempotency_key_in_use; the last failure is raised."""
        headers = {IDEMPOTENCY_HEADER: key or new_idempotency_key()}
        attempt = 0
        while True:
            try:
                return self._json("POST", path, json=body, headers=headers)
            except (ApiError, httpx.TransportError) as error:
                if attempt >= self.retries or not retryable(error):
                    raise
            time.sleep(min(RETRY_WAIT_MAX_S, self.retry_backoff_s * 2**attempt) * random.uniform(0.5, 1.0))  # noqa: S311
            attempt += 1

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        if not response.content:
            return {}
        try:
            return response.json()
        except ValueError as error:
            raise ApiError(response.status_code, "bad_response", f"{method} {path} did not answer JSON") from error

    def _bytes(self, path: str) -> bytes:
        """A file from the API: streamed in the answer, behind a redirect to a presigned URL, or announced as
        {"url": ...} (both ways the API may hand out large files)."""
        response = self._request("GET", path, follow_redirects=True)
        if response.headers.get("content-type", "").startswith("application/json"):
            document = response.json()
            if isinstance(document, dict) and isinstance(document.get("url"), str) and len(document) <= 3:
                try:
                    return (
                        httpx.get(document["url"], timeout=self.timeout, follow_redirects=True)
                        .raise_for_status()
                        .content
                    )
                except httpx.HTTPError as error:
                    raise ApiError(0, "download_failed", f"cannot download {document['url']}: {error}") from error
        return response.content


# ---------------------------------------------------------------------------------------------- SSE


class SseMessage:
    """One dispatched Server-Sent Event: `event` is None for a block with only an id or a retry field."""

    __slots__ = ("data", "event", "id", "retry_ms")

    def __init__(self, id: str | None, event: str | None, data: str, retry_ms: int | None) -> None:
        self.id = id
        self.event = event
        self.data = data
        self.retry_ms = retry_ms

    def __repr__(self) -> str:
        return f"SseMessage(id={self.id!r}, event={self.event!r}, data={self.data!r})"


def parse_sse(lines: Iterator[str]) -> Iterator[SseMessage]:
    """Parse an event stream (https://html.spec.whatwg.org/multipage/server-sent-events.html) from its lines.

    Comments (":" lines, the keep-alives) are skipped; `data` lines are joined with newlines; a blank line
    dispatches. An event without an `event` field is a "message", as in browsers; a block carrying only `id`
    or `retry` is handed out with event None so the caller can still track the last id.
    """
    event: str | None = None
    data: list[str] = []
    event_id: str | None = None
    retry_ms: int | None = None
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                yield SseMessage(event_id, event or "message", "\n".join(data), retry_ms)
            elif event_id is not None or retry_ms is not None:
                yield SseMessage(event_id, None, "", retry_ms)
            event, data, event_id, retry_ms = None, [], None, None
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            if "\0" not in value:
                event_id = value
        elif name == "retry":
            if value.isdigit():
                retry_ms = int(value)
    # A block the stream ended in without its blank line is dropped, as the spec says: it is replayed after the
    # reconnect, which resumes from the previous id.


def _decode(data: str) -> Any:
    try:
        return json.loads(data) if data else None
    except ValueError:
        return data


# ---------------------------------------------------------------------------------------------- helpers


def _api_error(response: httpx.Response) -> ApiError:
    """The ApiError for an error answer: the API's {"error": {...}}, FastAPI's {"detail": ...} for errors raised
    before our handlers (e.g. a malformed path), or the status line for anything else (a proxy's HTML page)."""
    status = response.status_code
    try:
        document = response.json()
    except ValueError:
        text = response.text.strip().splitlines()[0][:200] if response.text.strip() else response.reason_phrase
        return ApiError(status, _code_for(status), text or f"HTTP {status}")
    if isinstance(document, dict) and isinstance(document.get("error"), dict):
        error = document["error"]
        return ApiError(
            status,
            str(error.get("code") or _code_for(status)),
            str(error.get("message") or response.reason_phrase),
            error.get("field"),
        )
    if isinstance(document, dict) and "detail" in document:
        detail = document["detail"]
        if isinstance(detail, list) and detail and isinstance(detail[0], dict):
            first = detail[0]
            location = [str(part) for part in first.get("loc", []) if part not in ("body", "query", "path")]
            return ApiError(
                status, "validation_error", str(first.get("msg", "invalid request")), ".".join(location) or None
            )
        return ApiError(status, _code_for(status), str(detail))
    return ApiError(status, _code_for(status), json.dumps(document)[:200])


def new_idempotency_key() -> str:
    """A fresh Idempotency-Key: a random UUID."""
    return str(uuid.uuid4())


def retryable(error: Exception) -> bool:
    """Whether a POST that failed so may be repeated with its Idempotency-Key: no answer (the API unreachable, the
    connection lost before the answer), a 5xx, or 409 idempotency_key_in_use (the first attempt still runs)."""
    if isinstance(error, ApiUnreachable | httpx.TransportError):
        return True
    if isinstance(error, ApiError):
        return error.status in RETRYABLE_STATUSES or (error.status == 409 and error.code == "idempotency_key_in_use")
    return False


def _code_for(status: int) -> str:
    return {400: "bad_request", 404: "not_found", 409: "conflict", 422: "validation_error", 503: "unavailable"}.get(
        status, "http_error"
    )


def _items(payload: Any) -> list[dict[str, Any]]:
    """The records of a list answer, whether the API sends a bare list or a page {"items": [...], ...}."""
    if isinstance(payload, list):
        return payload
    if isinstance(payload, dict):
        for key in ("items", "runs", "scenarios", "data", "results"):
            if isinstance(payload.get(key), list):
                return payload[key]
    raise ApiError(0, "bad_response", f"expected a list of records, got {type(payload).__name__}")


def _params(filters: Mapping[str, Any]) -> dict[str, Any]:
    return {
        name: (value.value if hasattr(value, "value") else value)
        for name, value in filters.items()
        if value is not None
    }


def _read_parquet(content: bytes) -> pd.DataFrame:
    import pyarrow.parquet as pq

    return pq.read_table(io.BytesIO(content)).to_pandas()


def _read_csv(text: str) -> pd.DataFrame:
    """A CSV answer as a DataFrame (an empty answer gives an empty frame)."""
    import pandas as pd

    if not text.strip():
        return pd.DataFrame()
    return pd.read_csv(io.StringIO(text))
