"""Reading, naming and fingerprinting scenarios.

`load_scenario` accepts a dict, a YAML/JSON file or the name of a built-in preset and returns a validated
`Scenario`; every problem comes out as a `ScenarioError` carrying the dotted path of the field at fault, so the
command line, the API and the tests all report mistakes the same way.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from algocomp.scenarios.model import Scenario
from algocomp.spec import ScenarioError

PRESETS_DIR = Path(__file__).resolve().parent / "presets"
SCENARIO_SUFFIXES = (".yaml", ".yml", ".json")

# The deepest nesting a scenario document (or an override's value) may have. Real scenarios nest five or six
# levels; the bound keeps a hostile document from exhausting Python's recursion (parsing, validating, repr()).
# Callers that take untrusted input may pass a stricter one.
MAX_DOCUMENT_DEPTH = 64

Loc = list[str | int]


# --------------------------------------------------------------------------------------------- YAML


class ScenarioYamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader, which also reads 1e-6 and 4e9 as floats.

    PyYAML follows YAML 1.1, where a float needs a decimal point and a signed exponent, so `beta: 1e-6` would
    arrive as the string "1e-6". Scientific notation is how learning and exploration rates are written, so it is
    resolved as YAML 1.2 and JSON do. A key given twice in one mapping is an error rather than the last one
    silently winning.

    Anchors and aliases (&name, *name) are refused: a few hundred bytes of nested aliases (a "billion laughs")
    stand for a document of billions of nodes, which every later step (copying, validating, repr()) would expand.
    Nesting deeper than `max_depth` is refused too, before the composer's recursion can exhaust the stack.
    """

    max_depth: int = MAX_DOCUMENT_DEPTH

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise yaml.composer.ComposerError(
                None, None, "anchors and aliases (&name, *name) are not accepted; write the value out", event.start_mark
            )
        self._depth += 1
        try:
            if self._depth > self.max_depth:
                raise yaml.composer.ComposerError(
                    None, None, f"the document nests deeper than {self.max_depth} levels", event.start_mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                if isinstance(key, str) and key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"found duplicate key {key!r}",
                        key_node.start_mark,
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


ScenarioYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def describe_yaml_error(err: yaml.YAMLError) -> str:
    """One line for a YAML syntax error: the problem and where it is."""
    if isinstance(err, yaml.MarkedYAMLError) and err.problem:
        mark = err.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        return f"{err.problem}{where}"
    return " ".join(str(err).split())


def parse_yaml(text: str, *, max_depth: int = MAX_DOCUMENT_DEPTH) -> Any:
    """Parse YAML text with `ScenarioYamlLoader` (safe, scientific notation read as floats, no anchors or aliases,
    at most `max_depth` levels of nesting; yaml.YAMLError otherwise)."""
    loader = ScenarioYamlLoader(text)  # a SafeLoader subclass: safe
    loader.max_depth = max_depth
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def too_deep(document: Any, max_depth: int = MAX_DOCUMENT_DEPTH) -> Loc | None:
    """The path to the first value of `document` nested deeper than `max_depth` levels (the document itself is
    level 1), or None. Iterative, so it is safe on any depth."""
    stack: list[tuple[Any, Loc]] = [(document, [])]
    while stack:
        value, loc = stack.pop()
        if len(loc) >= max_depth:
            return loc
        if not isinstance(value, (dict, list, tuple)):  # only the document itself can be a scalar here
            continue
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, child in items:
            if isinstance(child, (dict, list, tuple)):  # scalars end a branch: only containers go deeper
                stack.append((child, [*loc, str(key) if isinstance(value, dict) else key]))
            elif len(loc) + 1 >= max_depth:
                return [*loc, str(key) if isinstance(value, dict) else key]
    return None


# --------------------------------------------------------------------------------------------- presets


def list_presets() -> dict[str, str]:
    """The built-in presets: name -> one-line description, sorted by name."""
    presets: dict[str, str] = {}
    for path in sorted(PRESETS_DIR.glob("*.yaml")):
        document = parse_yaml(path.read_text(encoding="utf-8")) or {}
        description = str(document.get("description", "")).strip()
        presets[path.stem] = description.splitlines()[0] if description else ""
    return presets


def preset_path(name: str) -> Path:
    """The YAML file of the built-in preset `name`; ScenarioError listing the presets if there is none."""
    path = PRESETS_DIR / f"{name}.yaml"
    if not path.is_file() or path.parent != PRESETS_DIR:
        raise ScenarioError("", f"no preset named {name!r}; available presets: {', '.join(list_presets())}")
    return path


# --------------------------------------------------------------------------------------------- loading


def load_scenario(source: str | Path | dict[str, Any] | Scenario) -> Scenario:
    """A validated Scenario from a dict, a .yaml/.yml/.json file, or the name of a built-in preset.

    A plain name without a suffix or slash is looked up among the presets first; anything else is a file
    path. Every failure raises ScenarioError: a missing file or unknown preset (listing the presets),
    malformed YAML or JSON, or the first validation error with the dotted path of the field at fault.
    """
    if isinstance(source, Scenario):
        return source
    if isinstance(source, dict):
        return _validate(source)
    if isinstance(source, (str, Path)):
        path = Path(source)
        is_preset_name = isinstance(source, str) and "/" not in source and "\\" not in source and not path.suffix
        if is_preset_name and _is_file(PRESETS_DIR / f"{source}.yaml"):
            return _validate(_read_document(PRESETS_DIR / f"{source}.yaml"))
        if _is_file(path):
            return _validate(_read_document(path))
        shown = str(source) if len(str(source)) <= 120 else str(source)[:100] + "..."
        if is_preset_name:
            what = f"{shown!r} is neither a scenario file nor a preset"
        else:
            what = f"scenario file {shown!r} not found"
        raise ScenarioError("", f"{what}; available presets: {', '.join(list_presets())}")
    raise ScenarioError("", f"cannot load a scenario from a {type(source).__name__}; give a dict, a path or a preset")


def _is_file(path: Path) -> bool:
    """Path.is_file, false for a name no file can have (too long, a NUL byte) instead of raising."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _read_document(path: Path) -> dict[str, Any]:
    suffix = path.suffix.lower()
    if suffix not in SCENARIO_SUFFIXES:
        raise ScenarioError("", f"{path}: unsupported file type {suffix or '(none)'!r}; use .yaml, .yml or .json")
    text = path.read_text(encoding="utf-8")
    try:
        document = json.loads(text) if suffix == ".json" else parse_yaml(text)
    except json.JSONDecodeError as err:
        raise ScenarioError(
            "", f"{path} is not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}"
        ) from err
    except RecursionError as err:
        raise ScenarioError("", f"{path} nests too deeply (at most {MAX_DOCUMENT_DEPTH} levels)") from err
    except yaml.YAMLError as err:
        raise ScenarioError("", f"{path} is not valid YAML: {describe_yaml_error(err)}") from err
    if document is None:
        raise ScenarioError("", f"{path} is empty; a scenario is a mapping of sections (market, agents, ...)")
    if not isinstance(document, dict):
        raise ScenarioError(
            "", f"{path} holds a {type(document).__name__}; a scenario is a mapping of sections (market, agents, ...)"
        )
    return document


def _validate(document: dict[str, Any]) -> Scenario:
    deep = too_deep(document)
    if deep is not None:
        raise ScenarioError(
            ".".join(str(segment) for segment in deep),
            f"the scenario nests deeper than {MAX_DOCUMENT_DEPTH} levels here; a scenario is a few sections deep",
        )
    try:
        return Scenario.model_validate(document)
    except ValidationError as err:
        problems = format_validation_error(err)
        field, problem = problems[0] if problems else ("", str(err))
        raise ScenarioError(field, problem) from err


# --------------------------------------------------------------------------------------------- errors


def format_validation_error(err: ValidationError) -> list[tuple[str, str]]:
    """(dotted field path, problem) for each error of a Scenario validation, most relevant first.

    pydantic reports a value that matches no member of a union once per member, with locations that name the
    member ('tagged-union[...]', 'list[...]') or the discriminator tag ('qlearning', 'logit'). Those segments
    are dropped, so paths read as the user wrote them ("agents.alpha", "agents.0.alpha", "prices.m"), and
    of the members only the one the value got furthest into is kept: an agents list with a bad learning rate
    reports that rate, not that the list is not a single spec. Errors at the same path are joined with "or".
    """
    entries: list[tuple[tuple[Any, ...], int, Loc, Mapping[str, Any], Any]] = []
    for error in err.errors():
        clean, branch_point, annotation = _clean_loc(error["loc"])
        group = (tuple(branch_point),) if branch_point is not None else ("#", len(entries))
        entries.append((group, len(error["loc"]), clean, error, annotation))

    # Of the errors behind one union, keep those from the member the value got furthest into, and among
    # those drop "not a list" / "not a mapping" when the value went into another member and failed there.
    deepest: dict[tuple[Any, ...], int] = {}
    for group, depth, *_ in entries:
        deepest[group] = max(depth, deepest.get(group, 0))
    kept = [entry for entry in entries if entry[1] == deepest[entry[0]]]
    informative = {entry[0] for entry in kept if entry[3]["type"] not in _SHAPE_MISMATCH}
    kept = [entry for entry in kept if entry[0] not in informative or entry[3]["type"] not in _SHAPE_MISMATCH]

    merged: dict[str, list[str]] = {}
    for _, _, clean, detail, annotation in kept:
        field = ".".join(str(segment) for segment in clean)
        problem = _describe(detail, annotation)
        if problem not in merged.setdefault(field, []):
            merged[field].append(problem)
    return [(field, _join_alternatives(problems)) for field, problems in merged.items()]


# pydantic error types that only say the value has the wrong shape for one member of a union.
_SHAPE_MISMATCH = frozenset({"list_type", "model_attributes_type", "model_type", "dict_type", "tuple_type"})


def _describe(error: Mapping[str, Any], annotation: Any) -> str:
    message = str(error["msg"])
    if error["type"] == "value_error" and message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    elif error["type"] == "union_tag_not_found":
        key = str(error.get("ctx", {}).get("discriminator", "")).strip("'")
        tags = _union_tags(annotation, key)
        message = f"missing {key!r}, which says which kind this is" + (f"; one of: {', '.join(tags)}" if tags else "")
    elif error["type"] == "extra_forbidden" and error["loc"]:
        _, _, parent = _clean_loc(error["loc"][:-1])
        parent, _ = _unwrap(parent, None)
        if _is_union(parent):  # an optional section such as regulation.price_cap
            members = [m for m in get_args(parent) if m is not type(None)]
            parent = members[0] if len(members) == 1 else None
        if isinstance(parent, type) and issubclass(parent, BaseModel):
            known = list(parent.model_fields)
            close = difflib.get_close_matches(str(error["loc"][-1]), known, n=1)
            message = "unknown field" + (f" (did you mean {close[0]!r}?)" if close else "")
            message += f"; the fields here are: {', '.join(known)}"
    value = error.get("input")
    if error["type"] != "missing" and not isinstance(value, dict):
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        message += f" (got {shown})"
    return message


def _join_alternatives(problems: list[str]) -> str:
    if len(problems) == 1:
        return problems[0]
    # Alternatives for one value report the same input; say it once, at the end.
    suffix = ""
    got = [p[p.rfind(" (got ") :] for p in problems if " (got " in p]
    if len(got) == len(problems) and len(set(got)) == 1:
        suffix = got[0]
        problems = [p[: -len(suffix)] for p in problems]
    return "; or ".join(problems) + suffix


def _clean_loc(loc: tuple[str | int, ...]) -> tuple[Loc, Loc | None, Any]:
    """Drop union-member labels and discriminator tags from a pydantic error location.

    Returns the cleaned location; if the error came from inside a non-discriminated union, the cleaned
    location of that union (its errors compete; see format_validation_error); and the annotation reached
    (None if the location leaves the model)."""
    clean: Loc = []
    branch_point: Loc | None = None
    annotation: Any = Scenario
    discriminator: str | None = None
    for segment in loc:
        annotation, discriminator, keep, was_branch = _step(annotation, discriminator, segment)
        if was_branch and branch_point is None:
            branch_point = list(clean)
        if keep:
            clean.append(segment)
    return clean, branch_point, annotation


def _union_tags(annotation: Any, discriminator: str) -> list[str]:
    """The tag values of a discriminated union, e.g. the agent types."""
    base, _ = _unwrap(annotation, None)
    if not _is_union(base):
        return []
    tags: list[str] = []
    for member in get_args(base):
        tags.extend(str(tag) for tag in _tag_values(_unwrap(member, None)[0], discriminator))
    return tags


_SCALAR_LABELS = frozenset({"int", "float", "str", "bool", "none", "dict", "list"})


def _looks_like_label(segment: str | int) -> bool:
    """A pydantic union-member label such as 'tagged-union[...]', 'list[...]', 'constrained-float'."""
    return isinstance(segment, str) and ("[" in segment or "-" in segment or segment in _SCALAR_LABELS)


def _unwrap(annotation: Any, discriminator: str | None) -> tuple[Any, str | None]:
    while get_origin(annotation) is Annotated:
        base, *metadata = get_args(annotation)
        for item in metadata:
            if isinstance(getattr(item, "discriminator", None), str):
                discriminator = item.discriminator
        annotation = base
    return annotation, discriminator


def _is_union(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, types.UnionType)


def _tag_values(member: Any, discriminator: str) -> tuple[Any, ...]:
    if isinstance(member, type) and issubclass(member, BaseModel) and discriminator in member.model_fields:
        tag_annotation = member.model_fields[discriminator].annotation
        if get_origin(tag_annotation) is Literal:
            return get_args(tag_annotation)
    return ()


def _match_label(members: list[Any], label: str) -> Any:
    for member in members:
        base, inner_discriminator = _unwrap(member, None)
        if label.startswith("list[") and get_origin(base) is list:
            return member
        if label.startswith("tagged-union[") and inner_discriminator is not None:
            return member
        if label.startswith("literal[") and get_origin(base) is Literal:
            return member
        if isinstance(base, type) and label == base.__name__:
            return member
    return None


def _step(annotation: Any, discriminator: str | None, segment: str | int) -> tuple[Any, str | None, bool, bool]:
    """Follow one location segment through the model's types.

    Returns the annotation reached, its discriminator, whether the segment belongs in the user's path and
    whether it selected a member of a non-discriminated union."""
    if annotation is None:  # off the map (an unknown key): keep what reads like a path
        return None, None, not _looks_like_label(segment), False
    annotation, discriminator = _unwrap(annotation, discriminator)
    if _is_union(annotation):
        members = [m for m in get_args(annotation) if m is not type(None)]
        if discriminator is not None and isinstance(segment, str):
            for member in members:
                base, _ = _unwrap(member, None)
                if segment in _tag_values(base, discriminator):
                    return base, None, False, False
        if len(members) == 1:
            return _step(members[0], discriminator, segment)
        # A member's label: 'list[...]' and the like, or a model member's class name ('UniformQInit').
        if _looks_like_label(segment) or (isinstance(segment, str) and _match_label(members, segment) is not None):
            member = _match_label(members, str(segment))
            return member, None, False, True
        return None, None, True, False
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        field = annotation.model_fields.get(str(segment))
        if field is None:
            return None, None, True, False
        return field.annotation, field.discriminator if isinstance(field.discriminator, str) else None, True, False
    if get_origin(annotation) is list and isinstance(segment, int):
        return get_args(annotation)[0], None, True, False
    return None, None, not _looks_like_label(segment), False


# --------------------------------------------------------------------------------------------- identity


def scenario_hash(scenario: Scenario) -> str:
    """A fingerprint of the scenario: sha256 hex of its canonical JSON (sorted keys, no spaces).

    Equal for equal scenarios however they were written (key order, YAML or JSON, defaults left out or spelt
    out); different as soon as any parameter, the name or the description differs."""
    canonical = json.dumps(scenario.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def dump_scenario(scenario: Scenario, path: str | Path) -> Path:
    """Write the scenario with every default spelt out: YAML if the path ends in .yaml/.yml, JSON otherwise.

    The file loads back (load_scenario) to an equal scenario with the same hash."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    document = scenario.model_dump(mode="json")
    if path.suffix.lower() in (".yaml", ".yml"):
        text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, default_flow_style=False)
    else:
        text = json.dumps(document, indent=2) + "\n"
    path.write_text(text, encoding="utf-8")
    return path


__all__ = [
    "MAX_DOCUMENT_DEPTH",
    "PRESETS_DIR",
    "ScenarioError",
    "ScenarioYamlLoader",
    "describe_yaml_error",
    "dump_scenario",
    "format_validation_error",
    "list_presets",
    "load_scenario",
    "parse_yaml",
    "preset_path",
    "scenario_hash",
    "too_deep",
]
