"""The master script is drafted scene by scene, every scene at once; the shots scene by scene.

The model is the OpenAI test double replaying the sample's per-scene recordings, each
answer held back a little (``delay_s``) so that requests sent together are seen in flight
together: ``peak_in_flight`` shows the overlap, nothing here times anything. The assembled
artifacts must equal the recorded whole documents the per-scene recordings were split from:
the master script at its gate, the shot list once each scene's shots gate of the scene cycle
has approved its part.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from langgraph.types import Command

import prompts
from agents.base import Context
from api.settings import SAMPLE_RECORDINGS
from graphs.base import load_workflow_types
from tests.doubles.openai_server import OpenAIServer, replay_recordings
from tests.helpers import APPROVE, answer, current_values, drive_to_gate, new_config, proposal
from tools.llm import ModelProvider

RECORDED = json.loads(SAMPLE_RECORDINGS.read_text())["responses"]
HELD_S = 0.3  # long enough for requests sent together to overlap at the double


@pytest.fixture
def graph(persistence: Any) -> Any:
    workflow = load_workflow_types().get("full_video")()
    return workflow.compile(checkpointer=persistence.checkpointer, store=persistence.store)


@pytest.fixture
def llm(openai_server: OpenAIServer) -> OpenAIServer:
    openai_server.responder = replay_recordings(SAMPLE_RECORDINGS, prompts.PROMPTS_DIR)
    return openai_server


def _context(offline_context: Context, llm: OpenAIServer, *, concurrency: int = 8) -> Context:
    models = ModelProvider(
        api_key="test-key",
        base_url=llm.base_url,
        recordings=SAMPLE_RECORDINGS,
        concurrency=concurrency,
    )
    return Context(models=models, backend=offline_context.backend, files=offline_context.files)


def _own_brief(sample_input: dict[str, Any]) -> dict[str, Any]:
    """The sample with a brief of its own, so no earlier generation is found in the store."""
    return {**sample_input, "brief": f"{sample_input['brief']} ({uuid.uuid4()})"}


async def _resume(
    graph: Any, config: dict[str, Any], decision: dict[str, Any], context: Context
) -> tuple[dict[str, Any], list[str]]:
    """Answer the pending gate; return the next gate and the progress messages on the way."""
    snapshot = await graph.aget_state(config)
    command = Command(resume={snapshot.interrupts[0].id: decision})
    messages = [
        event["message"]
        async for _, event in graph.astream(
            command, config, context=context, stream_mode="custom", subgraphs=True
        )
    ]
    snapshot = await graph.aget_state(config)
    return snapshot.interrupts[0].value, messages


async def _approve_until(
    graph: Any, config: dict[str, Any], context: Context, stage: str, scene: int | None
) -> tuple[dict[str, Any], list[str]]:
    """Approve gate after gate up to ``stage``'s gate about ``scene``; return it and the
    progress messages of its draft."""
    gate, messages = await _resume(graph, config, APPROVE, context)
    while (gate["stage"], gate["scene"]) != (stage, scene):
        gate, messages = await _resume(graph, config, APPROVE, context)
    return gate, messages


def _asked_for(requests: list[dict[str, Any]]) -> list[str]:
    """The last line of each request's user message: which scene it asks for."""
    return sorted(
        next(m["content"] for m in request["messages"] if m["role"] == "user").splitlines()[-1]
        for request in requests
    )


async def test_the_master_script_drafts_its_scenes_at_once_and_the_shots_one_scene_a_gate(
    graph: Any, offline_context: Context, sample_input: dict[str, Any], llm: OpenAIServer
) -> None:
    context = _context(offline_context, llm)
    config = new_config()
    await drive_to_gate(graph, config, _own_brief(sample_input), context, "script")
    llm.delay_s = HELD_S
    before = len(llm.requests)

    master, progress = await _resume(graph, config, APPROVE, context)

    assert master["stage"] == "master_script"
    assert llm.peak_in_flight == 2
    assert _asked_for(llm.requests[before:]) == [
        "Write scene 1 of the master script.",
        "Write scene 2 of the master script.",
    ]
    assert proposal(master) == RECORDED["write_master_script"][0]
    assert master["problems"] == []
    assert {"master script: scene 1 of 2 done", "master script: scene 2 of 2 done"} <= set(progress)
    generations = (await current_values(graph, config))["generations"]
    per_scene = [g for g in generations if g["task"] == "write_master_scene"]
    assert sorted(g["scene"] for g in per_scene) == [1, 2]
    assert {g["prompt"] for g in per_scene} == {"script_writer/write_master_scene"}

    assets, _ = await _resume(graph, config, APPROVE, context)
    assert assets["stage"] == "assets"
    references, _ = await _resume(graph, config, APPROVE, context)
    assert references["stage"] == "references"
    casting, _ = await _resume(graph, config, APPROVE, context)
    assert casting["stage"] == "casting"
    llm.delay_s = 0

    # the scene cycle: each scene's shots gate lists that scene alone, in one call
    for scene in (1, 2):
        before = len(llm.requests)

        shots, progress = await _approve_until(graph, config, context, "shots", scene)

        assert _asked_for(llm.requests[before:]) == [f"List the shots of scene {scene}."]
        assert proposal(shots) == RECORDED["list_scene_shots"][0][str(scene)]
        assert shots["problems"] == []
        assert f"shot list: scene {scene} of 2 done" in progress

    await answer(graph, config, APPROVE, context)
    assert (await current_values(graph, config))["shots"] == RECORDED["list_shots"][0]


