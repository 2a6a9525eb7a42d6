"""Shot lister: the approved script and asset registry → shots per scene."""

from __future__ import annotations

from langgraph.runtime import Runtime

import prompts
from agents.artifacts import ShotList
from agents.base import Context, ProductionAgent, ProductionState, project_of


class ShotLister(ProductionAgent):
    """Splits the approved script into shots; never rewrites it."""

    name = "shot_lister"
    stage = "shots"
    artifact = ShotList
    description = "Splits each scene into shots with camera, timing and entities in frame."

    async def propose(self, state: ProductionState, runtime: Runtime[Context]) -> ShotList:
        """List the shots of every scene."""
        prompt = prompts.render(
            "shot_lister/list_shots",
            project=project_of(state),
            script=state["script"],
            assets=state["assets"],
        )
        return await self.generate(runtime, prompt, state, task="list_shots")

    def summary(self, artifact: ShotList) -> str:
        """Shot count and running time."""
        return f"{len(artifact.shots)} shots, {artifact.total_duration_s():.1f} s in total."
