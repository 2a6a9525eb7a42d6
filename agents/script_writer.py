"""Script writer: brief → three treatments → script → master script, each step approved.

Feedback regenerates a step with the conversation so far; feedback that names exactly one
scene ("scene 2: make the landing funnier") revises only that scene and splices it back,
so every other scene stays byte for byte as approved in the person's eyes. The master
script is drafted one call per scene, all scenes at once (:mod:`agents._scenes`). A
screenplay given as workflow input ("skip to script") arrives as the ``script`` artifact,
and the agent starts at the master script.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from langgraph.runtime import Runtime
from pydantic import BaseModel, Field

import prompts
from agents._scenes import draft_scenes, named_scene, only_scene
from agents._screenplay import parse_screenplay
from agents.artifacts import (
    MasterScene,
    MasterScript,
    Project,
    Scene,
    Script,
    TreatmentOptions,
    Treatments,
)
from agents.base import (
    Context,
    ProductionAgent,
    ProductionState,
    Step,
    feedback_at,
    progress,
    project_of,
)
from evals import scorers
from evals.suite import AgentSuite, artifact_of

if TYPE_CHECKING:
    from evals.dataset import EvalItem

AGENT = "script_writer"

SceneT = TypeVar("SceneT", Scene, MasterScene)


class SceneRevision(BaseModel, Generic[SceneT]):
    """The answer to scene-scoped feedback: the scenes that replace the named one."""

    scenes: list[SceneT]


class ScriptSceneRevision(SceneRevision[Scene]):
    """A script scene revised: none (cut), one (changed) or several (split or added)."""


class MasterSceneRevision(SceneRevision[MasterScene]):
    """A master-script scene revised; the master script keeps the script's scenes."""

    scenes: list[MasterScene] = Field(min_length=1, max_length=1)


def splice(scenes: Sequence[SceneT], number: int, replacement: Sequence[SceneT]) -> list[SceneT]:
    """Replace scene ``number`` with ``replacement`` and renumber every scene 1..n."""
    spliced = [*scenes[: number - 1], *replacement, *scenes[number:]]
    return [scene.model_copy(update={"number": i}) for i, scene in enumerate(spliced, start=1)]


class ScriptWriter(ProductionAgent):
    """Writes the treatments, the script and the master script the production is built from.

    Its first step is the treatment: three clearly different takes on the brief; the person
    approves the recommended one, edits ``chosen`` to pick another, or asks for new ones.
    """

    name = AGENT
    stage = "treatment"
    artifact = Treatments
    requires = ("project",)
    description = (
        "Offers three treatments, writes the script of the chosen one, then the master "
        "script in visual prose."
    )

    def steps(self) -> Sequence[Step]:
        """Treatment, script, master script."""
        return (self, ScriptStep(agent=AGENT), MasterScriptStep(agent=AGENT))

    async def propose(self, state: ProductionState, runtime: Runtime[Context]) -> Treatments:
        """Three treatments of the brief."""
        project = project_of(state)
        prompt = await prompts.arender("script_writer/draft_treatments", project=project)
        options = await self.generate(
            runtime, prompt, state, task="draft_treatments", artifact=TreatmentOptions
        )
        recommended = options.chosen_treatment()
        configuration = project.config().model_copy(
            update={
                "title": project.title or recommended.title,
                "written_style": project.written_style or recommended.tone,
            }
        )
        return Treatments(**dict(options), configuration=configuration)

    def on_approval(self, artifact: BaseModel, state: ProductionState) -> dict[str, Any]:
        """An approved configuration becomes the project's."""
        assert isinstance(artifact, Treatments)
        if artifact.configuration is None:
            return {}
        project = Project(**dict(artifact.configuration), brief=project_of(state).brief)
        return {"project": project.model_dump(mode="json")}

    def summary(self, artifact: Treatments) -> str:
        """Which option is recommended and how to pick another."""
        chosen = artifact.chosen
        return (
            f"Three treatments; option {chosen} ('{artifact.chosen_treatment().title}') is "
            f"recommended. Approve to write option {chosen}, edit 'chosen' to pick another, "
            "or give feedback."
        )

    def problems(self, artifact: Treatments, state: ProductionState) -> list[str]:
        """Options that are not clearly different (same title or logline)."""
        seen: dict[str, int] = {}
        problems = []
        for number, option in enumerate(artifact.options, start=1):
            for text in (option.title, option.logline):
                key = " ".join(text.lower().split())
                if key in seen and seen[key] != number:
                    problems.append(f"options {seen[key]} and {number} repeat '{text}'")
                seen.setdefault(key, number)
        return problems


