"""Command-line style overrides: change a scenario with PATH=VALUE strings.

    agents.alpha=0.05                        one field (every firm's, if agents is a per-firm list)
    agents.1.alpha=0.05                      one firm's field
    alpha=0.05                               a bare name: the one field of that name in the scenario
    market.n_firms=3
    regulation.price_cap={basis: absolute, value: 1.8}   a whole section
    regulation.price_cap.value=1.8           creates price_cap if it is null (its other fields take defaults)

VALUE is read as YAML (0.05 and 1e-6 are floats, true a bool, null None, [1, 2] a list, {type: ucb1} a
mapping; anchors and aliases are refused). The result is validated again, so a bad value is reported with the
path of the field at fault.
See docs/scenario-format.md, "Overrides".
"""

from __future__ import annotations

import contextlib
import copy
import difflib
from typing import Any

import yaml

from algocomp.scenarios.loader import (
    MAX_DOCUMENT_DEPTH,
    ScenarioError,
    describe_yaml_error,
    load_scenario,
    parse_yaml,
)
from algocomp.scenarios.model import Scenario

Segment = str | int

# Fields that take one value for every firm or a list with one per firm. Indexing one (costs.1=1.2) while it
# holds a single value first turns it into a per-firm list of n_firms copies.
PER_FIRM_FIELDS = frozenset({("agents",), ("market", "costs"), ("market", "demand", "quality")})


def parse_override(text: str, *, max_depth: int = MAX_DOCUMENT_DEPTH) -> tuple[str, Any]:
    """Split "PATH=VALUE" into the path and the YAML-parsed value (no anchors or aliases, at most `max_depth`
    levels of nesting)."""
    if "=" not in text:
        raise ScenarioError(
            "", f"override {text!r} has no '='; write PATH=VALUE, e.g. agents.alpha=0.05 or regulation.price_cap=null"
        )
    path, raw_value = text.split("=", 1)
    path = path.strip()
    if not path:
        raise ScenarioError("", f"override {text!r} has no path before '='")
    try:
        value = parse_yaml(raw_value, max_depth=max_depth)
    except yaml.YAMLError as err:
        shown = text if len(text) <= 120 else text[:100] + "..."
        raise ScenarioError(
            path, f"override {shown!r}: the value is not valid YAML ({describe_yaml_error(err)})"
        ) from err
    return path, value


def apply_overrides(scenario: Scenario, overrides: list[str] | dict[str, Any] | str | None) -> Scenario:
    """A new, validated Scenario with the overrides applied in order.

    `overrides` is a list of "PATH=VALUE" strings (VALUE parsed as YAML) or a dict {PATH: value} whose values
    are used as given. PATH is dotted ("market.n_firms", "agents.0.alpha"); a path that does not start at a
    top-level section is matched against the ends of the scenario's paths ("alpha" -> "agents.alpha") and must
    match exactly one. When agents is a per-firm list, a path without an index ("agents.alpha") sets the field
    in every firm's spec. Raises ScenarioError for bad syntax, an unknown or ambiguous path, or a result that
    does not validate (with the dotted path of the field at fault).
    """
    if not overrides:
        return scenario
    if isinstance(overrides, str):  # one override passed on its own
        overrides = [overrides]
    if isinstance(overrides, dict):
        items = [(str(path), value, f"{path}={value!r}") for path, value in overrides.items()]
    else:
        items = [(*parse_override(text), text) for text in overrides]

    document = scenario.model_dump(mode="json")
    for path, value, label in items:
        segments = _resolve(document, _split_path(path, label), label)
        _assign(document, segments, value, label, where=[], n_firms=_n_firms(document))
        # Spell out the defaults of a section just replaced, so later overrides can name its fields. A state
        # that does not validate yet (n_firms raised before the agents list grows) is carried on as it is.
        with contextlib.suppress(ScenarioError):
            document = load_scenario(document).model_dump(mode="json")
    try:
        return load_scenario(document)
    except ScenarioError as err:
        applied = ", ".join(label for _, _, label in items)
        raise ScenarioError(err.field, f"{err.problem} (after overrides: {applied})") from err


# --------------------------------------------------------------------------------------------- paths


def _split_path(path: str, label: str) -> list[Segment]:
    segments: list[Segment] = []
    for part in path.split("."):
        part = part.strip()
        if not part:
            raise ScenarioError(path, f"override {label!r}: empty segment in the path")
        segments.append(int(part) if part.isdigit() else part)
    return segments


