"""Speech for dialogue: one interface, an offline draft voice and any OpenAI-compatible endpoint.

Every backend is a :class:`SpeechBackend`: it lists the voices it offers (so casting can
propose one per character from gender and age) and turns one line into a WAV, 16-bit PCM
mono, whatever its rate. Two ship here, and a third speaks through the ComfyUI workflow
library (:mod:`tools.comfy_speech`):

- :class:`DraftSpeech` speaks offline on the CPU with espeak-ng, whose library and data ship
  in the ``espeakng-loader`` wheel: nothing is downloaded at run time. Its voices are
  espeak-ng variants at chosen pitches; robotic, but real speech of the real length.
- :class:`OpenAISpeech` asks any OpenAI-compatible ``/v1/audio/speech`` endpoint (OpenAI's
  own, or a local server that speaks the protocol) through the official SDK.

:func:`speech_backend` picks one from settings.

A line can be given *direction*, free text such as ``"angrier, a bit slower"``. The words
:func:`delivery` knows become a :class:`Delivery` (speaking rate, pitch, pitch range, volume,
whisper); every other word is ignored, and there is no grammar (``"not angry"`` reads as
angry). The draft voice applies all of it; an endpoint gets the rate as ``speed`` and the
direction text itself as ``instructions``, which models that take instructions
(``gpt-4o-mini-tts``) follow as written.

Example::

    backend = speech_backend(api_key=None)  # no key: the offline draft voice
    wav = await backend.synthesize("Who goes there?", voice="man-deep", direction="whisper")
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import io
import math
import re
import threading
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal, Protocol, runtime_checkable

import espeakng_loader
from pydantic import BaseModel, ConfigDict

from tools import redaction
from tools.errors import ExpectedFailure

if TYPE_CHECKING:
    import openai  # loaded by the OpenAI voice alone: the draft voice's processes skip it

__all__ = [
    "DRAFT_VOICES",
    "OPENAI_VOICES",
    "Age",
    "Delivery",
    "DraftSpeech",
    "Gender",
    "OpenAISpeech",
    "SpeechBackend",
    "SpeechError",
    "Voice",
    "delivery",
    "speech_backend",
]

Gender = Literal["female", "male", "neutral"]
Age = Literal["child", "young", "adult", "old"]


class SpeechError(ExpectedFailure):
    """A line could not be spoken: the engine or endpoint failed, or the voice is unknown."""


class Voice(BaseModel):
    """A voice a backend offers, described so casting can match it to a character."""

    model_config = ConfigDict(frozen=True)

    id: str
    label: str
    gender: Gender
    age: Age
    description: str


@runtime_checkable
class SpeechBackend(Protocol):
    """What the dialogue agents call: voices to cast from, and one line spoken at a time."""

    name: str
    model: str
    """What makes the audio (with ``name``): a line is cached by backend, model, voice, text."""

    def describe(self) -> str:
        """What speaks, for logs and the UI; never a key."""
        ...

    def voices(self) -> list[Voice]:
        """The voices this backend offers, in the order casting should consider them."""
        ...

    async def synthesize(self, text: str, *, voice: str, direction: str = "") -> bytes:
        """Speak ``text`` in ``voice`` (a :attr:`Voice.id`) as directed; a 16-bit mono WAV."""
        ...


# --- direction ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """How a line is spoken, relative to its voice's own manner.

    Attributes:
        rate: Speaking rate as a factor (1.2 is 20% faster).
        pitch: Pitch shift on espeak-ng's 0-100 pitch scale (its voices sit around 50).
        pitch_range: Intonation as a factor (0 is a monotone, above 1 is livelier).
        volume: Amplitude as a factor.
        whisper: Whether the line is whispered.

    """

    rate: float = 1.0
    pitch: int = 0
    pitch_range: float = 1.0
    volume: float = 1.0
    whisper: bool = False

    def __add__(self, other: Delivery) -> Delivery:
        """Both at once: factors multiply, pitch shifts add, either may whisper."""
        return Delivery(
            rate=self.rate * other.rate,
            pitch=self.pitch + other.pitch,
            pitch_range=self.pitch_range * other.pitch_range,
            volume=self.volume * other.volume,
            whisper=self.whisper or other.whisper,
        )


_SLOWER = Delivery(rate=0.8)
_FASTER = Delivery(rate=1.25)
_LOUDER = Delivery(volume=1.5)
_SOFTER = Delivery(volume=0.6)
_SHOUT = Delivery(rate=1.1, pitch=10, pitch_range=1.4, volume=1.8)
_ANGRY = Delivery(rate=1.1, pitch=5, pitch_range=1.5, volume=1.4)
_SAD = Delivery(rate=0.85, pitch=-8, pitch_range=0.6, volume=0.8)
_HAPPY = Delivery(rate=1.1, pitch=8, pitch_range=1.4)
_CALM = Delivery(rate=0.9, pitch_range=0.7)
_WHISPER = Delivery(rate=0.9, whisper=True)

_DIRECTION_WORDS: dict[str, Delivery] = {
    **dict.fromkeys(("slower", "slow", "slowly", "deliberate", "measured"), _SLOWER),
    **dict.fromkeys(("faster", "fast", "quick", "quicker", "hurried", "rushed"), _FASTER),
    **dict.fromkeys(("louder", "loud", "projected"), _LOUDER),
    **dict.fromkeys(("softer", "soft", "quieter", "quiet", "gentle", "gently"), _SOFTER),
    **dict.fromkeys(("shout", "shouted", "shouting", "yell", "yelled", "yelling"), _SHOUT),
    **dict.fromkeys(("angry", "angrier", "furious", "fierce", "fiercer"), _ANGRY),
    **dict.fromkeys(("sad", "sadder", "tired", "wearier", "weary", "grim"), _SAD),
    **dict.fromkeys(("happy", "happier", "excited", "cheerful", "brighter"), _HAPPY),
    **dict.fromkeys(("calm", "calmer", "relaxed"), _CALM),
    **dict.fromkeys(("whisper", "whispered", "whispering", "hushed"), _WHISPER),
    **dict.fromkeys(("monotone", "flat", "flatter"), Delivery(pitch_range=0.2)),
    **dict.fromkeys(("higher", "high"), Delivery(pitch=15)),
    **dict.fromkeys(("lower", "low", "deeper", "deep"), Delivery(pitch=-15)),
}


def delivery(direction: str) -> Delivery:
    """The delivery the known words of ``direction`` ask for; unknown words are ignored.

    Known: slower, faster, louder, softer (quieter), shout, angry (angrier), sad, happy
    (excited), calm, whisper, monotone (flat), higher, lower (deeper), and a few synonyms
    of each (``_DIRECTION_WORDS``). Words combine: rates and volumes multiply, pitch
    shifts add.

    Example:
        >>> delivery("Slower, and louder please")
        Delivery(rate=0.8, pitch=0, pitch_range=1.0, volume=1.5, whisper=False)

    """
    result = Delivery()
    for word in re.findall(r"[a-z]+", direction.lower()):
        if (known := _DIRECTION_WORDS.get(word)) is not None:
            result += known
    return result


# --- WAV ------------------------------------------------------------------------------------


def _wav(pcm: bytes, sample_rate: int) -> bytes:
    """16-bit mono PCM samples as a WAV file."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm)
    return buffer.getvalue()


