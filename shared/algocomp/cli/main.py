"""The `algocomp` command: run experiments and inspect scenarios from a shell.

    algocomp simulate calvano-2020-baseline --sessions 100 --set alpha=0.05 --workers auto
    algocomp benchmarks calvano-2020-n3 --json
    algocomp presets

The subcommands are thin: each turns its arguments into calls of the library (algocomp.scenarios,
algocomp.markets, algocomp.engine, algocomp.output) and prints the answer. They are registered in SUBCOMMANDS, so
further groups (the clients of the service API) add entries there without touching the parser or the error
handling.

Exit codes: 0 success; 2 a user error (a scenario that does not validate, an unknown preset, a bad option, an
output folder that cannot be written), reported on one line as `algocomp: error: FIELD: PROBLEM` without a
traceback; 130 interrupted with Ctrl-C. Any other exception is a bug and keeps its traceback.

Heavy modules (the engine and numba, pandas, matplotlib) are imported inside the subcommands that need them, so
`algocomp presets` and `algocomp --version` answer at once.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import algocomp
from algocomp.cli.terminal import (
    fmt_count,
    fmt_number,
    fmt_rate,
    fmt_share,
    labelled,
    session_bar,
)
from algocomp.scenarios import ScenarioError

if TYPE_CHECKING:
    from algocomp.engine.results import ExperimentResult, ProgressEvent
    from algocomp.markets import Benchmarks
    from algocomp.scenarios import Scenario

PROG = "algocomp"
EXIT_OK = 0
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
DEFAULT_OUT_ROOT = Path("out")


class UsageError(Exception):
    """A mistake in how the command was called (as opposed to a bug): reported as `FIELD: PROBLEM`, exit code 2.

    `field` names the option or scenario field at fault ("--workers", "--out", "prices"), `problem` says what is
    wrong and, where it helps, what to do instead.
    """

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}" if field else problem)


@dataclass(frozen=True)
class Subcommand:
    """One `algocomp NAME ...` command: how to declare its arguments and what to run."""

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    description: str | None = None


SUBCOMMANDS: dict[str, Subcommand] = {}


def register(subcommand: Subcommand) -> Subcommand:
    """Add a subcommand to the `algocomp` tool (names are unique)."""
    if subcommand.name in SUBCOMMANDS:
        raise ValueError(f"subcommand {subcommand.name!r} is already registered")
    SUBCOMMANDS[subcommand.name] = subcommand
    return subcommand


# --------------------------------------------------------------------------------------------- entry point


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Simulate algorithmic pricing in oligopoly markets and measure its effect on competition.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {algocomp.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for subcommand in SUBCOMMANDS.values():
        subparser = commands.add_parser(
            subcommand.name, help=subcommand.help, description=subcommand.description or subcommand.help
        )
        subcommand.configure(subparser)
        subparser.set_defaults(run=subcommand.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `algocomp` command with `argv` (default: the process's arguments) and return its exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    _tolerate_unencodable_output()
    command = next((argument for argument in arguments if not argument.startswith("-")), None)
    if command not in SUBCOMMANDS:  # another layer's command, or the help that lists them all
        _install_plugins()
    args = build_parser().parse_args(arguments)
    args.command_line = [PROG, *arguments]
    try:
        return args.run(args)
    except (ScenarioError, UsageError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`algocomp presets | head -1`): nothing left to say to it. Point stdout at devnull
        # so the interpreter's final flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


def _tolerate_unencodable_output() -> None:
    """Never fail on a character the output cannot encode. On Windows, output redirected to a file or pipe uses the
    ANSI code page (cp1252 has no "Δ", which the run table prints); such characters are written as backslash
    escapes instead, which keeps --json output valid JSON. UTF-8 streams (terminals, Linux, macOS) are untouched."""
    for stream in (sys.stdout, sys.stderr):
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "").replace("_", "")
        if encoding in ("utf8", "utf8sig") or not hasattr(stream, "reconfigure"):
            continue
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, OSError, ValueError):
            pass


# --------------------------------------------------------------------------------------------- presets


def _configure_presets(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print a JSON list of {name, description}")
    parser.add_argument(
        "--sweeps", action="store_true", help="list the built-in sweeps instead (`algocomp sweep NAME` launches one)"
    )


def run_presets(args: argparse.Namespace) -> int:
    """`algocomp presets`: the built-in scenarios (or sweeps), so a user can start from a published set-up by name."""
    if args.sweeps:
        from algocomp.scenarios.sweep_presets import list_sweep_presets

        sweeps = list_sweep_presets()
        presets = {
            name: f"{p.runs} runs ({p.cells} cells) over {p.scenario}: {p.first_line()}" for name, p in sweeps.items()
        }
    else:
        from algocomp.scenarios import list_presets

        presets = list_presets()
    if args.json:
        print(json.dumps([{"name": name, "description": text} for name, text in presets.items()], indent=2))
        return EXIT_OK
    width = max((len(name) for name in presets), default=0)
    for name, text in presets.items():
        print(f"{name:<{width}}  {text}")
    return EXIT_OK


register(
    Subcommand(
        name="presets",
        help="list the built-in scenarios",
        configure=_configure_presets,
        run=run_presets,
    )
)


# --------------------------------------------------------------------------------------------- benchmarks


def _add_scenario_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", metavar="SCENARIO", help="a scenario file (.yaml, .json) or a preset name")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="change a scenario field, e.g. --set agents.alpha=0.05 --set market.n_firms=3 (repeatable, in order)",
    )


def _configure_benchmarks(parser: argparse.ArgumentParser) -> None:
    _add_scenario_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def run_benchmarks(args: argparse.Namespace) -> int:
    """`algocomp benchmarks`: what the outcomes of a scenario will be measured against, before running it."""
    scenario = load_with_overrides(args.scenario, args.overrides)
    benchmarks, grid = market_benchmarks(scenario)
    if args.json:
        document = {"scenario": scenario.name, **benchmarks.to_dict(), "price_grid": grid.tolist()}
        print(json.dumps(document, indent=2))
        return EXIT_OK
    print(format_benchmarks(scenario, benchmarks, grid))
    return EXIT_OK


register(
    Subcommand(
        name="benchmarks",
        help="show a scenario's Nash and monopoly benchmarks and its price grid",
        description="Solve the static Bertrand-Nash and joint-monopoly outcomes of the scenario's market (on "
        "continuous prices) and show them per firm with consumer surplus, welfare and the price grid.",
        configure=_configure_benchmarks,
        run=run_benchmarks,
    )
)


# --------------------------------------------------------------------------------------------- simulate


def _configure_simulate(parser: argparse.ArgumentParser) -> None:
    _add_scenario_arguments(parser)
    parser.add_argument("--sessions", metavar="N", help="number of sessions (same as --set sessions=N)")
    parser.add_argument("--seed", metavar="S", help="experiment seed (same as --set seed=S)")
    parser.add_argument(
        "--out",
        metavar="DIR",
        help=f"output folder (default: {DEFAULT_OUT_ROOT}/<scenario name>-<UTC time>); must not hold another run",
    )
    parser.add_argument(
        "--workers",
        default="1",
        metavar="W",
        help="processes to run sessions in: a positive number, or 0 / auto for one per CPU (default 1); "
        "the results do not depend on it",
    )
    parser.add_argument(
        "--start-method",
        metavar="METHOD",
        help="how worker processes start: fork, spawn or forkserver (default: $ALGOCOMP_START_METHOD if set, else "
        "fork on Linux and spawn on Windows and macOS); the results do not depend on it",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the summary as one JSON object on stdout (messages and progress go to stderr)",
    )


def run_simulate(args: argparse.Namespace) -> int:
    """`algocomp simulate`: validate everything that can be checked cheaply (workers, scenario, benchmarks,
    output folder) before the long part, run the experiment, write the run folder, then report.

    The first Ctrl-C stops the experiment at its next check; the sessions finished by then are written (with
    cancelled = true in summary.json) and the exit code is 130.
    """
    workers = parse_workers(args.workers)
    start_method = parse_start_method(args.start_method)
    extra = [f"sessions={args.sessions}"] if args.sessions is not None else []
    extra += [f"seed={args.seed}"] if args.seed is not None else []
    scenario = load_with_overrides(args.scenario, [*args.overrides, *extra])
    # Solving the benchmarks and the grid takes milliseconds and catches a market without a usable price grid
    # before the output folder is made and the engine compiled.
    market_benchmarks(scenario)
    check_python_agents(scenario)
    out_dir = Path(args.out) if args.out else default_out_dir(scenario.name)

    # From the moment the output folder exists, a Ctrl-C is a polite stop: one that came while the engine was still
    # being loaded (seconds on a busy machine) would otherwise interrupt the imports or the plotting child's start.
    with stop_on_interrupt() as should_stop:
        created = prepare_out_dir(out_dir)
        from algocomp.engine.experiment import run_experiment
        from algocomp.output import PlotProcess, dumps_json, write_run

        plotter = PlotProcess(start_method)  # where processes fork: loads matplotlib in a child while sessions run
        try:
            with progress_bar(scenario.sessions, enabled=sys.stderr.isatty()) as on_progress:
                result = run_experiment(
                    scenario,
                    workers=workers,
                    progress=on_progress,
                    should_stop=should_stop,
                    start_method=start_method,
                )
        except BaseException:
            plotter.close()
            if created:
                _remove_empty_dirs(out_dir)  # aborted: do not leave an empty run folder behind
            raise

    sessions_done = len(result.sessions)
    if result.cancelled and sessions_done == 0:
        plotter.close()
        if created:
            _remove_empty_dirs(out_dir)
        print(f"{PROG}: interrupted before any session finished; nothing written", file=sys.stderr)
        return EXIT_INTERRUPTED

    write_run(result, out_dir, workers=workers, command=args.command_line, plotter=plotter)
    if result.cancelled:
        print(
            f"{PROG}: interrupted after {sessions_done} of {scenario.sessions} sessions; "
            f"the finished sessions are in {out_dir}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    if args.json:
        # One line: the summary holds the price grid and the mean impulse path, which indented run to pages.
        print(dumps_json({**result.summary, "output_dir": str(out_dir)}, indent=None))
    else:
        print(format_run(result, out_dir))
    return EXIT_OK


register(
    Subcommand(
        name="simulate",
        help="run an experiment and write its results folder",
        description="Run the scenario's sessions, then write panel.parquet, impulse.parquet, summary.json, "
        "scenario.json, config.json and plots/ into the output folder.",
        configure=_configure_simulate,
        run=run_simulate,
    )
)


# --------------------------------------------------------------------------------------------- shared steps


def load_with_overrides(source: str, overrides: Sequence[str]) -> Scenario:
    """The scenario from a file or preset with the --set overrides applied in order (ScenarioError if invalid)."""
    from algocomp.scenarios import apply_overrides, load_scenario

    return apply_overrides(load_scenario(source), list(overrides))


def check_python_agents(scenario: Scenario) -> None:
    """Import and check the classes of `type: python` agents (and the population around them) before anything
    runs: a ScenarioError names the field (agents.1.class). The CLI runs any class the user names, importable
    from the Python path or the directory algocomp runs in."""
    from algocomp.agents import registry

    if not registry.needs_python_path(scenario.agent_list()):
        return
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    from algocomp.agents.python import resolve_agents

    resolve_agents(scenario)


def market_benchmarks(scenario: Scenario) -> tuple[Benchmarks, Any]:
    """The scenario's benchmarks and price grid. The market library rejects markets it cannot solve or price
    grids that are unusable (zero width, negative prices) with a ValueError that explains why: those are
    properties of the scenario the user wrote, so they are reported against its field, not as a crash."""
    from algocomp.markets import compute_benchmarks, price_grid

    try:
        benchmarks = compute_benchmarks(scenario.market, scenario.prices)
    except ValueError as error:
        # unit demand's benchmarks are equilibria of the price grid, so its failures are the grid's
        raise UsageError("prices" if scenario.market.demand.model == "unit" else "market", str(error)) from error
    try:
        grid = price_grid(scenario.prices, benchmarks)
    except ValueError as error:
        raise UsageError("prices", str(error)) from error
    return benchmarks, grid


def parse_workers(text: str) -> int:
    """--workers: a positive count, or 0 / auto for one process per CPU."""
    value = text.strip().lower()
    if value in ("auto", "0"):
        return os.cpu_count() or 1
    try:
        workers = int(value)
    except ValueError:
        workers = -1
    if workers < 1:
        raise UsageError(
            "--workers", f"expected a positive number of processes, or 0 / auto for one per CPU; got {text!r}"
        )
    return workers


def parse_start_method(text: str | None) -> str:
    """--start-method (or, without it, ALGOCOMP_START_METHOD, or the platform's default), checked before any work
    is done; a bad value is a user error named after where it came from."""
    from algocomp.engine.processes import StartMethodError, resolve_start_method

    try:
        return resolve_start_method(text, source="--start-method")
    except StartMethodError as error:
        raise UsageError(error.source, error.problem) from error


def default_out_dir(scenario_name: str, *, root: Path = DEFAULT_OUT_ROOT) -> Path:
    """out/<scenario name>-<UTC time>, with the name made safe as a folder name and a counter if taken."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", scenario_name).strip("-.") or "run"
    stem = f"{slug}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    candidate, counter = root / stem, 2
    while candidate.exists():
        candidate, counter = root / f"{stem}-{counter}", counter + 1
    return candidate


