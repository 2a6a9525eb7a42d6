"""The references stage: a sheet of every selected asset's looks, decided before any keyframe.

Through the ComfyUI test double (jobs counted): an asset's other looks are drawn from its
first look's sheet; feedback naming one asset draws only its sheets again; an edit puts an
image of one's own in a sheet's place and skips another; the keyframes are then drawn from
what was approved. A region of one sheet is inpainted as that sheet's new candidate. An image
of the person's own is described by the model (over the wire, as a vision request) and the
description the person chooses goes into the keyframes' prompts.
"""

from __future__ import annotations

import io
import json
from dataclasses import replace
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore
from PIL import Image

import prompts
from agents.artifacts import AssetRegistry, Frame, FrameSet, ReferenceSheets, SceneInstances
from agents.base import Context, check_decision
from api.settings import SAMPLE_RECORDINGS
from graphs.base import load_workflow_types
from tests.doubles.comfy_server import ComfyServer
from tests.doubles.openai_server import replay_recordings
from tests.helpers import APPROVE, answer, current_values, drive_to_gate, new_config, proposal
from tools.comfy_tools import blank_png
from tools.llm import ModelProvider


def _graph() -> Any:
    workflow = load_workflow_types().get("full_video")()
    return workflow.compile(checkpointer=InMemorySaver(), store=InMemoryStore())


async def test_feedback_redraws_the_asset_it_names_and_an_own_image_is_used(
    comfy_server: ComfyServer, comfy_context: Context, sample_input: dict[str, Any]
) -> None:
    graph, config = _graph(), new_config()
    gate = await drive_to_gate(graph, config, sample_input, comfy_context, "references")
    values = await current_values(graph, config)
    assets = AssetRegistry.model_validate(values["assets"])
    sheets = ReferenceSheets.model_validate(proposal(gate)).sheets
    looks = [
        (entity_id, look.name)
        for entity_id, entity in assets.entities().items()
        if entity_id not in assets.deselected
        for look in entity.appearances()
    ]
    assert [(s.entity, s.look) for s in sheets] == looks  # every look of every selected asset
    assert comfy_server.jobs == len(looks)
    assert all(len(s.candidates) == 1 and s.file == s.candidates[0].file for s in sheets)

    # Dora's raincoat is drawn from her first look's sheet (the image-to-image workflow, the
    # sheet's bytes sent to ComfyUI): the same girl in another outfit
    default_look = {e: entity.appearances()[0].name for e, entity in assets.entities().items()}
    by_look = {(s.entity, s.look): s for s in sheets}
    raincoat, apron = by_look["dora", "yellow raincoat"], by_look["dora", default_look["dora"]]
    assert raincoat.candidates[0].drawn_from == apron.file
    assert raincoat.candidates[0].workflow == "asset_sheet_from_image"
    assert comfy_context.files.read(apron.file) in comfy_server.uploads.values()
    firsts = [s for s in sheets if s.look == default_look[s.entity]]
    assert all(s.candidates[0].drawn_from is None for s in firsts)
    assert {s.candidates[0].workflow for s in firsts} == {"asset_sheet"}

    # "Dora's raincoat brighter": only Dora's sheets are drawn again, as new candidates
    dora = [s for s in sheets if s.entity == "dora"]
    gate = await answer(
        graph,
        config,
        {"decisions": [{"type": "reject", "message": "Dora's raincoat brighter"}]},
        comfy_context,
    )
    assert gate is not None and gate["stage"] == "references"
    assert comfy_server.jobs == len(looks) + len(dora)
    again = ReferenceSheets.model_validate(proposal(gate)).sheets
    assert [len(s.candidates) for s in again] == [2 if s.entity == "dora" else 1 for s in sheets]
    assert all(s.file == s.candidates[-1].file for s in again)  # the newest is chosen
    redrawn = next(s for s in again if s.entity == "dora").candidates[-1]
    assert redrawn.note == "regenerated: Dora's raincoat brighter"
    again_by_look = {(s.entity, s.look): s for s in again}
    new_apron = again_by_look["dora", default_look["dora"]].candidates[-1].file
    assert new_apron != apron.file  # drawn again, and the raincoat from that new sheet
    assert again_by_look["dora", "yellow raincoat"].candidates[-1].drawn_from == new_apron

    # an edit: Pip's first sheet is an image of one's own, the kitchen has none
    own = comfy_context.files.put(blank_png((96, 48)), extension="png", media_type="image/png")
    edited = ReferenceSheets.model_validate(proposal(gate))
    pip = next(s for s in edited.sheets if s.entity == "pip")
    pip.file = own
    kitchen = next(s for s in edited.sheets if s.entity.endswith("kitchen"))
    kitchen.skipped = True
    edit = {"name": "references", "args": edited.model_dump(mode="json")}
    gate = await answer(
        graph, config, {"decisions": [{"type": "edit", "edited_action": edit}]}, comfy_context
    )
    assert gate is not None and gate["stage"] == "casting"
    approved = ReferenceSheets.model_validate((await current_values(graph, config))["references"])
    assert not any(s.candidates for s in approved.sheets)

    # scene 1's instance of Pip in that look is drawn from the own image; the kitchen, its
    # sheet skipped, has nothing to be drawn from
    while gate is not None and gate["stage"] != "instances":
        gate = await answer(graph, config, APPROVE, comfy_context)
    assert gate is not None and gate["scene"] == 1
    instances = SceneInstances.model_validate(proposal(gate))
    pip_here = instances.instance(1, "pip")
    assert pip_here is not None and pip_here.look == pip.look
    assert pip_here.reference is not None and pip_here.reference.file == own
    assert pip_here.candidates[-1].drawn_from == own
    kitchen_here = instances.instance(1, kitchen.entity)
    assert kitchen_here is not None and kitchen_here.skipped and kitchen_here.reference is None

    # the keyframes showing Pip are drawn from that instance; the kitchen's from nothing
    while gate is not None and gate["stage"] != "frames":
        gate = await answer(graph, config, APPROVE, comfy_context)
    assert gate is not None
    frames = FrameSet.model_validate(proposal(gate)).frames
    values = await current_values(graph, config)
    shots = {s["id"]: s for s in values["shots"]["shots"]}
    for frame in frames:
        in_frame = {e["entity"]: e["look"] for e in shots[frame.shot]["entities"]}
        if in_frame.get("pip") == pip.look:
            assert frame.references["pip"] == pip_here.file
        assert kitchen.entity not in frame.references


