"""regenerate_scene on a finished sample production: only the scene is made, and paid, again."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import pytest
from langgraph.store.memory import InMemoryStore
from pydantic import ValidationError

from agents.artifacts import (
    AssetRegistry,
    ClipSet,
    DialogueTrack,
    FrameSet,
    MasterScript,
    ShotList,
    Video,
)
from agents.base import Context, load_agents
from api.settings import SAMPLE_RECORDINGS
from graphs.base import WorkflowType, load_workflow_types
from graphs.persistence import Persistence
from tests.helpers import APPROVE, answer, new_config, run_until_stop
from tools.comfy_tools import DraftMedia, WorkflowRun
from tools.llm import ModelProvider
from tools.storage import FileStore, LocalFileStore
from tools.workflows import WorkflowSpec

pytestmark = pytest.mark.usefixtures("loop_kept_free")

SCENE = 2


class CountingMedia(DraftMedia):
    """The draft backend, keeping what each media job was asked for."""

    def __init__(self) -> None:
        self.jobs: list[dict[str, Any]] = []
        self.assemblies = 0

    async def run_workflow(
        self, spec: WorkflowSpec, values: dict[str, Any], **kwargs: Any
    ) -> WorkflowRun:
        self.jobs.append({"category": spec.category, **values})
        return await super().run_workflow(spec, values, **kwargs)

    async def assemble(self, clips: list[bytes], *, fps: int) -> bytes:
        self.assemblies += 1
        return await super().assemble(clips, fps=fps)


async def _run_to_end(
    graph: Any, payload: dict[str, Any], context: Context, feedback: dict[str, str] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """Run to the end; each gate in ``feedback`` gets its message once, then every gate is
    approved. The final values and the gates passed (each "Scene N · stage" when its payload
    names a scene)."""
    config, gates, left = new_config(), [], dict(feedback or {})
    gate = await run_until_stop(graph, config, payload, context)
    while gate is not None:
        scene = gate["scene"]
        gates.append(gate["stage"] if scene is None else f"Scene {scene} · {gate['stage']}")
        message = left.pop(gate["stage"], None)
        decision = (
            APPROVE if message is None else {"decisions": [{"type": "reject", "message": message}]}
        )
        gate = await answer(graph, config, decision, context)
    return (await graph.aget_state(config)).values, gates


def _start_values(workflow: WorkflowType, values: dict[str, Any]) -> dict[str, Any]:
    """What the run driver gives a run on the project: the artifacts it takes, their
    agents' bookkeeping, the brief and the configuration."""
    starts = [kind for kind in (*workflow.takes, *workflow.reuses) if kind in values]
    given = {kind: values[kind] for kind in starts}
    agents = load_agents()
    for name in agents.names():
        agent = agents.get(name)()
        if any(step.stage in starts for step in agent.steps()):
            given |= {key: values[key] for key in agent.bookkeeping if key in values}
    project = values["project"]
    config = {key: value for key, value in project.items() if key != "brief"}
    return {**given, "brief": project["brief"], "config": config}


def _decoded(files: FileStore, values: dict[str, Any], folder: Path) -> list[bytes]:
    """The frames of a run's assembled video, decoded."""
    path = folder / f"{uuid.uuid4()}.mp4"
    path.write_bytes(files.read(Video.model_validate(values["video"]).file))
    reader = imageio_ffmpeg.read_frames(str(path))
    next(reader)  # the metadata
    return list(reader)


