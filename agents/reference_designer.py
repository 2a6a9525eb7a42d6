"""Reference designer: a reference sheet of every selected asset in each of its looks.

Each sheet is drawn by the asset-sheet workflow that discovery finds (called as a tool): the
asset in one look on a plain background, a character as a multi-view turnaround. A look other
than an asset's first (its default) is drawn from the default look's sheet, an input image of
an image-to-image workflow, so the asset keeps its identity across looks. The gate
shows every sheet with its candidates. Feedback that names assets ("Dora's raincoat
brighter") draws only those again, each with a new candidate; feedback that names none draws
every sheet again. An edit picks another candidate of a sheet, puts an image of the person's
own in its place (a key of a file they uploaded, ``POST /files``), or skips a sheet (the
keyframes showing that asset then go without a reference). A reject may instead inpaint a
region of one sheet (a new candidate), or give an image of the person's own for one sheet:
the model describes it, and the person chooses that description or one merged with the
registry's as the look's (the keyframes' prompts use it). Deselected assets are never drawn.
The frame generator draws its keyframes from the approved sheets.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

from langgraph.runtime import Runtime
from pydantic import BaseModel, Field

import prompts
from agents._gate import Inpaint
from agents._media import (
    backend_of,
    fan_out,
    find_workflow,
    image_data_url,
    inpaint,
    run_workflow,
)
from agents.artifacts import (
    AssetRegistry,
    Character,
    Location,
    MediaFile,
    Project,
    Prop,
    ReferenceSheet,
    ReferenceSheets,
    SheetCandidate,
    input_hash,
)
from agents.base import (
    Context,
    Edit,
    ProductionAgent,
    ProductionState,
    Reject,
    Turn,
    feedback_at,
    latest_feedback,
    progress,
    project_of,
)
from tools.llm import LLMError

__all__ = ["ReferenceDesigner"]


class ReferenceDesigner(ProductionAgent):
    """Draws the reference sheets the keyframes are drawn from, for the person to approve."""

    name = "reference_designer"
    stage = "references"
    artifact = ReferenceSheets
    requires = ("project", "assets")
    description = "Draws a reference sheet of every selected asset in each of its looks."

    async def propose(self, state: ProductionState, runtime: Runtime[Context]) -> ReferenceSheets:
        """Draw every sheet, or after feedback those of the assets it names (or one's request)."""
        project = project_of(state)
        assets = AssetRegistry.model_validate(state["assets"])
        previous = state.get("drafts", {}).get(self.stage)
        current = ReferenceSheets.model_validate(previous) if previous else None
        turn = latest_feedback(state, self.stage)
        if current is not None and turn is not None and "inpaint" in turn:
            return await self._inpaint(runtime, current, turn)
        if current is not None and turn is not None and "own_image" in turn:
            return await self._own_image(state, runtime, current, turn)
        feedback = feedback_at(state, self.stage)
        named = assets.named_in(feedback[-1]) if current and feedback else None
        note = f"regenerated: {feedback[-1]}" if current and feedback else ""
        entities = assets.entities()
        wanted = [
            (entity_id, look.name)
            for entity_id, entity in entities.items()
            if entity_id not in assets.deselected
            for look in entity.appearances()
        ]
        kept = {(sheet.entity, sheet.look): sheet for sheet in (current.sheets if current else [])}
        todo = [
            pair
            for pair in wanted
            if pair not in kept or current is None or named is None or pair[0] in named
        ]
        default_look = {entity_id: e.appearances()[0].name for entity_id, e in entities.items()}
        drawn: dict[tuple[str, str], SheetCandidate] = {}

        def drawn_from(entity_id: str, look: str) -> MediaFile | None:
            """The default look's sheet another look is drawn from (None: from words alone)."""
            default = (entity_id, default_look[entity_id])
            if look == default[1]:
                return None
            if default in drawn:
                return drawn[default].file
            sheet = kept.get(default)
            return sheet.file if sheet is not None and not sheet.skipped else None

        # First every sheet whose default look is not being drawn now, then the other looks
        # of the assets whose default look was just drawn, each from that new sheet.
        later = [
            p for p in todo if p[1] != default_look[p[0]] and (p[0], default_look[p[0]]) in todo
        ]
        for wave in ([p for p in todo if p not in later], later):
            jobs = [
                partial(
                    self._candidate,
                    runtime,
                    project,
                    assets,
                    entity,
                    look,
                    len(feedback),
                    note,
                    drawn_from(entity, look),
                )
                for entity, look in wave
            ]
            drawn |= dict(zip(wave, await fan_out(runtime, jobs), strict=True))
        sheets = []
        for pair in wanted:
            old = kept.get(pair)
            if pair not in drawn:
                assert old is not None
                sheets.append(old)
                continue
            candidates = [*(old.candidates if old else []), drawn[pair]]
            sheets.append(
                ReferenceSheet(
                    entity=pair[0], look=pair[1], file=drawn[pair].file, candidates=candidates
                )
            )
        return ReferenceSheets(sheets=sheets)

    async def _candidate(
        self,
        runtime: Runtime[Context],
        project: Project,
        assets: AssetRegistry,
        entity_id: str,
        look_name: str,
        rounds: int,
        note: str,
        base: MediaFile | None,
    ) -> SheetCandidate:
        entity = assets.entities()[entity_id]
        look = next(a for a in entity.appearances() if a.name == look_name)
        width, height = backend_of(runtime).frame_size(project.format.aspect_ratio)
        prompt = f"{entity.name}: {entity.description} Look '{look.name}': {look.description}"
        if project.visual_style:
            prompt += f" Style: {project.visual_style}"
        seed = int(input_hash(entity.id, look_name, rounds)[:8], 16)
        arguments: dict[str, Any] = {
            "prompt": prompt,
            "seed": seed,
            "width": width * 2,
            "height": height,
        }
        intent = f"reference sheet of a {_kind(entity)} on a plain background, multi-view. "
        if base is not None:
            arguments["image"] = base.key
            intent += "The same subject as in the image, its identity kept, in a new look. "
        spec = await find_workflow(runtime, intent + project.visual_style, "asset_sheet", arguments)
        file = await run_workflow(
            self, runtime, spec, arguments, label=f"reference sheet {entity.name} ({look_name})"
        )
        return SheetCandidate(
            prompt=prompt, seed=seed, workflow=spec.name, file=file, note=note, drawn_from=base
        )

    async def _inpaint(
        self, runtime: Runtime[Context], current: ReferenceSheets, turn: Turn
    ) -> ReferenceSheets:
        """Repaint a region of one sheet; the result is that sheet's new, chosen candidate."""
        request = turn["inpaint"]
        sheet = current.sheet(request["entity"], request["look"])
        if sheet is None:
            raise ValueError(f"no sheet of {request['entity']} ({request['look']}) to inpaint")
        made = await inpaint(
            self,
            runtime,
            turn,
            chosen=sheet.file.key,
            label=f"inpainting the reference sheet {sheet.entity} ({sheet.look})",
        )
        candidate = SheetCandidate(**made.candidate())
        update = {"file": made.file, "candidates": [*sheet.candidates, candidate]}
        sheets = [s.model_copy(update=update) if s is sheet else s for s in current.sheets]
        return ReferenceSheets(sheets=sheets)

    async def _own_image(
        self,
        state: ProductionState,
        runtime: Runtime[Context],
        current: ReferenceSheets,
        turn: Turn,
    ) -> ReferenceSheets:
        """The person's image becomes the sheet's chosen candidate, described by the model.

        The candidate carries two descriptions of the look for the person to choose from at
        the gate: what the image shows (to replace the registry's) and the registry's merged
        with it. A model that cannot read images leaves them out and says so in the note.
        """
        request = turn["own_image"]
        sheet = current.sheet(request["entity"], request["look"])
        if sheet is None:
            raise ValueError(f"no sheet of {request['entity']} ({request['look']})")
        key, files = request["file"], runtime.context.files
        if not await asyncio.to_thread(files.exists, key):
            raise ValueError(f"your image {key} is not in the file store")
        data = await asyncio.to_thread(files.read, key)
        file = MediaFile(
            sha256=key.partition(".")[0], key=key, media_type="image/png", size_bytes=len(data)
        )
        entity = AssetRegistry.model_validate(state["assets"]).entities()[sheet.entity]
        look = next(a for a in entity.appearances() if a.name == sheet.look)
        prompt = await prompts.arender(
            "reference_designer/describe_image",
            project=project_of(state),
            entity=entity,
            look=look,
        )
        progress(runtime, self.stage, f"describing your image of {entity.name} ({look.name})")
        try:
            seen = await self.generate(
                runtime,
                prompt,
                state,
                task="describe_image",
                artifact=LookFromImage,
                with_conversation=False,
                image=await asyncio.to_thread(image_data_url, data),
            )
        except LLMError as error:
            candidate = SheetCandidate(
                prompt="", seed=0, workflow="", file=file, note=f"your own image ({error})"
            )
        else:
            candidate = SheetCandidate(
                prompt="",
                seed=0,
                workflow="",
                file=file,
                note="your own image",
                described=seen.described,
                merged=seen.merged,
            )
        update = {"file": file, "candidates": [*sheet.candidates, candidate], "skipped": False}
        sheets = [s.model_copy(update=update) if s is sheet else s for s in current.sheets]
        return ReferenceSheets(sheets=sheets)

    def summary(self, artifact: ReferenceSheets) -> str:
        """Sheet, asset and candidate count."""
        assets = len({sheet.entity for sheet in artifact.sheets})
        candidates = sum(len(sheet.candidates) for sheet in artifact.sheets)
        return (
            f"{len(artifact.sheets)} reference sheets of {assets} assets ({candidates} "
            "candidates). Approve, choose a candidate or your own image per sheet or skip one "
            "(edit), or give feedback naming an asset to draw it again."
        )

    def check_decision(self, decision: BaseModel, proposal: dict[str, Any]) -> None:
        """Edits and inpaints name what the proposal shows.

        An edit keeps every sheet (each picks a candidate or an own image, or skips); an
        inpaint names a sheet shown and, when given, one of its candidates to paint on; an
        own image names a sheet shown.
        """
        if isinstance(decision, Reject) and decision.inpaint is not None:
            _check_inpaint(decision.inpaint, proposal)
            return
        if isinstance(decision, Reject) and decision.own_image is not None:
            named = decision.own_image
            if ReferenceSheets.model_validate(proposal).sheet(named.entity, named.look) is None:
                raise ValueError(f"there is no sheet of {named.entity} ({named.look})")
            return
        super().check_decision(decision, proposal)
        if not isinstance(decision, Edit) or not proposal:
            return
        current = ReferenceSheets.model_validate(proposal)
        edited = ReferenceSheets.model_validate(decision.edited_action.args)
        shown = sorted((s.entity, s.look) for s in current.sheets)
        if sorted((s.entity, s.look) for s in edited.sheets) != shown:
            raise ValueError("an edit of the references keeps every sheet (skip one instead)")

    def on_approval(self, artifact: BaseModel, state: ProductionState) -> dict[str, Any]:
        """The approved sheets keep only the chosen file of each (own images included)."""
        assert isinstance(artifact, ReferenceSheets)
        approved = [sheet.model_copy(update={"candidates": []}) for sheet in artifact.sheets]
        return {self.stage: ReferenceSheets(sheets=approved).model_dump(mode="json")}


class LookFromImage(BaseModel):
    """The model's two descriptions of a look from the person's image of it."""

    described: str = Field(min_length=1, description="The look as the image shows it.")
    merged: str = Field(
        min_length=1, description="The current description changed where the image differs."
    )


def _check_inpaint(target: Inpaint, proposal: dict[str, Any]) -> None:
    if target.entity is None or target.look is None:
        raise ValueError("the references gate inpaints a sheet: name its entity and look")
    sheet = ReferenceSheets.model_validate(proposal).sheet(target.entity, target.look)
    if sheet is None:
        raise ValueError(f"cannot inpaint: there is no sheet of {target.entity} ({target.look})")
    shown = {sheet.file.key, *(c.file.key for c in sheet.candidates)}
    if target.source is not None and target.source not in shown:
        raise ValueError(f"cannot inpaint {target.source}: not a candidate of that sheet")


def _kind(entity: Character | Location | Prop) -> str:
    return type(entity).__name__.lower()
