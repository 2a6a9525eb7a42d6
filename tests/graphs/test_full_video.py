"""A whole full_video run, every gate approved, ends in the assembled MP4."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from itertools import accumulate
from pathlib import Path
from typing import Any

import pytest

import prompts
from agents.artifacts import ClipSet, DialogueTrack, FrameSet, ShotList, Video
from agents.base import Context
from api.settings import SAMPLE_RECORDINGS
from graphs.base import load_workflow_types
from graphs.persistence import Persistence
from tests.audio import loudnorm_analysis, rms_windows
from tests.doubles.openai_server import replay_recordings
from tests.helpers import APPROVE, answer, new_config, run_until_stop
from tools import ledger
from tools.draft_renderer import probe
from tools.llm import ModelProvider

SECOND_BRIEF = Path(__file__).resolve().parent.parent / "doubles" / "second_brief.json"

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

    assert gates == workflow.gates(scenes=2)
    assert gates[:3] == ["treatment", "script", "master_script"]
    values = (await graph.aget_state(config)).values
    assert values["approved"] == workflow.stages()  # each stage once, whatever its scenes
    assert [t["stage"] for t in values["conversation"]] == gates
    cycle = workflow.scene_stages()
    assert [t.get("scene") for t in values["conversation"]] == [
        None if n < 6 else 1 + (n - 6) // len(cycle) for n in range(len(gates))
    ]  # each scene's drafts are turns of that scene
    assert values.get("scene") is None  # the cycle is over
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
    await asyncio.to_thread(_speaks_its_dialogue, values, offline_context.files)


def _speaks_its_dialogue(values: dict[str, Any], files: Any) -> None:
    """The film's audio: speech inside each placed line, silence between, -16 LUFS; subtitles."""
    video = Video.model_validate(values["video"])
    clips = ClipSet.model_validate(values["clips"]).clips
    lines = DialogueTrack.model_validate(values["dialogue"]).lines
    assert len(lines) == sum(
        len(s.dialogue) for s in ShotList.model_validate(values["shots"]).shots
    )
    film = files.read(video.file)
    starts = dict(
        zip(
            (c.shot for c in clips),
            accumulate((c.duration_s for c in clips), initial=0),
            strict=False,
        )
    )
    spans = [(starts[x.shot] + x.start_s, starts[x.shot] + x.start_s + x.duration_s) for x in lines]
    window = 0.05
    energy = rms_windows(film, window)
    assert len(energy) == pytest.approx(video.duration_s / window, abs=2)

    def loudest(start: float, end: float) -> float:
        return max(energy[int(start / window) : int(end / window) + 1])

    for start, end in spans:
        assert loudest(start, end) > 0.02  # someone speaks
    margin = 0.1  # a window that touches a line's edge is neither
    quiet = [
        e
        for i, e in enumerate(energy)
        if not any(s - margin <= i * window <= t + margin for s, t in spans)
    ]
    assert quiet and max(quiet) < 1e-3  # silence between the lines
    integrated, true_peak = loudnorm_analysis(film)
    assert integrated == pytest.approx(-16, abs=1) and true_peak <= -1 + 0.2
    assert video.loudness_lufs == pytest.approx(integrated, abs=0.5)

    srt = files.read(video.subtitles["srt"]).decode()
    vtt = files.read(video.subtitles["vtt"]).decode()
    stamps = re.findall(r"(\d\d):(\d\d):(\d\d)[,.](\d{3}) --> (\d\d):(\d\d):(\d\d)[,.](\d{3})", srt)
    assert [(round(_seconds(cue[:4]), 2), round(_seconds(cue[4:]), 2)) for cue in stamps] == [
        (round(s, 2), round(t, 2)) for s, t in spans
    ]
    for line in lines:
        assert line.text in srt and line.text in vtt
    assert vtt.startswith("WEBVTT") and vtt.count(" --> ") == len(lines)


def _seconds(stamp: tuple[str, ...]) -> float:
    hours, minutes, seconds, millis = map(int, stamp)
    return hours * 3600 + minutes * 60 + seconds + millis / 1000


@pytest.mark.long
async def test_a_brief_of_its_own_is_valid_on_every_first_call_in_schema_mode(
    persistence: Persistence, offline_context: Context, openai_server: Any
) -> None:
    """A brief that is not the sample, through a model that only follows a schema it is sent.

    The double answers a constrained request with the second brief's answer for its task
    (and scene), and anything else with prose, as a small local model does.
    """
    second = json.loads(SECOND_BRIEF.read_text(encoding="utf-8"))
    openai_server.responder = replay_recordings(SECOND_BRIEF, prompts.PROMPTS_DIR)
    openai_server.unconstrained = "Sure! Here is a lovely story about a snail and a beetle."
    context = Context(
        models=ModelProvider(
            api_key="test-key", base_url=openai_server.base_url, recordings=SAMPLE_RECORDINGS
        ),
        backend=offline_context.backend,
        files=offline_context.files,
    )
    workflow = load_workflow_types().get("full_video")()
    graph = workflow.compile(checkpointer=persistence.checkpointer, store=persistence.store)
    config = new_config()
    # a run of its own, so no earlier run's cached generation answers instead of the model
    payload = {**second["input"], "brief": f"{second['brief']} (run {uuid.uuid4()})"}
    gates = []
    with ledger.collect({}) as spent:
        gate = await run_until_stop(graph, config, payload, context)
        while gate is not None:
            assert gate.get("draft_error") is None, gate["draft_error"]
            gates.append(gate["stage"])
            gate = await answer(graph, config, APPROVE, context)

    assert gates == workflow.gates(scenes=2)
    values = (await graph.aget_state(config)).values
    assert values["script"]["title"] == "Moss Takes the Leaf"
    assert len(values["script"]["scenes"]) == 2
    assert Video.model_validate(values["video"]).frame_count > 0
    records = values["generations"]
    calls = sorted((g["task"], g.get("scene")) for g in records)
    assert calls == [
        ("draft_script", None),
        ("draft_treatments", None),
        ("extract_assets", None),
        ("list_scene_shots", 1),
        ("list_scene_shots", 2),
        ("write_master_scene", 1),
        ("write_master_scene", 2),
    ]  # one call per task and scene: every stage valid on its first call
    assert all(g["outcome"] == "valid" and g["structured_output"] == "json_schema" for g in records)
    assert len(openai_server.requests) == len(records) == spent.summary()["totals"]["llm_calls"]
    assert all(r["response_format"]["type"] == "json_schema" for r in openai_server.requests)
