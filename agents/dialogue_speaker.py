"""Dialogue: every line of the shot list spoken in its speaker's cast voice, placed in its shot.

A shot's lines are spoken one after another from a short lead-in, with a breath between
them. Lines that run longer than their shot are sped up, together, as far as sounds natural
(:data:`MAX_TEMPO`); a line that still runs past the shot's end is flagged at the gate, not
fixed by lengthening the shot: the shot list, and the keyframes and clips timed from it,
are the person's approved decisions, so the person chooses — shorten the line, or lengthen
the shot in the shot list. The mix places the lines where this artifact says.

Feedback directs lines: it applies to the lines it names ("1B-1: angrier", or "shot 1B:
whisper" for all of a shot's lines), or to every line when it names none; the feedback is
added to those lines' direction and only they are spoken again. A run that starts with an
approved dialogue keeps the direction each unchanged line was given, and pays for no line
still spoken from the same text, voice and direction.

On ComfyUI with a ``text_to_audio`` workflow in the library, the stage also makes an
ambience bed per scene (:mod:`agents._beds`); feedback about the ambience ("scene 2
ambience: distant thunder") makes only that bed again and leaves the lines as they are.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from langgraph.runtime import Runtime

from agents._beds import about_beds, scene_beds
from agents._voices import speak
from agents.artifacts import (
    Cast,
    DialogueTrack,
    MasterScript,
    MediaFile,
    Shot,
    ShotList,
    SpokenLine,
)
from agents.base import Context, ProductionAgent, ProductionState, feedback_at, progress
from tools.sound import fit_line, wav_duration_s

LEAD_IN_S = 0.25
"""Silence before a shot's first line (the cut lands before anyone speaks)."""
BREATH_S = 0.2
"""Silence between two lines of one shot."""
TAIL_S = 0.1
"""Silence kept after a shot's last line."""
MAX_TEMPO = 1.35
"""The most a line is sped up to fit its shot: faster starts to sound rushed."""
LINES_AT_ONCE = 4
"""Lines one draft asks the speech backend for at once (an endpoint's rate limit is low)."""

_MENTION = re.compile(r"\b([0-9]+[A-Za-z]+)(?:-([0-9]+))?\b")


@dataclass(frozen=True)
class _Line:
    """A line to speak: where it is in the shot list, and how."""

    id: str
    shot: Shot
    speaker: str
    text: str
    voice: str
    direction: str


class DialogueSpeaker(ProductionAgent):
    """Speaks every line of dialogue in its speaker's voice and fits it to its shot."""

    name = "dialogue_speaker"
    stage = "dialogue"
    artifact = DialogueTrack
    requires = ("shots", "casting", "master_script")
    description = "Speaks each shot's dialogue in the cast voices and fits it to the shot."
    per_scene = True

    async def propose(self, state: ProductionState, runtime: Runtime[Context]) -> DialogueTrack:
        """Speak the lines (only those the feedback names, when it names some), make the beds."""
        shots = ShotList.model_validate(state["shots"]).shots
        cast = Cast.model_validate(state["casting"])
        previous = state.get("drafts", {}).get(self.stage)
        before = previous or state.get("dialogue")  # this gate's draft, else the approved lines
        track = DialogueTrack.model_validate(before) if before else DialogueTrack()
        earlier = {x.id: x for x in track.lines}
        feedback = feedback_at(state, self.stage)
        latest = feedback[-1] if previous and feedback else ""
        on_beds = about_beds(latest)
        on_lines = "" if on_beds else latest
        redirected = named_lines(on_lines, list(earlier)) if on_lines else {}
        lines = _lines(shots, cast)
        planned = [
            _with_direction(line, earlier.get(line.id), redirected, on_lines) for line in lines
        ]
        spoken, beds = await asyncio.gather(
            self._speak_all(runtime, planned),
            scene_beds(
                self,
                runtime,
                shots,
                MasterScript.model_validate(state["master_script"]),
                track.beds,
                latest if on_beds else "",
            ),
        )
        placed: list[SpokenLine] = []
        for shot in shots:
            placed += await _placed(runtime, shot, [s for s in spoken if s[0].shot is shot])
        return DialogueTrack(lines=placed, beds=beds)

    async def _speak_all(
        self, runtime: Runtime[Context], planned: list[_Line]
    ) -> list[tuple[_Line, MediaFile]]:
        """Each planned line's natural recording, :data:`LINES_AT_ONCE` at a time.

        A line spoken before from the same text, voice and direction (an earlier draft, the
        approved dialogue, a resumed run) is found by :func:`~agents._voices.speak`, not paid
        for again.
        """
        done = 0
        slots = asyncio.Semaphore(LINES_AT_ONCE)

        async def one(line: _Line) -> tuple[_Line, MediaFile]:
            nonlocal done
            async with slots:
                file = await speak(
                    self, runtime, line.text, voice=line.voice, direction=line.direction
                )
            done += 1
            progress(runtime, self.stage, f"line {done}/{len(planned)} spoken", shot=line.shot.id)
            return line, file

        return list(await asyncio.gather(*(one(line) for line in planned)))

    def problems(self, artifact: DialogueTrack, state: ProductionState) -> list[str]:
        """Lines that run past the end of their shot even sped up."""
        return [
            f"{line.id} ({line.speaker}) runs past the end of shot {line.shot} even spoken "
            f"{line.tempo:g}x faster: shorten the line, or lengthen the shot in the shot list."
            for line in artifact.lines
            if not line.fits
        ]

    def summary(self, artifact: DialogueTrack) -> str:
        """Line count and speech time, and the scene beds if there are any."""
        beds = (
            f" {len(artifact.beds)} scene ambience beds: direct one with "
            '"scene 1 ambience: distant thunder".'
            if artifact.beds
            else ""
        )
        if not artifact.lines:
            return f"No line is spoken in this film.{beds} Approve to go on."
        shots = len({line.shot for line in artifact.lines})
        seconds = sum(line.duration_s for line in artifact.lines)
        return (
            f"{len(artifact.lines)} lines in {shots} shots, {seconds:.1f} s of speech.{beds} "
            'Listen, direct a line ("1B-1: angrier"), then approve.'
        )


