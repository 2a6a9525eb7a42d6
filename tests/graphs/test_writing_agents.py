"""Script writer and asset extractor: treatments, skip to script, scene-scoped feedback,
looks per scene, incremental extraction, failed drafts, and prompt versions on generations.

The model is the OpenAI-compatible test server (scripted replies, recorded requests) or the
offline sample model; the graph runs on the real Postgres checkpointer and store.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from langgraph.graph import START, StateGraph

import prompts
from agents.artifacts import AssetRegistry, MasterScene, MasterScript, Scene, Script
from agents.asset_extractor import AssetExtractor, scene_hashes
from agents.base import Context, state_schema
from api.settings import SAMPLE_RECORDINGS
from graphs.base import load_workflow_types
from tests.helpers import (
    APPROVE,
    answer,
    current_values,
    drive_to_gate,
    new_config,
    proposal,
    run_until_stop,
    treatment_options,
)
from tools import ledger

DATASETS = Path(__file__).resolve().parents[2] / "evals" / "datasets"
RECORDED = json.loads(SAMPLE_RECORDINGS.read_text())["responses"]
GOLD = {
    item["id"]: item
    for item in map(json.loads, (DATASETS / "gold_scripts.jsonl").read_text().splitlines())
}


@pytest.fixture
def graph(persistence: Any) -> Any:
    workflow = load_workflow_types().get("full_video")()
    return workflow.compile(checkpointer=persistence.checkpointer, store=persistence.store)


def _own_brief(sample_input: dict[str, Any]) -> dict[str, Any]:
    """The sample with a brief of its own, so no earlier generation is found in the store."""
    return {**sample_input, "brief": f"{sample_input['brief']} ({uuid.uuid4()})"}


def _edit(stage: str, args: dict[str, Any]) -> dict[str, Any]:
    return {"decisions": [{"type": "edit", "edited_action": {"name": stage, "args": args}}]}


def _scene(data: dict[str, Any]) -> dict[str, Any]:
    return Scene.model_validate(data).model_dump(mode="json")


def _reject(message: str) -> dict[str, Any]:
    return {"decisions": [{"type": "reject", "message": message}]}


# --- treatments ----------------------------------------------------------------------------


async def test_the_script_is_written_from_the_chosen_treatment(
    graph: Any, http_context: Context, sample_input: dict[str, Any], openai_server: Any
) -> None:
    treatments = RECORDED["draft_treatments"][0]
    openai_server.replies.extend([treatments, RECORDED["draft_script"][0]])
    config = new_config()
    gate = await run_until_stop(graph, config, _own_brief(sample_input), http_context)
    assert gate is not None and gate["stage"] == "treatment"
    assert len({option["title"] for option in proposal(gate)["options"]}) == 3

    script_gate = await answer(
        graph, config, _edit("treatment", {**treatments, "chosen": 2}), http_context
    )

    assert script_gate is not None and script_gate["stage"] == "script"
    script_request = json.dumps(openai_server.requests[-1]["messages"])
    assert json.dumps(treatments["options"][1]["synopsis"])[1:-1] in script_request
    assert json.dumps(treatments["options"][0]["synopsis"])[1:-1] not in script_request
    assert (await current_values(graph, config))["treatment"]["chosen"] == 2


async def test_the_treatments_propose_a_configuration_that_approval_saves(
    graph: Any, http_context: Context, sample_input: dict[str, Any], openai_server: Any
) -> None:
    treatments = RECORDED["draft_treatments"][0]
    openai_server.replies.extend([treatments, RECORDED["draft_script"][0]])
    config = new_config()
    gate = await run_until_stop(graph, config, _own_brief(sample_input), http_context)
    assert gate is not None
    proposed = proposal(gate)["configuration"]
    given = (await current_values(graph, config))["project"]
    recommended = treatments["options"][0]
    assert proposed["title"] == (given["title"] or recommended["title"])
    assert proposed["written_style"] == (given["written_style"] or recommended["tone"])
    assert proposed["format"] == given["format"]

    edited = {**proposed, "visual_style": "chalk pastels", "story_rules": ["no dialogue"]}
    await answer(
        graph, config, _edit("treatment", {**proposal(gate), "configuration": edited}), http_context
    )

    project = (await current_values(graph, config))["project"]
    assert project == {**edited, "brief": project["brief"]}
    assert project["brief"].startswith(sample_input["brief"])


# --- skip to script ------------------------------------------------------------------------


async def test_a_given_screenplay_is_parsed_and_goes_straight_to_the_master_script(
    graph: Any, offline_context: Context, sample_input: dict[str, Any]
) -> None:
    screenplay = (DATASETS / "screenplay_sample.fountain").read_text()
    expected = json.loads((DATASETS / "screenplay_sample.expected.json").read_text())
    config = new_config()

    gate = await run_until_stop(
        graph, config, {**sample_input, "script": screenplay}, offline_context
    )

    assert gate is not None and gate["stage"] == "master_script"
    values = await current_values(graph, config)
    assert values["script"] == Script.model_validate(expected).model_dump(mode="json")
    assert "treatment" not in values


async def test_an_unreadable_screenplay_stops_the_run_with_a_clear_error(
    graph: Any, offline_context: Context, sample_input: dict[str, Any]
) -> None:
    with pytest.raises(ValueError, match=r"unreadable script: .*scene heading"):
        await run_until_stop(
            graph, new_config(), {**sample_input, "script": "Just some words."}, offline_context
        )


# --- scene-scoped feedback -----------------------------------------------------------------


async def test_feedback_naming_one_scene_changes_only_that_scene(
    graph: Any, offline_context: Context, sample_input: dict[str, Any]
) -> None:
    config = new_config()
    gate = await drive_to_gate(graph, config, sample_input, offline_context, "script")
    before = proposal(gate)

    revised = await answer(
        graph, config, _reject("scene 2: make the landing funnier"), offline_context
    )

    assert revised is not None and revised["stage"] == "script"
    after = proposal(revised)
    assert after["scenes"][0] == before["scenes"][0]
    assert after["scenes"][1] == _scene(RECORDED["revise_scene"][0]["scenes"][0])
    assert after["scenes"][1] != before["scenes"][1]
    assert {key: after[key] for key in ("title", "logline")} == {
        key: before[key] for key in ("title", "logline")
    }


async def test_cutting_a_named_scene_renumbers_the_rest_and_sends_only_that_task(
    graph: Any, http_context: Context, sample_input: dict[str, Any], openai_server: Any
) -> None:
    openai_server.replies.extend(
        [RECORDED["draft_treatments"][0], RECORDED["draft_script"][0], {"scenes": []}]
    )
    config = new_config()
    await drive_to_gate(graph, config, _own_brief(sample_input), http_context, "script")

    revised = await answer(graph, config, _reject("Cut scene 1."), http_context)

    assert revised is not None
    scenes = proposal(revised)["scenes"]
    old_second = RECORDED["draft_script"][0]["scenes"][1]
    assert scenes == [_scene({**old_second, "number": 1})]
    request = openai_server.requests[-1]["messages"]
    assert "Revise scene 1 only." in request[-1]["content"]
    assert all(message["role"] != "assistant" for message in request)


async def test_feedback_naming_no_single_scene_regenerates_the_whole_master_script(
    graph: Any, offline_context: Context, sample_input: dict[str, Any]
) -> None:
    config = new_config()
    gate = await drive_to_gate(graph, config, sample_input, offline_context, "master_script")

    revised = await answer(
        graph, config, _reject("swap the mood of scenes 1 and 2"), offline_context
    )

    assert revised is not None and proposal(revised) == RECORDED["write_master_script"][1]
    assert proposal(revised) != proposal(gate)
    assert revised["problems"] == []


# --- failed drafts -------------------------------------------------------------------------


async def test_a_draft_that_never_validates_stops_at_the_gate_with_the_error(
    graph: Any, http_context: Context, sample_input: dict[str, Any], openai_server: Any
) -> None:
    openai_server.ignores_response_format = True  # as a proxy that drops it would
    openai_server.replies.extend(["not json", '{"options": []}', "still not json"])
    config = new_config()
    with ledger.collect({}) as spent:
        gate = await run_until_stop(graph, config, _own_brief(sample_input), http_context)

    assert gate is not None and gate["stage"] == "treatment"
    assert "treatment" in gate["draft_error"]
    assert proposal(gate) == {}
    records = (await current_values(graph, config))["generations"]  # every failed call
    assert [g["outcome"] for g in records] == ["invalid"] * 3
    assert {g["prompt"] for g in records} == {"script_writer/draft_treatments"}
    assert spent.summary()["totals"]["llm_calls"] == len(records) == 3
    assert gate["review_configs"][0]["allowed_decisions"] == ["edit", "reject"]
    refused = await answer(graph, config, APPROVE, http_context)
    assert refused is not None and "no valid treatment to approve" in refused["error"]

    openai_server.replies.append(RECORDED["draft_treatments"][0])
    retried = await answer(graph, config, _reject("try again"), http_context)

    assert retried is not None and retried["draft_error"] is None
    assert treatment_options(retried) == RECORDED["draft_treatments"][0]


async def test_a_context_overflow_stops_at_the_gate_not_the_run(
    graph: Any, http_context: Context, sample_input: dict[str, Any], openai_server: Any
) -> None:
    openai_server.responder = lambda body: RECORDED["draft_treatments"][0]
    openai_server.context_tokens = 300  # the prompt alone is longer
    openai_server.overflow_style = "llama.cpp"
    config = new_config()

    gate = await run_until_stop(graph, config, _own_brief(sample_input), http_context)

    assert gate is not None and gate["stage"] == "treatment"
    assert "does not fit the context" in gate["draft_error"]
    assert "--ctx-size" in gate["draft_error"]
    records = (await current_values(graph, config))["generations"]
    assert [g["outcome"] for g in records] == ["error"] * len(openai_server.requests)

    openai_server.context_tokens = None  # a longer context: feedback drafts it
    retried = await answer(graph, config, _reject("try again"), http_context)
    assert retried is not None and retried["draft_error"] is None


# --- prompt versions -----------------------------------------------------------------------


async def test_each_generation_records_its_prompt_name_and_version(
    graph: Any, offline_context: Context, sample_input: dict[str, Any]
) -> None:
    config = new_config()
    await drive_to_gate(graph, config, sample_input, offline_context, "master_script")

    generations = (await current_values(graph, config))["generations"]

    by_prompt = {g["prompt"]: g for g in generations}
    assert set(by_prompt) == {
        "script_writer/draft_treatments",
        "script_writer/draft_script",
        "script_writer/write_master_scene",
    }
    source = (prompts.PROMPTS_DIR / "script_writer" / "draft_treatments.md").read_bytes()
    version = hashlib.sha256(source).hexdigest()[:12]
    assert by_prompt["script_writer/draft_treatments"]["prompt_version"] == version
    assert {g["model"] for g in generations} == {"auteur-offline-sample"}


# --- asset extraction ----------------------------------------------------------------------


def _extractor_graph(persistence: Any) -> Any:
    """The asset extractor's own subgraph under a parent, as a workflow type composes it."""
    agent = AssetExtractor()
    graph = StateGraph(state_schema(), context_schema=Context)
    graph.add_node(agent.name, agent.build().compile(name=agent.name))
    graph.add_edge(START, agent.name)
    return graph.compile(checkpointer=persistence.checkpointer, store=persistence.store)


