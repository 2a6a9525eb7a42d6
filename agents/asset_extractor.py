"""Asset extractor: the approved master script → characters, locations and props with looks.

The registry is extracted ONCE. When the extractor runs again on a thread that already has
an approved registry (scenes were added or changed since), only the new or changed scenes
go to the model; what it answers is merged into the kept registry, and the scene usage of
those scenes is replaced. ``asset_extraction`` in the state records the hash of every scene
the registry covers and how many extraction model calls the run has made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langgraph.runtime import Runtime
from pydantic import BaseModel, ConfigDict, Field, ValidationError

import prompts
from agents.artifacts import (
    AssetRegistry,
    Character,
    Location,
    Look,
    MasterScene,
    MasterScript,
    Prop,
    SceneUsage,
    input_hash,
)
from agents.base import Context, ProductionAgent, ProductionState, progress, project_of
from evals import scorers
from evals.suite import AgentSuite, artifact_of
from tools.llm import StructuredOutputError

if TYPE_CHECKING:
    from evals.dataset import EvalItem


def scene_hashes(master: MasterScript) -> dict[str, str]:
    """The content hash of every master-script scene, by scene number (as JSON keys)."""
    return {str(scene.number): input_hash(scene.model_dump(mode="json")) for scene in master.scenes}


class RegistryAddition(BaseModel):
    """What new or changed scenes add: entities and looks, and those scenes' usage.

    Its usage may name entities of the kept registry, so it is checked only once merged.
    """

    model_config = ConfigDict(extra="forbid")

    characters: list[Character] = Field(default_factory=list)
    locations: list[Location] = Field(default_factory=list)
    props: list[Prop] = Field(default_factory=list)
    scene_usage: list[SceneUsage] = Field(default_factory=list)


def merge(registry: AssetRegistry, addition: RegistryAddition, scenes: set[int]) -> AssetRegistry:
    """Add what ``addition`` extracted from ``scenes`` to ``registry``, keeping the rest.

    New entities are added; an existing entity gains only the looks it lacks (its static
    features stay as approved); the usage of ``scenes`` is replaced by the addition's.

    Raises:
        ValidationError: The merged registry names an entity or look that does not exist.
    """
    merged = registry.model_copy(deep=True)
    for kind, field in (("characters", "looks"), ("locations", "variants"), ("props", "states")):
        existing = {entity.id: entity for entity in getattr(merged, kind)}
        for entity in getattr(addition, kind):
            if entity.id not in existing:
                getattr(merged, kind).append(entity)
                continue
            looks: list[Look] = getattr(existing[entity.id], field)
            known = {look.name for look in looks}
            looks.extend(look for look in getattr(entity, field) if look.name not in known)
    kept = [usage for usage in merged.scene_usage if usage.scene not in scenes]
    added = [usage for usage in addition.scene_usage if usage.scene in scenes]
    merged.scene_usage = sorted([*kept, *added], key=lambda usage: usage.scene)
    return AssetRegistry.model_validate(merged.model_dump())


class AssetExtractor(ProductionAgent):
    """Extracts the asset registry once from the approved master script, then incrementally."""

    name = "asset_extractor"
    stage = "assets"
    artifact = AssetRegistry
    requires = ("project", "master_script")
    bookkeeping = ("asset_extraction",)
    description = "Extracts characters, locations and props with looks per scene."

    async def draft(self, state: ProductionState, runtime: Runtime[Context]) -> dict[str, Any]:
        """Node: draft the registry and record the scenes it covers and the calls made."""
        update = await super().draft(state, runtime)
        if update["drafts"][self.stage] is None:
            return update
        master = MasterScript.model_validate(state["master_script"])
        calls = sum(not generation["cached"] for generation in update["generations"])
        previous_calls = state.get("asset_extraction", {}).get("calls", 0)
        update["asset_extraction"] = {
            "scenes": scene_hashes(master),
            "calls": previous_calls + calls,
        }
        return update

    async def propose(self, state: ProductionState, runtime: Runtime[Context]) -> AssetRegistry:
        """Extract the registry, or only what new or changed scenes add to the approved one."""
        master = MasterScript.model_validate(state["master_script"])
        if "assets" not in state:
            prompt = await prompts.arender(
                "asset_extractor/extract_assets",
                project=project_of(state),
                master_script=master.model_dump(mode="json"),
            )
            return await self.generate(runtime, prompt, state, task="extract_assets")
        registry = AssetRegistry.model_validate(state["assets"])
        covered = state.get("asset_extraction", {}).get("scenes", {})
        current = scene_hashes(master)
        changed = [s for s in master.scenes if covered.get(str(s.number)) != current[str(s.number)]]
        numbers = {scene.number for scene in master.scenes}
        registry.scene_usage = [u for u in registry.scene_usage if u.scene in numbers]
        if not changed:
            progress(runtime, self.stage, "no new or changed scenes; the registry is kept")
            return registry
        return await self._extend(state, runtime, registry, changed)

    async def _extend(
        self,
        state: ProductionState,
        runtime: Runtime[Context],
        registry: AssetRegistry,
        scenes: list[MasterScene],
    ) -> AssetRegistry:
        numbers = [scene.number for scene in scenes]
        progress(runtime, self.stage, f"extracting assets of new or changed scenes {numbers}")
        prompt = await prompts.arender(
            "asset_extractor/extend_assets",
            project=project_of(state),
            registry=registry.model_dump(mode="json"),
            scenes=[scene.model_dump(mode="json") for scene in scenes],
        )
        repair: list[BaseMessage] = []
        for _ in range(2):  # the answer, then one repair with what the merge found wrong
            addition = await self.generate(
                runtime,
                prompt,
                state,
                task="extend_assets",
                artifact=RegistryAddition,
                follow_up=repair,
            )
            try:
                return merge(registry, addition, set(numbers))
            except ValidationError as error:
                problem = error
                repair = [
                    AIMessage(addition.model_dump_json()),
                    HumanMessage(
                        f"Merged into the registry, your answer is not valid: {error}\n"
                        "Answer with the whole corrected JSON object."
                    ),
                ]
        raise StructuredOutputError(
            f"the assets of scenes {numbers} still do not fit the registry: {problem}"
        )

    def summary(self, artifact: AssetRegistry) -> str:
        """Counts per kind."""
        return (
            f"{len(artifact.characters)} characters, {len(artifact.locations)} locations, "
            f"{len(artifact.props)} props. Deselect what you do not want pre-generated."
        )


# --- eval suite ------------------------------------------------------------------------------


class ExtractionSuite(AgentSuite):
    """The extractor on gold scripts: entities and each scene's looks against the gold registry."""

    name = "extraction"
    target = "asset_extractor"
    output = "assets"
    metrics = (*scorers.REGISTRY_METRICS, "extraction_calls")
    needs = ("script", "assets")

    def payload(self, item: EvalItem) -> dict[str, Any]:
        """The gold script and its master script."""
        return item.state("script", "master_script")

    def score(self, item: EvalItem, values: dict[str, Any]) -> dict[str, float | None]:
        """Precision, recall and F1 of entities and looks; the extraction's model calls."""
        assert item.assets is not None
        extracted = artifact_of(values, "assets", AssetRegistry)
        return {
            **scorers.registry_scores(extracted, item.assets),
            "extraction_calls": values.get("asset_extraction", {}).get("calls"),
        }
