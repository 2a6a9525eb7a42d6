"""Every approval gate of full_video: payload shape, approve, edit, feedback, bad input."""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

import pytest

from agents.artifacts import Treatments
from agents.base import Context, ProductionAgent
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
from tools.llm import ModelProvider

WORKFLOW = load_workflow_types().get("full_video")()
STAGES = WORKFLOW.stages()
SCENES = 2  # the sample's master script has two scenes; the scene cycle runs once per scene
FEEDBACK = "make it funnier"
# Every gate on the Postgres pair the service runs on; the writing gates on LangGraph's
# in-memory pair too (what `langgraph dev` runs). Past the writing, the in-memory runs would
# only speak the same lines and render the same frames and clips again.
WRITING = STAGES[: STAGES.index("casting")]
GATES = [
    pytest.param(saver, stage, id=f"{saver}-{stage}")
    for stage in STAGES
    for saver in (("memory", "postgres") if stage in WRITING else ("postgres",))
]


@pytest.fixture
def graph(saver_and_store: tuple[Any, Any]) -> Any:
    checkpointer, store = saver_and_store
    return load_workflow_types().get("full_video")().compile(checkpointer=checkpointer, store=store)


def _sequence(scenes: int) -> list[tuple[str, int | None]]:
    """Every gate of a run, in order, with the scene it is about (None: the whole film)."""
    cycle = WORKFLOW.scene_stages()
    start, end = STAGES.index(cycle[0]), STAGES.index(cycle[-1]) + 1
    return [
        *((stage, None) for stage in STAGES[:start]),
        *((stage, scene) for scene in range(1, scenes + 1) for stage in cycle),
        *((stage, None) for stage in STAGES[end:]),
    ]


SEQUENCE = _sequence(SCENES)


def _artifact_model(stage: str) -> type:
    agents = ProductionAgent.registry
    steps = [step for name in agents.names() for step in agents.get(name)().steps()]
    return next(step.artifact for step in steps if step.stage == stage)


def _approved(stage: str, args: dict[str, Any]) -> dict[str, Any]:
    """What approval stores: approved frames and sheets keep only the chosen file."""
    if stage == "references":
        return {"sheets": [{**sheet, "candidates": []} for sheet in args["sheets"]]}
    if stage == "instances":
        return {
            "instances": [
                {
                    **instance,
                    "candidates": [],
                    "history": [],
                    "file": None if instance["skipped"] else instance["file"],
                }
                for instance in args["instances"]
            ]
        }
    if stage != "frames":
        return args
    return {"frames": [{**frame, "candidates": []} for frame in args["frames"]]}


def _edited(stage: str, args: dict[str, Any]) -> dict[str, Any]:
    """A valid, visible change to a proposal of ``stage``."""
    edited = copy.deepcopy(args)
    match stage:
        case "treatment":
            edited["chosen"] = 3 if edited["chosen"] != 3 else 1
        case "script" | "master_script":
            edited["title"] = "Edited by the director"
        case "assets":
            edited["deselected"] = [edited["props"][0]["id"]]
        case "shots":
            edited["shots"][0]["lens"] = "85mm"
        case "casting":
            edited["voices"][0]["direction"] = "slower, warmer"
        case "dialogue":
            edited["lines"][0]["start_s"] += 0.1
        case "references":
            edited["sheets"][0]["skipped"] = True
        case "instances":
            edited["instances"][0]["skipped"] = True
        case "frames" | "clips":
            items = edited[stage]
            items[0]["prompt"] = "edited prompt"
    return edited


async def test_gate_payload_is_langchain_hitl_shape(
    graph: Any, offline_context: Context, sample_input: dict[str, Any]
) -> None:
    config = new_config()
    gate = await run_until_stop(graph, config, sample_input, offline_context)
    assert gate is not None
    assert set(gate) >= {"action_requests", "review_configs", "stage", "thread_id", "error"}
    [request] = gate["action_requests"]
    assert request["name"] == "treatment"
    assert request["description"].startswith("Three treatments; option 1")
    [review] = gate["review_configs"]
    assert review == {
        "action_name": "treatment",
        "allowed_decisions": ["approve", "edit", "reject"],
        "args_schema": Treatments.model_json_schema(),
    }
    assert gate["stage"] == "treatment"
    assert gate["thread_id"] == config["configurable"]["thread_id"]
    assert gate["error"] is None
    assert len(Treatments.model_validate(request["args"]).options) == 3


@pytest.mark.parametrize(("saver_and_store", "stage"), GATES, indirect=["saver_and_store"])
async def test_approve_keeps_the_proposal_and_moves_on(
    graph: Any, offline_context: Context, sample_input: dict[str, Any], stage: str
) -> None:
    config = new_config()
    gate = await drive_to_gate(graph, config, sample_input, offline_context, stage)
    proposed = proposal(gate)
    after = await answer(graph, config, APPROVE, offline_context)
    # the first gate of a stage: the scene cycle's first scene, or the whole film's
    position = SEQUENCE.index((stage, gate["scene"]))
    following = SEQUENCE[position + 1] if position + 1 < len(SEQUENCE) else (None, None)
    assert ((after or {}).get("stage"), (after or {}).get("scene")) == following
    values = await current_values(graph, config)
    assert values[stage] == _approved(stage, proposed)
    assert stage in values["approved"]
    _artifact_model(stage).model_validate(values[stage])


