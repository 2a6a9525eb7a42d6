"""Frame generator: start and end keyframes for every shot, with reference images.

Each keyframe is made by the keyframe workflow that discovery finds for the shot (called as
a tool) from the shot's prompt and a reference board of the entities in frame. The reference
of an entity in scene N is, by default, its approved instance in scene N (the scene
instances stage's: the asset in this scene's look and context, itself drawn from the latest
earlier instance in that look), else the latest approved frame of it in the same look from an
earlier scene, else its approved reference sheet (the references stage's; a skipped sheet is
no reference). In a scene cycle only the scene's shots are drawn. The proposal offers, per
entity, the images it could use instead (the frames showing it, newest first, its approved
instances, then its sheets); the person may pick another, and the
frames showing that entity are regenerated with it (the pick holds for later rounds).
Candidates accumulate at the gate: feedback regenerates every frame (or the shots it names,
"shot 2A") and appends new candidates; an inpainting request repaints a region of one frame
and appends the result.
Approval keeps only the chosen file per frame. A run that starts with approved frames (a
scene made again) keeps, on its first draft, the frame of every shot still drawn for the same
shot and cast, and draws only the others.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from langgraph.runtime import Runtime
from pydantic import BaseModel

import prompts
from agents._media import backend_of, fan_out, find_workflow, inpaint, run_workflow
from agents.artifacts import (
    AssetRegistry,
    Frame,
    FrameCandidate,
    FrameSet,
    MediaFile,
    Project,
    ReferenceOption,
    ReferenceSheets,
    SceneInstances,
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
    latest_feedback,
    progress,
    project_of,
    turns_at,
)
from tools.comfy_tools import stitch
from tools.storage import FileStore

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
    requires = ("project", "shots", "assets", "references", "instances")
    description = "Generates start and end keyframes per shot from the shot list and the sheets."
    per_scene = True

    async def propose(self, state: ProductionState, runtime: Runtime[Context]) -> FrameSet:
        """Draft every keyframe, regenerate some (feedback, other references), or inpaint one."""
        previous = state.get("drafts", {}).get(self.stage)
        turn = latest_feedback(state, self.stage)
        if previous is None or turn is None:
            return await self._draw(state, runtime, None, None, "")
        current = FrameSet.model_validate(previous)
        if "inpaint" in turn:
            return await self._inpaint(runtime, current, turn)
        note = f"regenerated: {turn['content']}"
        if "references" in turn:
            picked = _picked(current, turn["references"])
            shots = ShotList.model_validate(state["shots"]).shots
            only = {s.id for s in shots if {e.entity for e in s.entities} & picked.keys()}
            labels = ", ".join(f"{entity} ← {option.label}" for entity, option in picked.items())
            return await self._draw(state, runtime, current, only, f"{note} ({labels})")
        return await self._draw(state, runtime, current, _named_shots(turn["content"]), note)

    async def _draw(
        self,
        state: ProductionState,
        runtime: Runtime[Context],
        current: FrameSet | None,
        only: set[str] | None,
        note: str,
    ) -> FrameSet:
        project = project_of(state)
        shots = ShotList.model_validate(state["shots"]).shots
        assets = AssetRegistry.model_validate(state["assets"])
        approved = FrameSet.model_validate(state["frames"]) if state.get("frames") else None
        feedback = feedback_at(state, self.stage)
        picks = _picks(state, self.stage, current)
        sheets = _Sheets(ReferenceSheets.model_validate(state["references"]), assets)
        instances = SceneInstances.model_validate(state.get("instances") or {})
        named = (only or set()) & {s.id for s in shots}
        redo = {s.id for s in shots if not named or s.id in named}
        # A first draft keeps each approved frame still drawn for the same shot and cast.
        still = approved if current is None else None
        planned: list[Frame | _Keyframe] = []  # kept frames, and keyframes to draw
        in_use: dict[str, list[ReferenceOption]] = {}
        for shot in shots:
            references = _references(shot, shots, approved, picks, instances, sheets)
            for entity, option in references.items():
                in_use.setdefault(entity, []).append(option)
            files = {entity: option.file for entity, option in references.items()}
            made_from = _made_from(project, assets, shot)
            for position in POSITIONS:
                kept = current.frame(shot.id, position) if current else None
                if kept is not None and shot.id not in redo:
                    planned.append(kept)
                    continue
                done = still.frame(shot.id, position) if still else None
                if done is not None and done.made_from == made_from:
                    planned.append(done)
                    continue
                prompt = await _prompt(project, assets, sheets, shot, position, feedback)
                planned.append(_Keyframe(shot, position, prompt, files, made_from, kept))
        todo = [p for p in planned if isinstance(p, _Keyframe)]
        drawn = iter(await self._keyframes(runtime, project, todo, len(feedback), note))
        frames = [p if isinstance(p, Frame) else p.with_candidates(next(drawn)) for p in planned]
        options = _options(shots, [*frames, *(approved.frames if approved else [])], in_use)
        for entity, earlier in _instance_options(instances, shots).items():
            options.setdefault(entity, []).extend(earlier)
        for entity, made in sheets.made.items():
            options.setdefault(entity, []).extend(made)
        # offered for what is in frame (in a scene cycle, this scene's shots show fewer)
        in_frame = {usage.entity for shot in shots for usage in shot.entities}
        known = assets.entities().keys() & in_frame
        offered = {e: listed for e, listed in _unique(options).items() if e in known}
        return FrameSet(frames=frames, reference_options=offered)

    async def _keyframes(
        self,
        runtime: Runtime[Context],
        project: Project,
        todo: list[_Keyframe],
        rounds: int,
        note: str,
    ) -> list[list[FrameCandidate]]:
        """Every candidate of every keyframe in ``todo``, all at once; per keyframe, in order.

        "frame k/n done" counts keyframes whose candidates have all finished, in any order.
        """
        count = project.frame_candidates
        boards = _Boards(runtime.context.files)
        left = [count] * len(todo)
        done = 0

        def job(index: int, n: int) -> Callable[[], Awaitable[FrameCandidate]]:
            keyframe = todo[index]
            label = f"frame {index + 1}/{len(todo)}"
            if n:
                label += f" (candidate {n + 1}/{count})"

            async def draw() -> FrameCandidate:
                nonlocal done
                board = await boards.get(keyframe.references)
                seed = int(input_hash(keyframe.shot.id, keyframe.position, rounds, n)[:8], 16)
                candidate = await self._candidate(
                    runtime, project, keyframe, board, seed, label=label, note=note
                )
                left[index] -= 1
                if not left[index]:
                    done += 1
                    message = f"frame {done}/{len(todo)} done"
                    progress(runtime, self.stage, message, shot=keyframe.shot.id)
                return candidate

            return draw

        made = await fan_out(runtime, [job(i, n) for i in range(len(todo)) for n in range(count)])
        return [made[i * count : (i + 1) * count] for i in range(len(todo))]

    async def _candidate(
        self,
        runtime: Runtime[Context],
        project: Project,
        keyframe: _Keyframe,
        board: MediaFile,
        seed: int,
        *,
        label: str,
        note: str,
    ) -> FrameCandidate:
        width, height = backend_of(runtime).frame_size(project.format.aspect_ratio)
        intent = (
            f"a film keyframe, the {keyframe.position} frame of a {keyframe.shot.size} shot, "
            "from a prompt and reference images of the characters in frame. "
            f"{project.visual_style}"
        )
        arguments = {
            "prompt": keyframe.prompt,
            "references": board.key,
            "seed": seed,
            "width": width,
            "height": height,
        }
        spec = await find_workflow(runtime, intent, "keyframe", arguments)
        file = await run_workflow(self, runtime, spec, arguments, label=label)
        return FrameCandidate(
            prompt=keyframe.prompt,
            seed=seed,
            workflow=spec.name,
            file=file,
            references=list(keyframe.references.values()),
            note=note,
        )

    async def _inpaint(self, runtime: Runtime[Context], current: FrameSet, turn: Turn) -> FrameSet:
        request = turn["inpaint"]
        frame = current.frame(request["shot"], request["position"])
        if frame is None:
            raise ValueError(f"no {request['position']} frame of shot {request['shot']} to inpaint")
        made = await inpaint(
            self,
            runtime,
            turn,
            chosen=frame.file.key,
            label=f"inpainting shot {frame.shot} {frame.position} frame",
        )
        candidate = FrameCandidate(
            **made.candidate(), references=[_candidate_file(frame, made.source)]
        )
        frames = [
            _frame(f.shot, f.position, [*f.candidates, candidate], f.references, f.made_from)
            if f is frame
            else f
            for f in current.frames
        ]
        return current.model_copy(update={"frames": frames})

    def summary(self, artifact: FrameSet) -> str:
        """Frame and candidate count."""
        candidates = sum(len(f.candidates) for f in artifact.frames)
        return (
            f"{len(artifact.frames)} keyframes ({candidates} candidates). Approve, choose a "
            "candidate per frame (edit), give feedback to regenerate, or inpaint a region."
        )

    def check_decision(self, decision: BaseModel, proposal: dict[str, Any]) -> None:
        """Edits choose among candidates; inpaints and reference picks name what is offered."""
        current = FrameSet.model_validate(proposal) if proposal else None
        if isinstance(decision, Reject) and decision.references is not None:
            _picked(current, decision.references)
        if isinstance(decision, Reject) and decision.inpaint is not None:
            target = decision.inpaint
            if target.shot is None or target.position is None:
                raise ValueError("the frames gate inpaints a keyframe: name its shot and position")
            frame = current.frame(target.shot, target.position) if current else None
            if frame is None:
                raise ValueError(
                    f"cannot inpaint: there is no {target.position} frame of shot {target.shot}"
                )
            if target.source is not None:
                _candidate_file(frame, target.source)
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
        """The approved frames keep only the chosen candidate (with how it was made).

        The reference options were for choosing at the gate: they are dropped too.
        """
        assert isinstance(artifact, FrameSet)
        approved = FrameSet(frames=[_chosen(f) for f in artifact.frames])
        return {self.stage: approved.model_dump(mode="json", exclude={"reference_options"})}


@dataclass(frozen=True)
class _Keyframe:
    """A keyframe to draw: what it shows, the references it is drawn from, what it replaces."""

    shot: Shot
    position: str
    prompt: str
    references: dict[str, MediaFile]
    made_from: str
    kept: Frame | None  # the frame drawn before (its candidates stay), if any

    def with_candidates(self, new: list[FrameCandidate]) -> Frame:
        """The frame with ``new`` candidates after the kept ones; the newest is chosen."""
        old = self.kept.candidates if self.kept else []
        return _frame(self.shot.id, self.position, [*old, *new], self.references, self.made_from)


def _made_from(project: Project, assets: AssetRegistry, shot: Shot) -> str:
    """What a shot's keyframes are drawn for: the frame format, the shot, what is in frame.

    Not the references: those default to frames approved earlier, and a frame kept for its
    unchanged shot must not be drawn again because another scene's frames changed.
    """
    entities = assets.entities()
    cast = [
        (entities[e.entity].model_dump(mode="json"), e.entity in assets.deselected)
        for e in shot.entities
        if e.entity in entities
    ]
    return input_hash(project.format.model_dump(mode="json"), shot.model_dump(mode="json"), cast)


async def _prompt(
    project: Project,
    assets: AssetRegistry,
    sheets: _Sheets,
    shot: Shot,
    position: str,
    feedback: list[str],
) -> str:
    """The keyframe prompt: the shot's frame description with what is in frame.

    Each entity in frame is described by its look, first (what changes from scene to scene,
    and what a draft card's row shows before it is cut off), then its static features. The
    look's description is the one the person chose for its sheet (from an image of their
    own), else the registry's.
    """
    entities = assets.entities()
    in_frame = [
        {
            "name": entities[e.entity].name,
            "look": e.look,
            "description": entities[e.entity].description,
            "look_description": sheets.description(e.entity, e.look)
            or next(
                (a.description for a in entities[e.entity].appearances() if a.name == e.look), ""
            ),
        }
        for e in shot.entities
        if e.entity in entities
    ]
    rendered = await prompts.arender(
        "frame_generator/keyframe",
        position=position,
        shot=shot,
        description=shot.start_frame if position == "start" else shot.end_frame,
        entities=in_frame,
        project=project,
        feedback=feedback,
    )
    return rendered.user


class _Boards:
    """Reference boards of one draft, each stitched once (a shot's two frames share one)."""

    def __init__(self, files: FileStore) -> None:
        self.files = files
        self._made: dict[tuple[str, ...], MediaFile] = {}
        self._locks: dict[tuple[str, ...], asyncio.Lock] = {}

    async def get(self, references: dict[str, MediaFile]) -> MediaFile:
        """The stored board of ``references`` side by side (stitched in a worker thread)."""
        keys = tuple(file.key for file in references.values())
        async with self._locks.setdefault(keys, asyncio.Lock()):
            if keys not in self._made:
                self._made[keys] = await asyncio.to_thread(self._stitch, keys)
            return self._made[keys]

    def _stitch(self, keys: tuple[str, ...]) -> MediaFile:
        board = stitch([self.files.read(key) for key in keys])
        return self.files.put(board, extension="png", media_type="image/png")


class _Sheets:
    """The approved reference sheets, as the reference options of the entities they show."""

    def __init__(self, references: ReferenceSheets, assets: AssetRegistry) -> None:
        entities = assets.entities()
        self._by_look: dict[tuple[str, str], ReferenceOption] = {}
        self._descriptions: dict[tuple[str, str], str] = {}
        self.made: dict[str, list[ReferenceOption]] = {}
        for sheet in references.sheets:
            if sheet.skipped or sheet.entity not in entities:
                continue
            if sheet.description:
                self._descriptions[(sheet.entity, sheet.look)] = sheet.description
            looks = entities[sheet.entity].appearances()
            label = "reference sheet" if len(looks) == 1 else f"reference sheet ({sheet.look})"
            option = ReferenceOption(file=sheet.file, label=label)
            self._by_look[(sheet.entity, sheet.look)] = option
            self.made.setdefault(sheet.entity, []).append(option)

    def get(self, entity_id: str, look_name: str) -> ReferenceOption | None:
        """The sheet of an entity in a look; None when it has none (skipped, deselected)."""
        return self._by_look.get((entity_id, look_name))

    def description(self, entity_id: str, look_name: str) -> str | None:
        """The look's description the person chose for its sheet, if they chose one."""
        return self._descriptions.get((entity_id, look_name))


def _references(
    shot: Shot,
    shots: list[Shot],
    approved: FrameSet | None,
    picks: dict[str, ReferenceOption],
    instances: SceneInstances,
    sheets: _Sheets,
) -> dict[str, ReferenceOption]:
    """The reference of every entity in frame.

    The person's pick, else the entity's approved instance in the shot's scene, else the
    latest approved frame of it from an earlier scene, else its sheet (every sheet is made,
    so it is always among the options).
    """
    defaults = default_references(shot, shots, approved)
    made_by = {f.file.key: f for f in approved.frames} if approved else {}
    shot_of = {s.id: s for s in shots}
    references: dict[str, ReferenceOption] = {}
    for usage in shot.entities:
        sheet = sheets.get(usage.entity, usage.look)
        instance = instances.instance(shot.scene, usage.entity)
        if usage.entity in picks:
            references[usage.entity] = picks[usage.entity]
        elif instance is not None and instance.file is not None and instance.look == usage.look:
            references[usage.entity] = instance.as_reference()
        elif usage.entity in defaults:
            frame = made_by[defaults[usage.entity].key]
            label = _label(shot_of[frame.shot], frame.position)
            references[usage.entity] = ReferenceOption(file=frame.file, label=label)
        elif sheet is not None:
            references[usage.entity] = sheet
    return references


def _instance_options(
    instances: SceneInstances, shots: list[Shot]
) -> dict[str, list[ReferenceOption]]:
    """Entity id -> its approved instances up to the latest scene drawn, newest first."""
    last = max((shot.scene for shot in shots), default=0)
    options: dict[str, list[ReferenceOption]] = {}
    for instance in reversed(instances.instances):
        if instance.file is not None and instance.scene <= last:
            options.setdefault(instance.entity, []).append(instance.as_reference())
    return options


def _label(shot: Shot, position: str) -> str:
    return f"scene {shot.scene} · shot {shot.id} {position} frame"


def _options(
    shots: list[Shot], frames: list[Frame], in_use: dict[str, list[ReferenceOption]]
) -> dict[str, list[ReferenceOption]]:
    """Entity id -> frames showing it (latest shot first), then the references in use."""
    order = {s.id: n for n, s in enumerate(shots)}
    shot_of = {s.id: s for s in shots}
    shown = sorted(
        (f for f in frames if f.shot in shot_of),
        key=lambda f: (order[f.shot], POSITIONS.index(f.position)),
        reverse=True,
    )
    options: dict[str, list[ReferenceOption]] = {}
    for frame in shown:
        shot = shot_of[frame.shot]
        for usage in shot.entities:
            option = ReferenceOption(file=frame.file, label=_label(shot, frame.position))
            options.setdefault(usage.entity, []).append(option)
    for entity, used in in_use.items():
        options.setdefault(entity, []).extend(used)
    return options


def _unique(options: dict[str, list[ReferenceOption]]) -> dict[str, list[ReferenceOption]]:
    """Each entity's options without repeated files (the first, newest, is kept)."""
    unique: dict[str, list[ReferenceOption]] = {}
    for entity, listed in options.items():
        seen: set[str] = set()
        unique[entity] = [o for o in listed if not (o.file.key in seen or seen.add(o.file.key))]
    return unique


def _picks(
    state: ProductionState, stage: str, current: FrameSet | None
) -> dict[str, ReferenceOption]:
    """The reference images the person picked at ``stage`` so far (a later pick wins)."""
    chosen: dict[str, str] = {}
    for turn in turns_at(state, stage):
        if "references" in turn:
            chosen.update(turn["references"])
    return _picked(current, chosen) if chosen else {}


def _picked(current: FrameSet | None, chosen: dict[str, str]) -> dict[str, ReferenceOption]:
    """Picks (entity id -> file key) as the options the proposal offers.

    Raises:
        ValueError: An entity is offered no images, or the key is not among its options.
    """
    options = current.reference_options if current else {}
    picked: dict[str, ReferenceOption] = {}
    for entity, key in chosen.items():
        if entity not in options:
            offered = ", ".join(sorted(options)) or "none"
            raise ValueError(
                f"no reference images are offered for '{entity}' (entities offered: {offered})"
            )
        option = next((o for o in options[entity] if o.file.key == key), None)
        if option is None:
            raise ValueError(f"{key} is not one of the reference images offered for '{entity}'")
        picked[entity] = option
    return picked


def _frame(
    shot: str,
    position: str,
    candidates: list[FrameCandidate],
    references: dict[str, MediaFile],
    made_from: str,
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
        made_from=made_from,
    )


def _candidate_file(frame: Frame, key: str) -> MediaFile:
    """The file of one of ``frame``'s candidates (or its chosen file), by key.

    Raises:
        ValueError: ``key`` is not one of the frame's candidates.
    """
    for file in [frame.file, *(c.file for c in frame.candidates)]:
        if file.key == key:
            return file
    raise ValueError(
        f"cannot inpaint {key}: it is not a candidate of the {frame.position} frame of shot "
        f"{frame.shot}"
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


def _named_shots(message: str) -> set[str] | None:
    """Shot ids a feedback message names ("shot 2A", "shots 1B and 3A"); None = all."""
    named = {
        token.upper()
        for match in _SHOT_MENTION.finditer(message)
        for token in re.findall(r"[0-9]+[A-Za-z]+", match.group(1))
    }
    return named or None
