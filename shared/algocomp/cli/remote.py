"""The `algocomp` subcommands that talk to the service API (algocomp.client) instead of simulating locally.

    algocomp scenarios create my-market.yaml          store a scenario (a file, or a preset name)
    algocomp scenarios list
    algocomp runs launch calvano-2020-baseline --seed 3 --sessions 20 --set agents.alpha=0.1 --follow
    algocomp runs list [--status running]
    algocomp runs show ID | follow ID | cancel ID
    algocomp results ID [--json]
    algocomp panel ID --out panel.parquet
    algocomp sweep calvano-2020-baseline --grid agents.alpha=0.05,0.15 --grid 'regulation.price_cap=[null, {value:
    1.75}]' --seeds 3
    algocomp sweep calvano-2020-figure1               a built-in sweep (algocomp presets --sweeps)
    algocomp aggregate [--sweep ID] --out metrics.csv

They need the `client` extra (httpx: `pip install 'algocomp[client]'`), which is imported only when one of them
runs, so the local commands work without it; without it they exit 2 with a line that says so.

Every command takes `--api URL` (default: $ALGOCOMP_API_URL, else http://127.0.0.1:8000), before or after the
action. Exit codes: 0 success; 1 a run that ended failed or cancelled, or an error of the server (5xx); 2 a user
error: the API refused the request (4xx: a scenario that does not validate, an unknown id) or cannot be reached,
reported on one line without a traceback; 130 Ctrl-C (a followed run goes on; `runs follow ID` picks it up).

These commands register through `install()`, called by algocomp.cli.main with its own `register` and
`Subcommand`: the module must not import algocomp.cli.main, which also runs as `python -m algocomp.cli.main`
(as __main__, a second copy whose registry would not be the one that builds the parser).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from algocomp.cli.terminal import (
    fmt_count,
    fmt_number,
    fmt_share,
    is_number,
    labelled,
    session_bar,
)
from algocomp.client.constants import DEFAULT_BASE_URL, TERMINAL_STATUSES
from algocomp.extras import MissingExtra

if TYPE_CHECKING:
    from algocomp.client.api import Client

PROG = "algocomp"
EXIT_OK = 0
EXIT_RUN_NOT_SUCCEEDED = 1
EXIT_SERVER_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
API_URL_ENV = "ALGOCOMP_API_URL"
UUID_PATTERN = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
SCENARIO_SUFFIXES = (".yaml", ".yml", ".json")

Handler = Callable[[argparse.Namespace, "Client"], int]


class RemoteUsageError(Exception):
    """A mistake in the call that is found before the API is asked (an unreadable scenario file)."""


# ---------------------------------------------------------------------------------------------- registration


def install(register: Callable[[Any], Any], subcommand_type: Callable[..., Any]) -> None:
    """Register `scenarios`, `runs`, `results`, `panel`, `sweep` and `aggregate` with the `algocomp` tool."""
    register(
        subcommand_type(
            name="scenarios",
            help="store and list scenarios on the algocomp API",
            description="Scenarios stored by the API, referred to by id when launching runs.",
            configure=_configure_scenarios,
            run=_dispatch,
        )
    )
    register(
        subcommand_type(
            name="runs",
            help="launch, follow, list and cancel runs on the algocomp API",
            description="Runs are simulated by the stack's workers; progress streams live from the API.",
            configure=_configure_runs,
            run=_dispatch,
        )
    )
    register(
        subcommand_type(
            name="results",
            help="show the summary metrics of a finished run on the algocomp API",
            configure=_configure_results,
            run=_dispatch,
        )
    )
    register(
        subcommand_type(
            name="panel",
            help="download the Parquet panel of a finished run from the algocomp API",
            configure=_configure_panel,
            run=_dispatch,
        )
    )

    register(
        subcommand_type(
            name="sweep",
            help="run a grid of experiments on the algocomp API and write its per-cell metrics",
            description="Launch a sweep (a base scenario, a grid of dotted-path overrides, seeds), follow it and "
            "write sweep_results.csv with one row of metrics per cell.",
            configure=_configure_sweep,
            run=_dispatch,
        )
    )
    register(
        subcommand_type(
            name="aggregate",
            help="write the coordination indicators of every finished run (one row per run) from the algocomp API",
            configure=_configure_aggregate,
            run=_dispatch,
        )
    )


def _add_api_option(parser: argparse.ArgumentParser, *, on_leaf: bool) -> None:
    # On an action (`runs launch --api URL`) the default is SUPPRESS so that it does not overwrite a value given
    # on the group (`runs --api URL launch`).
    parser.add_argument(
        "--api",
        metavar="URL",
        default=argparse.SUPPRESS if on_leaf else None,
        help=f"the API's base URL (default: ${API_URL_ENV}, else {DEFAULT_BASE_URL})",
    )


def _add_actions(parser: argparse.ArgumentParser, dest: str) -> argparse._SubParsersAction:
    _add_api_option(parser, on_leaf=False)
    return parser.add_subparsers(dest=dest, metavar="ACTION", required=True)


def _action(actions: argparse._SubParsersAction, name: str, help: str, handler: Handler) -> argparse.ArgumentParser:
    parser = actions.add_parser(name, help=help, description=help)
    _add_api_option(parser, on_leaf=True)
    parser.set_defaults(handler=handler)
    return parser


def _configure_scenarios(parser: argparse.ArgumentParser) -> None:
    actions = _add_actions(parser, "action")
    create = _action(
        actions, "create", "store a scenario from a file (.yaml, .json) or a preset name", run_scenarios_create
    )
    create.add_argument("source", metavar="FILE|PRESET")
    create.add_argument("--json", action="store_true", help="print the stored scenario as JSON")
    listing = _action(actions, "list", "list the stored scenarios", run_scenarios_list)
    listing.add_argument("--json", action="store_true", help="print a JSON list")
    listing.add_argument("--limit", type=int, default=None, metavar="N")
    show = _action(actions, "show", "show one stored scenario as JSON", run_scenarios_show)
    show.add_argument("scenario_id", metavar="ID")


def _configure_runs(parser: argparse.ArgumentParser) -> None:
    actions = _add_actions(parser, "action")
    launch = _action(
        actions, "launch", "queue a run of a scenario (file, preset name or stored scenario id)", run_runs_launch
    )
    launch.add_argument("scenario", metavar="SCENARIO_OR_ID", help="a scenario file, a preset name or a scenario id")
    launch.add_argument("--seed", type=int, metavar="S", help="experiment seed (default: the scenario's)")
    launch.add_argument("--sessions", type=int, metavar="N", help="number of sessions (default: the scenario's)")
    launch.add_argument("--log-interval", type=int, metavar="T", help="periods per logged panel row")
    launch.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="change a scenario field, e.g. --set agents.alpha=0.05 (repeatable, applied in order)",
    )
    launch.add_argument("--follow", action="store_true", help="follow the run's progress until it ends")
    launch.add_argument(
        "--json", action="store_true", help="print the API's answer (and with --follow the final run) as JSON"
    )
    listing = _action(actions, "list", "list runs, newest first", run_runs_list)
    listing.add_argument("--status", choices=["queued", "running", "succeeded", "failed", "cancelled"])
    listing.add_argument("--scenario", dest="scenario_id", metavar="SCENARIO_ID")
    listing.add_argument("--limit", type=int, default=None, metavar="N")
    listing.add_argument("--json", action="store_true", help="print a JSON list")
    show = _action(actions, "show", "show one run", run_runs_show)
    show.add_argument("run_id", metavar="ID")
    show.add_argument("--json", action="store_true")
    follow = _action(actions, "follow", "follow a run's progress until it ends", run_runs_follow)
    follow.add_argument("run_id", metavar="ID")
    follow.add_argument("--json", action="store_true", help="print the final run as JSON")
    cancel = _action(actions, "cancel", "cancel a queued or running run", run_runs_cancel)
    cancel.add_argument("run_id", metavar="ID")


def _configure_results(parser: argparse.ArgumentParser) -> None:
    _add_api_option(parser, on_leaf=False)
    parser.add_argument("run_id", metavar="ID")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    parser.set_defaults(handler=run_results)


def _configure_panel(parser: argparse.ArgumentParser) -> None:
    _add_api_option(parser, on_leaf=False)
    parser.add_argument("run_id", metavar="ID")
    parser.add_argument("--out", required=True, metavar="FILE.parquet", help="where to write the panel")
    parser.set_defaults(handler=run_panel)


def _configure_sweep(parser: argparse.ArgumentParser) -> None:
    _add_api_option(parser, on_leaf=False)
    parser.add_argument(
        "scenario",
        metavar="SCENARIO_OR_ID",
        help="a scenario file, a preset name or a scenario id; or a built-in sweep's name (`algocomp presets "
        "--sweeps`), which brings its base scenario, grid, seeds and sessions (the options replace them)",
    )
    parser.add_argument(
        "--grid",
        dest="grid",
        action="append",
        default=[],
        metavar="PATH=V1,V2,...",
        help="one axis of the grid (repeatable; values are YAML scalars, or a YAML flow list for values with "
        "commas: 'regulation.price_cap=[null, {value: 1.75}]')",
    )
    parser.add_argument(
        "--grid-file",
        dest="grid_file",
        metavar="FILE",
        help='a YAML or JSON sweep file: {"grid": {PATH: [values]}, optional "seeds" (a list, or N for 0..N-1), '
        '"sessions", "overrides" (["PATH=VALUE"]), "name"}; --grid flags add axes to its grid or replace them, '
        "the other options override its fields",
    )
    parser.add_argument("--seeds", type=int, default=None, metavar="N", help="seeds 0..N-1 per cell (default 1)")
    parser.add_argument("--sessions", type=int, metavar="N", help="sessions per run (default: the scenario's)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="change a field of the base scenario for every cell (repeatable, applied in order)",
    )
    parser.add_argument("--name", help="a label for the sweep")
    parser.add_argument(
        "--out", default="sweep_results.csv", metavar="FILE.csv", help="where to write the per-cell metrics"
    )
    parser.add_argument(
        "--follow",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="follow the sweep until it ends and write --out (default); --no-follow prints its id and returns",
    )
    parser.set_defaults(handler=run_sweep)


def _configure_aggregate(parser: argparse.ArgumentParser) -> None:
    _add_api_option(parser, on_leaf=False)
    parser.add_argument("--sweep", dest="sweep_id", metavar="ID", help="only the runs of this sweep")
    parser.add_argument("--out", default="metrics.csv", metavar="FILE.csv", help="where to write one row per run")
    parser.set_defaults(handler=run_aggregate)


# ---------------------------------------------------------------------------------------------- dispatch


def api_url(args: argparse.Namespace) -> str:
    return getattr(args, "api", None) or os.environ.get(API_URL_ENV) or DEFAULT_BASE_URL


def _dispatch(args: argparse.Namespace) -> int:
    """Run the chosen action with a client, turning the API's refusals into one-line errors.

    The client (httpx) is imported here, not with this module: `algocomp simulate` and the other local commands
    must work without the `client` extra, and these commands say how to install it when it is missing."""
    try:
        from algocomp.client.api import ApiError, ApiUnreachable, Client
    except MissingExtra as error:
        return _fail(
            f"`{PROG} {args.command}` talks to the algocomp API and needs the '{error.extra}' extra "
            f"({error.name} is not installed): pip install 'algocomp[{error.extra}]'",
            EXIT_USAGE,
        )
    try:
        with Client(api_url(args)) as client:
            return args.handler(args, client)
    except ApiUnreachable as error:
        return _fail(str(error), EXIT_USAGE)
    except ApiError as error:
        return _fail(str(error), EXIT_USAGE if error.is_user_error else EXIT_SERVER_ERROR)
    except RemoteUsageError as error:
        return _fail(str(error), EXIT_USAGE)
    except OSError as error:  # writing --out
        return _fail(f"{getattr(error, 'filename', '') or ''}: {error.strerror or error}".lstrip(": "), EXIT_USAGE)


def _fail(message: str, code: int) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


# ---------------------------------------------------------------------------------------------- scenarios


def resolve_scenario(source: str) -> dict[str, Any]:
    """The launch/create arguments for SCENARIO_OR_ID: an existing file is sent inline (the API validates it and
    names the field at fault), an id refers to a stored scenario, anything else is a preset name."""
    path = Path(source)
    if path.is_file() or source.lower().endswith(SCENARIO_SUFFIXES):
        return {"scenario": read_scenario_file(path)}
    if UUID_PATTERN.match(source):
        return {"scenario_id": source}
    return {"preset": source}


def read_scenario_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise RemoteUsageError(f"{path}: cannot read the scenario file: {error.strerror or error}") from error
    import yaml

    try:
        document = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as error:
        raise RemoteUsageError(
            f"{path}: not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}: {error}"
        ) from error
    if not isinstance(document, dict):
        raise RemoteUsageError(f"{path}: a scenario is a mapping of fields, got {type(document).__name__}")
    return document


def run_scenarios_create(args: argparse.Namespace, client: Client) -> int:
    source = resolve_scenario(args.source)
    if "scenario_id" in source:
        raise RemoteUsageError(f"{args.source}: looks like a scenario id; give a scenario file or a preset name")
    record = client.create_scenario(source.get("scenario"), preset=source.get("preset"))
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        print(record.get("id"))
        print(
            f"stored scenario {record.get('name', '')} ({str(record.get('scenario_hash', ''))[:12]})", file=sys.stderr
        )
    return EXIT_OK


def run_scenarios_list(args: argparse.Namespace, client: Client) -> int:
    records = client.list_scenarios(limit=args.limit)
    if args.json:
        print(json.dumps(records, indent=2))
        return EXIT_OK
    print(
        _table(
            ["id", "name", "hash", "created"],
            [
                [r.get("id"), r.get("name"), str(r.get("scenario_hash", ""))[:12], _time(r.get("created_at"))]
                for r in records
            ],
        )
    )
    return EXIT_OK


def run_scenarios_show(args: argparse.Namespace, client: Client) -> int:
    print(json.dumps(client.get_scenario(args.scenario_id), indent=2))
    return EXIT_OK


# ---------------------------------------------------------------------------------------------- runs


def run_runs_launch(args: argparse.Namespace, client: Client) -> int:
    source = resolve_scenario(args.scenario)
    answer = client.launch_run(
        **source, seed=args.seed, sessions=args.sessions, log_interval=args.log_interval, overrides=args.overrides
    )
    run_id = str(answer["id"])
    if not args.follow:
        print(json.dumps(answer, indent=2) if args.json else run_id)
        if not args.json:
            print(f"queued run {run_id}; follow it with `{PROG} runs follow {run_id}`", file=sys.stderr)
        return EXIT_OK
    if not args.json:
        print(run_id)
        sys.stdout.flush()
    return follow(client, run_id, as_json=args.json)


def run_runs_follow(args: argparse.Namespace, client: Client) -> int:
    return follow(client, args.run_id, as_json=args.json)


def follow(client: Client, run_id: str, *, as_json: bool) -> int:
    """Follow a run to its end with a progress bar on a terminal, then report how it ended."""
    try:
        with progress_bar(enabled=sys.stderr.isatty()) as on_progress:
            run = client.wait(run_id, progress=on_progress)
    except KeyboardInterrupt:
        print(f"\n{PROG}: stopped following; run {run_id} goes on (`{PROG} runs follow {run_id}`)", file=sys.stderr)
        return EXIT_INTERRUPTED
    status = run.get("status")
    if as_json:
        print(json.dumps(run, indent=2))
    if status == "succeeded":
        if not as_json:
            print(f"run {run_id} succeeded: `{PROG} results {run_id}` for its summary", file=sys.stderr)
        return EXIT_OK
    error = f": {_first_line(run.get('error'))}" if run.get("error") else ""
    print(f"{PROG}: run {run_id} {status}{error}", file=sys.stderr)
    return EXIT_RUN_NOT_SUCCEEDED


@contextmanager
def progress_bar(*, enabled: bool) -> Iterator[Callable[[dict[str, Any]], None] | None]:
    """A tqdm bar on stderr fed by the run's progress events: sessions done / total, with the current mean price
    and profit gain. None off a terminal (no carriage returns in log files)."""
    if not enabled:
        yield None
        return
    bar = session_bar(None)

    def on_progress(event: dict[str, Any]) -> None:
        total = event.get("sessions_total")
        if isinstance(total, int) and bar.total != total:
            bar.total = total
        postfix = []
        if is_number(event.get("mean_price")):
            postfix.append(f"price {float(event['mean_price']):.4f}")
        if is_number(event.get("profit_gain")):
            postfix.append(f"profit gain {float(event['profit_gain']):.3f}")
        bar.set_postfix_str(", ".join(postfix), refresh=False)
        done = event.get("sessions_done")
        if isinstance(done, int):
            bar.update(done - bar.n)
        else:
            bar.refresh()

    try:
        yield on_progress
    finally:
        bar.close()


def run_runs_list(args: argparse.Namespace, client: Client) -> int:
    runs = client.list_runs(status=args.status, scenario_id=args.scenario_id, limit=args.limit)
    if args.json:
        print(json.dumps(runs, indent=2))
        return EXIT_OK
    # A run names its scenario by id; one more request gives the names people recognise.
    names = {str(record.get("id")): record.get("name") for record in client.list_scenarios(limit=500)}
    for run in runs:
        run.setdefault("scenario_name", names.get(str(run.get("scenario_id"))))
    rows = [
        [
            r.get("id"),
            _scenario_name(r),
            r.get("seed"),
            r.get("sessions"),
            r.get("status"),
            fmt_share(r.get("progress")),
            _time(r.get("created_at")),
        ]
        for r in runs
    ]
    print(_table(["id", "scenario", "seed", "sessions", "status", "done", "created"], rows))
    return EXIT_OK


def run_runs_show(args: argparse.Namespace, client: Client) -> int:
    run = client.get_run(args.run_id)
    if args.json:
        print(json.dumps(run, indent=2))
        return EXIT_OK
    fields = [
        ("id", run.get("id")),
        ("scenario", f"{_scenario_name(run)} ({run.get('scenario_id', '')})"),
        ("seed", run.get("seed")),
        ("sessions", f"{run.get('sessions_done', 0)} of {run.get('sessions')} done"),
        ("status", run.get("status")),
        ("progress", fmt_share(run.get("progress"))),
        ("attempt", run.get("attempt")),
        ("created", _time(run.get("created_at"))),
        ("started", _time(run.get("started_at"))),
        ("finished", _time(run.get("finished_at"))),
    ]
    if run.get("overrides"):
        fields.append(("overrides", " ".join(run["overrides"])))
    if run.get("error"):
        fields.append(("error", _first_line(run["error"])))
    for name, link in (run.get("links") or {}).items():
        fields.append((f"link {name}", _absolute(client, link)))
    for name, value in fields:
        print(f"  {name:<18}{'' if value is None else value}")
    return EXIT_OK


def run_runs_cancel(args: argparse.Namespace, client: Client) -> int:
    run = client.cancel_run(args.run_id)
    status = run.get("status")
    if status == "cancelled":
        print(f"run {args.run_id} cancelled")
    elif status in TERMINAL_STATUSES:
        print(f"run {args.run_id} had already ended ({status})")
    else:
        print(f"run {args.run_id}: cancellation requested; it stops after the sessions in progress")
    return EXIT_OK


# ---------------------------------------------------------------------------------------------- results


def run_results(args: argparse.Namespace, client: Client) -> int:
    result = client.result(args.run_id)
    summary = result.get("summary", {})
    if args.json:
        print(json.dumps(summary))
        return EXIT_OK
    print(format_summary(summary))
    artifacts = result.get("artifacts") or {}
    if artifacts:
        print("  artifacts")
        for name, link in artifacts.items():
            href = link.get("url") or link.get("href") if isinstance(link, dict) else link
            print(f"    {name:<16}{_absolute(client, href)}")
    return EXIT_OK


def format_summary(summary: dict[str, Any]) -> str:
    """The numbers a user reads first, as `algocomp simulate` prints them for a local run."""
    lines = [
        (
            f"{summary.get('scenario', summary.get('scenario_name', 'run'))}: {_count_sessions(summary)} sessions "
            f"from seed {summary.get('seed')} (scenario {str(summary.get('scenario_hash', ''))[:12]})"
        ),
        labelled(
            "profit gain Δ",
            f"{fmt_number(summary.get('profit_gain'))} ± {fmt_number(summary.get('profit_gain_sd'))} (sd)",
        ),
        labelled("converged", f"{fmt_share(summary.get('converged_share'))} of sessions"),
        labelled(
            "mean price",
            f"{fmt_number(summary.get('mean_price'))} (Nash {fmt_number(summary.get('nash_price'))}, "
            f"monopoly {fmt_number(summary.get('monopoly_price'))})",
        ),
        labelled("consumer surplus", fmt_number(summary.get("consumer_surplus"))),
        labelled(
            "periods", f"{fmt_count(summary.get('periods_total'))} in {fmt_number(summary.get('elapsed_s'), 1)} s"
        ),
    ]
    return "\n".join(lines)


def run_panel(args: argparse.Namespace, client: Client) -> int:
    out = Path(args.out)
    content = client.panel_bytes(args.run_id)
    if out.parent and not out.parent.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    tmp.write_bytes(content)
    os.replace(tmp, out)
    print(f"wrote {out} ({len(content):,} bytes)", file=sys.stderr)
    return EXIT_OK


# ---------------------------------------------------------------------------------------------- sweeps


def parse_grid(axes: Sequence[str]) -> dict[str, list[Any]]:
    """`--grid PATH=V1,V2,...` options as {path: [values]}: each value a YAML scalar as with --set, or the whole
    right-hand side a YAML flow list (`[null, {value: 1.75}]`) when values contain commas."""
    import yaml

    from algocomp.scenarios.overrides import parse_yaml

    grid: dict[str, list[Any]] = {}
    for axis in axes:
        if "=" not in axis:
            raise RemoteUsageError(f"--grid {axis!r}: write PATH=V1,V2,..., e.g. agents.alpha=0.05,0.15")
        path, raw = (part.strip() for part in axis.split("=", 1))
        if not path or not raw:
            raise RemoteUsageError(f"--grid {axis!r}: needs a path and at least one value")
        try:
            if raw.startswith("["):
                values = parse_yaml(raw)
                if not isinstance(values, list):
                    raise RemoteUsageError(f"--grid {axis!r}: a value list in brackets must be a YAML list")
            else:
                values = [parse_yaml(item) for item in raw.split(",")]
        except yaml.YAMLError as error:
            raise RemoteUsageError(f"--grid {axis!r}: not valid YAML: {error}") from error
        if not values:
            raise RemoteUsageError(f"--grid {axis!r}: needs at least one value")
        if path in grid:
            raise RemoteUsageError(f"--grid {path}: given twice; list all its values in one --grid")
        grid[path] = values
    if not grid:
        raise RemoteUsageError("a sweep needs at least one --grid PATH=V1,V2,...")
    return grid


_SWEEP_FILE_FIELDS = ("grid", "seeds", "sessions", "overrides", "name")


def load_sweep_file(path: Path) -> dict[str, Any]:
    """A sweep file (YAML, or JSON which YAML reads too) checked field by field, so that a typo is reported as a
    one-line usage error naming the file rather than as a 422 from the API or a traceback."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise RemoteUsageError(f"--grid-file {path}: cannot read the file: {error.strerror or error}") from error
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        detail = " ".join(str(error).split())
        raise RemoteUsageError(f"--grid-file {path}: not valid YAML or JSON: {detail}") from error
    if not isinstance(document, dict):
        raise RemoteUsageError(
            f'--grid-file {path}: a sweep file is a mapping with a "grid", got {type(document).__name__}'
        )
    unknown = sorted(set(document) - set(_SWEEP_FILE_FIELDS))
    if unknown:
        raise RemoteUsageError(
            f"--grid-file {path}: unknown field(s) {', '.join(map(str, unknown))}; "
            f"known: {', '.join(_SWEEP_FILE_FIELDS)}"
        )
    grid = document.get("grid")
    if not isinstance(grid, dict) or not grid:
        raise RemoteUsageError(f'--grid-file {path}: needs a "grid" mapping of PATH: [values]')
    for axis, values in grid.items():
        if not isinstance(values, list) or not values:
            raise RemoteUsageError(f"--grid-file {path}: grid.{axis} must be a non-empty list of values")
    seeds = document.get("seeds")
    if seeds is not None and not (
        (isinstance(seeds, int) and not isinstance(seeds, bool) and seeds >= 1)
        or (isinstance(seeds, list) and seeds and all(isinstance(s, int) and not isinstance(s, bool) for s in seeds))
    ):
        raise RemoteUsageError(f"--grid-file {path}: seeds must be a list of integers or a count N >= 1")
    sessions = document.get("sessions")
    if sessions is not None and (not isinstance(sessions, int) or isinstance(sessions, bool) or sessions < 1):
        raise RemoteUsageError(f"--grid-file {path}: sessions must be an integer >= 1")
    overrides = document.get("overrides") or []
    if isinstance(overrides, dict):  # {PATH: VALUE} reads naturally in YAML; JSON is a YAML flow value
        overrides = [f"{key}={json.dumps(value)}" for key, value in overrides.items()]
    if not isinstance(overrides, list) or not all(isinstance(item, str) for item in overrides):
        raise RemoteUsageError(f'--grid-file {path}: overrides must be a list of "PATH=VALUE" strings')
    name = document.get("name")
    if name is not None and not isinstance(name, str):
        raise RemoteUsageError(f"--grid-file {path}: name must be a string")
    return {
        "grid": {str(axis): values for axis, values in grid.items()},
        "seeds": seeds,
        "sessions": sessions,
        "overrides": overrides,
        "name": name,
    }