@pytest.mark.parametrize(("saver_and_store", "stage"), GATES, indirect=["saver_and_store"])
async def test_edit_is_applied_as_given(
    graph: Any, offline_context: Context, sample_input: dict[str, Any], stage: str
) -> None:
    config = new_config()
    gate = await drive_to_gate(graph, config, sample_input, offline_context, stage)
    edited = _edited(stage, proposal(gate))
    assert edited != proposal(gate)
    decision = {"decisions": [{"type": "edit", "edited_action": {"name": stage, "args": edited}}]}
    after = await answer(graph, config, decision, offline_context)
    assert (after or {}).get("stage") != stage
    values = await current_values(graph, config)
    expected = _artifact_model(stage).model_validate(edited).model_dump(mode="json")
    assert values[stage] == _approved(stage, expected)


@pytest.mark.parametrize(("saver_and_store", "stage"), GATES, indirect=["saver_and_store"])
async def test_feedback_regenerates_the_stage(
    graph: Any, offline_context: Context, sample_input: dict[str, Any], stage: str
) -> None:
    config = new_config()
    gate = await drive_to_gate(graph, config, sample_input, offline_context, stage)
    reject = {"decisions": [{"type": "reject", "message": FEEDBACK}]}
    regenerated = await answer(graph, config, reject, offline_context)
    assert regenerated is not None and regenerated["stage"] == stage
    assert proposal(regenerated) != proposal(gate)
    values = await current_values(graph, config)
    assert stage not in values.get("approved", [])
    turns = [t for t in values["conversation"] if t["stage"] == stage]
    assert [t["role"] for t in turns] == ["assistant", "user", "assistant"]
    assert turns[1]["content"] == FEEDBACK


@pytest.mark.parametrize(
    ("decision", "complaint"),
    [
        (
            {"decisions": [{"type": "edit", "edited_action": {"name": "treatment", "args": {}}}]},
            "options",
        ),
        (
            {"decisions": [{"type": "edit", "edited_action": {"name": "shots", "args": {}}}]},
            "this gate reviews 'treatment'",
        ),
        ({"decisions": [{"type": "reject", "message": ""}]}, "message"),
        ({"decisions": [{"type": "maybe"}]}, "a decision must look like"),
        ("approve", "a decision must look like"),
    ],
)
async def test_invalid_decision_is_refused_and_the_gate_stays_open(
    graph: Any,
    offline_context: Context,
    sample_input: dict[str, Any],
    decision: Any,
    complaint: str,
) -> None:
    config = new_config()
    gate = await run_until_stop(graph, config, sample_input, offline_context)
    refused = await answer(graph, config, decision, offline_context)
    assert refused is not None and refused["stage"] == "treatment"
    assert complaint in refused["error"]
    assert proposal(refused) == proposal(gate)
    assert "treatment" not in await current_values(graph, config)
    after = await answer(graph, config, APPROVE, offline_context)
    assert after is not None and after["stage"] == "script"
    assert (await current_values(graph, config))["treatment"] == proposal(gate)


async def test_feedback_reaches_the_regenerated_prompt(
    graph: Any, offline_context: Context, sample_input: dict[str, Any], openai_server: Any
) -> None:
    recorded = json.loads(SAMPLE_RECORDINGS.read_text())["responses"]["draft_treatments"]
    openai_server.replies.extend([recorded[0], recorded[1]])
    context = Context(
        models=ModelProvider(
            api_key="test-key", base_url=openai_server.base_url, recordings=SAMPLE_RECORDINGS
        ),
        backend=offline_context.backend,
        files=offline_context.files,
    )
    config = new_config()
    # a brief of its own, so no earlier generation is found in the store's cache
    sample = {**sample_input, "brief": f"{sample_input['brief']} ({uuid.uuid4()})"}
    first = await run_until_stop(graph, config, sample, context)
    assert first is not None and treatment_options(first) == recorded[0]
    second = await answer(
        graph, config, {"decisions": [{"type": "reject", "message": FEEDBACK}]}, context
    )
    assert second is not None and treatment_options(second) == recorded[1]
    first_request, second_request = openai_server.requests[-2:]
    assert FEEDBACK not in json.dumps(first_request["messages"])
    messages = second_request["messages"]
    assert any(m["role"] == "user" and FEEDBACK in m["content"] for m in messages)
    first_logline = recorded[0]["options"][0]["logline"]
    assert any(m["role"] == "assistant" and first_logline in m["content"] for m in messages)
