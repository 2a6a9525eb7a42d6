"""``full_video``: from a brief to the film, every production agent in order.

Brief → script → assets → references → casting, then scene by scene (scene 1 to N): the
scene's instances → shots → dialogue → frames → clips; then the film assembled from every
scene.
"""

from __future__ import annotations

from langgraph.graph import StateGraph

from graphs.base import WorkflowType, agent_pipeline


class FullVideo(WorkflowType):
    """The whole production, one approval gate per stage (per stage and scene in the cycle)."""

    name = "full_video"
    description = (
        "From a brief to an assembled film: script, assets, reference sheets, casting, then "
        "scene by scene the assets in the scene's context, its shots, spoken dialogue, "
        "keyframes and clips, and the mixed assembly — each stage approved by the person."
    )

    def build(self) -> StateGraph:
        """The writing and design agents, then the scene cycle; the assembly ends it."""
        return agent_pipeline(
            ["script_writer", "asset_extractor", "reference_designer", "casting"],
            scene_cycle=[
                "scene_instances",
                "shot_lister",
                "dialogue_speaker",
                "frame_generator",
                "video_generator",
            ],
        )
