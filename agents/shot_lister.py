"""Shot lister: the approved script and asset registry → shots per scene, drafted at once."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, HumanMessage
from langgraph.runtime import Runtime
from pydantic import ValidationError

import prompts
from agents._scenes import draft_scenes, named_scene, only_scene
from agents._shot_rules import check_scene_shots, check_shot_list, describe
from agents.artifacts import AssetRegistry, Scene, Script, Shot, ShotList
from agents.base import (
    Context,
    ProductionAgent,
    ProductionState,
    feedback_at,
    progress,
    project_of,
)
from evals import scorers
from evals.suite import AgentSuite, artifact_of
from tools.llm import StructuredOutputError

if TYPE_CHECKING:
    from evals.dataset import EvalItem


class ShotLister(ProductionAgent):
    """Splits the approved script into shots; never rewrites it.

    Each scene's shots are one model call, every scene at once; each call sees the whole
    script, master script and registry. A scene's shots are checked against the shot-list
    rules (every line of the scene covered once, in order; dialogue copied exactly and at
    most 2.5 words per second; entities and looks from the registry); a violation gets one
    repair call for that scene carrying the rules' messages. The whole list is checked
    again at the gate, which lists whatever still fails. Feedback that names one scene
    redrafts only that scene's shots; other feedback redrafts every scene.
    """

    name = "shot_lister"
    stage = "shots"
    artifact = ShotList
    requires = ("project", "script", "master_script", "assets")
    description = "Splits each scene into shots with camera, timing and entities in frame."
    per_scene = True

    async def propose(self, state: ProductionState, runtime: Runtime[Context]) -> ShotList:
        """List the shots of every scene (or of the one scene the feedback names).

        With a scene in production, only that scene's shots are listed.
        """
        script = Script.model_validate(state["script"])
        assets = AssetRegistry.model_validate(state["assets"])
        kept: dict[int, list[Shot]] = {}
        numbers = [scene.number for scene in script.scenes]
        previous = state.get("drafts", {}).get(self.stage)
        feedback = feedback_at(state, self.stage)
        if (in_production := state.get("scene")) is not None:
            numbers = [in_production]
        elif previous and feedback:
            number = named_scene(feedback[-1], len(script.scenes))
            if number is not None:
                progress(runtime, self.stage, f"listing the shots of scene {number} only")
                kept = _by_scene(ShotList.model_validate(previous))
                numbers = [number]

        async def list_scene(number: int) -> list[Shot]:
            return await self._list_scene(state, runtime, script.scenes[number - 1], assets)

        drafted = await draft_scenes(
            runtime, self.stage, "shot list", numbers, list_scene, total=len(script.scenes)
        )
        by_scene = kept | dict(zip(numbers, drafted, strict=True))
        shots = [shot for number in sorted(by_scene) for shot in by_scene[number]]
        try:
            return ShotList(shots=shots)
        except ValidationError as error:
            raise StructuredOutputError(
                f"the scenes' shots do not make one shot list: {error}"
            ) from error

    async def _list_scene(
        self,
        state: ProductionState,
        runtime: Runtime[Context],
        scene: Scene,
        assets: AssetRegistry,
    ) -> list[Shot]:
        """The shots of one scene, with one repair if a rule is broken."""
        number = scene.number
        prompt = await prompts.arender(
            "shot_lister/list_scene_shots",
            project=project_of(state),
            script=state["script"],
            master_script=state["master_script"],
            assets=state["assets"],
            scene=number,
        )
        ask = only_scene(state, self.stage, number)

        async def generate(follow_up: list[AIMessage | HumanMessage]) -> ShotList:
            return await self.generate(
                runtime,
                prompt,
                state,
                task="list_scene_shots",
                follow_up=[*ask, *follow_up],
                scene=number,
            )

        shots = await generate([])
        violations = check_scene_shots(shots.shots, scene, assets)
        if not violations:
            return shots.shots
        progress(
            runtime,
            self.stage,
            f"the shots of scene {number} break {len(violations)} rule(s); asking for a repair",
        )
        repaired = await generate(
            [
                AIMessage(shots.model_dump_json()),
                HumanMessage(
                    f"Your shots of scene {number} break these rules:\n"
                    f"{describe(violations)}\n"
                    "Fix every one without rewriting the script, and answer with the whole "
                    "corrected JSON object."
                ),
            ]
        )
        return repaired.shots

    def problems(self, artifact: ShotList, state: ProductionState) -> list[str]:
        """Shot-list rules the proposal breaks (the scene in production's, or the whole's)."""
        script = Script.model_validate(state["script"])
        assets = AssetRegistry.model_validate(state["assets"])
        scene = state.get("scene")
        violations = (
            check_shot_list(artifact, script, assets)
            if scene is None
            else check_scene_shots(artifact.shots, script.scenes[scene - 1], assets)
        )
        return [violation.message for violation in violations]

    def summary(self, artifact: ShotList) -> str:
        """Shot count and running time; naming a scene in feedback redrafts only it."""
        return (
            f"{len(artifact.shots)} shots, {artifact.total_duration_s():.1f} s in total. "
            "Approve, edit or give feedback (name a scene to change only its shots)."
        )


def _by_scene(shots: ShotList) -> dict[int, list[Shot]]:
    grouped: dict[int, list[Shot]] = defaultdict(list)
    for shot in shots.shots:
        grouped[shot.scene].append(shot)
    return dict(grouped)


# --- eval suite ------------------------------------------------------------------------------


class ShotsSuite(AgentSuite):
    """The shot lister on gold scripts and registries: rules, faithfulness, the gold split."""

    name = "shots"
    target = "shot_lister"
    output = "shots"
    metrics = scorers.SHOT_METRICS
    needs = ("script", "assets")

    def payload(self, item: EvalItem) -> dict[str, Any]:
        """The gold script, master script and registry."""
        return item.state("script", "master_script", "assets")

    def score(self, item: EvalItem, values: dict[str, Any]) -> dict[str, float | None]:
        """The shot-list scores of the drafted list against the item's own gold."""
        assert item.script is not None and item.assets is not None
        shots = artifact_of(values, "shots", ShotList)
        return scorers.shot_scores(shots, item.script, item.assets, item.split())
