"""Scene beds: an ambience (or music) bed per scene from the library's ``text_to_audio`` workflow.

Made only when the run's media backend is ComfyUI and the library has such a workflow; the
draft backend makes no sound, so the offline film keeps its silence between the lines. A
bed's prompt is the scene's slugline and the opening of its master-script prose; its length
is the scene's shots' (held within what the workflow can make: the mix loops a shorter one).
Each bed is a workflow run memoised by its inputs, so a bed whose scene and prompt are
unchanged is never made again.

Feedback about the ambience ("scene 2 ambience: distant thunder") is added to that scene's
prompt, or to every scene's when it names none; the prompt keeps earlier notes.
"""

from __future__ import annotations

import re
from functools import partial

from langgraph.runtime import Runtime

from agents._media import backend_of, fan_out, run_workflow
from agents._scenes import named_scene
from agents.artifacts import MasterScene, MasterScript, SceneBed, Shot
from agents.base import Context, Step, progress
from tools.comfy_tools import pick_workflow

__all__ = ["BED_INTENT", "about_beds", "scene_beds"]

BED_INTENT = "text-to-audio: the ambience or music bed under a film scene, no speech"
"""What discovery is asked for when the bed workflow is chosen."""

_BED_WORDS = re.compile(
    r"\b(ambience|ambient|atmosphere|bed|background sound|music|soundscape|room tone)\b",
    re.IGNORECASE,
)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_PROSE_SENTENCES = 2  # the prompt stays short: the text encoder reads only so much


def about_beds(feedback: str) -> bool:
    """Whether feedback at the dialogue gate is about the beds rather than the lines."""
    return bool(_BED_WORDS.search(feedback))


async def scene_beds(
    step: Step,
    runtime: Runtime[Context],
    shots: list[Shot],
    master: MasterScript,
    earlier: list[SceneBed],
    feedback: str = "",
) -> list[SceneBed]:
    """A bed for every scene of ``shots``; none unless ComfyUI has a bed workflow.

    Args:
        step: The dialogue step (its stage gets the progress; its store, the memo).
        runtime: The node's runtime.
        shots: The approved shot list's shots.
        master: The approved master script (sluglines and prose).
        earlier: The beds of the draft, or the approved dialogue: their prompts are kept.
        feedback: A note on the beds (:func:`about_beds`), for the scene it names or all.
    """
    if backend_of(runtime).name != "comfyui":
        return []
    numbers = sorted({shot.scene for shot in shots})
    scenes = {scene.number: scene for scene in master.scenes}
    try:
        spec = await pick_workflow(
            BED_INTENT, "text_to_audio", ("prompt", "seconds"), runtime.context.discovery
        )
    except LookupError:
        return []
    seconds = spec.inputs["seconds"]
    named = named_scene(feedback, len(master.scenes)) if feedback else None
    before = {bed.scene: bed for bed in earlier}

    async def one(number: int) -> SceneBed:
        length = sum(shot.duration_s for shot in shots if shot.scene == number)
        prompt = _prompt(scenes[number], before.get(number))
        if feedback and named in (None, number):
            prompt = f"{prompt}; {_note(feedback)}"
        low = seconds.minimum if seconds.minimum is not None else 0.0
        high = seconds.maximum if seconds.maximum is not None else length
        arguments = {"prompt": prompt, "seconds": round(min(high, max(low, length)), 1)}
        file = await run_workflow(step, runtime, spec, arguments, label=f"scene {number} ambience")
        progress(runtime, step.stage, f"scene {number} ambience made")
        return SceneBed(scene=number, prompt=prompt, duration_s=round(length, 3), file=file)

    return await fan_out(runtime, [partial(one, n) for n in numbers if n in scenes])


def _prompt(scene: MasterScene, earlier: SceneBed | None) -> str:
    """The scene's sound: its place and time, the opening of its prose; earlier notes kept."""
    prose = " ".join(_SENTENCE.split(scene.prose.strip())[:_PROSE_SENTENCES])
    base = f"Ambience of {scene.slugline}. {prose}"
    return earlier.prompt if earlier is not None and earlier.prompt.startswith(base) else base


def _note(feedback: str) -> str:
    """What the feedback asks of the sound: the text after "scene 2 ambience:", if so given."""
    head, colon, rest = feedback.partition(":")
    return rest.strip() if colon and rest.strip() else head.strip()
