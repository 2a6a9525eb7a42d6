"""The production domain: artifacts the agents propose and the person approves.

Every artifact is a Pydantic model. Graph state holds them as plain JSON (``model_dump``)
so checkpoints stay portable and the API can stream them as-is; agents validate with
``Model.model_validate`` at their boundaries.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection
from typing import Any, ClassVar, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tools.storage import MediaFile

__all__ = [
    "CHOOSES_FROM",
    "DESELECTS",
    "AssetRegistry",
    "ByScene",
    "Cast",
    "CastVoice",
    "Character",
    "Clip",
    "ClipSet",
    "DialogueTrack",
    "EntityInFrame",
    "Frame",
    "FrameCandidate",
    "FrameSet",
    "Location",
    "Look",
    "MasterScene",
    "MasterScript",
    "MediaFile",
    "Project",
    "ProjectConfig",
    "ProjectFormat",
    "Prop",
    "ReferenceOption",
    "ReferenceSheet",
    "ReferenceSheets",
    "Scene",
    "SceneBed",
    "SceneInstance",
    "SceneInstances",
    "SceneUsage",
    "Script",
    "ScriptLine",
    "SheetCandidate",
    "Shot",
    "ShotDialogue",
    "ShotList",
    "SpokenLine",
    "Treatment",
    "TreatmentOptions",
    "Treatments",
    "Video",
    "VoiceChoice",
    "input_hash",
    "scene_of",
]


def input_hash(*parts: object) -> str:
    """A stable SHA-256 over JSON-serialisable parts; the key for every expensive side effect."""
    payload = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


CHOOSES_FROM = "chooses_from"
"""Schema marker of a field set by a number given at the gate: it picks one item (counted
from 1) of the list field the marker names. A client offers the number as a choice."""

DESELECTS = "deselects"
"""Schema marker of a list of ids the person may leave out at the gate; its value says what
to ask for. A client offers to fill it in."""


class _Artifact(BaseModel):
    model_config = ConfigDict(extra="forbid")


def scene_of(item: BaseModel) -> int:
    """The scene an item belongs to: its ``scene``, else the number its shot id starts with."""
    scene = getattr(item, "scene", None)
    if isinstance(scene, int):
        return scene
    return int(re.match(r"\d+", item.shot).group())  # type: ignore[attr-defined, union-attr]


class ByScene(_Artifact):
    """An artifact made scene by scene: each item of its ``scene_parts`` lists is one scene's.

    In a production's scene cycle a stage drafts and approves one scene's part
    (:meth:`in_scene`), and the approval puts it in the whole (:meth:`with_scene`), so the
    project keeps one artifact, versioned at each scene's approval.
    """

    scene_parts: ClassVar[tuple[str, ...]]
    scene_plan: ClassVar[bool] = False
    """Whether it plans each scene's work (the shot list): a per-scene step sees only the
    scene in production's part of it."""

    def in_scene(self, scene: int) -> Self:
        """The part of ``scene`` alone (the other fields as they are)."""
        return self.in_scenes({scene})

    def in_scenes(self, scenes: Collection[int]) -> Self:
        """The parts of ``scenes`` alone (the other fields as they are)."""
        update = {
            name: [item for item in getattr(self, name) if scene_of(item) in scenes]
            for name in self.scene_parts
        }
        return self.model_copy(update=update)

    def scenes(self) -> set[int]:
        """The scenes it has a part of."""
        return {scene_of(item) for name in self.scene_parts for item in getattr(self, name)}

    def has_scene(self, scene: int) -> bool:
        """Whether any item is ``scene``'s."""
        return scene in self.scenes()

    def with_scene(self, part: Self, scene: int) -> Self:
        """This artifact with ``scene``'s items replaced by ``part``'s, in scene order.

        The other fields are the part's (the newest drafted).
        """
        update: dict[str, Any] = {}
        for name in self.scene_parts:
            kept = [item for item in getattr(self, name) if scene_of(item) != scene]
            update[name] = sorted([*kept, *getattr(part, name)], key=scene_of)
        return part.model_copy(update=update)


