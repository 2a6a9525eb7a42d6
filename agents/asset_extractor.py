"""Asset extractor: the approved script → characters, locations and props with their looks."""

from __future__ import annotations

from langgraph.runtime import Runtime

import prompts
from agents.artifacts import AssetRegistry
from agents.base import Context, ProductionAgent, ProductionState, project_of


class AssetExtractor(ProductionAgent):
    """Extracts the asset registry once from the approved script."""

    name = "asset_extractor"
    stage = "assets"
    artifact = AssetRegistry
    description = "Extracts characters, locations and props with looks per scene."

    async def propose(self, state: ProductionState, runtime: Runtime[Context]) -> AssetRegistry:
        """Extract the registry from the approved script."""
        prompt = prompts.render(
            "asset_extractor/extract_assets", project=project_of(state), script=state["script"]
        )
        return await self.generate(runtime, prompt, state, task="extract_assets")

    def summary(self, artifact: AssetRegistry) -> str:
        """Counts per kind."""
        return (
            f"{len(artifact.characters)} characters, {len(artifact.locations)} locations, "
            f"{len(artifact.props)} props. Deselect what you do not want pre-generated."
        )
