"""Video generator: a clip per shot from its approved keyframes, then the assembled video."""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, StateGraph
from langgraph.runtime import Runtime

import prompts
from agents.artifacts import Clip, ClipSet, FrameSet, ShotList, Video, input_hash
from agents.base import (
    Context,
    ProductionAgent,
    ProductionState,
    feedback_at,
    progress,
    project_of,
)
from tools.draft_renderer import probe

ASSEMBLE_NODE = "assemble_video"


class VideoGenerator(ProductionAgent):
    """Animates every shot between its keyframes and assembles the production."""

    name = "video_generator"
    stage = "clips"
    artifact = ClipSet
    description = "Generates a clip per shot from its keyframes and assembles the final video."

    after_approval = ASSEMBLE_NODE

    def build(self) -> StateGraph:
        """Draft clips, approve them, then assemble the video."""
        graph = super().build()
        graph.add_node(ASSEMBLE_NODE, self.assemble)
        graph.add_edge(ASSEMBLE_NODE, END)
        return graph

    async def propose(self, state: ProductionState, runtime: Runtime[Context]) -> ClipSet:
        """Render one clip per shot from its start and end frames."""
        backend = runtime.context.backend
        files = runtime.context.files
        fps = project_of(state).format.fps
        shots = ShotList.model_validate(state["shots"]).shots
        frames = {(f.shot, f.position): f for f in FrameSet.model_validate(state["frames"]).frames}
        feedback = feedback_at(state, self.stage)
        clips: list[Clip] = []
        for shot in shots:
            start, end = frames[(shot.id, "start")], frames[(shot.id, "end")]
            prompt = prompts.render("video_generator/motion", shot=shot, feedback=feedback)
            seed = int(input_hash(shot.id, len(feedback))[:8], 16)
            file = await self.generate_media(
                runtime,
                input_hash(backend.name, "clip", prompt.user, start.file.key, end.file.key, fps),
                lambda s=start, e=end, d=shot.duration_s: backend.clip(
                    files.read(s.file), files.read(e.file), duration_s=d, fps=fps
                ),
                extension="mp4",
                media_type="video/mp4",
            )
            info = probe(files.read(file))
            clips.append(
                Clip(
                    shot=shot.id,
                    prompt=prompt.user,
                    seed=seed,
                    duration_s=info.duration_s,
                    fps=fps,
                    frame_count=info.frame_count,
                    workflow=f"{backend.name}/clip",
                    file=file,
                )
            )
            progress(runtime, self.stage, f"clip {len(clips)}/{len(shots)} done", shot=shot.id)
        return ClipSet(clips=clips)

    async def assemble(self, state: ProductionState, runtime: Runtime[Context]) -> dict[str, Any]:
        """Node: join the approved clips into one video."""
        backend = runtime.context.backend
        files = runtime.context.files
        clips = ClipSet.model_validate(state["clips"]).clips
        fps = project_of(state).format.fps
        progress(runtime, "assembly", f"assembling {len(clips)} clips")
        file = await self.generate_media(
            runtime,
            input_hash(backend.name, "assemble", [c.file.key for c in clips], fps),
            lambda: backend.assemble([files.read(c.file) for c in clips], fps=fps),
            extension="mp4",
            media_type="video/mp4",
        )
        info = probe(files.read(file))
        video = Video(duration_s=info.duration_s, fps=fps, frame_count=info.frame_count, file=file)
        progress(runtime, "assembly", f"video ready: {file.key}")
        return {"video": video.model_dump(mode="json")}

    def summary(self, artifact: ClipSet) -> str:
        """Clip count and running time."""
        total = sum(c.duration_s for c in artifact.clips)
        return f"{len(artifact.clips)} clips, {total:.1f} s. Approve to assemble the video."