SceneT = TypeVar("SceneT", bound="Scene | MasterScene")


# --- project -------------------------------------------------------------------------------


class ProjectFormat(_Artifact):
    """Technical format every generation follows."""

    aspect_ratio: Literal["16:9", "9:16", "1:1", "4:3", "2.39:1"] = "16:9"
    fps: int = Field(12, ge=1, le=60)
    target_duration_s: float = Field(30, gt=0, le=3600)
    segment_length_s: float = Field(3, gt=0, le=60, description="Default length of one shot.")


class ProjectConfig(_Artifact):
    """What the person configures about a production (everything but the brief)."""

    title: str = ""
    format: ProjectFormat = Field(default_factory=ProjectFormat)
    visual_style: str = Field("", description="Free-text visual description or style capsule.")
    written_style: str = ""
    story_rules: list[str] = Field(
        default_factory=list, description="Rules every generation must follow."
    )
    frame_candidates: int = Field(
        1, ge=1, le=8, description="Keyframe candidates generated per frame in each round."
    )


class Project(ProjectConfig):
    """Brief and configuration shared by every agent of a production."""

    brief: str = Field(min_length=1)

    def config(self) -> ProjectConfig:
        """The configuration without the brief."""
        return ProjectConfig.model_validate(self.model_dump(exclude={"brief"}))


# --- treatment -----------------------------------------------------------------------------


class Treatment(_Artifact):
    """One take on the story, a paragraph long, before any scene is written."""

    title: str = Field(min_length=1)
    logline: str = Field(min_length=1)
    tone: str = Field(min_length=1, description='e.g. "slapstick", "bittersweet"')
    synopsis: str = Field(min_length=1, description="The story from beginning to end.")


class TreatmentOptions(_Artifact):
    """Three clearly different treatments; the script is written from the chosen one."""

    options: list[Treatment] = Field(min_length=3, max_length=3)
    chosen: int = Field(
        1,
        ge=1,
        le=3,
        description="Number (1-3) of the option the script is written from.",
        json_schema_extra={CHOOSES_FROM: "options"},
    )

    def chosen_treatment(self) -> Treatment:
        """The option the person picked (or the writer recommends)."""
        return self.options[self.chosen - 1]


class Treatments(TreatmentOptions):
    """The treatments plus the project configuration the writer proposes with them.

    Approving the treatment gate also saves ``configuration`` as the project's; the web
    client opens it in the configuration modal, loaded with these not-yet-saved values.
    """

    configuration: ProjectConfig | None = Field(
        None, description="Proposed project configuration; saved when the gate is approved."
    )


# --- script --------------------------------------------------------------------------------


class ScriptLine(_Artifact):
    """One action paragraph or one line of dialogue, in script order."""

    kind: Literal["action", "dialogue"]
    text: str = Field(min_length=1)
    speaker: str | None = None
    parenthetical: str | None = None

    @model_validator(mode="after")
    def _dialogue_has_speaker(self) -> ScriptLine:
        if self.kind == "dialogue" and not self.speaker:
            raise ValueError("a dialogue line needs a speaker")
        if self.kind == "action" and self.speaker:
            raise ValueError("an action line has no speaker")
        return self


class Scene(_Artifact):
    """A scene: slugline, then action and dialogue lines in order."""

    number: int = Field(ge=1)
    slugline: str = Field(min_length=1, description='e.g. "INT. KITCHEN - NIGHT"')
    summary: str = ""
    lines: list[ScriptLine] = Field(min_length=1)


class Script(_Artifact):
    """The screenplay the shot lister splits; scenes are numbered 1..n in order."""

    title: str = Field(min_length=1)
    logline: str = ""
    scenes: list[Scene] = Field(min_length=1)

    @field_validator("scenes")
    @classmethod
    def _numbered_in_order(cls, scenes: list[Scene]) -> list[Scene]:
        return _numbered(scenes)