def prepare_out_dir(out_dir: Path) -> bool:
    """Create the output folder and check it can be written before any simulation runs. Refuses a folder that
    already holds a run: two runs' files side by side would look like one. Returns whether it was created."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError("--out", f"{out_dir} exists and is not a folder")
    from algocomp.output.writer import CONFIG_FILE, SUMMARY_FILE

    if any((out_dir / name).exists() for name in (CONFIG_FILE, SUMMARY_FILE)):
        raise UsageError("--out", f"{out_dir} already holds a run; choose another folder or remove that one")
    existed = out_dir.is_dir()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as error:
        raise UsageError("--out", f"cannot write to {out_dir}: {error.strerror or error}") from error
    return not existed


def _remove_empty_dirs(out_dir: Path) -> None:
    try:
        out_dir.rmdir()
    except OSError:
        pass  # not empty after all (someone put a file there): leave it


@contextmanager
def progress_bar(total: int, *, enabled: bool) -> Iterator[Callable[[ProgressEvent], None] | None]:
    """A tqdm bar on stderr (sessions done / total, mean profit gain so far), fed by the engine's progress events.
    Disabled when stderr is not a terminal: a log file full of carriage returns helps nobody."""
    if not enabled:
        yield None
        return
    bar = session_bar(total)

    def on_progress(event: ProgressEvent) -> None:
        bar.total = event.sessions_total
        bar.set_postfix_str(f"profit gain {event.profit_gain:.3f}", refresh=False)
        bar.update(event.sessions_done - bar.n)

    try:
        yield on_progress
    finally:
        bar.close()


@contextmanager
def stop_on_interrupt() -> Iterator[Callable[[], bool]]:
    """Turn the first Ctrl-C into a polite request (the engine stops at its next check and returns the finished
    sessions); a second Ctrl-C aborts at once with KeyboardInterrupt.

    Worker processes receive the same Ctrl-C (they share the terminal's process group on Linux and macOS, the
    console on Windows) and ignore it, however they were started (engine.experiment): this process decides. On
    the first it stops handing out sessions and ends the workers, dropping the sessions they were running; on the
    second the KeyboardInterrupt also ends them on its way out. Only SIGINT is used, which every platform has.
    """
    requested = threading.Event()
    owner_pid = os.getpid()

    def on_sigint(signum: int, frame: Any) -> None:
        if requested.is_set():
            raise KeyboardInterrupt
        requested.set()
        if os.getpid() == owner_pid:
            print(
                f"\n{PROG}: stopping; the sessions finished so far will be written. Press Ctrl-C again to abort",
                file=sys.stderr,
            )

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield requested.is_set
    finally:
        signal.signal(signal.SIGINT, previous)


# --------------------------------------------------------------------------------------------- tables


def format_benchmarks(scenario: Scenario, benchmarks: Benchmarks, grid: Any) -> str:
    """The benchmarks as a per-firm table, then surplus and welfare, then each firm's price grid."""
    n_firms = benchmarks.n_firms
    lines = [f"{scenario.name}: {scenario.market.demand.model} demand, {n_firms} firms, {scenario.market.timing} moves"]
    lines.append(_row("", [f"firm {i}" for i in range(n_firms)]))
    for label, values in (
        ("Nash price", benchmarks.nash_price),
        ("monopoly price", benchmarks.monopoly_price),
        ("Nash profit", benchmarks.nash_profit),
        ("monopoly profit", benchmarks.monopoly_profit),
        ("Nash quantity", benchmarks.nash_quantity),
        ("monopoly quantity", benchmarks.monopoly_quantity),
    ):
        lines.append(_row(label, [fmt_number(v) for v in values]))
    lines.append("")
    lines.append(_row("", ["Nash", "monopoly"]))
    lines.append(
        _row(
            "consumer surplus",
            [fmt_number(benchmarks.nash_consumer_surplus), fmt_number(benchmarks.monopoly_consumer_surplus)],
        )
    )
    lines.append(_row("total welfare", [fmt_number(benchmarks.nash_welfare), fmt_number(benchmarks.monopoly_welfare)]))
    lines.append("")
    lines.append(f"price grid ({grid.shape[1]} prices per firm)")
    for i, row in enumerate(grid):
        lines.append(f"  firm {i}: " + " ".join(f"{p:.4f}" for p in row))
    return "\n".join(lines)