def sweep_request(args: argparse.Namespace, *, grid_optional: bool = False) -> dict[str, Any]:
    """The sweep to launch from --grid-file and the flags: --grid axes add to (or replace) the file's, the file's
    overrides come before --set, and --seeds, --sessions, --name replace the file's values. With grid_optional (a
    sweep preset, which brings its own grid) and no axis given, the grid is None."""
    spec = load_sweep_file(Path(args.grid_file)) if args.grid_file else {"grid": {}, "overrides": []}
    grid: dict[str, list[Any]] | None = dict(spec["grid"])
    if args.grid or not (grid or grid_optional):
        grid = {**(grid or {}), **parse_grid(args.grid)}
    grid = grid or None
    seeds = spec.get("seeds")
    seeds_list, seeds_per_cell = (seeds, None) if isinstance(seeds, list) else (None, seeds)
    if args.seeds is not None:
        seeds_list, seeds_per_cell = None, args.seeds
    return {
        "grid": grid,
        "seeds": seeds_list,
        "seeds_per_cell": seeds_per_cell,
        "sessions": args.sessions if args.sessions is not None else spec.get("sessions"),
        "overrides": [*spec["overrides"], *args.overrides],
        "name": args.name if args.name is not None else spec.get("name"),
    }


def names_sweep_preset(source: str) -> bool:
    """SCENARIO_OR_ID names a built-in sweep (not a file, not an id)."""
    from algocomp.scenarios.sweep_presets import is_sweep_preset

    return not Path(source).is_file() and not UUID_PATTERN.match(source) and is_sweep_preset(source)


