"""Casting: a voice for every speaking character, proposed from the asset registry.

The speakers are the names the approved script gives its dialogue; each is matched to its
character in the registry (by name or id) and given the backend's voice whose gender and
age best fit the character's description and the script's action lines about them alone
(their pronouns), every speaker a different voice while the catalogue lasts. Each proposal
speaks the character's first line in its voice, so the person listens before approving.
The person swaps a voice or writes a direction by editing; feedback recasts the speakers it
names (all of them when it names none) with a voice they did not have, reading the
feedback as more of the character ("older", "a woman's voice").
A production that already has an approved cast keeps every voice of it.

The proposal needs no language model: what fits a voice is in the registry and the script.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Sequence

from langgraph.runtime import Runtime

from agents._voices import speak, speech_of
from agents.artifacts import AssetRegistry, Cast, CastVoice, Character, Script, VoiceChoice
from agents.base import Context, ProductionAgent, ProductionState, feedback_at, progress
from tools.speech import Voice

_TRAITS = {
    "gender": {
        "female": (
            "she her woman girl mother grandmother grandma queen lady aunt sister daughter "
            "wife princess mum mom female feminine"
        ),
        "male": (
            "he his him man boy father grandfather grandpa king uncle brother son husband "
            "prince sir male masculine"
        ),
    },
    "age": {
        "child": "child kid little small tiny baby toddler boy girl young",
        "young": "young teen teenage youthful junior",
        "adult": "adult grown middle-aged",
        "old": "old older elderly aged ancient grey-haired grandmother grandfather grandma grandpa",
    },
}


class Casting(ProductionAgent):
    """Casts a voice for each speaking character and lets the person hear it."""

    name = "casting"
    stage = "casting"
    artifact = Cast
    requires = ("script", "assets")
    description = "Proposes a voice for each speaking character, with a sample line to hear."

    async def propose(self, state: ProductionState, runtime: Runtime[Context]) -> Cast:
        """Cast every speaker; on feedback, recast the speakers it names."""
        backend = speech_of(runtime)
        catalogue = backend.voices()
        script = Script.model_validate(state["script"])
        assets = AssetRegistry.model_validate(state["assets"])
        lines = _first_lines(script)
        previous = state.get("drafts", {}).get(self.stage)
        before = previous or state.get("casting")  # this gate's draft, else the approved cast
        current = Cast.model_validate(before) if before else None
        feedback = feedback_at(state, self.stage) if previous else []
        named = _named_speakers(feedback[-1], list(lines)) if feedback else set()
        recast = set(lines) if feedback and not named else named
        taken: set[str] = set()
        planned: list[tuple[str, Character | None, Voice, str]] = []
        for speaker in lines:
            character = _character(assets, speaker)
            kept = current.voice_of(speaker) if current else None
            if kept is not None and speaker not in recast:
                voice = next((v for v in catalogue if v.id == kept.voice), catalogue[0])
                planned.append((speaker, character, voice, kept.direction))
                taken.add(voice.id)
                continue
            traits = " ".join(
                [
                    _description(character),
                    *_actions_about(script, speaker, lines),
                    *(feedback if speaker in recast else []),
                ]
            )
            avoid = {kept.voice} if kept is not None else set()
            voice = best_voice(catalogue, traits, taken=taken, avoid=avoid)
            taken.add(voice.id)
            planned.append((speaker, character, voice, kept.direction if kept else ""))

        done = 0

        async def cast(
            speaker: str, character: Character | None, voice: Voice, direction: str
        ) -> CastVoice:
            nonlocal done
            sample = await speak(self, runtime, lines[speaker], voice=voice.id, direction=direction)
            done += 1
            progress(runtime, self.stage, f"voice {done}/{len(planned)} cast: {speaker}")
            return CastVoice(
                speaker=speaker,
                character=character.id if character else None,
                voice=voice.id,
                label=voice.label,
                direction=direction,
                sample=sample,
            )

        voices = await asyncio.gather(*(cast(*plan) for plan in planned))
        choices = [VoiceChoice(id=voice.id, label=voice.label) for voice in catalogue]
        return Cast(backend=backend.name, voices=list(voices), choices=choices)

    def problems(self, artifact: Cast, state: ProductionState) -> list[str]:
        """Speakers left without a voice (an edit can remove one)."""
        speakers = _first_lines(Script.model_validate(state["script"]))
        return [f"{s} speaks but has no voice" for s in speakers if artifact.voice_of(s) is None]

    def summary(self, artifact: Cast) -> str:
        """Who speaks in which voice."""
        if not artifact.voices:
            return "Nobody speaks in this film: there is no one to cast. Approve to go on."
        cast = ", ".join(f"{v.speaker} ({v.label or v.voice})" for v in artifact.voices)
        return f"{len(artifact.voices)} voices: {cast}. Listen to each, swap or direct, approve."


def best_voice(
    catalogue: Sequence[Voice], traits: str, *, taken: set[str], avoid: set[str]
) -> Voice:
    """The voice that best fits ``traits`` (gender, then age) of those not taken or avoided.

    A voice in ``avoid`` (the one feedback turned down) comes last; one ``taken`` by another
    speaker comes only when every other voice is taken too.

    Raises:
        ValueError: The catalogue is empty.
    """
    if not catalogue:
        raise ValueError("the speech backend offers no voices")
    words = set(re.findall(r"[a-z-]+", traits.lower()))
    wanted = {
        kind: {trait for trait, vocabulary in options.items() if words & set(vocabulary.split())}
        for kind, options in _TRAITS.items()
    }

    def fit(voice: Voice) -> tuple[bool, bool, int]:
        score = 2 * (voice.gender in wanted["gender"]) + (voice.age in wanted["age"])
        return (voice.id not in avoid, voice.id not in taken, score)

    return max(catalogue, key=fit)


def _first_lines(script: Script) -> dict[str, str]:
    """Every speaker of the script, in order of appearance, with their first line."""
    lines: dict[str, str] = {}
    for scene in script.scenes:
        for line in scene.lines:
            if line.kind == "dialogue" and line.speaker:
                lines.setdefault(line.speaker.strip(), line.text)
    return lines


def _character(assets: AssetRegistry, speaker: str) -> Character | None:
    wanted = speaker.casefold()
    return next(
        (c for c in assets.characters if wanted in {c.name.casefold(), c.id.casefold()}), None
    )


def _actions_about(script: Script, speaker: str, speakers: Iterable[str]) -> list[str]:
    """The script's action lines that name ``speaker`` and no other speaker.

    Their pronouns ("Dora keeps stirring her bowl") say what the registry may not.
    """
    others = [s for s in speakers if s.casefold() != speaker.casefold()]
    return [
        line.text
        for scene in script.scenes
        for line in scene.lines
        if line.kind == "action" and _named_speakers(line.text, [speaker, *others]) == {speaker}
    ]


def _description(character: Character | None) -> str:
    if character is None:
        return ""
    looks = " ".join(look.description for look in character.looks)
    return f"{character.name} {character.description} {looks}"


def _named_speakers(message: str, speakers: list[str]) -> set[str]:
    """The speakers a feedback message names (whole words, any case)."""
    return {
        speaker
        for speaker in speakers
        if re.search(rf"\b{re.escape(speaker)}\b", message, re.IGNORECASE)
    }