async def test_a_region_of_one_sheet_is_inpainted_as_its_new_candidate(
    comfy_server: ComfyServer, comfy_context: Context, sample_input: dict[str, Any]
) -> None:
    graph, config = _graph(), new_config()
    gate = await drive_to_gate(graph, config, sample_input, comfy_context, "references")
    sheets = ReferenceSheets.model_validate(proposal(gate)).sheets
    jobs = comfy_server.jobs
    pip = next(s for s in sheets if s.entity == "pip")
    mask = comfy_context.files.put(blank_png((64, 32)), extension="png", media_type="image/png")
    inpaint = {"entity": "pip", "look": pip.look, "mask": mask.key}

    def reject(message: str, target: dict[str, Any]) -> dict[str, Any]:
        return {"decisions": [{"type": "reject", "message": message, "inpaint": target}]}

    with pytest.raises(ValueError, match="no sheet of pip \\(no such look\\)"):
        check_decision(gate, reject("a scarf", {**inpaint, "look": "no such look"}))
    with pytest.raises(ValueError, match="not a candidate of that sheet"):
        check_decision(gate, reject("a scarf", {**inpaint, "source": mask.key}))
    with pytest.raises(ValueError, match="inpaints a sheet"):
        check_decision(gate, reject("a scarf", {"shot": "1A", "position": "end", "mask": mask.key}))
    with pytest.raises(ValueError, match="names one image"):
        check_decision(gate, reject("a scarf", {**inpaint, "shot": "1A"}))

    decision = reject("a red scarf", inpaint)
    check_decision(gate, decision)
    gate = await answer(graph, config, decision, comfy_context)

    assert gate is not None and gate["stage"] == "references"
    assert comfy_server.jobs == jobs + 1  # only that region, of that one sheet
    after = ReferenceSheets.model_validate(proposal(gate)).sheets
    painted = next(s for s in after if s.entity == "pip")
    assert [c.note for c in painted.candidates] == ["", "inpainted: a red scarf"]
    assert painted.candidates[-1].workflow == "inpaint_region"
    assert painted.file == painted.candidates[-1].file != pip.file  # chosen, and new
    assert [s for s in after if s.entity != "pip"] == [s for s in sheets if s.entity != "pip"]