def run_sweep(args: argparse.Namespace, client: Client) -> int:
    if names_sweep_preset(args.scenario):
        request = sweep_request(args, grid_optional=True)
        answer = client.create_sweep(sweep_preset=args.scenario, **request)
    else:
        request = sweep_request(args)
        source = resolve_scenario(args.scenario)
        answer = client.create_sweep(
            source.get("scenario"),
            preset=source.get("preset"),
            scenario_id=source.get("scenario_id"),
            **request,
        )
    sweep_id = str(answer["id"])
    print(sweep_id)
    sys.stdout.flush()
    print(f"queued sweep {sweep_id}: {answer.get('cells')} cells, {answer.get('runs')} runs", file=sys.stderr)
    if not args.follow:
        return EXIT_OK
    detail = client.get_sweep(sweep_id)
    labels = {cell["index"]: " ".join(cell.get("overrides") or []) for cell in detail.get("per_cell") or []}
    try:
        with sweep_progress(int(answer.get("runs") or 0), labels, on_terminal=sys.stderr.isatty()) as on_progress:
            sweep = client.wait_sweep(sweep_id, progress=on_progress)
    except KeyboardInterrupt:
        print(f"\n{PROG}: stopped following; sweep {sweep_id} goes on", file=sys.stderr)
        return EXIT_INTERRUPTED
    status = sweep.get("status")
    if (sweep.get("counts") or {}).get("succeeded", 0) == 0:
        print(f"{PROG}: sweep {sweep_id} {status} without a succeeded run", file=sys.stderr)
        return EXIT_RUN_NOT_SUCCEEDED
    out = Path(args.out)
    _write_text(out, client.sweep_metrics_csv(sweep_id))
    metrics = client.sweep_metrics_json(sweep_id)
    print(format_sweep_metrics(metrics))
    print(f"wrote {out} ({len(metrics.get('cells') or [])} cells)", file=sys.stderr)
    if status != "succeeded":
        print(f"{PROG}: sweep {sweep_id} {status}; the metrics cover its succeeded runs", file=sys.stderr)
        return EXIT_RUN_NOT_SUCCEEDED
    return EXIT_OK


