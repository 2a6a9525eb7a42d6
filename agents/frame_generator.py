"""Frame generator: start and end keyframes for every shot, with reference images.

Each keyframe is made by the library's keyframe workflow (called as a tool) from the shot's
prompt and a reference board of the entities in frame. The reference of an entity in scene N
is, by default, the latest approved image of it in the same look from an earlier scene, else
its reference sheet (made once by the asset-sheet workflow). Candidates accumulate at the
gate: feedback regenerates every frame (or the shots it names, "shot 2A") and appends new
candidates; an inpainting request repaints a region of one frame and appends the result.
Approval keeps only the chosen file per frame.
"""

from __future__ import annotations

import re
from typing import Any

from langgraph.runtime import Runtime
from pydantic import BaseModel

import prompts
from agents._media import backend_of, run_workflow
from agents.artifacts import (
    AssetRegistry,
    Frame,
    FrameCandidate,
    FrameSet,
    MediaFile,
    Project,
    Shot,
    ShotList,
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
    progress,
    project_of,
)
from tools.comfy_tools import pick_workflow, stitch

__all__ = ["FrameGenerator", "default_references"]

POSITIONS = ("start", "end")
_SHOT_MENTION = re.compile(r"\bshots?\s+((?:[0-9]+[A-Za-z]+[\s,and]*)+)", re.IGNORECASE)


def default_references(
    shot: Shot, shots: list[Shot], approved: FrameSet | None
) -> dict[str, MediaFile]:
    """Entity id → the latest approved image of it, in the same look, from an earlier scene.

    Entities with no such image are left out (their reference sheet is used).
    """
    if approved is None:
        return {}
    by_id = {s.id: (n, s) for n, s in enumerate(shots)}
    found: dict[str, tuple[tuple[int, int, int], MediaFile]] = {}
    for frame in approved.frames:
        if frame.shot not in by_id:
            continue
        order, earlier = by_id[frame.shot]
        if earlier.scene >= shot.scene:
            continue
        rank = (earlier.scene, order, POSITIONS.index(frame.position))
        for entity in earlier.entities:
            wanted = next((e for e in shot.entities if e.entity == entity.entity), None)
            if wanted is None or wanted.look != entity.look:
                continue
            if entity.entity not in found or found[entity.entity][0] < rank:
                found[entity.entity] = (rank, frame.file)
    return {entity: file for entity, (_, file) in found.items()}