def format_run(result: ExperimentResult, out_dir: Path) -> str:
    """The few numbers a user looks at first after a run; the rest is in the run folder."""
    summary = result.summary
    scenario = result.scenario
    benchmarks = result.benchmarks
    n_firms = benchmarks.n_firms
    lines = [
        f"{scenario.name}: {summary.get('sessions', len(result.sessions))} sessions from seed {scenario.seed} "
        f"(scenario {str(summary.get('scenario_hash', ''))[:12]})",
        _row("", [f"firm {i}" for i in range(n_firms)]),
        _row("Nash price", [fmt_number(v) for v in benchmarks.nash_price]),
        _row("monopoly price", [fmt_number(v) for v in benchmarks.monopoly_price]),
        _row("Nash profit", [fmt_number(v) for v in benchmarks.nash_profit]),
        _row("monopoly profit", [fmt_number(v) for v in benchmarks.monopoly_profit]),
        "",
        labelled(
            "profit gain Δ",
            f"{fmt_number(summary.get('profit_gain'))} ± {fmt_number(summary.get('profit_gain_sd'))} (sd)",
        ),
        labelled(
            "converged",
            f"{fmt_share(summary.get('converged_share'))} of sessions, "
            f"mean period {fmt_count(summary.get('mean_convergence_period'))}",
        ),
        labelled("mean price", fmt_number(summary.get("mean_price"))),
        labelled(
            "consumer surplus",
            f"{fmt_number(summary.get('consumer_surplus'))} (Nash {fmt_number(benchmarks.nash_consumer_surplus)}, "
            f"monopoly {fmt_number(benchmarks.monopoly_consumer_surplus)})",
        ),
        labelled(
            "speed",
            f"{fmt_rate(summary.get('periods_per_second'))} periods/s "
            f"({fmt_count(summary.get('periods_total'))} periods in {fmt_number(summary.get('elapsed_s'), 1)} s)",
        ),
        labelled("output", str(out_dir)),
    ]
    if summary.get("equilibrium_on_path_share") is not None:
        # Calvano et al.'s checks of the converged strategies, where they apply (tabular learners, simultaneous moves)
        lines.insert(
            -2,
            labelled(
                "strategies",
                f"equilibrium on the path in {fmt_share(summary.get('equilibrium_on_path_share'))} of sessions, "
                f"static deviations unprofitable {fmt_share(summary.get('static_deviation_unprofitable_share'))}, "
                f"punishment {fmt_number(summary.get('mean_shock_length'), 1)} periods",
            ),
        )
    return "\n".join(lines)


