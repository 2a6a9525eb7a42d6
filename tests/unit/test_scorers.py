"""Eval scorers, reports and the LLM judge.

Scorers are pure: gold against perturbed copies of itself, with the expected numbers worked
out by hand. The judge talks to the OpenAI-compatible test double over a real socket.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agents.artifacts import AssetRegistry, Script, ShotList
from api.settings import SAMPLE_RECORDINGS
from evals.dataset import DatasetError, load_dataset
from evals.judges import Judge
from evals.report import (
    ItemResult,
    Report,
    ReportError,
    below_threshold,
    compare,
    load_report,
    to_markdown,
)
from evals.scorers import (
    PRF,
    entity_scores,
    faithfulness,
    mentioned,
    prf,
    shot_rule_pass_rate,
    shot_split,
)
from tools.llm import LLMError, ModelProvider

DATASETS = Path(__file__).resolve().parents[2] / "evals" / "datasets"
GOLD = {
    item["id"]: item
    for item in map(json.loads, (DATASETS / "gold_scripts.jsonl").read_text().splitlines())
}
EGGS = GOLD["eggs_kite_sample"]
RECORDED_SHOTS = json.loads(SAMPLE_RECORDINGS.read_text())["responses"]["list_shots"][0]


def _registry(data: dict[str, Any]) -> AssetRegistry:
    return AssetRegistry.model_validate(data)


def _renamed(data: dict[str, Any], entity: str, names: dict[str, str]) -> dict[str, Any]:
    """``data`` with ``entity``'s looks renamed everywhere (as another model might name them)."""
    copy = json.loads(json.dumps(data))
    for kind, field in (("characters", "looks"), ("locations", "variants"), ("props", "states")):
        for each in copy[kind]:
            if each["id"] == entity:
                for look in each[field]:
                    look["name"] = names.get(look["name"], look["name"])
    for usage in copy["scene_usage"]:
        if usage["entity"] == entity:
            usage["look"] = names.get(usage["look"], usage["look"])
    return copy


# --- precision, recall, F1 -----------------------------------------------------------------


def test_prf_counts() -> None:
    assert prf(0, 0, 0) == PRF(1.0, 1.0, 1.0)
    scores = prf(hits=3, predicted=4, expected=6)
    assert (scores.precision, scores.recall) == (0.75, 0.5)
    assert scores.f1 == pytest.approx(0.6)
    assert prf(0, 2, 0).f1 == 0.0
    assert prf(0, 0, 3).f1 == 0.0


# --- entities and looks --------------------------------------------------------------------


@pytest.mark.parametrize("item_id", sorted(GOLD))
def test_gold_against_itself_is_perfect(item_id: str) -> None:
    gold = _registry(GOLD[item_id]["assets"])
    scores = entity_scores(gold, gold)
    assert scores["entity"].f1 == scores["look"].f1 == 1.0


def test_look_names_do_not_matter_only_which_scenes_share_them() -> None:
    gold = GOLD["heist_outfit_change"]["assets"]
    renamed = _renamed(gold, "maya", {"street": "hoodie and jeans", "gala": "evening gown"})
    scores = entity_scores(_registry(renamed), _registry(gold))
    assert scores["look"].f1 == 1.0


def test_one_look_where_the_gold_has_two_loses_the_scenes_of_one() -> None:
    gold = GOLD["heist_outfit_change"]["assets"]
    merged = json.loads(json.dumps(gold))
    maya = next(c for c in merged["characters"] if c["id"] == "maya")
    maya["looks"] = [look for look in maya["looks"] if look["name"] == "gala"]
    for usage in merged["scene_usage"]:
        if usage["entity"] == "maya":
            usage["look"] = "gala"
    scores = entity_scores(_registry(merged), _registry(gold))
    # 13 usages each; maya's scene 1 (street) is the only one wrong.
    assert scores["look"].precision == pytest.approx(12 / 13)
    assert scores["look"].recall == pytest.approx(12 / 13)
    assert scores["entity"].f1 == 1.0


