"""``extract_assets``: the project's approved master script → its asset registry.

Run again after the master script changed, it extracts only what the new or changed scenes
add to the project's registry (the asset extractor is incremental).
"""

from __future__ import annotations

from langgraph.graph import StateGraph

from graphs.base import ProjectInput, WorkflowType, agent_pipeline


class ExtractAssets(WorkflowType):
    """Characters, locations and props with their looks, from the approved master script."""

    name = "extract_assets"
    description = (
        "Extracts the characters, locations and props of the project's approved master "
        "script; run again, only new or changed scenes are extracted."
    )
    input_model = ProjectInput
    takes = ("master_script",)
    reuses = ("assets",)

    def build(self) -> StateGraph:
        """The asset extractor alone."""
        return agent_pipeline(["asset_extractor"])
