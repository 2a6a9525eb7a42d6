"""Video generator: a clip per shot from its approved keyframes, then the assembled video.

Each clip is made by the image-to-video workflow (first and last frame) that discovery finds
for the shot, called as a tool and memoised by its inputs; assembly joins the approved clips
in shot order.
"""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, StateGraph
from langgraph.runtime import Runtime

import prompts
from agents._media import backend_of, find_workflow, run_workflow
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
        files = runtime.context.files
        project = project_of(state)
        fps = project.format.fps
        width, height = backend_of(runtime).frame_size(project.format.aspect_ratio)
        shots = ShotList.model_validate(state["shots"]).shots
        frames = FrameSet.model_validate(state["frames"])
        feedback = feedback_at(state, self.stage)
        clips: list[Clip] = []
        for shot in shots:
            start, end = frames.frame(shot.id, "start"), frames.frame(shot.id, "end")
            if start is None or end is None:
                raise ValueError(f"shot {shot.id} has no approved start and end frames")
            prompt = prompts.render("video_generator/motion", shot=shot, feedback=feedback).user
            seed = int(input_hash(shot.id, len(feedback))[:8], 16)
            arguments = {
                "prompt": prompt,
                "start_image": start.file.key,
                "end_image": end.file.key,
                "seed": seed,
                "width": width,
                "height": height,
                "length": max(1, round(shot.duration_s * fps)),
                "fps": float(fps),
            }
            label = f"clip {len(clips) + 1}/{len(shots)}"
            intent = (
                f"animate a {shot.movement} {shot.size} shot from its first frame to its last frame"
            )
            spec = await find_workflow(runtime, intent, "image_to_video", arguments)
            file = await run_workflow(self, runtime, spec, arguments, label=label)
            info = probe(files.read(file))
            clips.append(
                Clip(
                    shot=shot.id,
                    prompt=prompt,
                    seed=seed,
                    duration_s=info.duration_s,
                    fps=fps,
                    frame_count=info.frame_count,
                    workflow=spec.name,
                    file=file,
                )
            )
            progress(runtime, self.stage, f"{label} done", shot=shot.id)
        return ClipSet(clips=clips)

    async def assemble(self, state: ProductionState, runtime: Runtime[Context]) -> dict[str, Any]:
        """Node: join the approved clips into one video."""
        backend = backend_of(runtime)
        files = runtime.context.files
        clips = ClipSet.model_validate(state["clips"]).clips
        fps = project_of(state).format.fps
        progress(runtime, "assembly", f"assembling {len(clips)} clips")
        file = await self.generate_media(
            runtime,
            input_hash("assemble", [c.file.key for c in clips], fps),
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
