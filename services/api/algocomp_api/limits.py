"""What one request may ask of the platform (the `max_*` settings): each check raises 422 `limit_exceeded`
naming the field and stating the limit, and runs before anything it guards is built, stored or sent.

Sizes are checked from what the request states (a count, a product of lengths), never by building the thing
first: a grid's cells from the lengths of its axes, a sweep's seeds from `seeds_per_cell`. The request body itself
is bounded by `body_limit.RequestBodyLimit` (413)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from algocomp.platform.settings import Settings
from algocomp.scenarios import Scenario, parse_override
from algocomp.scenarios.loader import too_deep
from algocomp_api.errors import ApiError

LIMIT_EXCEEDED = "limit_exceeded"

# Integers the API stores in BIGINT columns or hands to the engine's int64 arrays: anything above is refused by the
# request schemas, so a value such as 10**30 is a 422, never an overflow further down.
INT64_MAX = 2**63 - 1
# Names the API looks up (presets) are short; a longer one is refused before it reaches the file system.
MAX_NAME_CHARS = 200


def limit_exceeded(field: str, message: str, limit: int, *, code: str = LIMIT_EXCEEDED, **extra: Any) -> ApiError:
    """422 `limit_exceeded`: `message` says what was asked and the limit, `limit` is machine-readable."""
    return ApiError(422, code, message, field=field, limit=limit, **extra)


def check_agent_classes(scenario: Scenario, settings: Settings, field_prefix: str = "") -> None:
    """Every `type: python` agent class is one the allow-list admits (setting python_agent_classes; checked before
    anything is imported: importing runs code), and every Python-path agent can run (its class imports, has the
    protocol's methods and accepts its params). 422 `agent_class_not_allowed` or `invalid_scenario` naming the
    field (agents.1.class)."""
    from algocomp.agents import registry
    from algocomp.agents.python import resolve_agents
    from algocomp.agents.python_specs import PythonAgent

    specs = scenario.agent_list()
    if not registry.needs_python_path(specs):
        return
    for i, spec in enumerate(specs):
        if isinstance(spec, PythonAgent) and not settings.python_agent_allowed(spec.class_):
            where = f"agents.{i}.class" if isinstance(scenario.agents, list) else "agents.class"
            raise ApiError(
                422,
                "agent_class_not_allowed",
                f"{spec.class_} is not among the agent classes this service runs (setting python_agent_classes "
                f"admits {', '.join(settings.python_agent_classes) or 'none'}); run it with the algocomp CLI instead",
                field=field_prefix + where,
            )
    resolve_agents(scenario, allowed=settings.python_agent_allowed)


def check_at_most(value: int, limit: int, field: str, what: str, setting: str) -> None:
    if value > limit:
        raise limit_exceeded(field, f"{what} is at most {limit:,} (got {value:,}; setting {setting})", limit)


def check_document(document: Any, settings: Settings, field: str) -> None:
    """A JSON document in a request (an inline scenario, a grid value) nests at most `max_yaml_depth` levels."""
    deep = too_deep(document, settings.max_yaml_depth)
    if deep is not None:
        where = ".".join([field, *(str(segment) for segment in deep)])
        raise limit_exceeded(
            where,
            f"{field} nests deeper than {settings.max_yaml_depth} levels (setting max_yaml_depth)",
            settings.max_yaml_depth,
        )


def check_overrides(overrides: Sequence[str], settings: Settings, field: str = "overrides") -> None:
    """At most `max_override_count` overrides of at most `max_override_chars` characters each, whose values
    parse as YAML nesting at most `max_yaml_depth` levels (no anchors or aliases: the engine's loader refuses
    them, as ScenarioError naming the override's path)."""
    check_at_most(len(overrides), settings.max_override_count, field, "the number of overrides", "max_override_count")
    for index, text in enumerate(overrides):
        check_override_text(text, settings, f"{field}.{index}")
    for text in overrides:
        parse_override(text, max_depth=settings.max_yaml_depth)


def check_override_text(text: str, settings: Settings, field: str) -> None:
    if len(text) > settings.max_override_chars:
        raise limit_exceeded(
            field,
            f"an override is at most {settings.max_override_chars:,} characters (got {len(text):,}; setting "
            "max_override_chars)",
            settings.max_override_chars,
        )


def check_sessions(sessions: int | None, settings: Settings, field: str = "sessions") -> None:
    """A request's explicit sessions, before anything is loaded or stored."""
    if sessions is not None:
        check_at_most(sessions, settings.max_sessions_per_run, field, "sessions per run", "max_sessions_per_run")


def check_run_size(scenario: Scenario, settings: Settings, *, sessions_field: str = "sessions") -> None:
    """A run of `scenario` is within the sessions, periods, work (sessions x max_periods) and logging limits."""
    check_sessions(scenario.sessions, settings, sessions_field)
    max_periods = scenario.horizon.max_periods
    check_at_most(
        max_periods,
        settings.max_periods_per_session,
        "horizon.max_periods",
        "horizon.max_periods (periods per session)",
        "max_periods_per_session",
    )
    work = scenario.sessions * max_periods
    if work > settings.max_work_per_run:
        raise limit_exceeded(
            sessions_field,
            f"a run simulates at most {settings.max_work_per_run:,} periods in all (sessions x horizon.max_periods; "
            f"got {scenario.sessions:,} x {max_periods:,} = {work:,}; setting max_work_per_run): run fewer "
            "sessions, lower horizon.max_periods, or split the run",
            settings.max_work_per_run,
        )
    check_logging(scenario, settings, sessions_field=sessions_field)


def check_logging(scenario: Scenario, settings: Settings, *, sessions_field: str = "sessions") -> None:
    """A session allocates its log (max_intervals rows), tail, cycle search and impulse up front, and a run's worker
    holds every session's rows: both are bounded, or logging.tail=10^9 is a MemoryError in the worker."""
    logging = scenario.logging
    for name in ("max_intervals", "tail", "cycle_search", "impulse_periods"):
        check_at_most(
            getattr(logging, name),
            settings.max_log_rows_per_session,
            f"logging.{name}",
            f"logging.{name}",
            "max_log_rows_per_session",
        )
    rows = scenario.sessions * (logging.max_intervals + logging.tail)
    if rows > settings.max_log_rows_per_run:
        raise limit_exceeded(
            sessions_field,
            f"a run logs at most {settings.max_log_rows_per_run:,} rows (sessions x (logging.max_intervals + "
            f"logging.tail); got {scenario.sessions:,} x ({logging.max_intervals:,} + {logging.tail:,}) = {rows:,}; "
            "setting max_log_rows_per_run): run fewer sessions or log fewer rows",
            settings.max_log_rows_per_run,
        )


def product_at_most(lengths: Iterable[int], bound: int) -> int:
    """The product of `lengths`, or bound + 1 as soon as it exceeds `bound` (so no huge integer is built)."""
    product = 1
    for length in lengths:
        product *= length
        if product > bound:
            return bound + 1
    return product
