"""Script writer: brief and project configuration → a screenplay of numbered scenes."""

from __future__ import annotations

from langgraph.runtime import Runtime

import prompts
from agents.artifacts import Script
from agents.base import Context, ProductionAgent, ProductionState, project_of


class ScriptWriter(ProductionAgent):
    """Writes the script the rest of the production is built from."""

    name = "script_writer"
    stage = "script"
    artifact = Script
    description = "Writes a screenplay (scenes, action, dialogue) from the brief."

    async def propose(self, state: ProductionState, runtime: Runtime[Context]) -> Script:
        """Draft the script from the brief and configuration."""
        prompt = prompts.render("script_writer/draft_script", project=project_of(state))
        return await self.generate(runtime, prompt, state, task="draft_script")

    def summary(self, artifact: Script) -> str:
        """Title and scene count."""
        scenes = len(artifact.scenes)
        return f"Script '{artifact.title}': {scenes} scenes. Approve, edit or give feedback."
