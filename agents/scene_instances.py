"""Scene instances: each asset of a scene in the look and context of that scene.

In a production's scene cycle, before the scene's shots, each selected asset the scene uses
(``AssetRegistry.scene_usage``) gets its image for the scene, from its reference: the latest
approved instance of the asset in the same look from an earlier scene, else that look's
sheet. An asset starting a look here is drawn in this scene's place, light and state by the
image-to-image workflow discovery finds (called as a tool); one going on in the look an
earlier scene approved keeps that image as it is (nothing is paid) until the person names it
in feedback to draw it in this scene's context. So what an approved scene made of an asset
(mud on the coat, a broken lamp) carries into the next scene, and a look change starts again
from the new look's sheet.

The gate shows, per asset, the drawn candidates, the reference and the asset's history (its
instances in earlier scenes, newest first, then its sheets). An edit chooses any of these
(the reference as it is costs nothing) or skips the asset (its keyframes then use its
sheet); feedback naming assets ("Dora muddier") draws only those again, feedback naming none
draws every one. The approved instances are the references of the scene's keyframes.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from langgraph.runtime import Runtime
from pydantic import BaseModel

import prompts
from agents._media import backend_of, fan_out, find_workflow, run_workflow
from agents.artifacts import (
    AssetRegistry,
    Character,
    Location,
    MasterScene,
    MasterScript,
    Project,
    Prop,
    ReferenceOption,
    ReferenceSheets,
    SceneInstance,
    SceneInstances,
    SceneUsage,
    SheetCandidate,
    input_hash,
)
from agents.base import (
    Context,
    Edit,
    ProductionAgent,
    ProductionState,
    feedback_at,
    project_of,
)

__all__ = ["SceneInstancer"]


class SceneInstancer(ProductionAgent):
    """Draws the scene's assets in its context, each from its latest approved image."""

    name = "scene_instances"
    stage = "instances"
    artifact = SceneInstances
    requires = ("project", "master_script", "assets", "references")
    per_scene = True
    description = (
        "Draws each asset of a scene in that scene's look and context, from its latest "
        "approved image (an earlier scene's instance, else its sheet)."
    )

    async def propose(self, state: ProductionState, runtime: Runtime[Context]) -> SceneInstances:
        """Draw every asset of the scene, or after feedback those it names (all if none).

        Raises:
            ValueError: No scene is in production (instances are drawn scene by scene).
        """
        scene = state.get("scene")
        if scene is None:
            raise ValueError("scene instances are drawn scene by scene: run them in a scene cycle")
        project = project_of(state)
        assets = AssetRegistry.model_validate(state["assets"])
        sheets = ReferenceSheets.model_validate(state["references"])
        master = MasterScript.model_validate(state["master_script"]).scenes[scene - 1]
        approved = SceneInstances.model_validate(state.get("instances") or {})
        previous = state.get("drafts", {}).get(self.stage)
        current = SceneInstances.model_validate(previous) if previous else None
        feedback = feedback_at(state, self.stage)
        named = assets.named_in(feedback[-1]) if current and feedback else None
        note = f"regenerated: {feedback[-1]}" if current and feedback else ""
        entities = assets.entities()
        wanted = [
            usage
            for usage in assets.in_scene(scene)
            if usage.entity in entities and usage.entity not in assets.deselected
        ]
        kept = {i.entity: i for i in current.instances} if current else {}
        # The reference: the latest approved instance in the same look from an earlier
        # scene, else the look's sheet. A first draft draws the assets that start a look
        # here, from its sheet; one going on in the look an earlier scene approved keeps that
        # scene's image as it is (no job) until the person asks for it in this scene's
        # context by naming it.
        earlier = {u.entity: _earlier_instance(approved, scene, u) for u in wanted}
        goes_on = {entity for entity, instance in earlier.items() if instance is not None}
        references = {
            u.entity: earlier[u.entity].as_reference()  # type: ignore[union-attr]
            if u.entity in goes_on
            else _sheet_reference(sheets, u)
            for u in wanted
        }
        todo = [
            usage
            for usage in wanted
            if references[usage.entity] is not None
            and (
                usage.entity not in goes_on
                if current is None
                else named is None or usage.entity in named
            )
        ]
        jobs = [
            partial(
                self._candidate,
                runtime,
                project,
                entities[usage.entity],
                usage,
                master,
                references[usage.entity],
                sheets,
                feedback,
                note,
            )
            for usage in todo
        ]
        drawn = dict(zip((u.entity for u in todo), await fan_out(runtime, jobs), strict=True))
        instances = []
        for usage in wanted:
            old = kept.get(usage.entity)
            if usage.entity not in drawn and old is not None:
                instances.append(old)
                continue
            made, reference = drawn.get(usage.entity), references[usage.entity]
            candidates = [*(old.candidates if old else []), *([made] if made else [])]
            instances.append(
                SceneInstance(
                    scene=scene,
                    entity=usage.entity,
                    look=usage.look,
                    reference=reference,
                    file=made.file if made else reference.file if reference else None,
                    candidates=candidates,
                    history=_history(approved, sheets, usage.entity, scene),
                    skipped=reference is None,  # nothing to draw it from: its sheet was skipped
                )
            )
        return SceneInstances(instances=instances)

    async def _candidate(
        self,
        runtime: Runtime[Context],
        project: Project,
        entity: Character | Location | Prop,
        usage: SceneUsage,
        scene: MasterScene,
        reference: ReferenceOption,
        sheets: ReferenceSheets,
        feedback: list[str],
        note: str,
    ) -> SheetCandidate:
        look = next(a for a in entity.appearances() if a.name == usage.look)
        sheet = sheets.sheet(usage.entity, usage.look)
        if sheet is not None and sheet.description:
            look = look.model_copy(update={"description": sheet.description})
        width, height = backend_of(runtime).frame_size(project.format.aspect_ratio)
        rendered = await prompts.arender(
            "scene_instances/instance",
            entity=entity,
            look=look,
            scene=scene,
            project=project,
            feedback=feedback,
        )
        prompt = rendered.user
        seed = int(input_hash(entity.id, usage.look, scene.number, len(feedback))[:8], 16)
        arguments: dict[str, Any] = {
            "image": reference.file.key,
            "prompt": prompt,
            "seed": seed,
            "width": width,
            "height": height,
        }
        intent = (
            f"a {type(entity).__name__.lower()} placed in the context of a film scene, drawn "
            f"from its reference image with its identity kept. {project.visual_style}"
        )
        spec = await find_workflow(runtime, intent, "scene_instance", arguments)
        file = await run_workflow(
            self, runtime, spec, arguments, label=f"{entity.name} in scene {scene.number}"
        )
        return SheetCandidate(
            prompt=prompt,
            seed=seed,
            workflow=spec.name,
            file=file,
            note=note,
            drawn_from=reference.file,
        )

    def summary(self, artifact: SceneInstances) -> str:
        """The scene's assets: how many were drawn, how many go on as an earlier scene left them."""
        drawn = sum(1 for i in artifact.instances if i.candidates)
        as_is = sum(1 for i in artifact.instances if not i.candidates and not i.skipped)
        scenes = sorted({i.scene for i in artifact.instances})
        where = f"scene {scenes[0]}" if len(scenes) == 1 else "the scene"
        return (
            f"{len(artifact.instances)} assets of {where}: {drawn} drawn in its context, "
            f"{as_is} as an earlier scene left them. Approve; per asset choose a candidate, its "
            "reference as it is or an earlier image, or skip it (edit); or give feedback "
            "naming an asset to draw it (again) in this scene."
        )

    def check_decision(self, decision: BaseModel, proposal: dict[str, Any]) -> None:
        """An edit keeps every asset shown and chooses, for each, an image it offers."""
        super().check_decision(decision, proposal)
        if not isinstance(decision, Edit) or not proposal:
            return
        shown = {i.entity: i for i in SceneInstances.model_validate(proposal).instances}
        edited = SceneInstances.model_validate(decision.edited_action.args).instances
        if sorted(i.entity for i in edited) != sorted(shown):
            raise ValueError("an edit of the scene instances keeps every asset (skip one instead)")
        for instance in edited:
            offered = shown[instance.entity]
            if instance.skipped or instance.file is None:
                continue
            if instance.file.key not in offered.choices():
                raise ValueError(
                    f"{instance.entity}: {instance.file.key} is not one of its candidates, its "
                    "reference or its earlier images"
                )

    def on_approval(self, artifact: BaseModel, state: ProductionState) -> dict[str, Any]:
        """The approved instances keep the chosen image (none when skipped), not the choices."""
        assert isinstance(artifact, SceneInstances)
        approved = [
            instance.model_copy(
                update={
                    "candidates": [],
                    "history": [],
                    "file": None if instance.skipped else instance.file,
                }
            )
            for instance in artifact.instances
        ]
        return {self.stage: SceneInstances(instances=approved).model_dump(mode="json")}


