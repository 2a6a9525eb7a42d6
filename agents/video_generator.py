"""Video generator: a clip per shot from its approved keyframes, then the assembled video.

The assembly mixes in the approved dialogue, when the production has one, and writes its
subtitles (see :mod:`agents._mix`).

Each clip is made by the image-to-video workflow (first and last frame) that discovery finds
for the shot, called as a tool and memoised by its inputs (every shot at once, as many as the
backend runs); assembly joins the approved clips in shot order. A run that starts with
approved clips (a scene made again) keeps the clip of every shot whose shot and keyframes are
unchanged, unless the person asks for new clips.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

from langgraph.runtime import Runtime

import prompts
from agents._media import backend_of, fan_out, find_workflow, run_workflow
from agents._mix import cut, cut_beds, mix_dialogue
from agents.artifacts import (
    Clip,
    ClipSet,
    DialogueTrack,
    Frame,
    FrameSet,
    MediaFile,
    Project,
    Shot,
    ShotList,
    Video,
    input_hash,
)
from agents.base import (
    Context,
    ProductionAgent,
    ProductionState,
    feedback_at,
    progress,
    project_of,
)
from tools.draft_renderer import VideoInfo, probe


class VideoGenerator(ProductionAgent):
    """Animates every shot between its keyframes and assembles the production."""

    name = "video_generator"
    stage = "clips"
    artifact = ClipSet
    requires = ("project", "shots", "frames")
    produces = {"video": Video}
    description = "Generates a clip per shot from its keyframes and assembles the final video."

    per_scene = True
    finish_node = "assemble_video"

    async def propose(self, state: ProductionState, runtime: Runtime[Context]) -> ClipSet:
        """Render one clip per shot from its start and end frames, all shots at once.

        Without feedback, an approved clip still made from its shot and keyframes is kept.
        """
        project = project_of(state)
        shots = ShotList.model_validate(state["shots"]).shots
        frames = FrameSet.model_validate(state["frames"])
        feedback = feedback_at(state, self.stage)
        made_from = {shot.id: _made_from(project, shot, frames) for shot in shots}
        approved = ClipSet.model_validate(state["clips"]).clips if state.get("clips") else []
        kept = {
            clip.shot: clip
            for clip in approved
            if not feedback and made_from.get(clip.shot) == clip.made_from
        }
        todo = [shot for shot in shots if shot.id not in kept]
        done = 0

        async def clip(number: int, shot: Shot) -> Clip:
            nonlocal done
            label = f"clip {number}/{len(todo)}"
            made = await self._clip(
                runtime, project, shot, frames, feedback, made_from[shot.id], label=label
            )
            done += 1
            progress(runtime, self.stage, f"clip {done}/{len(todo)} done", shot=shot.id)
            return made

        jobs = [partial(clip, number, shot) for number, shot in enumerate(todo, 1)]
        lengths = [shot.duration_s for shot in todo]
        made = dict(
            zip((s.id for s in todo), await fan_out(runtime, jobs, sizes=lengths), strict=True)
        )
        return ClipSet(clips=[kept.get(shot.id) or made[shot.id] for shot in shots])

    async def _clip(
        self,
        runtime: Runtime[Context],
        project: Project,
        shot: Shot,
        frames: FrameSet,
        feedback: list[str],
        made_from: str,
        *,
        label: str,
    ) -> Clip:
        start, end = _keyframes(shot, frames)
        fps = project.format.fps
        width, height = backend_of(runtime).frame_size(project.format.aspect_ratio)
        rendered = await prompts.arender("video_generator/motion", shot=shot, feedback=feedback)
        prompt = rendered.user
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
        intent = (
            f"animate a {shot.movement} {shot.size} shot from its first frame to its last frame"
        )
        spec = await find_workflow(runtime, intent, "image_to_video", arguments)
        file = await run_workflow(self, runtime, spec, arguments, label=label)
        info = await _probe(runtime, file)
        return Clip(
            shot=shot.id,
            prompt=prompt,
            seed=seed,
            duration_s=info.duration_s,
            fps=fps,
            frame_count=info.frame_count,
            workflow=spec.name,
            file=file,
            made_from=made_from,
        )

    async def finish(self, state: ProductionState, runtime: Runtime[Context]) -> dict[str, Any]:
        """Node: join the approved clips into one video."""
        backend = backend_of(runtime)
        files = runtime.context.files
        clips = ClipSet.model_validate(state["clips"]).clips
        fps = project_of(state).format.fps
        progress(runtime, "assembly", f"assembling {len(clips)} clips")

        async def join() -> bytes:
            videos = await asyncio.to_thread(lambda: [files.read(c.file) for c in clips])
            return await backend.assemble(videos, fps=fps)

        file = await self.generate_media(
            runtime,
            input_hash("assemble", [c.file.key for c in clips], fps),
            join,
            extension="mp4",
            media_type="video/mp4",
        )
        info = await _probe(runtime, file)
        video = Video(duration_s=info.duration_s, fps=fps, frame_count=info.frame_count, file=file)
        track = DialogueTrack.model_validate(state.get("dialogue") or {})
        if track.lines or track.beds:
            progress(
                runtime,
                "assembly",
                f"mixing {len(track.lines)} lines of dialogue and {len(track.beds)} scene beds",
            )
            scenes = {s.id: s.scene for s in ShotList.model_validate(state["shots"]).shots}
            film = cut(clips, track.lines, scenes, locate=lambda file: file.key)
            beds = cut_beds(track.beds, locate=lambda file: file.key)
            video = await mix_dialogue(self, runtime, video, film, beds)
        progress(runtime, "assembly", f"video ready: {video.file.key}")
        return {"video": video.model_dump(mode="json")}

    def summary(self, artifact: ClipSet) -> str:
        """Clip count and running time."""
        total = sum(c.duration_s for c in artifact.clips)
        return (
            f"{len(artifact.clips)} clips, {total:.1f} s. Approve them: the video is assembled "
            "from every scene's approved clips."
        )


def _keyframes(shot: Shot, frames: FrameSet) -> tuple[Frame, Frame]:
    """The approved start and end frames of ``shot``.

    Raises:
        ValueError: One of them is missing.
    """
    start, end = frames.frame(shot.id, "start"), frames.frame(shot.id, "end")
    if start is None or end is None:
        raise ValueError(f"shot {shot.id} has no approved start and end frames")
    return start, end


def _made_from(project: Project, shot: Shot, frames: FrameSet) -> str:
    """What a shot's clip is made from: the format, the shot and its two keyframes' files."""
    start, end = _keyframes(shot, frames)
    return input_hash(
        project.format.model_dump(mode="json"),
        shot.model_dump(mode="json"),
        start.file.key,
        end.file.key,
    )


async def _probe(runtime: Runtime[Context], file: MediaFile) -> VideoInfo:
    """Measure a stored video (read and decoded by ffmpeg in a worker thread)."""
    files = runtime.context.files
    return await asyncio.to_thread(lambda: probe(files.read(file)))
