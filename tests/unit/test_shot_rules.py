"""Shot-list rules: the sample shot lists pass; each broken rule is reported once, by shot.

The fixtures are the recorded sample responses (script, asset registry, shot list), which
satisfy every rule; each test breaks one thing and expects exactly one violation naming
the rule, the shot and the line or entity at fault.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from agents._shot_rules import MAX_WORDS_PER_SECOND, Violation, check_shot_list, describe
from agents.artifacts import AssetRegistry, Script, ShotList

SAMPLE = Path(__file__).resolve().parents[2] / "evals" / "datasets" / "sample_responses.json"
RESPONSES: dict[str, list[dict[str, Any]]] = json.loads(SAMPLE.read_text())["responses"]


def script() -> dict[str, Any]:
    return copy.deepcopy(RESPONSES["draft_script"][0])


def assets() -> dict[str, Any]:
    return copy.deepcopy(RESPONSES["extract_assets"][0])


def shots() -> dict[str, Any]:
    return copy.deepcopy(RESPONSES["list_shots"][0])


def shot(data: dict[str, Any], shot_id: str) -> dict[str, Any]:
    return next(s for s in data["shots"] if s["id"] == shot_id)


def check(
    shot_list: dict[str, Any] | None = None,
    the_script: dict[str, Any] | None = None,
    registry: dict[str, Any] | None = None,
) -> list[Violation]:
    return check_shot_list(
        ShotList.model_validate(shot_list if shot_list is not None else shots()),
        Script.model_validate(the_script if the_script is not None else script()),
        AssetRegistry.model_validate(registry if registry is not None else assets()),
    )


def only(violations: list[Violation]) -> Violation:
    assert len(violations) == 1, violations
    return violations[0]


# --- valid shot lists ----------------------------------------------------------------------


COMBINED_TASKS = ("draft_script", "extract_assets", "list_shots")


@pytest.mark.parametrize(
    ("script_n", "assets_n", "shots_n"),
    list(itertools.product(*(range(len(RESPONSES[k])) for k in COMBINED_TASKS))),
)
def test_every_sample_combination_satisfies_every_rule(
    script_n: int, assets_n: int, shots_n: int
) -> None:
    assert (
        check(
            RESPONSES["list_shots"][shots_n],
            RESPONSES["draft_script"][script_n],
            RESPONSES["extract_assets"][assets_n],
        )
        == []
    )


def test_the_sample_has_revisions_to_combine() -> None:
    assert all(len(RESPONSES[k]) >= 2 for k in COMBINED_TASKS)


def test_dialogue_compares_up_to_speaker_case_and_whitespace() -> None:
    data = shots()
    line = shot(data, "1B")["dialogue"][0]
    line["speaker"] = "Dora"
    line["text"] = "  Eggs roll,   Pip. That's our whole thing. "
    assert check(data) == []


def test_an_entity_the_scene_records_no_look_for_may_show_any_of_its_looks() -> None:
    registry = assets()
    registry["scene_usage"] = [
        u for u in registry["scene_usage"] if (u["scene"], u["entity"]) != (2, "kite")
    ]
    data = shots()
    for s in data["shots"]:
        for entity in s["entities"]:
            if s["scene"] == 2 and entity["entity"] == "kite":
                entity["look"] = "plain"
    assert check(data, registry=registry) == []
    assert [(v.rule, v.shot) for v in check(data)] == [("wrong_look", "2A"), ("wrong_look", "2B")]


# --- coverage ------------------------------------------------------------------------------


def test_an_uncovered_dialogue_line_is_reported_with_its_text() -> None:
    data = shots()
    shot(data, "1B")["covers"] = [2]
    shot(data, "1B")["dialogue"] = []
    violation = only(check(data))
    assert violation == Violation(
        "coverage",
        None,
        'scene 1: line 3 (DORA: "Eggs roll, Pip. That\'s our whole thing.") is covered by no shot',
    )


def test_an_uncovered_action_line_is_reported_with_an_excerpt() -> None:
    data = shots()
    shot(data, "1C")["covers"] = []
    violation = only(check(data))
    assert (violation.rule, violation.shot) == ("coverage", None)
    assert violation.message.startswith('scene 1: line 4 (action: "Undeterred, Pip dips')
    assert violation.message.endswith("is covered by no shot")


def test_a_long_line_is_shortened_in_the_message() -> None:
    data = shots()
    shot(data, "1A")["covers"] = [1]
    message = only(check(data)).message
    assert "line 0 (action: " in message
    assert "proudly holds up a plain white paper kite" not in message
    assert "…" in message


def test_a_line_covered_by_two_shots_names_both() -> None:
    data = shots()
    shot(data, "1A")["covers"] = [0, 1, 2]
    violation = only(check(data))
    assert (violation.rule, violation.shot) == ("coverage", "1B")
    assert violation.message.startswith("scene 1: line 2 (action: ")
    assert violation.message.endswith("is covered by shots 1A and 1B")


def test_a_line_covered_twice_by_one_shot() -> None:
    data = shots()
    shot(data, "1C")["covers"] = [4, 4]
    violation = only(check(data))
    assert (violation.rule, violation.shot) == ("coverage", "1C")
    assert violation.message.endswith("is covered more than once by shot 1C")
    assert "line 4" in violation.message


def test_shots_covering_lines_out_of_order() -> None:
    data = shots()
    first, second, third = data["shots"][:3]
    data["shots"][:3] = [first, third, second]  # 1A [0, 1], 1C [4], 1B [2, 3]
    violation = only(check(data))
    assert violation == Violation(
        "coverage", "1B", "scene 1: shots cover lines out of order (1B covers 2 after 1C covers 4)"
    )


def test_one_shot_covering_its_lines_out_of_order() -> None:
    data = shots()
    shot(data, "1C")["covers"] = [4]
    shot(data, "1B")["covers"] = [3, 2]
    violation = only(check(data))
    assert violation == Violation(
        "coverage", "1B", "scene 1: shots cover lines out of order (1B covers 2 after 3)"
    )


def test_a_line_index_out_of_range() -> None:
    data = shots()
    shot(data, "1C")["covers"] = [4, 5]
    violation = only(check(data))
    assert violation == Violation(
        "coverage", "1C", "shot 1C covers line 5, but scene 1 has only lines 0 to 4"
    )


def test_a_negative_line_index_is_out_of_range() -> None:
    data = shots()
    shot(data, "1C")["covers"] = [-1, 4]
    violation = only(check(data))
    assert (violation.rule, violation.shot) == ("coverage", "1C")
    assert "line -1" in violation.message


def test_a_scene_without_shots() -> None:
    data = shots()
    data["shots"] = [s for s in data["shots"] if s["scene"] == 1]
    violation = only(check(data))
    assert violation == Violation(
        "coverage", None, "scene 2 has no shots: lines 0 to 5 are covered by no shot"
    )


def test_a_shot_of_a_scene_not_in_the_script() -> None:
    data = shots()
    extra = copy.deepcopy(shot(data, "2C"))
    extra.update(id="3A", scene=3)
    data["shots"].append(extra)
    violation = only(check(data))
    assert violation == Violation(
        "unknown_scene",
        "3A",
        "shot 3A belongs to scene 3, which is not in the script (scenes 1 to 2)",
    )


# --- dialogue ------------------------------------------------------------------------------


def test_changed_dialogue_text() -> None:
    data = shots()
    shot(data, "1B")["dialogue"][0]["text"] = "Eggs roll."
    violation = only(check(data))
    assert (violation.rule, violation.shot) == ("dialogue_mismatch", "1B")
    assert violation.message == (
        "shot 1B dialogue differs from the script lines it covers: line 3 is "
        'DORA: "Eggs roll, Pip. That\'s our whole thing." but the shot has '
        'DORA: "Eggs roll."'
    )


def test_changed_speaker() -> None:
    data = shots()
    shot(data, "2B")["dialogue"][0]["speaker"] = "DORA"
    violation = only(check(data))
    assert (violation.rule, violation.shot) == ("dialogue_mismatch", "2B")
    assert 'line 3 is PIP: "Dora! I\'m flying!"' in violation.message


def test_dialogue_missing_from_the_shot() -> None:
    data = shots()
    shot(data, "2A")["dialogue"] = []
    violation = only(check(data))
    assert (violation.rule, violation.shot) == ("dialogue_mismatch", "2A")
    assert 'line 1 (DORA: "Ready? Three... two...") is missing' in violation.message


def test_dialogue_added_to_a_shot_that_covers_none() -> None:
    data = shots()
    shot(data, "1C")["dialogue"] = [{"speaker": "PIP", "text": "Yellow it is."}]
    violation = only(check(data))
    assert (violation.rule, violation.shot) == ("dialogue_mismatch", "1C")
    assert 'PIP: "Yellow it is."' in violation.message
    assert violation.message.startswith("shot 1C dialogue differs from the script lines")


def test_dialogue_in_the_wrong_order() -> None:
    data = shots()
    first, second = shot(data, "1A"), shot(data, "1B")
    first["covers"] = [0, 1, 2, 3]
    first["dialogue"] = list(reversed([*first["dialogue"], *second["dialogue"]]))
    first["duration_s"] = 8.0  # room for both lines: only the order is wrong
    data["shots"].remove(second)
    violation = only(check(data))
    assert (violation.rule, violation.shot) == ("dialogue_mismatch", "1A")
    assert "line 1 is PIP:" in violation.message


def test_too_many_words_for_the_duration() -> None:
    data = shots()
    shot(data, "2B")["duration_s"] = 1.0  # "Dora! I'm flying!": 3 words, at most 2
    violation = only(check(data))
    assert violation == Violation(
        "dialogue_rate",
        "2B",
        "shot 2B: 3 words of dialogue in 1 s exceeds 2.5 words/s (max 2)",
    )


def test_dialogue_exactly_at_the_limit_fits() -> None:
    data = shots()
    shot(data, "2B")["duration_s"] = 3 / MAX_WORDS_PER_SECOND
    assert check(data) == []
    shot(data, "2B")["duration_s"] = 3 / MAX_WORDS_PER_SECOND - 0.01
    assert [v.rule for v in check(data)] == ["dialogue_rate"]


def test_the_rate_counts_every_line_of_a_shot() -> None:
    data = shots()
    first, second = shot(data, "1A"), shot(data, "1B")
    first["covers"] = [0, 1, 2, 3]
    first["dialogue"] += second["dialogue"]  # 6 + 7 words
    first["duration_s"] = 4.0  # at most 10
    data["shots"].remove(second)
    violation = only(check(data))
    assert (violation.rule, violation.shot) == ("dialogue_rate", "1A")
    assert violation.message.startswith("shot 1A: 13 words of dialogue in 4 s")
    assert violation.message.endswith("(max 10)")


# --- entities ------------------------------------------------------------------------------


def test_an_entity_not_in_the_registry() -> None:
    data = shots()
    shot(data, "1A")["entities"][1]["entity"] = "pipp"
    violation = only(check(data))
    assert violation == Violation(
        "unknown_entity", "1A", "shot 1A names entity 'pipp' that is not in the asset registry"
    )


def test_a_look_the_character_does_not_have() -> None:
    data = shots()
    shot(data, "1A")["entities"][1]["look"] = "top hat"
    violation = only(check(data))
    assert violation == Violation(
        "unknown_look",
        "1A",
        "shot 1A shows 'pip' as 'top hat', which is not one of its looks ('bobble hat')",
    )


def test_a_state_the_prop_does_not_have() -> None:
    data = shots()
    shot(data, "2B")["entities"][2]["look"] = "torn"
    violation = only(check(data))
    assert (violation.rule, violation.shot) == ("unknown_look", "2B")
    assert "'kite' as 'torn'" in violation.message
    assert "one of its states ('plain', 'painted')" in violation.message


def test_a_look_other_than_the_one_the_scene_uses() -> None:
    data = shots()
    shot(data, "2A")["entities"][1]["look"] = "gingham apron"
    violation = only(check(data))
    assert violation == Violation(
        "wrong_look",
        "2A",
        "shot 2A shows 'dora' as 'gingham apron' but scene 2 uses 'yellow raincoat'",
    )


# --- together ------------------------------------------------------------------------------


def test_every_rule_is_checked_in_one_pass() -> None:
    data = shots()
    shot(data, "1A")["entities"][1]["entity"] = "pipp"
    shot(data, "1C")["covers"] = []
    shot(data, "2A")["entities"][1]["look"] = "gingham apron"
    shot(data, "2B")["duration_s"] = 1.0
    shot(data, "2C")["dialogue"][0]["text"] = "Fine."
    found = {(v.rule, v.shot) for v in check(data)}
    assert found == {
        ("unknown_entity", "1A"),
        ("coverage", None),
        ("wrong_look", "2A"),
        ("dialogue_rate", "2B"),
        ("dialogue_mismatch", "2C"),
    }


def test_describe_numbers_each_violation() -> None:
    violations = [
        Violation("coverage", None, "scene 1: line 4 is covered by no shot"),
        Violation("unknown_entity", "1A", "shot 1A names entity 'pipp'"),
    ]
    assert describe(violations) == (
        "1. scene 1: line 4 is covered by no shot\n2. shot 1A names entity 'pipp'"
    )
    assert describe([]) == ""


def test_violations_are_immutable() -> None:
    violation = Violation("coverage", None, "scene 1: line 4 is covered by no shot")
    with pytest.raises(dataclasses.FrozenInstanceError):
        violation.rule = "dialogue_rate"  # type: ignore[misc]