def named_lines(message: str, ids: list[str]) -> dict[str, str]:
    """The line ids a feedback message names: a line ("1B-1") or all of a shot's ("1B")."""
    named: dict[str, str] = {}
    for shot, number in _MENTION.findall(message):
        wanted = f"{shot.upper()}-{number}" if number else None
        for line_id in ids:
            if line_id == wanted or (wanted is None and line_id.rsplit("-", 1)[0] == shot.upper()):
                named[line_id] = message
    return named


def _lines(shots: list[Shot], cast: Cast) -> list[_Line]:
    """Every line of the shot list with the voice and standing direction cast for it.

    A speaker the cast lacks (an edit removed them) speaks in the first cast voice, or the
    first voice offered.
    """
    fallback = cast.voices[0].voice if cast.voices else cast.choices[0].id if cast.choices else ""
    lines = []
    for shot in shots:
        for number, spoken in enumerate(shot.dialogue, start=1):
            voice = cast.voice_of(spoken.speaker)
            lines.append(
                _Line(
                    id=f"{shot.id}-{number}",
                    shot=shot,
                    speaker=spoken.speaker,
                    text=spoken.text,
                    voice=voice.voice if voice else fallback,
                    direction=voice.direction if voice else "",
                )
            )
    return lines


def _with_direction(
    line: _Line, earlier: SpokenLine | None, redirected: dict[str, str], feedback: str
) -> _Line:
    """The line as it is to be spoken now: its earlier direction, plus feedback on it.

    The direction given to the same words by the same speaker earlier (in the draft, or in
    the approved dialogue when a scene is made again) is kept.
    """
    same = earlier is not None and (earlier.text, earlier.speaker) == (line.text, line.speaker)
    direction = earlier.direction if earlier is not None and same else line.direction
    if redirected.get(line.id) or (feedback and not redirected):
        note = redirected.get(line.id) or feedback
        direction = f"{direction}; {note}" if direction else note
    return _Line(line.id, line.shot, line.speaker, line.text, line.voice, direction)


async def _placed(
    runtime: Runtime[Context],
    shot: Shot,
    spoken: list[tuple[_Line, MediaFile]],
) -> list[SpokenLine]:
    """A shot's lines placed one after another, sped up together if they run too long."""
    if not spoken:
        return []
    files = runtime.context.files
    audio = await asyncio.to_thread(lambda: [files.read(file) for _, file in spoken])
    natural = [wav_duration_s(wav) for wav in audio]
    room = shot.duration_s - LEAD_IN_S - TAIL_S - BREATH_S * (len(spoken) - 1)
    share = room / sum(natural) if sum(natural) > room > 0 else 1.0
    placed, start = [], LEAD_IN_S
    for (line, source), wav, length in zip(spoken, audio, natural, strict=True):
        file, duration, tempo = source, length, 1.0
        if share < 1.0:
            fitted = await asyncio.to_thread(fit_line, wav, length * share, max_tempo=MAX_TEMPO)
            file = await asyncio.to_thread(
                files.put, fitted.wav, extension="wav", media_type="audio/wav"
            )
            duration, tempo = fitted.duration_s, fitted.tempo
        placed.append(
            SpokenLine(
                id=line.id,
                shot=shot.id,
                scene=shot.scene,
                speaker=line.speaker,
                text=line.text,
                voice=line.voice,
                direction=line.direction,
                start_s=round(start, 3),
                duration_s=round(duration, 3),
                tempo=round(tempo, 3),
                fits=start + duration <= shot.duration_s + 1e-6,
                file=file,
            )
        )
        start += duration + BREATH_S
    return placed
