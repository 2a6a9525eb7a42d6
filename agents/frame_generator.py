"""Frame generator: start and end keyframes for every shot."""

from __future__ import annotations

from langgraph.runtime import Runtime

import prompts
from agents.artifacts import AssetRegistry, Frame, FrameSet, Project, Shot, ShotList, input_hash
from agents.base import (
    Context,
    ProductionAgent,
    ProductionState,
    feedback_at,
    progress,
    project_of,
)
from tools.draft_renderer import StoryboardCard, frame_size

POSITIONS = ("start", "end")


class FrameGenerator(ProductionAgent):
    """Renders the keyframes each shot starts and ends on."""

    name = "frame_generator"
    stage = "frames"
    artifact = FrameSet
    description = "Generates start and end keyframes per shot from the shot list and assets."

    async def propose(self, state: ProductionState, runtime: Runtime[Context]) -> FrameSet:
        """Render every keyframe; feedback goes into every frame's prompt."""
        project = project_of(state)
        shots = ShotList.model_validate(state["shots"]).shots
        assets = AssetRegistry.model_validate(state["assets"])
        feedback = feedback_at(state, self.stage)
        total = len(shots) * len(POSITIONS)
        frames: list[Frame] = []
        for shot in shots:
            for position in POSITIONS:
                frames.append(
                    await self._keyframe(runtime, project, assets, shot, position, feedback)
                )
                progress(runtime, self.stage, f"frame {len(frames)}/{total} done", shot=shot.id)
        return FrameSet(frames=frames)

    async def _keyframe(
        self,
        runtime: Runtime[Context],
        project: Project,
        assets: AssetRegistry,
        shot: Shot,
        position: str,
        feedback: list[str],
    ) -> Frame:
        backend = runtime.context.backend
        entities = assets.entities()
        in_frame = [
            {
                "name": entities[e.entity].name,
                "look": e.look,
                "description": entities[e.entity].description,
            }
            for e in shot.entities
            if e.entity in entities
        ]
        description = shot.start_frame if position == "start" else shot.end_frame
        prompt = prompts.render(
            "frame_generator/keyframe",
            position=position,
            shot=shot,
            description=description,
            entities=in_frame,
            project=project,
            feedback=feedback,
        )
        seed = int(input_hash(shot.id, position, len(feedback))[:8], 16)
        card = StoryboardCard(
            title=f"Shot {shot.id} · {position} frame",
            description=description,
            details=(
                ("Framing", shot.size),
                ("Camera", f"{shot.lens}, {shot.angle}, {shot.movement}"),
                ("In frame", ", ".join(f"{e['name']} ({e['look']})" for e in in_frame) or "—"),
                ("Duration", f"{shot.duration_s:g} s"),
            ),
            style=project.visual_style,
            note=feedback[-1] if feedback else "",
            seed=seed,
        )
        size = frame_size(project.format.aspect_ratio)
        file = await self.generate_media(
            runtime,
            input_hash(backend.name, "keyframe", prompt.user, card, size),
            lambda: backend.keyframe(card, size=size),
            extension="png",
            media_type="image/png",
        )
        return Frame(
            shot=shot.id,
            position=position,
            prompt=prompt.user,
            seed=seed,
            workflow=f"{backend.name}/keyframe",
            file=file,
        )

    def summary(self, artifact: FrameSet) -> str:
        """Frame count."""
        return f"{len(artifact.frames)} keyframes. Approve, or give feedback to regenerate."