def _mono16(data: bytes, source: str) -> bytes:
    """``data`` as a WAV with true sizes in its header, checked to be 16-bit PCM mono.

    A streamed WAV (OpenAI's, and servers that copy it) carries placeholder sizes
    (0xFFFFFFFF) because its length was unknown when the header was sent: the samples are
    read to the end of the file and the header written again.
    """
    try:
        with wave.open(io.BytesIO(data)) as read:
            channels, width, rate = read.getnchannels(), read.getsampwidth(), read.getframerate()
            pcm = read.readframes(read.getnframes())
    except (wave.Error, EOFError) as error:
        raise SpeechError(f"{source} answered with audio that is not a PCM WAV: {error}") from None
    if (channels, width) != (1, 2):
        raise SpeechError(
            f"{source} answered with {channels}-channel {8 * width}-bit audio; "
            "expected 16-bit mono PCM"
        )
    return _wav(pcm[: len(pcm) // 2 * 2], rate)


# --- draft voice: espeak-ng -----------------------------------------------------------------


@dataclass(frozen=True)
class _EspeakVoice:
    voice: Voice
    name: str  # espeak-ng's language+variant, e.g. "en-us+m3"
    pitch: int  # 0-100
    rate: int  # words per minute


_ESPEAK_CAST: tuple[tuple[str, str, Gender, Age, str, int, int, str], ...] = (
    # id, label, gender, age, espeak-ng language+variant, pitch (0-100), words a minute, manner
    ("man-deep", "Deep man", "male", "adult", "en-us+m1", 30, 160, "Low and measured; American"),
    ("man-warm", "Warm man", "male", "adult", "en-us+m3", 50, 175, "Even, mid-pitched; American"),
    ("man-brisk", "Brisk man", "male", "adult", "en+m7", 55, 190, "Clipped and quick; British"),
    ("young-man", "Young man", "male", "young", "en-us+m2", 68, 185, "Light, eager; American"),
    ("old-man", "Old man", "male", "old", "en+grandpa", 40, 150, "Rough, unhurried; British"),
    ("woman-warm", "Warm woman", "female", "adult", "en-us+f2", 40, 170, "Low, calm; American"),
    ("woman-bright", "Bright woman", "female", "adult", "en+f4", 58, 180, "Clear, lively; British"),
    ("young-woman", "Young woman", "female", "young", "en-us+f5", 66, 185, "High, quick; American"),
    ("old-woman", "Old woman", "female", "old", "en+grandma", 45, 150, "Wavering, slow; British"),
    ("girl", "Girl", "female", "child", "en-us+f1", 90, 185, "A girl's high voice"),
    ("boy", "Boy", "male", "child", "en-us+f2", 80, 185, "A boy's unbroken voice"),
    ("narrator", "Narrator", "neutral", "adult", "en-us", 45, 165, "Plain and steady, voice-over"),
)
_ESPEAK_VOICES = tuple(
    _EspeakVoice(
        Voice(id=id, label=label, gender=gender, age=age, description=manner), name, pitch, rate
    )
    for id, label, gender, age, name, pitch, rate, manner in _ESPEAK_CAST
)
DRAFT_VOICES: tuple[Voice, ...] = tuple(v.voice for v in _ESPEAK_VOICES)
"""The draft backend's cast: espeak-ng variants at chosen pitches and rates."""

# espeak-ng's speak_lib.h
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_RATE, _VOLUME, _PITCH, _RANGE = 1, 2, 3, 4
_MIN_RATE, _MAX_RATE = 80, 450
_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class _Espeak:
    """The process's one espeak-ng instance; it keeps global state, so calls take ``lock``."""

    lock = threading.Lock()

    def __init__(self) -> None:
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        data = espeakng_loader.get_data_path().encode()
        self.sample_rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, data, _INITIALIZE_DONT_EXIT
        )
        if self.sample_rate <= 0:
            raise SpeechError(f"espeak-ng could not start with its data at {data.decode()}")
        self._lib = lib
        self._pcm = bytearray()
        self._callback = _SynthCallback(self._collect)  # kept: C holds only a pointer to it
        lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, samples: ctypes._Pointer, count: int, _events: int | None) -> int:
        if samples and count > 0:
            self._pcm += ctypes.string_at(samples, count * 2)
        return 0  # go on

    def speak(self, text: str, voice: _EspeakVoice, how: Delivery) -> bytes:
        """16-bit mono PCM of ``text``; the caller holds :attr:`lock`."""
        name = voice.name
        if how.whisper:
            variant = "whisperf" if voice.voice.gender == "female" else "whisper"
            name = f"{name.split('+')[0]}+{variant}"
        if self._lib.espeak_SetVoiceByName(name.encode()) != 0:
            raise SpeechError(f"espeak-ng has no voice {name!r}")
        settings = {
            _RATE: _clamp(round(voice.rate * how.rate), _MIN_RATE, _MAX_RATE),
            _PITCH: _clamp(voice.pitch + how.pitch, 0, 100),
            _RANGE: _clamp(round(50 * how.pitch_range), 0, 100),
            _VOLUME: _clamp(round(100 * how.volume), 0, 200),
        }
        for parameter, value in settings.items():
            self._lib.espeak_SetParameter(parameter, value, 0)
        self._pcm = bytearray()
        encoded = text.encode() + b"\0"
        status = self._lib.espeak_Synth(
            encoded, len(encoded), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
        )
        if status != 0:
            raise SpeechError(f"espeak-ng could not speak the line (error {status})")
        return bytes(self._pcm)


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