async def test_the_llm_concurrency_setting_bounds_the_scenes_in_flight(
    graph: Any, offline_context: Context, sample_input: dict[str, Any], llm: OpenAIServer
) -> None:
    context = _context(offline_context, llm, concurrency=1)
    config = new_config()
    await drive_to_gate(graph, config, _own_brief(sample_input), context, "script")
    llm.delay_s = HELD_S

    master, _ = await _resume(graph, config, APPROVE, context)

    assert llm.peak_in_flight == 1
    assert proposal(master) == RECORDED["write_master_script"][0]


async def test_per_scene_drafts_are_memoised(
    graph: Any, offline_context: Context, sample_input: dict[str, Any], llm: OpenAIServer
) -> None:
    context = _context(offline_context, llm)
    sample = _own_brief(sample_input)
    await drive_to_gate(graph, new_config(), sample, context, "master_script")
    sent = len(llm.requests)
    config = new_config()

    again = await drive_to_gate(graph, config, sample, context, "master_script")

    assert len(llm.requests) == sent
    assert proposal(again) == RECORDED["write_master_script"][0]
    generations = (await current_values(graph, config))["generations"]
    per_scene = [g for g in generations if g["task"] == "write_master_scene"]
    assert sorted((g["scene"], g["cached"]) for g in per_scene) == [(1, True), (2, True)]


async def test_shot_feedback_at_a_later_scene_redrafts_only_its_shots(
    graph: Any, offline_context: Context, sample_input: dict[str, Any], llm: OpenAIServer
) -> None:
    context = _context(offline_context, llm)
    config = new_config()
    await drive_to_gate(graph, config, _own_brief(sample_input), context, "shots")
    gate, _ = await _approve_until(graph, config, context, "shots", 2)  # scene 1 approved
    before = len(llm.requests)

    revised = await answer(graph, config, _reject("scene 2: hold on Pip's landing longer"), context)

    assert revised is not None and (revised["stage"], revised["scene"]) == ("shots", 2)
    [request] = llm.requests[before:]
    assert _asked_for([request]) == ["List the shots of scene 2."]
    # the conversation is the scene's own: its draft, not scene 1's
    assert [m["role"] for m in request["messages"]].count("assistant") == 1
    assert "Answer for scene 2 only" in request["messages"][-1]["content"]
    assert proposal(gate) == RECORDED["list_scene_shots"][0]["2"]
    assert proposal(revised) == RECORDED["list_scene_shots"][1]["2"]
    await answer(graph, config, APPROVE, context)
    shots = (await current_values(graph, config))["shots"]["shots"]
    assert shots == [
        *RECORDED["list_scene_shots"][0]["1"]["shots"],  # scene 1's approved shots kept
        *RECORDED["list_scene_shots"][1]["2"]["shots"],
    ]


async def test_general_shot_feedback_redrafts_the_scene_in_production(
    graph: Any, offline_context: Context, sample_input: dict[str, Any], llm: OpenAIServer
) -> None:
    context = _context(offline_context, llm)
    config = new_config()
    gate = await drive_to_gate(graph, config, _own_brief(sample_input), context, "shots")
    before = len(llm.requests)

    revised = await answer(graph, config, _reject("more close-ups"), context)

    assert revised is not None and (revised["stage"], revised["scene"]) == ("shots", 1)
    assert gate["scene"] == 1
    assert _asked_for(llm.requests[before:]) == ["List the shots of scene 1."]
    assert proposal(revised) == RECORDED["list_scene_shots"][1]["1"]
    assert revised["problems"] == []


def _reject(message: str) -> dict[str, Any]:
    return {"decisions": [{"type": "reject", "message": message}]}