def _key_paths(node: Any, prefix: list[Segment]) -> list[list[Segment]]:
    """Every path to a mapping key in the document, sections and leaves alike."""
    paths: list[list[Segment]] = []
    if isinstance(node, dict):
        for key, child in node.items():
            paths.append([*prefix, key])
            paths.extend(_key_paths(child, [*prefix, key]))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            paths.extend(_key_paths(child, [*prefix, index]))
    return paths


def _dotted(segments: list[Segment]) -> str:
    return ".".join(str(segment) for segment in segments)


def _resolve(document: dict[str, Any], segments: list[Segment], label: str) -> list[Segment]:
    """The full path for `segments`: as given if it starts at a top-level section, else the unique path
    ending with it."""
    if segments[0] in document:
        return segments
    path = _dotted(segments)
    every_path = _key_paths(document, [])
    matches = [p for p in every_path if len(p) >= len(segments) and p[-len(segments) :] == segments]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        # "price_cap.value" while price_cap is null: match the longest leading part, keep the rest.
        for k in range(len(segments) - 1, 0, -1):
            head = segments[:k]
            head_matches = [p for p in every_path if len(p) >= k and p[-k:] == head]
            if len(head_matches) == 1:
                return head_matches[0] + segments[k:]
            if head_matches:
                break
    if matches:
        candidates = ", ".join(_dotted(p) for p in matches)
        hint = ""
        if all(p[0] == "agents" and len(p) > 1 and isinstance(p[1], int) for p in matches):
            hint = f"; agents.{path} sets it for every firm"
        raise ScenarioError(
            path, f"override {label!r} is ambiguous: {path!r} matches {candidates}; write the full path{hint}"
        )
    last_names = sorted({str(p[-1]) for p in every_path})
    close_names = set(difflib.get_close_matches(str(segments[-1]), last_names, n=5, cutoff=0.6))
    close = sorted({_dotted(p) for p in every_path if str(p[-1]) in close_names})
    suggestion = f"did you mean {', '.join(close[:8])}?" if close else f"top-level sections: {', '.join(document)}"
    raise ScenarioError(path, f"override {label!r}: no field {path!r} in this scenario; {suggestion}")


def _n_firms(document: dict[str, Any]) -> int:
    market = document.get("market")
    n_firms = market.get("n_firms") if isinstance(market, dict) else None
    return n_firms if isinstance(n_firms, int) else 2


def _assign(node: Any, segments: list[Segment], value: Any, label: str, where: list[Segment], n_firms: int) -> None:
    """Set `value` at `segments` below `node`, creating null sections and broadcasting over per-firm lists."""
    head, rest = segments[0], segments[1:]
    here = _dotted([*where, head])
    if isinstance(node, list):
        if isinstance(head, int):
            if not 0 <= head < len(node):
                raise ScenarioError(
                    here, f"override {label!r}: index {head} is out of range ({_dotted(where)} has {len(node)} entries)"
                )
            if not rest:
                node[head] = copy.deepcopy(value)
                return
            node[head] = _section(node[head], rest, [*where, head], label, n_firms)
            _assign(node[head], rest, value, label, [*where, head], n_firms)
            return
        if not all(isinstance(item, dict) for item in node):
            raise ScenarioError(
                _dotted(where),
                f"override {label!r}: {_dotted(where)} is a list; give an index, e.g. {_dotted(where)}.0",
            )
        for index, item in enumerate(node):  # broadcast over every firm's spec
            _assign(item, segments, value, label, [*where, index], n_firms)
        return
    if not isinstance(node, dict) or isinstance(head, int):
        raise ScenarioError(here, f"override {label!r}: {_dotted(where) or 'the scenario'} has no entry {head!r}")
    if not rest:
        node[head] = copy.deepcopy(value)
        return
    node[head] = _section(node.get(head), rest, [*where, head], label, n_firms)
    _assign(node[head], rest, value, label, [*where, head], n_firms)


def _section(child: Any, rest: list[Segment], where: list[Segment], label: str, n_firms: int) -> Any:
    """The container to descend into at `where`: a null (or absent) section becomes a mapping, and a per-firm
    field holding one value becomes a list of n_firms copies when it is indexed."""
    field = tuple(segment for segment in where if not isinstance(segment, int))
    if isinstance(rest[0], int) and not isinstance(child, list) and field in PER_FIRM_FIELDS:
        return [copy.deepcopy(child) for _ in range(n_firms)]
    if child is None:
        return {}
    if not isinstance(child, (dict, list)):
        raise ScenarioError(
            _dotted(where), f"override {label!r}: {_dotted(where)} is the value {child!r}, not a section"
        )
    return child


__all__ = ["PER_FIRM_FIELDS", "apply_overrides", "parse_override"]