def test_entities_match_by_name_when_the_id_differs() -> None:
    gold = GOLD["vase_breaks"]["assets"]
    renamed = json.loads(json.dumps(gold))
    renamed["props"][0]["id"] = "ming_vase"
    for usage in renamed["scene_usage"]:
        if usage["entity"] == "vase":
            usage["entity"] = "ming_vase"
    scores = entity_scores(_registry(renamed), _registry(gold))
    assert scores["entity"].f1 == scores["look"].f1 == 1.0


def test_missing_and_invented_entities() -> None:
    gold = _registry(EGGS["assets"])
    recorded = json.loads(SAMPLE_RECORDINGS.read_text())["responses"]["extract_assets"][0]
    scores = entity_scores(_registry(recorded), gold)
    # The recording has 5 of the gold's 7 entities (no mixing bowl, no brush), nothing else;
    # its 8 usages are all right, of the gold's 10.
    assert (scores["entity"].precision, scores["entity"].recall) == (1.0, pytest.approx(5 / 7))
    assert (scores["look"].precision, scores["look"].recall) == (1.0, 0.8)
    invented = recorded | {
        "props": [
            *recorded["props"],
            {
                "id": "spoon",
                "name": "Spoon",
                "description": "A spoon.",
                "states": [{"name": "default", "description": "As is."}],
            },
        ],
        "scene_usage": [
            *recorded["scene_usage"],
            {"scene": 1, "entity": "spoon", "look": "default"},
        ],
    }
    scores = entity_scores(_registry(invented), gold)
    assert scores["entity"].precision == pytest.approx(5 / 6)
    assert scores["look"].precision == pytest.approx(8 / 9)


# --- shots ---------------------------------------------------------------------------------


def _eggs() -> tuple[Script, AssetRegistry]:
    return Script.model_validate(EGGS["script"]), _registry(EGGS["assets"])


def _gold_shots(item: dict[str, Any]) -> ShotList:
    """A shot list that splits the script exactly as the gold coverage does."""
    script = Script.model_validate(item["script"])
    usage = _registry(item["assets"])
    shots = []
    for coverage, scene in zip(item["shot_coverage"], script.scenes, strict=True):
        for letter, covers in zip("ABCDEFGH", coverage["shots"], strict=False):
            lines = [scene.lines[i] for i in covers]
            dialogue = [{"speaker": ln.speaker, "text": ln.text} for ln in lines if ln.speaker]
            words = sum(len(d["text"].split()) for d in dialogue)
            shots.append(
                {
                    "id": f"{scene.number}{letter}",
                    "scene": scene.number,
                    "size": "medium",
                    "angle": "eye level",
                    "movement": "static",
                    "lens": "35mm",
                    "duration_s": max(3.0, words / 2),
                    "dialogue": dialogue,
                    "entities": [
                        {"entity": u.entity, "look": u.look} for u in usage.in_scene(scene.number)
                    ],
                    "covers": covers,
                    "start_frame": "start",
                    "end_frame": "end",
                }
            )
    return ShotList.model_validate({"shots": shots})


@pytest.mark.parametrize("item_id", sorted(GOLD))
def test_the_gold_split_passes_every_rule_and_is_faithful(item_id: str) -> None:
    item = GOLD[item_id]
    script, assets = Script.model_validate(item["script"]), _registry(item["assets"])
    shots = _gold_shots(item)
    assert shot_rule_pass_rate(shots, script, assets) == 1.0
    assert faithfulness(shots, script, assets) == 1.0
    coverage = {c["scene"]: c["shots"] for c in item["shot_coverage"]}
    assert shot_split(shots, coverage).f1 == 1.0


def test_the_recorded_shot_list_of_the_sample() -> None:
    script, assets = _eggs()
    shots = ShotList.model_validate(RECORDED_SHOTS)
    assert shot_rule_pass_rate(shots, script, assets) == 1.0
    assert faithfulness(shots, script, assets) == 1.0
    coverage = {c["scene"]: c["shots"] for c in EGGS["shot_coverage"]}
    split = shot_split(shots, coverage)
    # The gold cuts once more in scene 2 (before Dora's last line).
    assert (split.precision, split.recall) == (1.0, 0.8)