class FrameGenerator(ProductionAgent):
    """Renders the keyframes each shot starts and ends on, from references of what is in frame."""

    name = "frame_generator"
    stage = "frames"
    artifact = FrameSet
    description = "Generates start and end keyframes per shot from the shot list and assets."

    async def propose(self, state: ProductionState, runtime: Runtime[Context]) -> FrameSet:
        """Draft every keyframe, regenerate some with feedback, or inpaint one."""
        previous = state.get("drafts", {}).get(self.stage)
        turn = _latest_feedback(state, self.stage)
        if previous is not None and turn is not None:
            current = FrameSet.model_validate(previous)
            if "inpaint" in turn:
                return await self._inpaint(runtime, current, turn)
            return await self._draw(state, runtime, current, _named_shots(turn["content"]))
        return await self._draw(state, runtime, None, None)

    async def _draw(
        self,
        state: ProductionState,
        runtime: Runtime[Context],
        current: FrameSet | None,
        only: set[str] | None,
    ) -> FrameSet:
        project = project_of(state)
        shots = ShotList.model_validate(state["shots"]).shots
        assets = AssetRegistry.model_validate(state["assets"])
        approved = FrameSet.model_validate(state["frames"]) if state.get("frames") else None
        feedback = feedback_at(state, self.stage)
        named = (only or set()) & {s.id for s in shots}
        redo = {s.id for s in shots if not named or s.id in named}
        total, done = len(redo) * len(POSITIONS), 0
        frames: list[Frame] = []
        for shot in shots:
            references = await self._references(runtime, project, assets, shot, shots, approved)
            for position in POSITIONS:
                kept = current.frame(shot.id, position) if current else None
                if kept is not None and shot.id not in redo:
                    frames.append(kept)
                    continue
                done += 1
                new = await self._candidates(
                    runtime,
                    project,
                    assets,
                    shot,
                    position,
                    feedback,
                    references,
                    f"frame {done}/{total}",
                )
                old = kept.candidates if kept else []
                frames.append(_frame(shot.id, position, [*old, *new], references))
                progress(runtime, self.stage, f"frame {done}/{total} done", shot=shot.id)
        return FrameSet(frames=frames)

    async def _references(
        self,
        runtime: Runtime[Context],
        project: Project,
        assets: AssetRegistry,
        shot: Shot,
        shots: list[Shot],
        approved: FrameSet | None,
    ) -> dict[str, MediaFile]:
        """The reference of every entity in frame: an earlier approved image, else its sheet."""
        references = default_references(shot, shots, approved)
        entities = assets.entities()
        for usage in shot.entities:
            entity = entities.get(usage.entity)
            if usage.entity in references or entity is None or entity.id in assets.deselected:
                continue
            look = next((a for a in entity.appearances() if a.name == usage.look), None)
            spec = pick_workflow(
                "reference sheet of an asset on a plain background, multi-view", "asset_sheet"
            )
            width, height = backend_of(runtime).frame_size(project.format.aspect_ratio)
            prompt = f"{entity.name}: {entity.description}"
            if look is not None:
                prompt += f" Look '{look.name}': {look.description}"
            if project.visual_style:
                prompt += f" Style: {project.visual_style}"
            references[entity.id] = await run_workflow(
                self,
                runtime,
                spec,
                {
                    "prompt": prompt,
                    "seed": int(input_hash(entity.id, usage.look)[:8], 16),
                    "width": width * 2,
                    "height": height,
                },
                label=f"reference sheet {entity.name} ({usage.look})",
            )
        return references

    async def _candidates(
        self,
        runtime: Runtime[Context],
        project: Project,
        assets: AssetRegistry,
        shot: Shot,
        position: str,
        feedback: list[str],
        references: dict[str, MediaFile],
        label: str,
    ) -> list[FrameCandidate]:
        entities = assets.entities()
        in_frame = [
            {
                "name": entities[e.entity].name,
                "look": e.look,
                "description": entities[e.entity].description,
            }
            for e in shot.entities
            if e.entity in entities
        ]
        description = shot.start_frame if position == "start" else shot.end_frame
        prompt = prompts.render(
            "frame_generator/keyframe",
            position=position,
            shot=shot,
            description=description,
            entities=in_frame,
            project=project,
            feedback=feedback,
        ).user
        files = runtime.context.files
        board = files.put(
            stitch([files.read(f) for f in references.values()]),
            extension="png",
            media_type="image/png",
        )
        spec = pick_workflow("a film keyframe from a prompt and reference images", "keyframe")
        width, height = backend_of(runtime).frame_size(project.format.aspect_ratio)
        note = f"regenerated: {feedback[-1]}" if feedback else ""
        candidates = []
        for n in range(project.frame_candidates):
            seed = int(input_hash(shot.id, position, len(feedback), n)[:8], 16)
            arguments = {
                "prompt": prompt,
                "references": board.key,
                "seed": seed,
                "width": width,
                "height": height,
            }
            suffix = f" (candidate {n + 1}/{project.frame_candidates})" if n else ""
            file = await run_workflow(self, runtime, spec, arguments, label=label + suffix)
            candidates.append(
                FrameCandidate(
                    prompt=prompt,
                    seed=seed,
                    workflow=spec.name,
                    file=file,
                    references=list(references.values()),
                    note=note,
                )
            )
        return candidates

    async def _inpaint(self, runtime: Runtime[Context], current: FrameSet, turn: Turn) -> FrameSet:
        request = turn["inpaint"]
        frame = current.frame(request["shot"], request["position"])
        if frame is None:
            raise ValueError(f"no {request['position']} frame of shot {request['shot']} to inpaint")
        if not runtime.context.files.exists(request["mask"]):
            raise ValueError(f"the mask {request['mask']} is not in the file store")
        spec = pick_workflow("repaint the masked region of an image from a prompt", "inpaint")
        seed = int(input_hash(frame.file.key, request["mask"], turn["content"])[:8], 16)
        arguments = {
            "image": frame.file.key,
            "mask": request["mask"],
            "prompt": turn["content"],
            "seed": seed,
        }
        label = f"inpainting shot {frame.shot} {frame.position} frame"
        file = await run_workflow(self, runtime, spec, arguments, label=label)
        candidate = FrameCandidate(
            prompt=turn["content"],
            seed=seed,
            workflow=spec.name,
            file=file,
            references=[frame.file],
            note=f"inpainted: {turn['content']}",
        )
        frames = [
            _frame(f.shot, f.position, [*f.candidates, candidate], f.references)
            if f is frame
            else f
            for f in current.frames
        ]
        return FrameSet(frames=frames)

    def summary(self, artifact: FrameSet) -> str:
        """Frame and candidate count."""
        candidates = sum(len(f.candidates) for f in artifact.frames)
        return (
            f"{len(artifact.frames)} keyframes ({candidates} candidates). Approve, choose a "
            "candidate per frame (edit), give feedback to regenerate, or inpaint a region."
        )

    def check_decision(self, decision: BaseModel, proposal: dict[str, Any]) -> None:
        """An edit chooses among each frame's candidates; an inpaint names an existing frame."""
        current = FrameSet.model_validate(proposal) if proposal else None
        if isinstance(decision, Reject) and decision.inpaint is not None:
            target = decision.inpaint
            if current is None or current.frame(target.shot, target.position) is None:
                raise ValueError(
                    f"cannot inpaint: there is no {target.position} frame of shot {target.shot}"
                )
        if isinstance(decision, Edit) and current is not None:
            edited = FrameSet.model_validate(decision.edited_action.args)
            for frame in edited.frames:
                original = current.frame(frame.shot, frame.position)
                if original is None:
                    raise ValueError(f"the edit adds a frame {frame.shot}/{frame.position}")
                choices = {c.file.key for c in original.candidates} | {original.file.key}
                if frame.file.key not in choices:
                    raise ValueError(
                        f"frame {frame.shot}/{frame.position}: {frame.file.key} is not one of "
                        "its candidates"
                    )

    def on_approval(self, artifact: BaseModel, state: ProductionState) -> dict[str, Any]:
        """The approved frames keep only the chosen candidate (with how it was made)."""
        assert isinstance(artifact, FrameSet)
        return {
            self.stage: FrameSet(frames=[_chosen(f) for f in artifact.frames]).model_dump(
                mode="json"
            )
        }