@functools.cache
def _espeak() -> _Espeak:
    return _Espeak()


class DraftSpeech:
    """The offline draft voice: espeak-ng on the CPU, from the ``espeakng-loader`` wheel.

    espeak-ng is one global, thread-unsafe instance per process, so lines are spoken one at
    a time (a lock), each in a worker thread so the event loop stays free. A line spoken
    again is not the same bytes: espeak-ng's wave generator carries its phase from one line
    to the next, so lengths differ by a millisecond or so (cache lines by their input).
    """

    name: ClassVar[str] = "draft"
    model: ClassVar[str] = "espeak-ng"

    def describe(self) -> str:
        """The engine, and that it is the offline draft voice."""
        return "draft voice: espeak-ng on the CPU, offline"

    def voices(self) -> list[Voice]:
        """The draft cast (:data:`DRAFT_VOICES`)."""
        return list(DRAFT_VOICES)

    async def synthesize(self, text: str, *, voice: str, direction: str = "") -> bytes:
        """Speak ``text`` in draft voice ``voice`` as directed; a 22.05 kHz 16-bit mono WAV.

        Raises:
            ValueError: If ``text`` is blank.
            SpeechError: If ``voice`` is not a draft voice, or espeak-ng fails.

        """
        if not text.strip():
            raise ValueError("nothing to say: the line is empty")
        chosen = next((v for v in _ESPEAK_VOICES if v.voice.id == voice), None)
        if chosen is None:
            known = ", ".join(v.id for v in DRAFT_VOICES)
            raise SpeechError(f"the draft speech backend has no voice {voice!r}; it has {known}")
        return await asyncio.to_thread(self._speak, text, chosen, delivery(direction))

    @staticmethod
    def _speak(text: str, voice: _EspeakVoice, how: Delivery) -> bytes:
        with _Espeak.lock:
            engine = _espeak()
            return _wav(engine.speak(text, voice, how), engine.sample_rate)


