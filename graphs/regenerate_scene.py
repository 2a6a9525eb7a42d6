"""``regenerate_scene``: one scene of a finished production made again, the rest kept.

The cast is the production's (a new speaker gets a voice); the dialogue is spoken again
only where the scene's lines changed (every other line, its direction kept, is found in
the generation cache).

The run starts from the project's approved artifacts and asks for the scene again as the
person would at the gates: the scene's notes are feedback on the master script and on the
shot list, both naming the scene, so the script writer revises that master-script scene
only and the shot lister re-lists that scene only. The asset extractor adds only what the
changed scene brings; the scene's instances are drawn in its revised context (an unchanged
one is found in the generation cache); every per-scene stage shows and approves the scene's
part, put into the whole artifact on approval; the frame and video generators keep the
approved frames and clips of every unchanged shot, so only the scene's keyframes and clips
are made and the video is assembled again. Each stage still stops at its gate.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from langgraph.graph import StateGraph
from pydantic import BaseModel, ConfigDict, Field

from agents._scenes import named_scene
from agents.artifacts import ByScene, MasterScript
from agents.base import Turn, artifact_types
from graphs.base import ProjectInput, WorkflowType, agent_pipeline

REOPENED = ("master_script", "shots")
"""The stages whose approved artifact gets the scene's notes as feedback."""


class SceneInput(ProjectInput):
    """Which scene of the project's production to make again, and what to change."""

    model_config = ConfigDict(title="SceneInput")

    scene: int = Field(ge=1, description="The scene's number in the approved master script.")
    notes: str = Field(min_length=1, description="What to change in the scene.")


def reopen_scene(state: dict[str, Any]) -> dict[str, Any]:
    """Node: the approved master script and shot list as drafts, with the notes as feedback.

    Raises:
        ValueError: The master script has no such scene, or the notes name another scene
            (the agents would then redraft more than this one).
    """
    number = state["scene"]
    feedback = _feedback(number, state["notes"], state["master_script"])
    types = artifact_types()
    parts = {stage: _part(types[stage].model_validate(state[stage]), number) for stage in REOPENED}
    turns = [
        turn
        for stage, part in parts.items()
        for turn in (
            _turn(stage, "assistant", part.model_dump_json(), number),
            _turn(stage, "user", feedback, number),
        )
    ]
    drafts = {stage: part.model_dump(mode="json") for stage, part in parts.items()}
    return {"drafts": drafts, "conversation": turns}


def _part(artifact: BaseModel, number: int) -> BaseModel:
    """What the stage drafts of the scene: a per-scene artifact's part, else all of it."""
    return artifact.in_scene(number) if isinstance(artifact, ByScene) else artifact


def _feedback(number: int, notes: str, master_script: dict[str, Any]) -> str:
    """The notes as feedback naming the scene.

    Raises:
        ValueError: The master script has no such scene, or the notes name another scene.
    """
    count = len(MasterScript.model_validate(master_script).scenes)
    if number > count:
        raise ValueError(
            f"invalid workflow input: scene {number} does not exist; the approved master "
            f"script has {count} scene(s)"
        )
    feedback = f"scene {number}: {notes}"
    if named_scene(feedback, count) != number:
        raise ValueError(
            f"invalid workflow input: the notes name other scenes; regenerate_scene changes "
            f"scene {number} only (leave other scene numbers out of the notes)"
        )
    return feedback


def _turn(stage: str, role: Literal["assistant", "user"], content: str, scene: int) -> Turn:
    return Turn(id=str(uuid.uuid4()), stage=stage, role=role, content=content, scene=scene)


class RegenerateScene(WorkflowType):
    """One scene's master script, instances, shots, dialogue, keyframes and clips; re-assembled."""

    name = "regenerate_scene"
    description = (
        "Makes one scene of a finished production again from your notes — its master-script "
        "scene, shots, spoken lines, keyframes and clips — and re-assembles the video; nothing "
        "else is regenerated. Each stage is approved by the person."
    )
    input_model = SceneInput
    takes = (
        "script",
        "master_script",
        "assets",
        "references",
        "instances",
        "shots",
        "frames",
        "clips",
    )
    reuses = ("casting", "dialogue")

    def check_start(self, given: BaseModel, start: dict[str, Any]) -> None:
        """The scene must be one of the project's master script, named alone by the notes."""
        assert isinstance(given, SceneInput)
        _feedback(given.scene, given.notes, start["master_script"])

    def build(self) -> StateGraph:
        """Reopen the scene, then the script writer (at the master script) to the assembly."""
        return agent_pipeline(
            [
                "script_writer",
                "asset_extractor",
                "casting",
                "scene_instances",
                "shot_lister",
                "dialogue_speaker",
                "frame_generator",
                "video_generator",
            ],
            input_model=self.input_model,
            prepare=[reopen_scene],
        )