def _numbered(scenes: list[SceneT]) -> list[SceneT]:
    numbers = [scene.number for scene in scenes]
    if numbers != list(range(1, len(scenes) + 1)):
        raise ValueError(f"scenes must be numbered 1..{len(scenes)} in order, got {numbers}")
    return scenes


class MasterScene(_Artifact):
    """A scene rewritten as very descriptive visual prose for image generation."""

    number: int = Field(ge=1)
    slugline: str = Field(min_length=1)
    prose: str = Field(
        min_length=1,
        description="Who looks like what, wearing what, where, light and mood; no names alone.",
    )


class MasterScript(_Artifact):
    """The approved script's scenes, each rewritten as visual prose; same numbering."""

    title: str = Field(min_length=1)
    scenes: list[MasterScene] = Field(min_length=1)

    @field_validator("scenes")
    @classmethod
    def _numbered_in_order(cls, scenes: list[MasterScene]) -> list[MasterScene]:
        return _numbered(scenes)


# --- assets --------------------------------------------------------------------------------


class Look(_Artifact):
    """A look of a character (outfit/state), a state of a prop, or a variant of a location."""

    name: str = Field(min_length=1)
    description: str = Field(min_length=1)


class _Entity(_Artifact):
    id: str = Field(pattern=r"^[a-z0-9_]+$", description="Stable slug, e.g. 'persephone'.")
    name: str = Field(min_length=1)
    description: str = Field(min_length=1, description="Static features that never change.")

    def appearances(self) -> list[Look]:
        """The looks, states or variants this entity can appear in."""
        raise NotImplementedError


class Character(_Entity):
    """A character with static features and looks (outfits/states)."""

    looks: list[Look] = Field(min_length=1)

    def appearances(self) -> list[Look]:
        """Looks of this character."""
        return self.looks


class Location(_Entity):
    """A location with variants (day/night, damaged)."""

    variants: list[Look] = Field(min_length=1)

    def appearances(self) -> list[Look]:
        """Variants of this location."""
        return self.variants


class Prop(_Entity):
    """A prop with states (intact, broken)."""

    states: list[Look] = Field(min_length=1)

    def appearances(self) -> list[Look]:
        """States of this prop."""
        return self.states


class SceneUsage(_Artifact):
    """Which look/state/variant of an entity a scene uses."""

    scene: int = Field(ge=1)
    entity: str
    look: str


class AssetRegistry(_Artifact):
    """Characters, locations and props extracted once from the approved script."""

    characters: list[Character] = Field(default_factory=list)
    locations: list[Location] = Field(default_factory=list)
    props: list[Prop] = Field(default_factory=list)
    scene_usage: list[SceneUsage] = Field(default_factory=list)
    deselected: list[str] = Field(
        default_factory=list,
        description="Entity ids the person chose not to pre-generate.",
        json_schema_extra={DESELECTS: "Asset ids not to pre-generate"},
    )

    def entities(self) -> dict[str, Character | Location | Prop]:
        """Every entity by id."""
        return {e.id: e for e in [*self.characters, *self.locations, *self.props]}

    @model_validator(mode="after")
    def _references_exist(self) -> AssetRegistry:
        entities = self.entities()
        if len(entities) != len(self.characters) + len(self.locations) + len(self.props):
            raise ValueError("entity ids must be unique across characters, locations and props")
        for usage in self.scene_usage:
            entity = entities.get(usage.entity)
            if entity is None:
                raise ValueError(f"scene {usage.scene} uses unknown entity '{usage.entity}'")
            if usage.look not in {look.name for look in entity.appearances()}:
                raise ValueError(
                    f"scene {usage.scene} uses look '{usage.look}' that '{usage.entity}' lacks"
                )
        unknown = set(self.deselected) - entities.keys()
        if unknown:
            raise ValueError(f"deselected ids are not in the registry: {sorted(unknown)}")
        return self

    def in_scene(self, scene: int) -> list[SceneUsage]:
        """The entities a scene uses, with their look."""
        return [usage for usage in self.scene_usage if usage.scene == scene]

    def named_in(self, message: str) -> set[str] | None:
        """The ids of the assets a message names (by name or id); None: it names none."""
        words = message.lower()
        named = {
            entity_id
            for entity_id, entity in self.entities().items()
            if re.search(rf"\b({re.escape(entity.name.lower())}|{re.escape(entity_id)})\b", words)
        }
        return named or None