def _master_script(script: dict[str, Any]) -> MasterScript:
    """A master script whose prose is the scene's lines (enough for extraction tests)."""
    parsed = Script.model_validate(script)
    return MasterScript(
        title=parsed.title,
        scenes=[
            MasterScene(
                number=scene.number,
                slugline=scene.slugline,
                prose=" ".join(line.text for line in scene.lines),
            )
            for scene in parsed.scenes
        ],
    )


def _state(item: dict[str, Any], master: MasterScript) -> dict[str, Any]:
    return {
        "project": {"brief": f"{item['description']} ({uuid.uuid4()})"},
        "script": item["script"],
        "master_script": master.model_dump(mode="json"),
    }


async def test_extraction_records_the_look_each_scene_uses(
    persistence: Any, http_context: Context, openai_server: Any
) -> None:
    item = GOLD["heist_outfit_change"]
    openai_server.replies.append(item["assets"])
    graph = _extractor_graph(persistence)
    config = new_config()

    gate = await run_until_stop(
        graph, config, _state(item, _master_script(item["script"])), http_context
    )

    assert gate is not None and gate["stage"] == "assets"
    registry = AssetRegistry.model_validate(proposal(gate))
    maya = {u.scene: u.look for u in registry.scene_usage if u.entity == "maya"}
    assert len(set(maya.values())) == 2, maya
    assert maya[2] == maya[3] != maya[1]
    request = json.dumps(openai_server.requests[0]["messages"])
    assert "master script" in request.lower()
    values = await current_values(graph, config)
    assert values["asset_extraction"]["calls"] == 1