def _own_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (300, 200), (240, 200, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


async def test_an_own_image_is_described_and_the_chosen_description_is_drawn_from(
    comfy_server: ComfyServer, comfy_context: Context, sample_input: dict[str, Any], openai_server
) -> None:
    openai_server.responder = replay_recordings(SAMPLE_RECORDINGS, prompts.PROMPTS_DIR)
    context = replace(
        comfy_context,
        models=ModelProvider(
            api_key="test-key", base_url=openai_server.base_url, recordings=SAMPLE_RECORDINGS
        ),
    )
    graph, config = _graph(), new_config()
    gate = await drive_to_gate(graph, config, sample_input, context, "references")
    jobs = comfy_server.jobs
    own = context.files.put(_own_png(), extension="png", media_type="image/png")
    mine = {"entity": "dora", "look": "yellow raincoat", "file": own.key}
    decision = {"decisions": [{"type": "reject", "message": "my own Dora", "own_image": mine}]}
    with pytest.raises(ValueError, match="no sheet of dora \\(pyjamas\\)"):
        check_decision(
            gate,
            {"decisions": [{**decision["decisions"][0], "own_image": {**mine, "look": "pyjamas"}}]},
        )

    gate = await answer(graph, config, decision, context)

    # the model was shown the image (downscaled, low detail) with the look to describe
    asked = openai_server.requests[-1]["messages"][-1]["content"]
    assert [part["type"] for part in asked] == ["text", "image_url"]
    assert "Current description:" in asked[0]["text"] and "yellow raincoat" in asked[0]["text"]
    assert asked[1]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert asked[1]["image_url"]["detail"] == "low"
    assert comfy_server.jobs == jobs  # nothing drawn
    recorded = json.loads(SAMPLE_RECORDINGS.read_text())["responses"]["describe_image"][0]
    sheets = ReferenceSheets.model_validate(proposal(gate))
    raincoat = sheets.sheet("dora", "yellow raincoat")
    assert raincoat is not None and raincoat.file.key == own.key
    chosen = raincoat.candidates[-1]
    assert (chosen.described, chosen.merged) == (recorded["described"], recorded["merged"])
    assert raincoat.description is None  # nothing chosen for the person

    # the person merges: the approved sheet keeps that description, and the keyframes showing
    # Dora in her raincoat are drawn from it
    raincoat.description = chosen.merged
    edit = {"name": "references", "args": sheets.model_dump(mode="json")}
    gate = await answer(
        graph, config, {"decisions": [{"type": "edit", "edited_action": edit}]}, context
    )
    approved = ReferenceSheets.model_validate((await current_values(graph, config))["references"])
    assert approved.sheet("dora", "yellow raincoat").description == recorded["merged"]
    in_raincoat = {"entity": "dora", "look": "yellow raincoat"}
    raincoat_frames: list[Frame] = []
    instance_prompts = []
    while gate is not None and not raincoat_frames:  # to the frames of her raincoat's scene
        if gate["stage"] == "instances":
            dora = SceneInstances.model_validate(proposal(gate)).instance(gate["scene"], "dora")
            if dora is not None and dora.look == "yellow raincoat":
                instance_prompts.append(dora.candidates[-1].prompt)
        if gate["stage"] == "frames":
            shots = {s["id"]: s for s in (await current_values(graph, config))["shots"]["shots"]}
            frames = FrameSet.model_validate(proposal(gate)).frames
            raincoat_frames = [f for f in frames if in_raincoat in shots[f.shot]["entities"]]
        gate = await answer(graph, config, APPROVE, context)
    assert raincoat_frames and instance_prompts  # her instance in that scene is drawn from it too
    assert all(recorded["merged"] in f.candidates[-1].prompt for f in raincoat_frames)
    assert all(recorded["merged"] in prompt for prompt in instance_prompts)


async def test_a_model_that_cannot_read_images_leaves_the_own_image_undescribed(
    comfy_context: Context, sample_input: dict[str, Any], openai_server
) -> None:
    openai_server.responder = replay_recordings(SAMPLE_RECORDINGS, prompts.PROMPTS_DIR)
    openai_server.reads_images = False
    context = replace(
        comfy_context,
        models=ModelProvider(
            api_key="test-key", base_url=openai_server.base_url, recordings=SAMPLE_RECORDINGS
        ),
    )
    graph, config = _graph(), new_config()
    await drive_to_gate(graph, config, sample_input, context, "references")
    own = context.files.put(_own_png(), extension="png", media_type="image/png")
    mine = {"entity": "pip", "look": "bobble hat", "file": own.key}

    gate = await answer(
        graph,
        config,
        {"decisions": [{"type": "reject", "message": "my own Pip", "own_image": mine}]},
        context,
    )

    pip = ReferenceSheets.model_validate(proposal(gate)).sheet("pip", "bobble hat")
    assert pip is not None and pip.file.key == own.key
    chosen = pip.candidates[-1]
    assert (chosen.described, chosen.merged) == (None, None)
    assert chosen.note.startswith("your own image (") and "image_url" in chosen.note
