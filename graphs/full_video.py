"""``full_video``: brief → script → assets → shots → frames → clips → assembled video."""

from __future__ import annotations

from langgraph.graph import StateGraph

from graphs.base import WorkflowType, agent_pipeline


class FullVideo(WorkflowType):
    """The whole production, one approval gate per stage."""

    name = "full_video"
    description = (
        "From a brief to an assembled video: script, assets, shot list, keyframes, clips, "
        "assembly — each stage approved by the person."
    )

    def build(self) -> StateGraph:
        """Every production agent in order; the video generator ends with the assembly."""
        return agent_pipeline(
            [
                "script_writer",
                "asset_extractor",
                "shot_lister",
                "frame_generator",
                "video_generator",
            ]
        )
