"""Speech through the workflow library: a ComfyUI ``text_to_speech`` workflow as a speech backend.

:func:`comfy_speech` finds the workflow the way the media agents find theirs
(:func:`~tools.comfy_tools.pick_workflow`: discovery ranks the catalogue by what the task
needs, the first ``text_to_speech`` workflow taking ``text`` and ``voice`` wins) and runs it
on the run's media backend, so its jobs share the ComfyUI pool, its retries and its GPU
ledger with the frames and clips. The voices casting is offered are the workflow's ``voice``
input's ``choices``; each is labelled with the gender and age its name says ("Energetic Male
(en)" is a man, "E-girl (en)" a young woman), neutral and adult when the name says neither.

Direction becomes the workflow's own parameters where it has them (see :func:`directed`):
the speaking rate goes to ``speed``, the volume to ``volume`` in dB, livelier or flatter
intonation to ``temperature`` (the model's expressiveness); a whisper and pitch changes
have no parameter and are not heard. The workflow is chosen once, when the run's context is
built: a new speech workflow is used from the next start.

Example::

    speech = await comfy_speech(media_backend(["http://gpu:8188"]), discovery)
    wav = await speech.synthesize("Who goes there?", voice="Narrator (en)", direction="slower")
"""

from __future__ import annotations

import asyncio
import math
import re
from typing import Any, ClassVar

from tools.comfy_tools import MediaBackend, pick_workflow
from tools.discovery import WorkflowDiscovery
from tools.sound import to_wav
from tools.speech import Age, Delivery, Gender, SpeechError, Voice, delivery
from tools.workflows import WorkflowSpec

__all__ = ["SPEECH_INTENT", "ComfySpeech", "comfy_speech", "directed"]

SPEECH_INTENT = "text-to-speech: speak one line of film dialogue in a chosen voice"
"""What discovery is asked for when the speech workflow is chosen."""

_MALE = re.compile(r"\b(male|man|men|boy|guy)\b", re.IGNORECASE)
_FEMALE = re.compile(r"\b(female|woman|women|girl|lady)\b", re.IGNORECASE)
_YOUNG = re.compile(r"\b(girl|boy|young|teen)\b", re.IGNORECASE)
_OLD = re.compile(r"\b(old|elderly|grandpa|grandma)\b", re.IGNORECASE)


async def comfy_speech(media: MediaBackend, discovery: WorkflowDiscovery | None) -> ComfySpeech:
    """The library's speech workflow on ``media``, found through ``discovery``.

    Raises:
        SpeechError: If ``media`` is not ComfyUI, or the library has no workflow that can
            speak a line in a chosen voice.

    """
    if media.name != "comfyui":
        raise SpeechError(
            "AUTEUR_SPEECH=comfyui speaks through a ComfyUI workflow: set AUTEUR_COMFYUI_URLS"
        )
    try:
        spec = await pick_workflow(SPEECH_INTENT, "text_to_speech", ("text", "voice"), discovery)
    except LookupError as error:
        raise SpeechError(f"AUTEUR_SPEECH=comfyui: {error}") from None
    return ComfySpeech(spec, media)


class ComfySpeech:
    """A :class:`~tools.speech.SpeechBackend` running one text-to-speech workflow.

    ``model`` is the workflow's name and version, so a changed workflow speaks every line
    anew rather than reusing lines cached from the old one.
    """

    name: ClassVar[str] = "comfyui"

    def __init__(self, spec: WorkflowSpec, media: MediaBackend) -> None:
        voice = spec.inputs.get("voice")
        if voice is None or not voice.choices:
            raise SpeechError(f"{spec.source}: its 'voice' input lists no choices to cast from")
        self.spec = spec
        self.media = media
        self.model = f"{spec.name}@{spec.version[:12]}"
        self._voices = [_voice(choice, spec.name) for choice in voice.choices]

    def describe(self) -> str:
        """The workflow and where it runs."""
        return f"ComfyUI workflow {self.spec.name} on the {self.media.name} backend"

    def voices(self) -> list[Voice]:
        """The workflow's voice choices, in the order its metadata lists them."""
        return list(self._voices)

    async def synthesize(self, text: str, *, voice: str, direction: str = "") -> bytes:
        """Speak ``text`` in ``voice`` (one of the workflow's choices) as directed; a WAV.

        Raises:
            ValueError: If ``text`` is blank.
            SpeechError: If ``voice`` is not one of the workflow's.

        """
        if not text.strip():
            raise ValueError("nothing to say: the line is empty")
        if voice not in {v.id for v in self._voices}:
            known = ", ".join(v.id for v in self._voices)
            raise SpeechError(f"{self.spec.name} has no voice {voice!r}; it has {known}")
        values = {"text": text, "voice": voice, **directed(self.spec, delivery(direction))}
        run = await self.media.run_workflow(self.spec, values, label=f"speech: {voice}")
        return await asyncio.to_thread(to_wav, run.outputs[0].data)


def directed(spec: WorkflowSpec, how: Delivery) -> dict[str, Any]:
    """The values of ``spec``'s parameters that carry ``how``; none for a plain delivery.

    ``speed`` takes the rate as a factor, ``volume`` the volume in dB, ``temperature`` its
    default times the pitch range (a livelier line is more varied); each is kept within
    the input's limits, and one the workflow lacks is left out.

    Example:
        >>> directed(spec, delivery("faster, louder"))
        {'speed': 1.25, 'volume': 3.52}

    """
    values: dict[str, float] = {}
    if not math.isclose(how.rate, 1.0):
        values["speed"] = how.rate
    if not math.isclose(how.volume, 1.0):
        values["volume"] = 20 * math.log10(how.volume)
    temperature = spec.inputs.get("temperature")
    if not math.isclose(how.pitch_range, 1.0) and temperature and temperature.default is not None:
        values["temperature"] = temperature.default * how.pitch_range
    result: dict[str, Any] = {}
    for name, value in values.items():
        item = spec.inputs.get(name)
        if item is None:
            continue
        low = item.minimum if item.minimum is not None else -math.inf
        high = item.maximum if item.maximum is not None else math.inf
        result[name] = round(min(high, max(low, value)), 2)
    return result


def _voice(choice: str, workflow: str) -> Voice:
    """A voice choice labelled with the gender and age its name says."""
    gender: Gender = "neutral"
    if _FEMALE.search(choice):
        gender = "female"
    elif _MALE.search(choice):
        gender = "male"
    age: Age = "adult"
    if _YOUNG.search(choice):
        age = "young"
    elif _OLD.search(choice):
        age = "old"
    return Voice(
        id=choice, label=choice, gender=gender, age=age, description=f"{choice}, {workflow}"
    )