# --- shots ---------------------------------------------------------------------------------

ShotSize = Literal[
    "extreme wide", "wide", "full", "medium", "medium close-up", "close-up", "insert"
]


class ShotDialogue(_Artifact):
    """A line of dialogue spoken within a shot."""

    speaker: str = Field(min_length=1)
    text: str = Field(min_length=1)


class EntityInFrame(_Artifact):
    """An entity visible in a shot, in the look it has in this scene."""

    entity: str
    look: str


class Shot(_Artifact):
    """One shot of a scene, with camera, timing and what is in frame."""

    id: str = Field(pattern=r"^[0-9]+[A-Z]+$", description="Scene number + letter, e.g. '3A'.")
    scene: int = Field(ge=1)
    size: ShotSize
    angle: str = Field(min_length=1)
    movement: str = Field(min_length=1)
    lens: str = Field(min_length=1)
    duration_s: float = Field(gt=0, le=60)
    action: str = ""
    dialogue: list[ShotDialogue] = Field(default_factory=list)
    entities: list[EntityInFrame] = Field(default_factory=list)
    covers: list[int] = Field(
        default_factory=list, description="Indices of the scene's script lines this shot covers."
    )
    start_frame: str = Field(min_length=1)
    end_frame: str = Field(min_length=1)


class ShotList(ByScene):
    """Every shot of the production, in order."""

    scene_parts = ("shots",)
    scene_plan = True

    shots: list[Shot] = Field(min_length=1)

    @field_validator("shots")
    @classmethod
    def _unique_ids(cls, shots: list[Shot]) -> list[Shot]:
        ids = [shot.id for shot in shots]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"shot ids must be unique, repeated: {duplicates}")
        return shots

    def total_duration_s(self) -> float:
        """Sum of shot durations."""
        return sum(shot.duration_s for shot in self.shots)


# --- media ---------------------------------------------------------------------------------


class FrameCandidate(_Artifact):
    """One generated version of a keyframe, kept at the gate until one is accepted."""

    prompt: str
    seed: int
    workflow: str
    file: MediaFile
    references: list[MediaFile] = Field(default_factory=list, description="Reference images used.")
    note: str = Field("", description='"regenerated: <feedback>" or "inpainted: <prompt>".')


class Frame(_Artifact):
    """A start or end keyframe of a shot, with how it was generated.

    ``file`` is the chosen candidate (the newest by default); ``candidates`` are every
    version so far, oldest first (dropped once the frames are approved).
    """

    shot: str
    position: Literal["start", "end"]
    prompt: str
    seed: int
    workflow: str
    file: MediaFile
    candidates: list[FrameCandidate] = Field(default_factory=list)
    references: dict[str, MediaFile] = Field(
        default_factory=dict, description="Entity id -> the reference image used for it."
    )
    made_from: str = Field(
        "",
        description="Input hash of what it was drawn for (the shot, what is in frame); a "
        "later run keeps the approved frame while that is unchanged.",
    )


class ReferenceOption(_Artifact):
    """An image an entity's keyframes could use as its reference."""

    file: MediaFile
    label: str = Field(description='e.g. "reference sheet", "scene 1 · shot 1A end frame".')


class SheetCandidate(_Artifact):
    """One drawn (or uploaded) version of a reference sheet, kept at the gate until approval."""

    prompt: str
    seed: int
    workflow: str
    file: MediaFile
    note: str = Field("", description='"regenerated: <feedback>", or "your own image".')
    drawn_from: MediaFile | None = Field(
        None, description="The default look's sheet a sheet of another look was drawn from."
    )
    described: str | None = Field(
        None, description="An own image's look as the model describes it (to replace with)."
    )
    merged: str | None = Field(
        None, description="The look's description merged with what the own image shows."
    )