def test_rewritten_dialogue_and_a_dropped_line_lower_the_scores() -> None:
    script, assets = _eggs()
    data = json.loads(json.dumps(RECORDED_SHOTS))
    shot_1a, shot_2c = data["shots"][0], data["shots"][-1]
    shot_1a["dialogue"][0]["text"] = "Eggs are going to fly today, Dora!"
    shot_2c["covers"], shot_2c["dialogue"] = [4], []  # Dora's last line is dropped
    shots = ShotList.model_validate(data)
    # 11 lines: 9 faithful; the rewrite is also an addition.
    assert faithfulness(shots, script, assets) == pytest.approx(9 / 12)
    # 1A breaks the dialogue rule; the uncovered line counts as one more failing shot.
    assert shot_rule_pass_rate(shots, script, assets) == pytest.approx(5 / 7)


def test_an_entity_the_scene_does_not_have_is_an_addition() -> None:
    script, assets = _eggs()
    data = json.loads(json.dumps(RECORDED_SHOTS))
    data["shots"][0]["entities"].append({"entity": "hilltop", "look": "windy"})
    shots = ShotList.model_validate(data)
    lines = sum(len(scene.lines) for scene in script.scenes)
    assert faithfulness(shots, script, assets) == pytest.approx(lines / (lines + 1))


# --- script --------------------------------------------------------------------------------


def test_gold_mentions_counts_characters_and_props_named() -> None:
    script, gold = _eggs()
    assert mentioned(script, gold) == 1.0
    without_dora = script.model_copy(deep=True)
    for scene in without_dora.scenes:
        for line in scene.lines:
            line.text = line.text.replace("Dora", "Her").replace("DORA", "HER")
            if line.speaker == "DORA":
                line.speaker = "HER"
    assert mentioned(without_dora, gold) == pytest.approx(4 / 5)


# --- datasets ------------------------------------------------------------------------------


def test_bundled_datasets_load_and_resolve_their_gold() -> None:
    for suite in ("extraction", "shots", "script", "pipeline"):
        items = load_dataset(DATASETS / f"{suite}.jsonl")
        assert any(item.id.startswith("eggs_kite") for item in items)
        sample = next(item for item in items if item.id == "eggs_kite_sample")
        assert sample.assets == _registry(EGGS["assets"])
        assert sample.project().title == "Eggs Can't Fly"


def test_a_bad_dataset_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "a", "gold": "heist_outfit_change"}\n{"id": "b", "gold": "nope"}\n')
    with pytest.raises(DatasetError, match=r"bad.jsonl:2: no gold record 'nope'"):
        load_dataset(path)
    path.write_text('{"id": "a", "feedback": [{"stage": "script"}]}\n')
    with pytest.raises(DatasetError, match=r"(?s)bad.jsonl:1: .*feedback.0.message"):
        load_dataset(path)
    with pytest.raises(DatasetError, match="no dataset file"):
        load_dataset(tmp_path / "missing.jsonl")


# --- reports -------------------------------------------------------------------------------


def _report(scores: dict[str, dict[str, float | None]], **fields: Any) -> Report:
    return Report(
        suite="extraction",
        dataset="d.jsonl",
        created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        duration_s=1.0,
        model="m",
        metrics=["entity_f1", "extraction_calls"],
        items=[ItemResult(id=i, status="ok", scores=s) for i, s in scores.items()],
        **fields,
    )