@pytest.mark.long
async def test_regenerating_scene_two_makes_and_pays_only_for_scene_two(
    persistence: Persistence, sample_input: dict[str, Any], tmp_path: Path
) -> None:
    media = CountingMedia()
    context = Context(
        models=ModelProvider(api_key=None, recordings=SAMPLE_RECORDINGS),
        backend=media,
        files=LocalFileStore(tmp_path / "files"),  # fresh: every job of this test is made
    )
    workflows = load_workflow_types()
    # a store of its own: other tests' runs of the sample leave answers in the shared cache
    stores = {"checkpointer": persistence.checkpointer, "store": InMemoryStore()}
    full = workflows.get("full_video")().compile(**stores)
    # Frames and clips approved after feedback: a redraw would not give them back.
    feedback = {"frames": "shot 1A: warmer light", "clips": "slower camera moves"}
    before, whole = await _run_to_end(full, sample_input, context, feedback)
    cycle = ["instances", "shots", "dialogue", "frames", "clips"]
    writing = ["treatment", "script", "master_script", "assets", "references", "casting"]
    # every cycle gate names its scene; scene 1's frames and clips are shown again after the
    # feedback
    again = {(1, "frames"), (1, "clips")}
    assert whole == writing + [
        f"Scene {n} · {stage}"
        for n in (1, 2)
        for stage in cycle
        for _ in range(2 if (n, stage) in again else 1)
    ]

    regenerate = workflows.get("regenerate_scene")()
    notes = f"make Pip's landing a bouncy, hat-over-eyes triumph ({uuid.uuid4()})"
    payload = {**_start_values(regenerate, before), "scene": SCENE, "notes": notes}
    media.jobs, media.assemblies = [], 0
    after, gates = await _run_to_end(regenerate.compile(**stores), payload, context)

    stages = ["master_script", "assets", "casting", *cycle]
    assert gates == [f"Scene {SCENE} · {stage}" for stage in stages]  # every gate says its scene
    assert after["casting"] == before["casting"]  # the cast stays
    # Lines outside the scene are the same recordings (the draft voice never repeats a
    # recording byte for byte, so an equal file is the cached one).
    old_lines = {x.id: x for x in DialogueTrack.model_validate(before["dialogue"]).lines}
    for line in DialogueTrack.model_validate(after["dialogue"]).lines:
        if line.scene != SCENE:
            assert line == old_lines[line.id]
    # Model calls: the master-script scene, what it adds to the registry, its shots.
    calls = sorted((g["task"], g.get("scene")) for g in after["generations"])
    assert calls == [
        ("extend_assets", None),
        ("list_scene_shots", SCENE),
        ("revise_master_scene", None),
    ]
    assert not any(g["cached"] for g in after["generations"])
    old_master = MasterScript.model_validate(before["master_script"]).scenes
    new_master = MasterScript.model_validate(after["master_script"]).scenes
    assert [s for s in new_master if s.number != SCENE] == [
        s for s in old_master if s.number != SCENE
    ]
    assert new_master[SCENE - 1].slugline == old_master[SCENE - 1].slugline
    assert new_master[SCENE - 1].prose != old_master[SCENE - 1].prose
    old_shots = ShotList.model_validate(before["shots"]).shots
    new_shots = ShotList.model_validate(after["shots"]).shots
    assert [s for s in new_shots if s.scene != SCENE] == [s for s in old_shots if s.scene != SCENE]
    assert [s for s in new_shots if s.scene == SCENE] != [s for s in old_shots if s.scene == SCENE]

    # Media jobs: the scene's assets in its new context, its keyframes and clips, one each,
    # and one assembly.
    assets = AssetRegistry.model_validate(after["assets"])
    drawn = [job for job in media.jobs if job["category"] == "scene_instance"]
    earlier = {(u.entity, u.look) for u in assets.scene_usage if u.scene < SCENE}
    used = [u for u in assets.in_scene(SCENE) if u.entity not in assets.deselected]
    starting = [u for u in used if (u.entity, u.look) not in earlier]  # the others go on as is
    assert len(drawn) == len(starting) < len(used)
    assert all(new_master[SCENE - 1].prose in job["prompt"] for job in drawn)
    media.jobs = [job for job in media.jobs if job not in drawn]
    in_scene = {s.id for s in new_shots if s.scene == SCENE}
    frames = FrameSet.model_validate(after["frames"]).frames
    clips = ClipSet.model_validate(after["clips"]).clips
    made_for = {(f.prompt, f.seed): f.shot for f in frames} | {
        (c.prompt, c.seed): c.shot for c in clips
    }
    jobs = sorted((job["category"], made_for[job["prompt"], job["seed"]]) for job in media.jobs)
    assert jobs == sorted(
        [(kind, shot) for shot in in_scene for kind in ("keyframe", "keyframe", "image_to_video")]
    )
    assert media.assemblies == 1
    old_frames = {(f.shot, f.position): f for f in FrameSet.model_validate(before["frames"]).frames}
    for frame in frames:
        kept = old_frames[frame.shot, frame.position]
        assert (frame.file == kept.file) == (frame.shot not in in_scene)

    # The new cut differs from the old one in the scene's span only.
    fps = after["project"]["format"]["fps"]
    span = [max(1, round(s.duration_s * fps)) for s in new_shots]
    start = sum(n for n, s in zip(span, new_shots, strict=True) if s.scene < SCENE)
    end = start + sum(n for n, s in zip(span, new_shots, strict=True) if s.scene == SCENE)
    old_video = await asyncio.to_thread(_decoded, context.files, before, tmp_path)
    new_video = await asyncio.to_thread(_decoded, context.files, after, tmp_path)
    assert len(new_video) == sum(span)
    assert new_video[:start] == old_video[:start]
    assert new_video[end:] == old_video[end:]
    changed = zip(new_video[start:end], old_video[start:end], strict=True)
    assert all(new != old for new, old in changed)


@pytest.mark.parametrize(
    ("scene", "notes", "error"),
    [
        (3, "more wind", "scene 3 does not exist; .* has 2 scene"),
        (2, "as windy as scene 1", "the notes name other scenes"),
    ],
)
async def test_a_scene_the_production_lacks_or_notes_on_another_fail_clearly(
    persistence: Persistence,
    offline_context: Context,
    sample_input: dict[str, Any],
    scene: int,
    notes: str,
    error: str,
) -> None:
    workflows = load_workflow_types()
    # a store of its own: other tests' runs of the sample leave answers in the shared cache
    stores = {"checkpointer": persistence.checkpointer, "store": InMemoryStore()}
    before, _ = await _run_to_end(
        workflows.get("script_only")().compile(**stores), sample_input, offline_context
    )
    regenerate = workflows.get("regenerate_scene")()
    values = {**before, "assets": {}, "shots": {}, "frames": {}, "clips": {}}
    payload = {**_start_values(regenerate, values), "scene": scene, "notes": notes}
    with pytest.raises(ValueError, match=error):
        await run_until_stop(regenerate.compile(**stores), new_config(), payload, offline_context)


def test_the_input_names_a_scene_and_what_to_change() -> None:
    regenerate = load_workflow_types().get("regenerate_scene")()
    regenerate.check_input({"scene": 2, "notes": "more wind"})
    for wrong in ({"scene": 0, "notes": "x"}, {"scene": 2, "notes": ""}, {"scene": 2}):
        with pytest.raises(ValidationError):
            regenerate.check_input(wrong)
    with pytest.raises(ValidationError, match="extra"):
        regenerate.check_input({"scene": 2, "notes": "x", "shots_of": 2})