class _SceneDocumentStep(Step):
    """A step whose artifact is a list of numbered scenes, revisable one scene at a time."""

    revision: type[SceneRevision]
    revise_task: str
    """The task name of a one-scene revision (its own offline recording and records)."""
    document: str
    answer_shape: str

    async def propose(self, state: ProductionState, runtime: Runtime[Context]) -> BaseModel:
        """Revise only the named scene when the latest feedback names one; else draft anew."""
        previous = state.get("drafts", {}).get(self.stage)
        feedback = feedback_at(state, self.stage)
        if previous and feedback:
            current = self.artifact.model_validate(previous)
            number = named_scene(feedback[-1], len(current.scenes))
            if number is not None:
                return await self._revise_scene(state, runtime, current, number, feedback[-1])
        return await self.draft_whole(state, runtime)

    @abstractmethod
    async def draft_whole(self, state: ProductionState, runtime: Runtime[Context]) -> BaseModel:
        """Draft the whole document (the conversation so far included)."""

    async def _revise_scene(
        self,
        state: ProductionState,
        runtime: Runtime[Context],
        current: Script | MasterScript,
        number: int,
        feedback: str,
    ) -> BaseModel:
        progress(runtime, self.stage, f"revising scene {number} only")
        prompt = await prompts.arender(
            "script_writer/revise_scene",
            project=project_of(state),
            document=self.document,
            current=current.model_dump(mode="json"),
            scene=number,
            feedback=feedback,
            answer_shape=self.answer_shape,
        )
        revision = await self.generate(
            runtime,
            prompt,
            state,
            task=self.revise_task,
            artifact=self.revision,
            with_conversation=False,
        )
        scenes = splice(current.scenes, number, revision.scenes)
        return current.model_copy(update={"scenes": scenes})


class ScriptStep(_SceneDocumentStep):
    """The screenplay of the chosen treatment: numbered scenes of action and dialogue."""

    stage = "script"
    artifact = Script
    requires = ("project", "treatment")
    from_text = staticmethod(parse_screenplay)
    revision = ScriptSceneRevision
    revise_task = "revise_scene"
    document = "script"
    answer_shape = (
        "an empty list to cut it, one scene to change it, several scenes to split it or to "
        "add scenes next to it. Scene numbers are renumbered afterwards."
    )

    async def draft_whole(self, state: ProductionState, runtime: Runtime[Context]) -> Script:
        """The script of the chosen treatment."""
        treatment = Treatments.model_validate(state["treatment"]).chosen_treatment()
        prompt = await prompts.arender(
            "script_writer/draft_script", project=project_of(state), treatment=treatment
        )
        return await self.generate(runtime, prompt, state, task="draft_script")

    def summary(self, artifact: Script) -> str:
        """Title and scene count."""
        scenes = len(artifact.scenes)
        return (
            f"Script '{artifact.title}': {scenes} scenes. Approve, edit or give feedback "
            "(name a scene to change only that scene)."
        )


class MasterScriptStep(_SceneDocumentStep):
    """The approved script's scenes rewritten as very descriptive visual prose."""

    stage = "master_script"
    artifact = MasterScript
    requires = ("project", "script")
    revision = MasterSceneRevision
    revise_task = "revise_master_scene"
    document = "master script"
    answer_shape = "exactly one scene, with the same number and slugline."

    async def draft_whole(self, state: ProductionState, runtime: Runtime[Context]) -> MasterScript:
        """Visual prose for every scene of the approved script, all scenes at once."""
        script = Script.model_validate(state["script"])
        project = project_of(state)

        async def write(number: int) -> MasterScene:
            prompt = await prompts.arender(
                "script_writer/write_master_scene",
                project=project,
                script=state["script"],
                scene=number,
            )
            scene = await self.generate(
                runtime,
                prompt,
                state,
                task="write_master_scene",
                artifact=MasterScene,
                follow_up=only_scene(state, self.stage, number),
                scene=number,
            )
            # its place in the document; a wrong slugline is shown at the gate (`problems`)
            return scene.model_copy(update={"number": number})

        numbers = [scene.number for scene in script.scenes]
        scenes = await draft_scenes(
            runtime, self.stage, "master script", numbers, write, total=len(numbers)
        )
        return MasterScript(title=script.title, scenes=scenes)

    def summary(self, artifact: MasterScript) -> str:
        """Scene count."""
        return (
            f"Master script: {len(artifact.scenes)} scenes in visual prose. Approve, edit or "
            "give feedback (name a scene to change only that scene)."
        )

    def problems(self, artifact: MasterScript, state: ProductionState) -> list[str]:
        """Scenes that do not match the approved script's numbering and sluglines."""
        script = Script.model_validate(state["script"])
        expected = [(s.number, s.slugline) for s in script.scenes]
        given = [(s.number, s.slugline) for s in artifact.scenes]
        if given == expected:
            return []
        return [f"the master script's scenes {given} do not match the script's scenes {expected}"]


# --- eval suite ------------------------------------------------------------------------------


class ScriptSuite(AgentSuite):
    """The writer from each item's brief: the gold's characters and props named, judged."""

    name = "script"
    target = AGENT
    output = "script"
    metrics = ("gold_mentions",)
    judged = "script"

    def payload(self, item: EvalItem) -> dict[str, Any]:
        """The project alone: the writer starts from the brief."""
        return item.state()

    def score(self, item: EvalItem, values: dict[str, Any]) -> dict[str, float | None]:
        """How many of the gold's characters and props the script names."""
        return scorers.mention_scores(artifact_of(values, "script", Script), item.assets)