def test_aggregates_and_thresholds_in_each_direction() -> None:
    report = _report(
        {
            "a": {"entity_f1": 0.5, "extraction_calls": 1},
            "b": {"entity_f1": 1.0, "extraction_calls": 3},
            "c": {"entity_f1": None, "extraction_calls": None},
        }
    )
    assert report.aggregates["entity_f1"].mean == 0.75
    assert report.aggregates["entity_f1"].n == 2
    assert below_threshold(report, {"entity_f1": 0.75, "extraction_calls": 2}) == []
    failures = below_threshold(report, {"entity_f1": 0.8, "extraction_calls": 1})
    assert failures == [
        "entity_f1 = 0.750 misses the minimum 0.8",
        "extraction_calls = 2.000 misses the maximum 1",
    ]


def test_compare_reports_deltas_item_changes_and_prompt_versions() -> None:
    a = _report({"x": {"entity_f1": 0.5}, "y": {"entity_f1": 1.0}}, prompts={"p": ["111"]})
    b = _report({"x": {"entity_f1": 0.75}, "z": {"entity_f1": 1.0}}, prompts={"p": ["222"]})
    comparison = compare(a, b)
    [f1] = [c for c in comparison.aggregates if c.metric == "entity_f1"]
    assert (f1.before, f1.after, f1.delta) == (0.75, 0.875, 0.125)
    [changed] = comparison.items
    assert (changed.item, changed.metric, changed.delta) == ("x", "entity_f1", 0.25)
    assert (comparison.only_in_a, comparison.only_in_b) == (["y"], ["z"])
    assert [(c.metric, c.before, c.after) for c in comparison.setup] == [("prompt p", "111", "222")]


def test_markdown_and_json_round_trip(tmp_path: Path) -> None:
    report = _report({"x": {"entity_f1": 0.5, "extraction_calls": 1}})
    text = to_markdown(report)
    assert "| x | ok | 0.5 | 1 |" in text
    assert "| entity_f1 | 0.5 | 1 |" in text
    path = tmp_path / "r.json"
    path.write_text(report.model_dump_json())
    assert load_report(path) == report
    path.write_text("{}")
    with pytest.raises(ReportError, match="is not an eval report"):
        load_report(path)


# --- the LLM judge -------------------------------------------------------------------------


def _judge(server: Any) -> Judge:
    provider = ModelProvider(
        api_key="test-key",
        base_url=server.base_url,
        default_model="judge-model",
        recordings=SAMPLE_RECORDINGS,
    )
    return Judge(provider, "judge-model")


async def test_the_judge_scores_brief_adherence_with_its_reasoning(openai_server: Any) -> None:
    openai_server.replies.append({"reasoning": "Pip, Dora and the kite are there.", "score": 0.9})
    project = {"brief": "Two eggs fly a kite.", "story_rules": ["Nobody cracks."]}

    verdict = await _judge(openai_server).brief_adherence(project, EGGS["script"])

    assert (verdict.score, verdict.reasoning) == (0.9, "Pip, Dora and the kite are there.")
    [request] = openai_server.requests
    assert request["model"] == "judge-model"
    prompt = json.dumps(request["messages"])
    assert "Two eggs fly a kite." in prompt and "Nobody cracks." in prompt
    assert "Today, Dora, eggs learn to fly!" in prompt
    assert request["response_format"]["type"] == "json_schema"


async def test_the_judge_says_whether_feedback_was_applied(openai_server: Any) -> None:
    openai_server.replies.append({"reasoning": "The landing is funnier.", "score": True})
    before = {"scenes": [{"number": 2, "summary": "He lands."}]}
    after = {"scenes": [{"number": 2, "summary": "He lands, hat over his eyes."}]}

    verdict = await _judge(openai_server).feedback_applied(before, "make it funnier", after)

    assert verdict.score == 1.0
    prompt = json.dumps(openai_server.requests[0]["messages"])
    assert "make it funnier" in prompt and "hat over his eyes" in prompt


def test_the_offline_model_cannot_judge() -> None:
    offline = ModelProvider(api_key=None, recordings=SAMPLE_RECORDINGS)
    with pytest.raises(LLMError, match=r"--judge gpt-x needs an LLM endpoint.*OPENAI_API_KEY"):
        Judge(offline, "gpt-x")
