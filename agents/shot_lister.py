"""Shot lister: the approved script and asset registry → shots per scene."""

from __future__ import annotations

from langchain_core.messages import AIMessage, HumanMessage
from langgraph.runtime import Runtime

import prompts
from agents._shot_rules import Violation, check_shot_list, describe
from agents.artifacts import AssetRegistry, Script, ShotList
from agents.base import Context, ProductionAgent, ProductionState, progress, project_of


class ShotLister(ProductionAgent):
    """Splits the approved script into shots; never rewrites it.

    The proposal is checked against the shot-list rules (every script line covered once,
    in order; dialogue copied exactly and at most 2.5 words per second; entities and looks
    from the registry). A violation gets one repair call carrying the rules' messages;
    whatever still fails is listed at the gate.
    """

    name = "shot_lister"
    stage = "shots"
    artifact = ShotList
    description = "Splits each scene into shots with camera, timing and entities in frame."

    async def propose(self, state: ProductionState, runtime: Runtime[Context]) -> ShotList:
        """List the shots of every scene, with one repair if a rule is broken."""
        prompt = prompts.render(
            "shot_lister/list_shots",
            project=project_of(state),
            script=state["script"],
            master_script=state["master_script"],
            assets=state["assets"],
        )
        shots = await self.generate(runtime, prompt, state, task="list_shots")
        violations = self._violations(shots, state)
        if not violations:
            return shots
        progress(
            runtime,
            self.stage,
            f"the shot list breaks {len(violations)} rule(s); asking for a repair",
        )
        repair = [
            AIMessage(shots.model_dump_json()),
            HumanMessage(
                "Your shot list breaks these rules:\n"
                f"{describe(violations)}\n"
                "Fix every one without rewriting the script, and answer with the whole "
                "corrected JSON object."
            ),
        ]
        return await self.generate(runtime, prompt, state, task="list_shots", follow_up=repair)

    def problems(self, artifact: ShotList, state: ProductionState) -> list[str]:
        """Shot-list rules the proposal breaks."""
        return [violation.message for violation in self._violations(artifact, state)]

    @staticmethod
    def _violations(shots: ShotList, state: ProductionState) -> list[Violation]:
        script = Script.model_validate(state["script"])
        assets = AssetRegistry.model_validate(state["assets"])
        return check_shot_list(shots, script, assets)

    def summary(self, artifact: ShotList) -> str:
        """Shot count and running time."""
        return f"{len(artifact.shots)} shots, {artifact.total_duration_s():.1f} s in total."
