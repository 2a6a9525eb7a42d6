"""Sound through ComfyUI (the test server): a bed per scene at its dialogue gate, one remade.

The ComfyUI backend with the library's ``text_to_audio`` workflow makes each scene's ambience
bed at that scene's dialogue gate (the scene cycle's); every bed is a job the test server
counts (a prompt saving audio). The assembly mixes them under their scenes and the export lays
them on their own track.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import opentimelineio as otio
import pytest

from agents.artifacts import Cast, ClipSet, DialogueTrack, ShotList, Video
from agents.base import Context
from api.delivery import export_cut
from graphs.base import load_workflow_types
from graphs.persistence import Persistence
from tests.audio import rms_windows
from tests.doubles.comfy_server import ComfyServer
from tests.helpers import APPROVE, answer, drive_to_gate, new_config, proposal
from tools.comfy_speech import comfy_speech
from tools.sound import wav_duration_s
from tools.workflows import load_workflows


def _bed_prompts(server: ComfyServer) -> list[str]:
    """The prompt of every bed job the server accepted, in order."""
    prompt = load_workflows()["ambience_stable_audio"].inputs["prompt"]
    return [
        body["prompt"][prompt.node]["inputs"][prompt.field]
        for body in server.submitted
        if any(node["class_type"] == "EmptyLatentAudio" for node in body["prompt"].values())
    ]


@pytest.mark.long
async def test_each_scene_gets_a_bed_and_feedback_naming_one_remakes_only_that_bed(
    persistence: Persistence,
    comfy_server: ComfyServer,
    comfy_context: Context,
    sample_input: dict[str, Any],
) -> None:
    workflow = load_workflow_types().get("full_video")()
    graph = workflow.compile(checkpointer=persistence.checkpointer, store=persistence.store)
    config = new_config()

    gate = await drive_to_gate(graph, config, sample_input, comfy_context, "dialogue")
    assert gate["scene"] == 1
    first = DialogueTrack.model_validate(proposal(gate))
    while (gate["stage"], gate["scene"]) != ("dialogue", 2):
        gate = await answer(graph, config, APPROVE, comfy_context)

    values = (await graph.aget_state(config)).values
    shots = ShotList.model_validate(values["shots"]).shots
    scenes = sorted({shot.scene for shot in shots})
    shots_by_id = {shot.id: shot for shot in shots}
    track = DialogueTrack.model_validate(proposal(gate))
    beds = [*first.beds, *track.beds]  # each scene's gate makes its own bed
    assert [bed.scene for bed in first.beds] == [1] and [bed.scene for bed in track.beds] == [2]
    assert [bed.scene for bed in beds] == scenes
    assert sorted(_bed_prompts(comfy_server)) == sorted(bed.prompt for bed in beds)
    slugs = {s["number"]: s["slugline"] for s in values["master_script"]["scenes"]}
    for bed in beds:
        length = sum(shot.duration_s for shot in shots if shot.scene == bed.scene)
        assert bed.duration_s == round(length, 3)
        assert bed.prompt.startswith(f"Ambience of {slugs[bed.scene]}.")
        wav = comfy_context.files.read(bed.file)
        assert bed.file.media_type == "audio/wav"
        assert wav_duration_s(wav) == round(length, 1)  # the test server makes what is asked
    jobs = comfy_server.jobs

    reject = {"decisions": [{"type": "reject", "message": "scene 2 ambience: distant thunder"}]}
    gate = await answer(graph, config, reject, comfy_context)

    again = DialogueTrack.model_validate(proposal(gate))
    assert comfy_server.jobs == jobs + 1  # that bed alone: no line
    assert _bed_prompts(comfy_server)[-1] == f"{track.beds[0].prompt}; distant thunder"
    assert again.lines == track.lines  # feedback on the ambience directs no line
    changed = [b.scene for a, b in zip(track.beds, again.beds, strict=True) if a != b]
    assert changed == [2]
    assert again.beds[0].prompt.endswith("; distant thunder")

    while gate is not None:  # on to the assembly, which mixes each bed under its scene
        gate = await answer(graph, config, APPROVE, comfy_context)
    values = (await graph.aget_state(config)).values
    video = Video.model_validate(values["video"])
    assert video.loudness_lufs == pytest.approx(-16.0, abs=1.0)
    film = comfy_context.files.read(video.file)
    clips = ClipSet.model_validate(values["clips"]).clips
    assert min(rms_windows(film, 0.5)[:-1]) > 1e-3  # a bed under every moment: no silence
    cut = otio.adapters.read_from_string(
        export_cut(values, "otio", lambda file: file.key).text, "otio_json"
    )
    ambience = next(track for track in cut.audio_tracks() if track.name == "Ambience")
    spans = [
        sum(c.duration_s for c in clips if shots_by_id[c.shot].scene == scene) for scene in scenes
    ]
    assert [clip.duration().to_seconds() for clip in ambience.find_clips()] == pytest.approx(
        spans, abs=1 / 12
    )
    assert [c.media_reference.target_url for c in ambience.find_clips()] == [
        bed.file.key for bed in [*first.beds, *again.beds]
    ]


async def test_comfyui_speech_casts_from_the_workflows_voices_and_speaks_each_sample_once(
    persistence: Persistence,
    comfy_server: ComfyServer,
    comfy_context: Context,
    sample_input: dict[str, Any],
) -> None:
    speech = await comfy_speech(comfy_context.backend, None)
    context = replace(comfy_context, speech=speech)
    workflow = load_workflow_types().get("full_video")()
    graph = workflow.compile(checkpointer=persistence.checkpointer, store=persistence.store)

    gate = await drive_to_gate(graph, new_config(), sample_input, context, "casting")

    cast = Cast.model_validate(proposal(gate))
    assert cast.backend == "comfyui"
    assert [choice.id for choice in cast.choices] == [voice.id for voice in speech.voices()]
    selector = load_workflows()["text_to_speech_fish"].inputs["voice"]
    spoken = [  # the reference sheets were drawn before, at the references gate
        body
        for body in comfy_server.submitted
        if selector.field in body["prompt"].get(selector.node, {}).get("inputs", {})
    ]
    asked = sorted(body["prompt"][selector.node]["inputs"][selector.field] for body in spoken)
    assert asked == sorted(voice.voice for voice in cast.voices)  # a job per sample, its voice
    assert len(spoken) == len(cast.voices)
    assert all(voice.sample is not None for voice in cast.voices)