class ReferenceSheet(_Artifact):
    """The reference image of one asset in one look: a multi-view sheet on a plain background.

    ``file`` is the chosen candidate (the newest by default); ``candidates`` are every version
    so far, oldest first (dropped once approved). A skipped sheet is no asset's reference:
    the keyframes showing it go without one.
    """

    entity: str
    look: str
    file: MediaFile
    candidates: list[SheetCandidate] = Field(default_factory=list)
    skipped: bool = False
    description: str | None = Field(
        None,
        description="The look as this sheet shows it, when the person chose one (an own "
        "image's description, replacing or merged into the registry's); else the registry's.",
    )


class ReferenceSheets(_Artifact):
    """A reference sheet of every selected asset in each of its looks."""

    sheets: list[ReferenceSheet] = Field(default_factory=list)

    def sheet(self, entity: str, look: str) -> ReferenceSheet | None:
        """The sheet of ``entity`` in ``look``, if any."""
        return next((s for s in self.sheets if (s.entity, s.look) == (entity, look)), None)


class SceneInstance(_Artifact):
    """One asset in the look a scene uses, in that scene's context: what its keyframes show.

    ``reference`` is what it is drawn from: the latest approved instance of the asset in the
    same look from an earlier scene, else the look's sheet. ``file`` is the chosen image: a
    candidate drawn in this scene's context (the newest by default), the reference as it is,
    or an image from the asset's ``history``; None when the asset is skipped (its keyframes
    then use the sheet). ``candidates`` and ``history`` are for choosing at the gate; the
    approved instance drops them.
    """

    scene: int = Field(ge=1)
    entity: str
    look: str
    reference: ReferenceOption | None = None
    file: MediaFile | None = None
    candidates: list[SheetCandidate] = Field(default_factory=list)
    history: list[ReferenceOption] = Field(
        default_factory=list,
        description="The asset's approved images to pick instead, newest first: its instances "
        "in earlier scenes, then its sheets.",
    )
    skipped: bool = False

    def as_reference(self) -> ReferenceOption:
        """The chosen image as a reference option ("scene 2 instance (raincoat)").

        Raises:
            ValueError: The asset was skipped in this scene (no image).
        """
        if self.file is None:
            raise ValueError(f"{self.entity} has no instance in scene {self.scene}")
        return ReferenceOption(file=self.file, label=f"scene {self.scene} instance ({self.look})")

    def choices(self) -> set[str]:
        """The file keys the person may choose for it."""
        offered = [*self.candidates, *self.history, *([self.reference] if self.reference else [])]
        return {option.file.key for option in offered}


class SceneInstances(ByScene):
    """Every asset of every scene, in the look and context of the scene."""

    scene_parts = ("instances",)

    instances: list[SceneInstance] = Field(default_factory=list)

    def instance(self, scene: int, entity: str) -> SceneInstance | None:
        """The instance of ``entity`` in ``scene``, if any."""
        return next((i for i in self.instances if (i.scene, i.entity) == (scene, entity)), None)


class FrameSet(ByScene):
    """Keyframes of every shot.

    A proposal also lists, per entity in frame, the reference images the person may pick
    instead (newest first); the approved set drops them, as it drops the candidates.
    """

    scene_parts = ("frames",)

    frames: list[Frame] = Field(min_length=1)
    reference_options: dict[str, list[ReferenceOption]] = Field(
        default_factory=dict, description="Entity id -> images it could use, newest first."
    )

    def frame(self, shot: str, position: str) -> Frame | None:
        """The keyframe of ``shot`` at ``position``, if any."""
        return next((f for f in self.frames if (f.shot, f.position) == (shot, position)), None)


class Clip(_Artifact):
    """A short video of one shot, generated from its keyframes."""

    shot: str
    prompt: str
    seed: int
    duration_s: float = Field(gt=0)
    fps: int = Field(ge=1)
    frame_count: int = Field(ge=1)
    workflow: str
    file: MediaFile
    made_from: str = Field(
        "",
        description="Input hash of what it animates (the shot, its keyframes); a later run "
        "keeps the approved clip while that is unchanged.",
    )


