"""Scenario YAML and documents cannot exhaust the process: anchors and aliases are refused (a "billion laughs"
of a few hundred bytes), nesting is bounded before any recursion, and a name no file can have is a ScenarioError."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from algocomp.scenarios import ScenarioError, apply_overrides, list_presets, load_scenario, parse_override, parse_yaml
from algocomp.scenarios.loader import MAX_DOCUMENT_DEPTH, too_deep


def anchor_bomb(levels: int = 9, width: int = 9) -> str:
    """A YAML mapping whose last key stands for width**levels strings, written in a few hundred bytes."""
    entries = ["x0: &a0 [lol]"]
    for level in range(1, levels):
        entries.append(f"x{level}: &a{level} [" + ",".join([f"*a{level - 1}"] * width) + "]")
    return "{" + ", ".join(entries) + "}"


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.fixture(scope="module")
def baseline():
    return load_scenario("calvano-2020-baseline")


def test_an_anchor_bomb_override_is_refused_at_once_naming_the_field(baseline):
    override = "agents.alpha=" + anchor_bomb()
    assert len(override) < 500
    started = time.perf_counter()
    with pytest.raises(ScenarioError) as caught:
        apply_overrides(baseline, [override])
    assert time.perf_counter() - started < 0.5
    assert caught.value.field == "agents.alpha"
    assert "anchors and aliases" in caught.value.problem
    assert len(caught.value.problem) < 400  # the override is shown clipped


@pytest.mark.parametrize("text", ["a: &x 1\nb: *x\n", "a: &x 1\n", "- *x\n"])
def test_any_anchor_or_alias_is_a_yaml_error(text):
    with pytest.raises(Exception, match="anchors and aliases"):
        parse_yaml(text)


def test_a_scenario_file_with_anchors_is_refused(tmp_path: Path):
    path = tmp_path / "bomb.yaml"
    path.write_text("name: bomb\ndescription: " + anchor_bomb() + "\n", encoding="utf-8")
    started = time.perf_counter()
    with pytest.raises(ScenarioError, match="anchors and aliases"):
        load_scenario(path)
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize("depth", [MAX_DOCUMENT_DEPTH + 1, 5_000, 200_000])
def test_deep_yaml_is_refused_without_recursion(baseline, depth):
    with pytest.raises(ScenarioError) as caught:
        apply_overrides(baseline, [f"agents.alpha={nested(depth)}"])
    assert caught.value.field == "agents.alpha"
    assert f"deeper than {MAX_DOCUMENT_DEPTH} levels" in caught.value.problem


def test_the_caller_can_ask_for_a_stricter_depth():
    assert parse_override("regulation.price_cap={basis: absolute, value: 1.8}", max_depth=2)[1]["value"] == 1.8
    with pytest.raises(ScenarioError, match="deeper than 3 levels"):
        parse_override(f"agents.alpha={nested(4)}", max_depth=3)


def test_a_deep_document_is_a_scenario_error_naming_where():
    value: object = 0
    for _ in range(5_000):
        value = [value]
    with pytest.raises(ScenarioError) as caught:
        load_scenario({"market": value})
    assert caught.value.field.startswith("market.0.0")
    assert too_deep({"a": {"b": 1}}, 3) is None
    assert too_deep({"a": {"b": [1]}}, 3) == ["a", "b", 0]


def test_a_deep_json_file_is_a_scenario_error(tmp_path: Path):
    path = tmp_path / "deep.json"
    path.write_text('{"market": ' + nested(100_000) + "}", encoding="utf-8")
    with pytest.raises(ScenarioError):
        load_scenario(path)
    path.write_text(json.dumps({"market": json.loads(nested(100))}), encoding="utf-8")
    with pytest.raises(ScenarioError, match="deeper than"):
        load_scenario(path)


@pytest.mark.parametrize("name", ["x" * 100_000, "a\x00b"])
def test_a_name_no_file_can_have_is_not_a_preset(name):
    with pytest.raises(ScenarioError) as caught:
        load_scenario(name)
    assert len(str(caught.value)) < 2_000


def test_every_preset_still_loads_and_ordinary_overrides_still_work(baseline):
    for name in list_presets():
        load_scenario(name)
    changed = apply_overrides(
        baseline, ["regulation.price_cap={basis: absolute, value: 1.8}", "agents.beta=1e-5", "sessions=4"]
    )
    assert changed.regulation.price_cap is not None and changed.sessions == 4
