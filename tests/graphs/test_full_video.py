"""A whole full_video run, every gate approved, ends in the assembled MP4."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agents.artifacts import ClipSet, FrameSet, ShotList, Video
from agents.base import Context
from graphs.base import load_workflow_types
from graphs.persistence import Persistence
from tests.helpers import APPROVE, answer, new_config, run_until_stop
from tools.draft_renderer import probe

pytestmark = pytest.mark.usefixtures("loop_kept_free")


async def test_auto_approved_run_ends_in_an_mp4(
    persistence: Persistence, offline_context: Context, sample_input: dict[str, Any]
) -> None:
    workflow = load_workflow_types().get("full_video")()
    graph = workflow.compile(checkpointer=persistence.checkpointer, store=persistence.store)
    config = new_config()
    gates = []
    gate = await run_until_stop(graph, config, sample_input, offline_context)
    while gate is not None:
        gates.append(gate["stage"])
        gate = await answer(graph, config, APPROVE, offline_context)

    assert gates == workflow.stages()
    assert gates[:3] == ["treatment", "script", "master_script"]
    values = (await graph.aget_state(config)).values
    assert values["approved"] == gates
    assert [t["stage"] for t in values["conversation"]] == gates
    shots = ShotList.model_validate(values["shots"]).shots
    fps = values["project"]["format"]["fps"]
    assert len(FrameSet.model_validate(values["frames"]).frames) == 2 * len(shots)
    assert len(ClipSet.model_validate(values["clips"]).clips) == len(shots)

    video = Video.model_validate(values["video"])
    info = await asyncio.to_thread(probe, offline_context.files.read(video.file))
    expected_frames = sum(max(1, round(shot.duration_s * fps)) for shot in shots)
    assert info.frame_count == video.frame_count == expected_frames
    assert info.fps == fps
    assert abs(info.duration_s - sum(shot.duration_s for shot in shots)) <= 1 / fps
    assert (info.width, info.height) == (640, 360)