def _earlier_instance(
    approved: SceneInstances, scene: int, usage: SceneUsage
) -> SceneInstance | None:
    """The latest approved instance of the asset in the same look from an earlier scene."""
    earlier = [
        i
        for i in approved.instances
        if (i.entity, i.look) == (usage.entity, usage.look)
        and i.scene < scene
        and i.file is not None
    ]
    return max(earlier, key=lambda i: i.scene) if earlier else None


def _sheet_reference(sheets: ReferenceSheets, usage: SceneUsage) -> ReferenceOption | None:
    """The approved sheet of the asset's look in the scene (None when it was skipped)."""
    sheet = sheets.sheet(usage.entity, usage.look)
    if sheet is None or sheet.skipped:
        return None
    return ReferenceOption(file=sheet.file, label=f"reference sheet ({sheet.look})")


def _history(
    approved: SceneInstances, sheets: ReferenceSheets, entity: str, scene: int
) -> list[ReferenceOption]:
    """The asset's approved images: its instances before ``scene``, newest first, then sheets."""
    earlier = sorted(
        (i for i in approved.instances if i.entity == entity and i.scene < scene and i.file),
        key=lambda i: i.scene,
        reverse=True,
    )
    options = [i.as_reference() for i in earlier] + [
        ReferenceOption(file=s.file, label=f"reference sheet ({s.look})")
        for s in sheets.sheets
        if s.entity == entity and not s.skipped
    ]
    seen: set[str] = set()
    return [o for o in options if not (o.file.key in seen or seen.add(o.file.key))]