@contextmanager
def sweep_progress(
    runs: int, labels: dict[int, str], *, on_terminal: bool
) -> Iterator[Callable[[dict[str, Any]], None]]:
    """Progress of a sweep from its events: on a terminal a tqdm bar of runs over (with the share of work done);
    elsewhere one line per cell as its last run ends (no carriage returns in logs)."""
    bar = None
    if on_terminal:
        bar = session_bar(runs or None)
        bar.unit = "run"
        bar.set_description("runs", refresh=False)
    reported: set[int] = set()

    def over(counts: dict[str, int]) -> int:
        return sum(counts.get(status, 0) for status in TERMINAL_STATUSES)

    def on_progress(event: dict[str, Any]) -> None:
        counts = event.get("counts") or {}
        if bar is not None:
            bar.set_postfix_str(
                f"{fmt_share(event.get('progress'))} done, " + ", ".join(f"{k} {v}" for k, v in counts.items() if v),
                refresh=False,
            )
            bar.update(over(counts) - bar.n)
            return
        for cell in event.get("cells") or []:
            cell_counts = cell.get("counts") or {}
            total = sum(cell_counts.values())
            if cell["index"] not in reported and total and over(cell_counts) == total:
                reported.add(cell["index"])
                states = ", ".join(f"{k} {v}" for k, v in cell_counts.items() if v)
                print(f"cell {cell['index']} [{labels.get(cell['index'], '')}]: {states}", file=sys.stderr, flush=True)

    try:
        yield on_progress
    finally:
        if bar is not None:
            bar.close()


