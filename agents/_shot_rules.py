"""Shot-list rules: what a shot list must satisfy against the script and the asset registry.

Pure functions, no model calls. The shot lister drafts scene by scene: it checks each
scene's shots with :func:`check_scene_shots` and, when something is wrong, asks its model
for a repair of that scene with :func:`describe`; the whole list is checked with
:func:`check_shot_list` (the same scene rules, scene by scene, plus the shots of no scene)
and those messages are shown to the person at the gate, so each one names the shot, scene
and line it is about.

The rules:

- ``coverage``: every action and dialogue line of every scene is covered (``Shot.covers``)
  by exactly one shot of that scene, the scene's shots cover its lines in script order, and
  no shot covers a line the scene does not have.
- ``unknown_scene``: a shot belongs to a scene of the script.
- ``wrong_scene`` / ``shot_id``: a shot listed for a scene says it belongs to that scene,
  and its id is that scene's number and a letter ("2A"), so scenes drafted apart never
  share an id.
- ``dialogue_mismatch``: a shot's dialogue is exactly the dialogue lines it covers
  (speaker and text, in script order); the shot lister splits the script, never rewrites it.
- ``dialogue_rate``: a shot's dialogue fits its duration, at most
  :data:`MAX_WORDS_PER_SECOND` words per second.
- ``unknown_entity`` / ``unknown_look`` / ``wrong_look``: every entity in frame is in the
  registry, in one of its looks (states, variants), and in the look the registry records
  for that scene when it records one.

Line numbers in messages are the indices ``Shot.covers`` uses (the first line is 0).
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass

from agents.artifacts import AssetRegistry, Scene, Script, ScriptLine, Shot, ShotList

__all__ = ["MAX_WORDS_PER_SECOND", "Violation", "check_scene_shots", "check_shot_list", "describe"]

MAX_WORDS_PER_SECOND = 2.5
"""The fastest dialogue a shot may hold, in words per second of its duration."""

_EXCERPT_CHARS = 60


@dataclass(frozen=True)
class Violation:
    """One broken rule of a shot list.

    Attributes:
        rule: Which rule: ``"coverage"``, ``"dialogue_rate"``, ``"unknown_entity"``,
            ``"unknown_look"``, ``"wrong_look"``, ``"dialogue_mismatch"``,
            ``"unknown_scene"``, ``"wrong_scene"`` or ``"shot_id"``.
        shot: The id of the shot at fault, or ``None`` when no single shot is (a line that
            no shot covers).
        message: What is wrong, specific enough for the model to repair it and for the
            person to read at the gate.
    """

    rule: str
    shot: str | None
    message: str


def check_shot_list(shots: ShotList, script: Script, assets: AssetRegistry) -> list[Violation]:
    """Check a shot list against the script it splits and the asset registry.

    Args:
        shots: The proposed shot list.
        script: The approved script.
        assets: The approved asset registry.

    Returns:
        Every violation found, scene by scene and shot by shot; empty when the shot list
        satisfies every rule.
    """
    numbers = {scene.number for scene in script.scenes}
    by_scene: dict[int, list[Shot]] = defaultdict(list)
    violations: list[Violation] = []
    for shot in shots.shots:
        if shot.scene in numbers:
            by_scene[shot.scene].append(shot)
        else:
            violations += [_unknown_scene(shot, script), *_dialogue_rate(shot)]
            violations += _entities(shot, assets)
    for scene in script.scenes:
        violations += check_scene_shots(by_scene[scene.number], scene, assets)
    return violations


def check_scene_shots(shots: list[Shot], scene: Scene, assets: AssetRegistry) -> list[Violation]:
    """Check the shots listed for one scene against that scene and the asset registry.

    Args:
        shots: The scene's shots, in order.
        scene: The approved script's scene they split.
        assets: The approved asset registry.

    Returns:
        Every violation found: the scene's coverage, then shot by shot.
    """
    violations = _coverage(scene, shots)
    for shot in shots:
        violations += _belongs(shot, scene)
        violations += _dialogue_mismatch(shot, scene)
        violations += _dialogue_rate(shot)
        violations += _entities(shot, assets)
    return violations


def describe(violations: list[Violation]) -> str:
    """The violations as a numbered list, one per line, for a repair prompt.

    Args:
        violations: What :func:`check_shot_list` found.

    Returns:
        One ``"<n>. <message>"`` line per violation; an empty string when there are none.
    """
    return "\n".join(f"{n}. {violation.message}" for n, violation in enumerate(violations, 1))


# --- coverage ----------------------------------------------------------------------------------


def _unknown_scene(shot: Shot, script: Script) -> Violation:
    return Violation(
        "unknown_scene",
        shot.id,
        f"shot {shot.id} belongs to scene {shot.scene}, which is not in the script "
        f"({_span('scene', len(script.scenes), start=1)})",
    )


def _belongs(shot: Shot, scene: Scene) -> list[Violation]:
    """A shot listed for ``scene`` says so, and carries the scene's number in its id."""
    n = scene.number
    if shot.scene != n:
        return [
            Violation(
                "wrong_scene",
                shot.id,
                f"shot {shot.id} is listed for scene {n} but says it belongs to scene {shot.scene}",
            )
        ]
    if not re.fullmatch(rf"{n}[A-Z]+", shot.id):
        return [
            Violation(
                "shot_id",
                shot.id,
                f"shot {shot.id} of scene {n} needs an id of the scene number and a letter, "
                f"like {n}A",
            )
        ]
    return []