# --- OpenAI-compatible endpoint -------------------------------------------------------------


def _openai(id: str, gender: Gender, description: str) -> Voice:
    return Voice(id=id, label=id.capitalize(), gender=gender, age="adult", description=description)


OPENAI_VOICES: tuple[Voice, ...] = (
    _openai("alloy", "neutral", "Balanced, even, mid-pitched."),
    _openai("ash", "male", "Clear and direct."),
    _openai("ballad", "male", "Soft and expressive, British."),
    _openai("coral", "female", "Warm and friendly."),
    _openai("echo", "male", "Resonant and calm."),
    _openai("fable", "neutral", "Animated storyteller, British."),
    _openai("onyx", "male", "Deep and authoritative."),
    _openai("nova", "female", "Bright and youthful."),
    _openai("sage", "female", "Calm and measured."),
    _openai("shimmer", "female", "Light and gentle."),
    _openai("verse", "male", "Expressive and versatile."),
    _openai("marin", "female", "Natural and conversational."),
    _openai("cedar", "male", "Natural, low and steady."),
)
"""OpenAI's built-in voices; gender as they are commonly heard (OpenAI states none)."""

_DEFAULT_BASE_URL = "https://api.openai.com/v1"
_MIN_SPEED, _MAX_SPEED = 0.25, 4.0