def _frame(
    shot: str, position: str, candidates: list[FrameCandidate], references: dict[str, MediaFile]
) -> Frame:
    """A frame whose file is its newest candidate."""
    newest = candidates[-1]
    return Frame(
        shot=shot,
        position=position,
        prompt=newest.prompt,
        seed=newest.seed,
        workflow=newest.workflow,
        file=newest.file,
        candidates=candidates,
        references=references,
    )


def _chosen(frame: Frame) -> Frame:
    """The frame as approved: no candidates; a chosen older candidate brings its prompt/seed."""
    chosen = next((c for c in frame.candidates if c.file.key == frame.file.key), None)
    if chosen is None or chosen is frame.candidates[-1]:
        return frame.model_copy(update={"candidates": []})
    return frame.model_copy(
        update={
            "prompt": chosen.prompt,
            "seed": chosen.seed,
            "workflow": chosen.workflow,
            "candidates": [],
        }
    )


def _latest_feedback(state: ProductionState, stage: str) -> Turn | None:
    """The stage's last turn when it is the person's (the draft is a response to it)."""
    turns = [t for t in state.get("conversation", []) if t["stage"] == stage]
    return turns[-1] if turns and turns[-1]["role"] == "user" else None


def _named_shots(message: str) -> set[str] | None:
    """Shot ids a feedback message names ("shot 2A", "shots 1B and 3A"); None = all."""
    named = {
        token.upper()
        for match in _SHOT_MENTION.finditer(message)
        for token in re.findall(r"[0-9]+[A-Za-z]+", match.group(1))
    }
    return named or None