def _coverage(scene: Scene, shots: list[Shot]) -> list[Violation]:
    """Every line of ``scene`` covered once, in order, by its ``shots`` (in shot-list order)."""
    n = scene.number
    count = len(scene.lines)
    if not shots:
        return [
            Violation(
                "coverage",
                None,
                f"scene {n} has no shots: {_span('line', count)} "
                f"{'is' if count == 1 else 'are'} covered by no shot",
            )
        ]
    violations: list[Violation] = []
    covered_by: dict[int, list[str]] = defaultdict(list)
    last: tuple[int, str] | None = None  # the highest line covered so far, and by which shot
    for shot in shots:
        in_order = True  # one out-of-order report per shot is enough to act on
        for index in shot.covers:
            if not 0 <= index < count:
                violations.append(
                    Violation(
                        "coverage",
                        shot.id,
                        f"shot {shot.id} covers line {index}, but scene {n} has only "
                        f"{_span('line', count)}",
                    )
                )
                continue
            covered_by[index].append(shot.id)
            if len(covered_by[index]) > 1:
                continue  # reported below as covered twice, not again as out of order
            if in_order and last is not None and index < last[0]:
                in_order = False
                before = str(last[0]) if last[1] == shot.id else f"{last[1]} covers {last[0]}"
                violations.append(
                    Violation(
                        "coverage",
                        shot.id,
                        f"scene {n}: shots cover lines out of order "
                        f"({shot.id} covers {index} after {before})",
                    )
                )
            if last is None or index > last[0]:
                last = (index, shot.id)
    for index, line in enumerate(scene.lines):
        ids = covered_by.get(index, [])
        if not ids:
            violations.append(
                Violation(
                    "coverage",
                    None,
                    f"scene {n}: line {index} ({_quote(line)}) is covered by no shot",
                )
            )
        elif len(ids) > 1:
            distinct = list(dict.fromkeys(ids))
            by = (
                f"more than once by shot {distinct[0]}"
                if len(distinct) == 1
                else f"by shots {_and(distinct)}"
            )
            violations.append(
                Violation(
                    "coverage", ids[-1], f"scene {n}: line {index} ({_quote(line)}) is covered {by}"
                )
            )
    return violations


# --- dialogue ----------------------------------------------------------------------------------


def _dialogue_mismatch(shot: Shot, scene: Scene) -> list[Violation]:
    """The shot's dialogue must be the dialogue lines it covers, in script order."""
    indices = sorted({i for i in shot.covers if 0 <= i < len(scene.lines)})
    expected = [(i, scene.lines[i]) for i in indices if scene.lines[i].kind == "dialogue"]
    actual = [(d.speaker, d.text) for d in shot.dialogue]
    if [_key(line.speaker or "", line.text) for _, line in expected] == [
        _key(speaker, text) for speaker, text in actual
    ]:
        return []
    detail = _first_difference(expected, actual)
    return [
        Violation(
            "dialogue_mismatch",
            shot.id,
            f"shot {shot.id} dialogue differs from the script lines it covers: {detail}",
        )
    ]