async def test_a_new_scene_sends_only_that_scene_and_keeps_the_registry(
    persistence: Any, http_context: Context, openai_server: Any
) -> None:
    item = GOLD["heist_outfit_change"]
    full = _master_script(item["script"])
    earlier = full.model_copy(update={"scenes": full.scenes[:-1]})
    new_scene = full.scenes[-1]
    registry = AssetRegistry.model_validate(item["assets"])
    kept = registry.model_copy(
        update={"scene_usage": [u for u in registry.scene_usage if u.scene != new_scene.number]}
    )
    addition = {
        "characters": [],
        "locations": [],
        "props": [
            {
                "id": "getaway_van",
                "name": "Getaway van",
                "description": "A dented white panel van.",
                "states": [{"name": "parked", "description": "Engine idling."}],
            }
        ],
        "scene_usage": [
            *(u.model_dump() for u in registry.scene_usage if u.scene == new_scene.number),
            {"scene": new_scene.number, "entity": "getaway_van", "look": "parked"},
        ],
    }
    openai_server.replies.append(addition)
    state = {
        **_state(item, full),
        "assets": kept.model_dump(mode="json"),
        "asset_extraction": {"scenes": scene_hashes(earlier), "calls": 1},
    }
    graph = _extractor_graph(persistence)
    config = new_config()

    gate = await run_until_stop(graph, config, state, http_context)

    assert gate is not None
    [request] = openai_server.requests
    sent = json.dumps(request["messages"])
    assert json.dumps(new_scene.prose)[1:-1] in sent
    assert all(json.dumps(s.prose)[1:-1] not in sent for s in earlier.scenes)
    merged = AssetRegistry.model_validate(proposal(gate))
    assert set(kept.entities()) < set(merged.entities())
    assert "getaway_van" in merged.entities()
    for entity_id, entity in kept.entities().items():
        assert merged.entities()[entity_id] == entity
    assert [u for u in merged.scene_usage if u.scene != new_scene.number] == kept.scene_usage
    values = await current_values(graph, config)
    assert values["asset_extraction"] == {"scenes": scene_hashes(full), "calls": 2}


async def test_no_new_or_changed_scene_makes_no_extraction_call(
    persistence: Any, http_context: Context, openai_server: Any
) -> None:
    item = GOLD["vase_breaks"]
    master = _master_script(item["script"])
    state = {
        **_state(item, master),
        "assets": item["assets"],
        "asset_extraction": {"scenes": scene_hashes(master), "calls": 1},
    }
    graph = _extractor_graph(persistence)
    config = new_config()

    gate = await run_until_stop(graph, config, state, http_context)

    assert gate is not None
    assert openai_server.requests == []
    assert proposal(gate) == AssetRegistry.model_validate(item["assets"]).model_dump(mode="json")
    assert (await current_values(graph, config))["asset_extraction"]["calls"] == 1
