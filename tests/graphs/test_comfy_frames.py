"""Frames and clips through ComfyUI (the test server): no double spend, retries, resume, gates."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore
from langgraph.types import Command
from PIL import Image

from agents.artifacts import AssetRegistry, FrameSet, SceneInstances, ShotList, Video
from agents.base import Context, check_decision
from agents.frame_generator import POSITIONS
from api.settings import SAMPLE_RECORDINGS
from graphs.base import load_workflow_types
from graphs.persistence import Persistence
from tests.doubles.comfy_server import ComfyServer, run_comfy_server
from tests.helpers import (
    APPROVE,
    answer,
    current_values,
    drive_to_gate,
    new_config,
    proposal,
    run_until_stop,
)
from tools.comfy import ComfyJobFailed, ComfyPool
from tools.comfy_tools import ComfyBackend
from tools.draft_renderer import probe
from tools.llm import ModelProvider
from tools.storage import LocalFileStore


def _graph(saver: Any = None, store: Any = None) -> Any:
    workflow = load_workflow_types().get("full_video")()
    return workflow.compile(checkpointer=saver or InMemorySaver(), store=store or InMemoryStore())


def _sheets(values: dict[str, Any]) -> int:
    """The reference sheets: one per look of every selected asset."""
    assets = AssetRegistry.model_validate(values["assets"])
    return sum(
        len(entity.appearances())
        for entity_id, entity in assets.entities().items()
        if entity_id not in assets.deselected
    )


@pytest.mark.long
async def test_full_video_through_comfyui_submits_each_generation_once(
    persistence: Persistence,
    comfy_server: ComfyServer,
    comfy_context: Context,
    sample_input: dict[str, Any],
) -> None:
    graph = _graph(persistence.checkpointer, persistence.store)
    config = new_config()
    gate = await run_until_stop(graph, config, sample_input, comfy_context)
    while gate is not None:
        gate = await answer(graph, config, APPROVE, comfy_context)

    values = (await graph.aget_state(config)).values
    shots = ShotList.model_validate(values["shots"]).shots
    frames = FrameSet.model_validate(values["frames"]).frames
    assert all(f.workflow == "keyframe_from_references" and not f.candidates for f in frames)
    scenes = len({shot.scene for shot in shots})  # an ambience bed each
    # every selected asset a scene uses has its image there (none skipped); drawn in that
    # scene's context when it starts a look there, else going on as the earlier scene left it
    assets = AssetRegistry.model_validate(values["assets"])
    used = sorted(
        (u.scene, u.entity) for u in assets.scene_usage if u.entity not in assets.deselected
    )
    instances = SceneInstances.model_validate(values["instances"]).instances
    assert sorted((i.scene, i.entity) for i in instances) == used
    assert all(i.file is not None for i in instances)
    first_looks = {
        (u.entity, u.look) for u in assets.scene_usage if u.entity not in assets.deselected
    }
    drawn = len(first_looks)  # one instance drawn per look, in the first scene showing it
    assert drawn < len(instances)
    unique = scenes + _sheets(values) + drawn + 2 * len(shots) + len(shots)
    assert comfy_server.jobs == unique
    prompts = {json.dumps(p["prompt"], sort_keys=True) for p in comfy_server.submitted}
    assert len(prompts) == comfy_server.jobs
    video = Video.model_validate(values["video"])
    info = probe(comfy_context.files.read(video.file))
    assert info.frame_count == sum(max(1, round(s.duration_s * 12)) for s in shots)
    assert (info.width, info.height) == (640, 360)

    # Replaying the finished run from the frames gate's checkpoint submits nothing new.
    history = [s async for s in graph.aget_state_history(config)]
    at_frames = next(s for s in history if s.next == ("frame_generator",))
    async for _ in graph.astream(None, at_frames.config, context=comfy_context):
        pass
    assert comfy_server.jobs == unique


async def test_resuming_at_the_frame_gate_submits_no_job_again(
    comfy_server: ComfyServer, comfy_context: Context, sample_input: dict[str, Any]
) -> None:
    saver, store = InMemorySaver(), InMemoryStore()
    graph, config = _graph(saver, store), new_config()
    gate = await drive_to_gate(graph, config, sample_input, comfy_context, "frames")
    jobs = comfy_server.jobs
    assert jobs > 0

    # A fresh process (new graph object, same checkpoints) resumes at the gate.
    again = _graph(saver, store)
    gate = await run_until_stop(again, config, None, comfy_context)
    gate = await answer(again, config, {"decisions": [{"type": "bogus"}]}, comfy_context)

    assert gate is not None
    assert gate["stage"] == "frames"
    assert gate["error"]
    assert comfy_server.jobs == jobs


async def test_three_failures_stop_the_run_and_it_resumes_later(
    comfy_server: ComfyServer, comfy_context: Context, sample_input: dict[str, Any]
) -> None:
    graph, config = _graph(), new_config()
    await drive_to_gate(graph, config, sample_input, comfy_context, "dialogue")
    before = comfy_server.jobs  # the sheets and the scenes' ambience, made before the frames
    # Every job the pool takes at once (one running, one queued) fails its 3 attempts.
    failing = before + 3 * comfy_context.backend.capacity
    comfy_server.fail_next(failing - before)

    with pytest.raises(ComfyJobFailed, match="failed 3 times on ComfyUI"):
        await answer(graph, config, APPROVE, comfy_context)
    assert comfy_server.jobs == failing

    gate = await run_until_stop(graph, config, None, comfy_context)

    assert gate is not None
    assert gate["stage"] == "frames"
    values = (await graph.aget_state(config, subgraphs=True)).values
    shots = ShotList.model_validate(values["shots"]).shots
    assert comfy_server.jobs == failing + 2 * len(shots)


def _mask(size: tuple[int, int]) -> bytes:
    image = Image.new("L", size, 0)
    image.paste(255, (0, 0, size[0] // 2, size[1] // 2))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


async def test_frame_gate_candidates_regenerate_inpaint_and_choose(
    comfy_server: ComfyServer, comfy_context: Context, sample_input: dict[str, Any]
) -> None:
    graph, config = _graph(), new_config()
    gate = await drive_to_gate(graph, config, sample_input, comfy_context, "frames")
    first = FrameSet.model_validate(proposal(gate))
    shot = first.frames[0].shot
    jobs = comfy_server.jobs

    gate = await answer(
        graph,
        config,
        {"decisions": [{"type": "reject", "message": f"shot {shot}: warmer light"}]},
        comfy_context,
    )
    regenerated = FrameSet.model_validate(proposal(gate))
    assert comfy_server.jobs == jobs + 2
    for frame in regenerated.frames:
        expected = 2 if frame.shot == shot else 1
        assert len(frame.candidates) == expected
        assert frame.file == frame.candidates[-1].file
    assert regenerated.frames[0].candidates[-1].note == f"regenerated: shot {shot}: warmer light"

    mask = comfy_context.files.put(_mask((640, 360)), extension="png", media_type="image/png")
    inpaint = {"shot": shot, "position": "end", "mask": mask.key}
    bad = {
        "decisions": [
            {"type": "reject", "message": "a kite", "inpaint": {**inpaint, "shot": "99Z"}}
        ]
    }
    with pytest.raises(ValueError, match="no end frame of shot 99Z"):
        check_decision(gate, bad)
    foreign = {**inpaint, "source": mask.key}
    with pytest.raises(ValueError, match="not a candidate of the end frame"):
        check_decision(
            gate, {"decisions": [{"type": "reject", "message": "x", "inpaint": foreign}]}
        )
    # paint on the older candidate, not the chosen (newest) one
    older = regenerated.frame(shot, "end").candidates[0].file
    inpaint["source"] = older.key
    decision = {"decisions": [{"type": "reject", "message": "a red kite", "inpaint": inpaint}]}
    check_decision(gate, decision)
    gate = await answer(graph, config, decision, comfy_context)
    inpainted = FrameSet.model_validate(proposal(gate))
    end = inpainted.frame(shot, "end")
    assert end is not None
    assert [c.note for c in end.candidates][-1] == "inpainted: a red kite"
    assert end.candidates[-1].references == [older]
    assert end.candidates[-1].workflow == "inpaint_region"
    assert len(end.candidates) == 3
    assert comfy_server.jobs == jobs + 3

    # Choosing a file that is not a candidate is refused; choosing the first one is kept.
    edited = inpainted.model_dump(mode="json")
    stranger = comfy_context.files.put(b"x", extension="png", media_type="image/png")
    edited["frames"][1]["file"] = stranger.model_dump(mode="json")
    with pytest.raises(ValueError, match="not one of its candidates"):
        check_decision(
            gate,
            {"decisions": [{"type": "edit", "edited_action": {"name": "frames", "args": edited}}]},
        )
    chosen = end.candidates[0]
    edited = inpainted.model_dump(mode="json")
    index = next(i for i, f in enumerate(inpainted.frames) if (f.shot, f.position) == (shot, "end"))
    edited["frames"][index]["file"] = chosen.file.model_dump(mode="json")
    choose = {"decisions": [{"type": "edit", "edited_action": {"name": "frames", "args": edited}}]}
    check_decision(gate, choose)
    gate = await answer(graph, config, choose, comfy_context)

    assert gate is not None
    assert gate["stage"] == "clips"
    approved = FrameSet.model_validate(
        (await graph.aget_state(config, subgraphs=True)).values["frames"]
    )
    final = approved.frame(shot, "end")
    assert final is not None
    assert final.file == chosen.file
    assert final.seed == chosen.seed
    assert all(not f.candidates for f in approved.frames)


async def test_frame_candidates_per_round_follow_the_project_config(
    comfy_server: ComfyServer, comfy_context: Context, sample_input: dict[str, Any]
) -> None:
    payload = {**sample_input, "config": {**sample_input["config"], "frame_candidates": 2}}
    graph, config = _graph(), new_config()

    gate = await drive_to_gate(graph, config, payload, comfy_context, "frames")

    frames = FrameSet.model_validate(proposal(gate)).frames
    assert all(len(f.candidates) == 2 for f in frames)
    assert all(len({c.seed for c in f.candidates}) == 2 for f in frames)


async def test_two_servers_draw_sheets_then_keyframes_at_once_in_order(
    tmp_path: Path, sample_input: dict[str, Any]
) -> None:
    with run_comfy_server(job_delay_s=0.2) as one, run_comfy_server(job_delay_s=0.2) as two:
        pool = ComfyPool([one.url, two.url], timeout_s=60, attempts=3, backoff_s=0)
        context = Context(
            models=ModelProvider(api_key=None, recordings=SAMPLE_RECORDINGS),
            backend=ComfyBackend(pool, scale=1),
            files=LocalFileStore(tmp_path),
        )
        graph, config = _graph(), new_config()
        await drive_to_gate(graph, config, sample_input, context, "dialogue")
        events = [
            event
            async for _, event in graph.astream(
                Command(resume=APPROVE),
                config,
                context=context,
                stream_mode="custom",
                subgraphs=True,
            )
        ]
        await pool.aclose()
    values = await current_values(graph, config)
    gate = (await graph.aget_state(config)).interrupts[0].value

    sheets, keyframes = [], []
    images: dict[str, list[tuple[float, float]]] = {one.url: [], two.url: []}
    for server in (one, two):
        for body, run in zip(server.submitted, server.executions, strict=True):
            nodes = body["prompt"].values()
            if any(node["class_type"] == "SaveAudio" for node in nodes):
                continue  # a scene's ambience, made at the dialogue stage
            saved = {node["inputs"].get("filename_prefix") for node in nodes}
            (sheets if "auteur/sheet" in saved else keyframes).append(run)
            images[server.url].append(run)
    assert len(sheets) == _sheets(values) and images[one.url] and images[two.url]
    assert max(end for _, end in sheets) <= min(start for start, _ in keyframes)
    assert _overlapping(images[one.url], images[two.url])
    shots = ShotList.model_validate(values["shots"]).shots
    frames = FrameSet.model_validate(proposal(gate)).frames
    assert [(f.shot, f.position) for f in frames] == [(s.id, p) for s in shots for p in POSITIONS]
    done = [e["message"] for e in events if e.get("message", "").startswith("frame ")]
    done = [message for message in done if message.endswith(" done")]
    assert done == [f"frame {n}/{len(frames)} done" for n in range(1, len(frames) + 1)]


def _overlapping(first: list[tuple[float, float]], second: list[tuple[float, float]]) -> bool:
    """Whether some run of ``first`` and some run of ``second`` were executing at once."""
    return any(a < d and c < b for a, b in first for c, d in second)
