"""The media agents find their workflows by meaning, through discovery (draft backend)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from agents.artifacts import ClipSet, FrameSet
from agents.base import Context
from api.settings import SAMPLE_RECORDINGS
from graphs.base import load_workflow_types
from graphs.persistence import Persistence
from tests.helpers import APPROVE, answer, drive_to_gate, new_config, proposal
from tools.discovery import WorkflowDiscovery
from tools.draft_renderer import DraftBackend
from tools.embeddings import embedding_model
from tools.llm import ModelProvider
from tools.storage import LocalFileStore
from tools.workflows import COMFY_WORKFLOWS


def _add_keyframe_workflow(folder: Path, name: str, description: str, tags: list[str]) -> None:
    """A copy of the library's keyframe workflow under another name and description."""
    metadata = yaml.safe_load((COMFY_WORKFLOWS / "keyframe_from_references.yaml").read_text())
    metadata.update(name=name, description=description, tags=tags)
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(metadata))
    shutil.copy(COMFY_WORKFLOWS / "keyframe_from_references.json", folder / f"{name}.json")


async def test_keyframes_use_the_catalogue_workflow_that_fits_the_project(
    persistence: Persistence, tmp_path: Path, sample_input: dict[str, Any]
) -> None:
    folder = tmp_path / "catalogue"
    shutil.copytree(COMFY_WORKFLOWS, folder)
    # The sample project is a felt-and-clay stop-motion film: this keyframe workflow says so.
    _add_keyframe_workflow(
        folder,
        "keyframe_stop_motion",
        "One film keyframe of a handmade stop-motion miniature set (felt, clay and paper "
        "textures, soft window light) from a prompt and a reference board of the characters.",
        ["keyframe", "stop-motion", "claymation", "miniature", "felt", "reference images"],
    )
    discovery = WorkflowDiscovery(persistence.pool, embedding_model("local"), folder=folder)
    context = Context(
        models=ModelProvider(api_key=None, recordings=SAMPLE_RECORDINGS),
        backend=DraftBackend(),
        files=LocalFileStore(tmp_path / "files"),
        discovery=discovery,
    )
    graph = (
        load_workflow_types()
        .get("full_video")()
        .compile(checkpointer=InMemorySaver(), store=InMemoryStore())
    )
    config = new_config()

    gate = await drive_to_gate(graph, config, sample_input, context, "frames")
    frames = FrameSet.model_validate(proposal(gate)).frames
    assert {f.workflow for f in frames} == {"keyframe_stop_motion"}
    assert {c.workflow for f in frames for c in f.candidates} == {"keyframe_stop_motion"}

    gate = await answer(graph, config, APPROVE, context)
    assert gate is not None and gate["stage"] == "clips"
    clips = ClipSet.model_validate(proposal(gate)).clips
    assert {c.workflow for c in clips} == {"first_last_frame_to_video"}