class ClipSet(ByScene):
    """Clips of every shot, in shot order."""

    scene_parts = ("clips",)

    clips: list[Clip] = Field(min_length=1)


class Video(_Artifact):
    """The assembled production: its dialogue mixed in, with subtitles from the placed lines."""

    duration_s: float = Field(gt=0)
    fps: int = Field(ge=1)
    frame_count: int = Field(ge=1)
    file: MediaFile
    subtitles: dict[Literal["srt", "vtt"], MediaFile] = Field(
        default_factory=dict, description="SRT and WebVTT cues of the dialogue, when it has any."
    )
    loudness_lufs: float | None = Field(None, description="Integrated loudness of the mix.")


# --- sound ---------------------------------------------------------------------------------


class CastVoice(_Artifact):
    """The voice one speaking character is given, and how it is directed."""

    speaker: str = Field(min_length=1, description='The name the script gives, e.g. "DORA".')
    character: str | None = Field(None, description="The character's id in the asset registry.")
    voice: str = Field(min_length=1, description="A voice id of the speech backend.")
    label: str = Field("", description="The voice as the person sees it.")
    direction: str = Field("", description='Standing direction, e.g. "slow, warm".')
    sample: MediaFile | None = Field(None, description="A line of the character in this voice.")


class VoiceChoice(_Artifact):
    """A voice the speech backend offers."""

    id: str = Field(min_length=1)
    label: str = ""


class Cast(_Artifact):
    """A voice for every speaking character (none for a wordless film)."""

    backend: str = Field(min_length=1, description="The speech backend the voices belong to.")
    voices: list[CastVoice] = Field(default_factory=list)
    choices: list[VoiceChoice] = Field(
        default_factory=list, description="Every voice the backend offers, to swap one for."
    )

    @model_validator(mode="after")
    def _one_voice_each(self) -> Cast:
        speakers = [voice.speaker.casefold() for voice in self.voices]
        if len(speakers) != len(set(speakers)):
            raise ValueError("each speaker is cast once")
        offered = {choice.id for choice in self.choices}
        unknown = sorted({v.voice for v in self.voices} - offered) if offered else []
        if unknown:
            raise ValueError(f"not a voice of the {self.backend} backend: {', '.join(unknown)}")
        return self

    def voice_of(self, speaker: str) -> CastVoice | None:
        """The voice cast for ``speaker`` (names compared without case)."""
        return next((v for v in self.voices if v.speaker.casefold() == speaker.casefold()), None)


class SpokenLine(_Artifact):
    """One line of a shot's dialogue, spoken and placed in the shot."""

    id: str = Field(pattern=r"^[0-9]+[A-Z]+-[0-9]+$", description="Shot id and line, e.g. '1B-1'.")
    shot: str
    scene: int = Field(ge=1)
    speaker: str = Field(min_length=1)
    text: str = Field(min_length=1)
    voice: str = Field(min_length=1)
    direction: str = ""
    start_s: float = Field(ge=0, description="Where the line starts, from the shot's start.")
    duration_s: float = Field(gt=0, description="How long it is spoken (after re-timing).")
    tempo: float = Field(1.0, gt=0, description="How much it was sped up to fit the shot.")
    fits: bool = Field(True, description="Whether it ends inside its shot.")
    file: MediaFile


class SceneBed(_Artifact):
    """A scene's ambience or music bed, made from a prompt to play under the whole scene."""

    scene: int = Field(ge=1)
    prompt: str = Field(min_length=1, description="What the scene sounds like.")
    duration_s: float = Field(gt=0, description="The scene's length it was made for.")
    file: MediaFile


class DialogueTrack(ByScene):
    """Every spoken line of the production, in shot order (none for a wordless film).

    ``beds`` holds a bed per scene when a ComfyUI ``text_to_audio`` workflow made them;
    none otherwise (the draft backend makes no sound).
    """

    scene_parts = ("lines", "beds")

    lines: list[SpokenLine] = Field(default_factory=list)
    beds: list[SceneBed] = Field(default_factory=list)