def _interval(metrics: dict[str, Any], key: str, digits: int = 3) -> str:
    if not is_number(metrics.get(key)):
        return "-"
    text = f"{float(metrics[key]):.{digits}f}"
    if is_number(metrics.get(f"{key}_low")) and is_number(metrics.get(f"{key}_high")):
        text += f" [{float(metrics[f'{key}_low']):.{digits}f}, {float(metrics[f'{key}_high']):.{digits}f}]"
    return text


def _cell_label(cell: dict[str, Any]) -> str:
    values = cell.get("values") or {}
    return " ".join(f"{path}={json.dumps(value, separators=(',', ':'))}" for path, value in values.items())


def format_sweep_metrics(metrics: dict[str, Any]) -> str:
    """The per-cell table (Delta mean with its 95% interval, mean price, consumer-surplus loss, convergence) and,
    when the grid has a regulation axis, each regulated cell's paired effects with their intervals."""
    rows = []
    for cell in metrics.get("cells") or []:
        m = cell.get("metrics") or {}
        rows.append(
            [
                cell.get("index"),
                _cell_label(cell),
                f"{cell.get('runs_succeeded', 0)}/{cell.get('runs', 0)}",
                _interval(m, "profit_gain_mean"),
                fmt_number(m.get("mean_price")),
                _interval(m, "consumer_surplus_loss_mean"),
                fmt_share(m.get("convergence_rate")),
            ]
        )
    lines = [
        _table(
            ["cell", "overrides", "runs", "Delta mean [95% CI]", "mean price", "CS loss [95% CI]", "converged"], rows
        )
    ]
    effects = [cell for cell in metrics.get("cells") or [] if cell.get("regulation_effect")]
    if effects:
        lines.append("")
        lines.append("regulation effects (regulated - unregulated, paired by seed, 95% CI)")
        effect_rows = []
        for cell in effects:
            effect = cell["regulation_effect"]
            for key, numbers in (effect.get("effects") or {}).items():
                effect_rows.append(
                    [
                        cell.get("index"),
                        effect.get("control_cell"),
                        key,
                        _interval(
                            {"e": numbers.get("effect"), "e_low": numbers.get("low"), "e_high": numbers.get("high")},
                            "e",
                            4,
                        ),
                        numbers.get("pairs"),
                    ]
                )
        lines.append(_table(["cell", "vs cell", "on", "effect [95% CI]", "pairs"], effect_rows))
    return "\n".join(lines)


