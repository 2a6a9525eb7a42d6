"""Picking another reference image at the frames gate (issue #4, item 7)."""

from __future__ import annotations

from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from agents.artifacts import AssetRegistry, FrameSet, SceneInstances, ShotList
from agents.base import Context, check_decision
from graphs.base import load_workflow_types
from tests.doubles.comfy_server import ComfyServer
from tests.helpers import answer, current_values, drive_to_gate, new_config, proposal
from tools.comfy_tools import stitch


def _reject(references: dict[str, str]) -> dict[str, Any]:
    return {
        "decisions": [
            {"type": "reject", "message": "use this image instead", "references": references}
        ]
    }


async def test_picking_another_reference_regenerates_only_the_frames_showing_it(
    comfy_server: ComfyServer, comfy_context: Context, sample_input: dict[str, Any]
) -> None:
    graph = (
        load_workflow_types()
        .get("full_video")()
        .compile(checkpointer=InMemorySaver(), store=InMemoryStore())
    )
    config = new_config()
    gate = await drive_to_gate(graph, config, sample_input, comfy_context, "frames")
    first = FrameSet.model_validate(proposal(gate))
    shots = ShotList.model_validate((await current_values(graph, config))["shots"]).shots

    def showing(entity: str) -> set[str]:
        return {s.id for s in shots if entity in {e.entity for e in s.entities}}

    # Each entity in frame is offered the frames showing it, newest first, its approved
    # instance in this scene, then its sheets (one per look); its frames use the instance.
    values = await current_values(graph, config)
    assets = AssetRegistry.model_validate(values["assets"]).entities()
    instances = SceneInstances.model_validate(values["instances"])
    in_frame = {e.entity for s in shots for e in s.entities}
    assert first.reference_options and first.reference_options.keys() == in_frame
    for entity, options in first.reference_options.items():
        looks = assets[entity].appearances()
        sheets = [o.file for o in options if o.label.startswith("reference sheet")]
        assert len(sheets) == len(looks)
        assert options[-len(sheets) :] == [o for o in options if o.file in sheets]
        instance = instances.instance(1, entity)
        assert instance is not None and instance.file is not None
        mine = [o.file for o in options if o.label.startswith("scene 1 instance")]
        assert mine == [instance.file]
        assert len(options) == 2 * len(showing(entity)) + 1 + len(looks)
        assert all(
            f.references[entity] == instance.file for f in first.frames if f.shot in showing(entity)
        )

    # The entity seen in the fewest shots: picking its latest frame as the reference.
    entity = min(first.reference_options, key=lambda e: len(showing(e)))
    assert len(showing(entity)) < len(shots)
    chosen = first.reference_options[entity][0]
    assert chosen.label.startswith("scene ") and " frame" in chosen.label

    # A key that is not offered, or an entity that is not in frame, is refused, and the
    # gate asks again without submitting anything.
    with pytest.raises(ValueError, match="not one of the reference images offered"):
        check_decision(gate, _reject({entity: f"{'0' * 64}.png"}))
    with pytest.raises(ValueError, match="no reference images are offered for 'nobody'"):
        check_decision(gate, _reject({"nobody": chosen.file.key}))
    jobs = comfy_server.jobs
    refused = await answer(graph, config, _reject({entity: "f" * 64 + ".png"}), comfy_context)
    assert refused is not None and refused["stage"] == "frames"
    assert "not one of the reference images offered" in refused["error"]
    assert comfy_server.jobs == jobs

    decision = _reject({entity: chosen.file.key})
    check_decision(gate, decision)
    gate = await answer(graph, config, decision, comfy_context)
    second = FrameSet.model_validate(proposal(gate))

    assert comfy_server.jobs == jobs + 2 * len(showing(entity))
    for frame in second.frames:
        if frame.shot in showing(entity):
            assert len(frame.candidates) == 2
            assert frame.references[entity] == chosen.file
            newest = frame.candidates[-1]
            assert chosen.file in newest.references
            assert f"{entity} ← {chosen.label}" in newest.note
            # The board uploaded to ComfyUI is made of exactly these references.
            board = stitch([comfy_context.files.read(f) for f in newest.references])
            assert board in comfy_server.uploads.values()
        else:
            assert frame == first.frame(frame.shot, frame.position)
    assert chosen in second.reference_options[entity]

    # The pick is remembered: feedback on one of its shots keeps the chosen reference.
    shot = sorted(showing(entity))[0]
    gate = await answer(
        graph,
        config,
        {"decisions": [{"type": "reject", "message": f"shot {shot}: warmer light"}]},
        comfy_context,
    )
    third = FrameSet.model_validate(proposal(gate))
    regenerated = third.frame(shot, "start")
    assert regenerated is not None and len(regenerated.candidates) == 3
    assert regenerated.references[entity] == chosen.file
