"""``full_video``: from a brief to the film, every production agent in order.

Brief → script → assets → references → casting → shots → dialogue → frames → clips → film.
"""

from __future__ import annotations

from langgraph.graph import StateGraph

from graphs.base import WorkflowType, agent_pipeline


class FullVideo(WorkflowType):
    """The whole production, one approval gate per stage."""

    name = "full_video"
    description = (
        "From a brief to an assembled film: script, assets, reference sheets, casting, shot "
        "list, spoken dialogue, keyframes, clips, the mixed assembly — each stage approved by "
        "the person."
    )

    def build(self) -> StateGraph:
        """Every production agent in order; the video generator ends with the assembly."""
        return agent_pipeline(
            [
                "script_writer",
                "asset_extractor",
                "reference_designer",
                "casting",
                "shot_lister",
                "dialogue_speaker",
                "frame_generator",
                "video_generator",
            ]
        )