def _row(label: str, cells: Sequence[str]) -> str:
    """A table row: the label, then one right-aligned column per firm (or per benchmark)."""
    return f"  {label:<18}" + "".join(f"{cell:>10}" for cell in cells)


# The clients of the service API (`scenarios`, `runs`, `results`, `panel`). They are handed this module's
# `register` rather than importing it, so they land in the registry that builds the parser also when this file
# runs as `python -m algocomp.cli.main`.
from algocomp.cli import remote as _remote  # noqa: E402

_remote.install(register, Subcommand)


def _install_plugins() -> None:
    """Subcommands that other layers add through the `algocomp.commands` entry-point group (the platform's
    `algocomp users`), so this library imports none of them. Each entry point names an install(register,
    Subcommand); one that fails to load is skipped with a warning, never breaking the other commands. Called by
    main() only for a command that is not built in (or for the help): scanning the installed packages' entry
    points costs about 40 ms, which `algocomp simulate` need not pay."""
    from importlib.metadata import entry_points

    for entry in entry_points(group="algocomp.commands"):
        if entry.name in SUBCOMMANDS:
            continue
        try:
            entry.load()(register, Subcommand)
        except Exception as error:  # noqa: BLE001 - a broken plugin must not take the engine's commands down
            print(f"{PROG}: warning: command {entry.name!r} unavailable: {error}", file=sys.stderr)


def console_main() -> int:
    """The `algocomp` executable: main(), and once an interrupt has been handled, further Ctrl-Cs ignored while
    the process ends. (The interpreter resets the handlers it installed to the default at shutdown, so a second
    Ctrl-C arriving then would kill the process by the signal instead of letting it exit with 130.)"""
    code = main()
    if code == EXIT_INTERRUPTED:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    return code


if __name__ == "__main__":
    sys.exit(console_main())
