"""Scene instances: each asset of a scene in its context, continuing from the scene before.

Through the ComfyUI test double (jobs counted), on the offline sample: scene 1 draws every
asset from its sheet; feedback naming one asset draws only it again. In scene 2, Pip keeps
his bobble hat, so his scene-1 instance goes on as it is (nothing drawn) until he is named;
Dora changes into her raincoat and the kite gets painted, so theirs are drawn from those
looks' sheets. Using a reference as it is submits no job, a skipped asset's keyframes fall
back to its sheet, and the scene's keyframes are drawn from the approved instances.
"""

from __future__ import annotations

from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from agents.artifacts import (
    AssetRegistry,
    FrameSet,
    ReferenceSheets,
    SceneInstances,
    ShotList,
)
from agents.base import Context, check_decision
from graphs.base import load_workflow_types
from tests.doubles.comfy_server import ComfyServer
from tests.helpers import APPROVE, answer, current_values, drive_to_gate, new_config, proposal


def _edit(instances: SceneInstances) -> dict[str, Any]:
    edited = {"name": "instances", "args": instances.model_dump(mode="json")}
    return {"decisions": [{"type": "edit", "edited_action": edited}]}


async def test_scene_two_continues_from_scene_one_and_using_a_reference_as_is_costs_nothing(
    comfy_server: ComfyServer, comfy_context: Context, sample_input: dict[str, Any]
) -> None:
    workflow = load_workflow_types().get("full_video")()
    graph = workflow.compile(checkpointer=InMemorySaver(), store=InMemoryStore())
    config = new_config()
    gate = await drive_to_gate(graph, config, sample_input, comfy_context, "instances")
    values = await current_values(graph, config)
    assets = AssetRegistry.model_validate(values["assets"])
    sheets = ReferenceSheets.model_validate(values["references"])

    # scene 1: every asset the scene uses, drawn once from its look's sheet
    assert gate["scene"] == 1
    first = SceneInstances.model_validate(proposal(gate)).instances
    assert [(i.entity, i.look) for i in first] == [(u.entity, u.look) for u in assets.in_scene(1)]
    for instance in first:
        sheet = sheets.sheet(instance.entity, instance.look)
        assert sheet is not None and instance.reference is not None
        assert instance.reference.file == sheet.file
        assert [c.drawn_from for c in instance.candidates] == [sheet.file]
        assert instance.candidates[0].workflow == "scene_instance"
    jobs = comfy_server.jobs

    # feedback naming Pip draws Pip alone again
    gate = await answer(
        graph, config, {"decisions": [{"type": "reject", "message": "Pip muddier"}]}, comfy_context
    )
    assert gate["stage"] == "instances" and comfy_server.jobs == jobs + 1
    again = {i.entity: i for i in SceneInstances.model_validate(proposal(gate)).instances}
    assert len(again["pip"].candidates) == 2
    assert again["pip"].candidates[-1].note == "regenerated: Pip muddier"
    assert all(again[i.entity] == i for i in first if i.entity != "pip")
    pip_in_scene_1 = again["pip"].file

    # on to scene 2, approving scene 1 as drawn
    while (gate["stage"], gate["scene"]) != ("clips", 1):
        gate = await answer(graph, config, APPROVE, comfy_context)
    jobs = comfy_server.jobs  # scene 1 made
    gate = await answer(graph, config, APPROVE, comfy_context)
    assert (gate["stage"], gate["scene"]) == ("instances", 2)
    approved = SceneInstances.model_validate((await current_values(graph, config))["instances"])
    assert approved.instance(1, "pip").file == pip_in_scene_1
    assert not any(i.candidates or i.history for i in approved.instances)
    second = {i.entity: i for i in SceneInstances.model_validate(proposal(gate)).instances}
    assert set(second) == {u.entity for u in assets.in_scene(2)}
    # the same look: scene 1's approved instance, kept as it is (nothing drawn); a look
    # changed, or an asset new to the film: drawn from that look's sheet
    assert second["pip"].look == approved.instance(1, "pip").look
    assert second["pip"].reference.file == second["pip"].file == pip_in_scene_1
    assert second["pip"].reference.label == "scene 1 instance (bobble hat)"
    assert not second["pip"].candidates
    assert second["pip"].history[0].file == pip_in_scene_1  # newest first
    for changed in ("dora", "kite", "hilltop"):
        assert changed == "hilltop" or second[changed].look != approved.instance(1, changed).look
        sheet = sheets.sheet(changed, second[changed].look)
        assert sheet is not None and second[changed].reference.file == sheet.file
        assert [c.drawn_from for c in second[changed].candidates] == [sheet.file]
    assert comfy_server.jobs == jobs + 3  # scene 2's instances: the three new looks alone

    # named, Pip is drawn in this scene's context from his scene-1 instance
    jobs = comfy_server.jobs
    gate = await answer(
        graph,
        config,
        {"decisions": [{"type": "reject", "message": "Pip, windswept"}]},
        comfy_context,
    )
    assert comfy_server.jobs == jobs + 1
    windswept = SceneInstances.model_validate(proposal(gate)).instance(2, "pip")
    assert [c.drawn_from for c in windswept.candidates] == [pip_in_scene_1]
    assert windswept.file == windswept.candidates[-1].file

    # Pip's reference as it is after all (no job), the kite skipped; an image not offered is
    # refused
    chosen = SceneInstances.model_validate(proposal(gate))
    pip = chosen.instance(2, "pip")
    pip.file = pip.reference.file
    kite = chosen.instance(2, "kite")
    kite.skipped = True
    stranger = chosen.model_copy(deep=True)
    stranger.instance(2, "dora").file = sheets.sheet("pip", "bobble hat").file
    with pytest.raises(ValueError, match="not one of its candidates"):
        check_decision(gate, _edit(stranger))
    jobs = comfy_server.jobs
    gate = await answer(graph, config, _edit(chosen), comfy_context)
    assert gate["stage"] == "shots" and gate["scene"] == 2
    assert comfy_server.jobs == jobs  # using the reference as it is submitted nothing

    # scene 2's keyframes are drawn from its approved instances: Pip from scene 1's, the
    # skipped kite from its sheet
    gate = await drive_to_gate(graph, config, None, comfy_context, "frames")
    assert gate["scene"] == 2
    values = await current_values(graph, config)
    shots = {s.id: s for s in ShotList.model_validate(values["shots"]).shots}
    frames = FrameSet.model_validate(proposal(gate)).frames
    assert frames and {shots[f.shot].scene for f in frames} == {2}  # this scene's alone
    expected = {
        "pip": pip_in_scene_1,
        "dora": second["dora"].file,
        "kite": sheets.sheet("kite", "painted").file,
    }
    seen = set()
    for frame in frames:
        for entity, file in expected.items():
            if entity in frame.references:
                assert frame.references[entity] == file, (frame.shot, entity)
                seen.add(entity)
    assert seen == set(expected)
