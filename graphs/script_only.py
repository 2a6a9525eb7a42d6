"""``script_only``: a brief (or your own screenplay) → treatment → script → master script."""

from __future__ import annotations

from langgraph.graph import StateGraph

from graphs.base import WorkflowType, agent_pipeline


class ScriptOnly(WorkflowType):
    """The writing stages alone, each approved by the person."""

    name = "script_only"
    description = (
        "From a brief, or your own screenplay, to an approved master script: treatment, "
        "script and master script, each approved by the person."
    )

    def build(self) -> StateGraph:
        """The script writer alone."""
        return agent_pipeline(["script_writer"])