def _first_difference(expected: list[tuple[int, ScriptLine]], actual: list[tuple[str, str]]) -> str:
    for position in range(max(len(expected), len(actual))):
        if position >= len(actual):
            index, line = expected[position]
            return f"line {index} ({_quote(line)}) is missing from the shot's dialogue"
        speaker, text = actual[position]
        if position >= len(expected):
            return (
                f"the shot has {_said(speaker, text)}, which is in none of the dialogue "
                f"lines it covers"
            )
        index, line = expected[position]
        if _key(line.speaker or "", line.text) != _key(speaker, text):
            return f"line {index} is {_quote(line)} but the shot has {_said(speaker, text)}"
    return "the dialogue does not match"  # pragma: no cover - the lists differ somewhere


def _dialogue_rate(shot: Shot) -> list[Violation]:
    """The shot's dialogue must be speakable within its duration."""
    words = sum(len(line.text.split()) for line in shot.dialogue)
    most = math.floor(MAX_WORDS_PER_SECOND * shot.duration_s + 1e-9)
    if words <= most:
        return []
    return [
        Violation(
            "dialogue_rate",
            shot.id,
            f"shot {shot.id}: {words} words of dialogue in {shot.duration_s:g} s exceeds "
            f"{MAX_WORDS_PER_SECOND:g} words/s (max {most})",
        )
    ]


# --- entities ----------------------------------------------------------------------------------

_APPEARANCE_NOUN = {"Character": "looks", "Location": "variants", "Prop": "states"}


def _entities(shot: Shot, assets: AssetRegistry) -> list[Violation]:
    """Entities in frame exist, in a look they have, and in the look their scene uses."""
    registry = assets.entities()
    usage = {u.entity: u.look for u in assets.in_scene(shot.scene)}
    violations: list[Violation] = []
    for in_frame in shot.entities:
        entity = registry.get(in_frame.entity)
        if entity is None:
            violations.append(
                Violation(
                    "unknown_entity",
                    shot.id,
                    f"shot {shot.id} names entity '{in_frame.entity}' that is not in the "
                    f"asset registry",
                )
            )
            continue
        looks = [look.name for look in entity.appearances()]
        if in_frame.look not in looks:
            noun = _APPEARANCE_NOUN.get(type(entity).__name__, "looks")
            violations.append(
                Violation(
                    "unknown_look",
                    shot.id,
                    f"shot {shot.id} shows '{entity.id}' as '{in_frame.look}', which is not "
                    f"one of its {noun} ({', '.join(repr(name) for name in looks)})",
                )
            )
            continue
        wanted = usage.get(entity.id)
        if wanted is not None and in_frame.look != wanted:
            violations.append(
                Violation(
                    "wrong_look",
                    shot.id,
                    f"shot {shot.id} shows '{entity.id}' as '{in_frame.look}' but scene "
                    f"{shot.scene} uses '{wanted}'",
                )
            )
    return violations


# --- wording -----------------------------------------------------------------------------------


def _key(speaker: str, text: str) -> tuple[str, str]:
    """Speaker and text compared up to case of the speaker and runs of whitespace."""
    return " ".join(speaker.split()).casefold(), " ".join(text.split())


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= _EXCERPT_CHARS:
        return text
    return text[: _EXCERPT_CHARS - 1].rstrip() + "…"


def _quote(line: ScriptLine) -> str:
    if line.kind == "dialogue":
        return _said(line.speaker or "", line.text)
    return f'action: "{_excerpt(line.text)}"'


def _said(speaker: str, text: str) -> str:
    return f'{speaker}: "{_excerpt(text)}"'


def _span(noun: str, count: int, *, start: int = 0) -> str:
    """``"line 0"`` for one, ``"lines 0 to 4"`` for five."""
    if count == 1:
        return f"{noun} {start}"
    return f"{noun}s {start} to {start + count - 1}"


def _and(items: list[str]) -> str:
    if len(items) <= 2:
        return " and ".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
