"""Speaking a line for an agent: through the run's speech backend, once per input hash.

Casting speaks a sample of each voice; the dialogue agent speaks every line. Both go through
:func:`speak`, which keys the line by (backend, voice, direction, text) and memoises it with
:meth:`agents.base.Step.generate_media`, so a resumed, retried or replayed node pays for no
line twice, and counts each line it makes in the run's cost ledger.
"""

from __future__ import annotations

import asyncio

from langgraph.runtime import Runtime

from agents.artifacts import input_hash
from agents.base import Context, Step
from tools import ledger
from tools.sound import wav_duration_s
from tools.speech import SpeechBackend
from tools.storage import MediaFile

__all__ = ["speak", "speech_of"]


def speech_of(runtime: Runtime[Context]) -> SpeechBackend:
    """The run's speech backend (the offline draft voice unless one is configured)."""
    return runtime.context.speech


async def speak(
    step: Step, runtime: Runtime[Context], text: str, *, voice: str, direction: str = ""
) -> MediaFile:
    """``text`` spoken in ``voice`` as ``direction`` asks, as a stored WAV (made once)."""
    backend = speech_of(runtime)

    async def make() -> bytes:
        audio = await backend.synthesize(text, voice=voice, direction=direction)
        seconds = await asyncio.to_thread(wav_duration_s, audio)
        ledger.record_speech(
            backend=backend.name, voice=voice, characters=len(text), seconds=seconds
        )
        return audio

    key = input_hash("speech", backend.name, backend.model, voice, direction, text)
    return await step.generate_media(runtime, key, make, extension="wav", media_type="audio/wav")