def run_aggregate(args: argparse.Namespace, client: Client) -> int:
    frame = client.aggregates(sweep_id=args.sweep_id)
    out = Path(args.out)
    import io

    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    _write_text(out, buffer.getvalue())
    print(f"wrote {out} ({len(frame)} runs)", file=sys.stderr)
    return EXIT_OK


def _write_text(out: Path, text: str) -> None:
    """Write through a temporary file so that an interrupted write never leaves half a CSV behind."""
    if out.parent and not out.parent.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, out)


# ---------------------------------------------------------------------------------------------- formatting


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[("" if cell is None else str(cell)) for cell in row] for row in rows]
    widths = [max([len(h), *(len(row[i]) for row in cells)]) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def _scenario_name(run: dict[str, Any]) -> str:
    spec = run.get("spec")
    spec = spec if isinstance(spec, dict) else {}
    return str(run.get("scenario_name") or spec.get("name") or run.get("scenario_id") or "")


def _count_sessions(summary: dict[str, Any]) -> Any:
    sessions = summary.get("sessions")
    return len(sessions) if isinstance(sessions, list) else sessions


def _absolute(client: Client, link: Any) -> str:
    text = "" if link is None else str(link)
    return client.base_url + text if text.startswith("/") else text


def _time(value: Any) -> str:
    return str(value)[:19].replace("T", " ") if value else ""


def _first_line(text: Any) -> str:
    lines = [line for line in str(text).strip().splitlines() if line.strip()]
    # A traceback's useful line is its last; a plain message's its first.
    if lines and lines[0].startswith("Traceback"):
        return lines[-1]
    return lines[0] if lines else ""