class OpenAISpeech:
    """Any OpenAI-compatible ``/v1/audio/speech`` endpoint, through the official SDK.

    ``voices`` is what casting is offered: OpenAI's built-in voices by default; a local
    server (Kokoro-FastAPI, speaches, ...) names its own. The endpoint checks the voice.
    Transient errors are retried ``max_retries`` times by the SDK; anything else raises
    :class:`SpeechError` with one line saying what the endpoint said, the key never in it.
    """

    name: ClassVar[str] = "openai"

    def __init__(
        self,
        *,
        api_key: str,
        model: str,
        base_url: str | None = None,
        voices: Sequence[Voice] = OPENAI_VOICES,
        timeout_s: float = 120,
        max_retries: int = 2,
    ) -> None:
        redaction.register(api_key)
        self.model = model
        self._voices = list(voices)
        self._endpoint = f"{model} at {base_url or _DEFAULT_BASE_URL}"
        self._client_settings = {
            "api_key": api_key,
            "base_url": base_url,
            "timeout": timeout_s,
            "max_retries": max_retries,
        }

    @functools.cached_property
    def _client(self) -> openai.AsyncOpenAI:
        """The SDK's client, made when the first line is spoken.

        A server that starts with an OpenAI voice configured does not load the SDK (most of a
        second) until it speaks.
        """
        import openai

        return openai.AsyncOpenAI(**self._client_settings)

    def describe(self) -> str:
        """The model and endpoint, for logs and the UI; never the key."""
        return self._endpoint

    def voices(self) -> list[Voice]:
        """The voices casting is offered for this endpoint."""
        return list(self._voices)

    async def synthesize(self, text: str, *, voice: str, direction: str = "") -> bytes:
        """Speak ``text`` in ``voice`` as directed; the endpoint's WAV, header sizes repaired.

        The direction's speaking rate is sent as ``speed`` (omitted at 1.0), the direction
        text as ``instructions`` (omitted when empty): ``tts-1`` follows only the speed,
        ``gpt-4o-mini-tts`` only the instructions.

        Raises:
            ValueError: If ``text`` is blank.
            SpeechError: If the endpoint refuses, fails or answers with no 16-bit mono WAV.

        """
        if not text.strip():
            raise ValueError("nothing to say: the line is empty")
        speed = min(_MAX_SPEED, max(_MIN_SPEED, delivery(direction).rate))
        # the first line imports the SDK and loads certificates: not on the event loop
        client = await asyncio.to_thread(getattr, self, "_client")
        import openai  # loaded by the client

        try:
            answer = await client.audio.speech.create(
                model=self.model,
                voice=voice,
                input=text,
                response_format="wav",
                instructions=direction.strip() or openai.omit,
                speed=openai.omit if math.isclose(speed, 1.0) else round(speed, 3),
            )
        except openai.APIError as error:
            raise SpeechError(redaction.redact(self._message(error, voice))) from None
        return _mono16(answer.content, self._endpoint)

    def _message(self, error: openai.APIError, voice: str) -> str:
        import openai  # loaded: it raised ``error``

        if isinstance(error, openai.APITimeoutError):
            return f"speech: {self._endpoint} gave no answer in time"
        if isinstance(error, openai.APIConnectionError):
            return f"speech: {self._endpoint} is unreachable ({error})"
        said = _STATUS_PREFIX.sub("", _one_line(str(error)))
        status = f" ({error.status_code})" if isinstance(error, openai.APIStatusError) else ""
        return (
            f"speech: {self._endpoint} refused the line for voice {voice!r}{status}: {said}. "
            "Check the speech endpoint's key, base URL, model and voice."
        )


_STATUS_PREFIX = re.compile(r"^Error code: \d+( - )?")  # the SDK's; the status is shown apart


def _one_line(text: str) -> str:
    return " ".join(text.split())


# --- factory --------------------------------------------------------------------------------


def speech_backend(
    *,
    api_key: str | None,
    base_url: str | None = None,
    model: str = "gpt-4o-mini-tts",
    voices: Sequence[Voice] = OPENAI_VOICES,
    backend: Literal["auto", "draft", "openai"] = "auto",
    timeout_s: float = 120,
) -> SpeechBackend:
    """The speech backend settings ask for.

    ``"auto"`` speaks through the OpenAI-compatible endpoint when a key is configured and
    with the offline draft voice otherwise; ``"draft"`` and ``"openai"`` force one. A local
    server that checks no key still needs some ``api_key`` (any text), as the SDK does.

    Raises:
        SpeechError: If ``"openai"`` is asked for with no key.

    """
    if backend == "draft" or (backend == "auto" and not api_key):
        return DraftSpeech()
    if not api_key:
        raise SpeechError(
            "the OpenAI-compatible speech backend needs an API key (any text for a local "
            "server that checks none)"
        )
    return OpenAISpeech(
        api_key=api_key, model=model, base_url=base_url, voices=voices, timeout_s=timeout_s
    )
