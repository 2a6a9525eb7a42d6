"""Speech backends: the real espeak-ng draft voice, and the OpenAI SDK against the double."""

from __future__ import annotations

import asyncio
import io
import socket
import wave

import pytest

from tests.audio import pitch_hz, rms, samples
from tests.doubles.openai_server import ErrorReply, OpenAIServer
from tools.speech import (
    DRAFT_VOICES,
    OPENAI_VOICES,
    Delivery,
    DraftSpeech,
    OpenAISpeech,
    SpeechBackend,
    SpeechError,
    delivery,
    speech_backend,
)

LINE = "Who goes there? Speak now, or I will loose the dogs on you."
KEY = "sk-test-speech-0123456789"


def seconds(wav: bytes) -> float:
    signal, rate = samples(wav)
    return len(signal) / rate


async def speak(text: str = LINE, *, voice: str = "man-warm", direction: str = "") -> bytes:
    # a task of its own, so loop_kept_free holds the synthesis to the loop's budget
    return await asyncio.create_task(
        DraftSpeech().synthesize(text, voice=voice, direction=direction)
    )


# --- direction ------------------------------------------------------------------------------


def test_direction_words_combine_and_unknown_words_are_ignored():
    assert delivery("") == Delivery()
    assert delivery("with feeling, like a lighthouse keeper") == Delivery()
    assert delivery("Slower!") == Delivery(rate=0.8)
    both = delivery("whisper it, and slower")
    assert both.whisper
    assert both.rate == pytest.approx(0.9 * 0.8)
    assert delivery("angrier and LOUDER").volume == pytest.approx(1.4 * 1.5)
    assert delivery("higher").pitch == 15
    assert delivery("deeper").pitch == -15


# --- draft voice ----------------------------------------------------------------------------


def test_the_draft_cast_has_distinct_voices_of_every_gender_and_age():
    voices = DraftSpeech().voices()
    assert len(voices) >= 8
    assert len({v.id for v in voices}) == len(voices)
    assert {v.gender for v in voices} == {"female", "male", "neutral"}
    assert {v.age for v in voices} == {"child", "young", "adult", "old"}
    assert all(v.label and v.description for v in voices)


async def test_the_draft_voice_speaks_real_speech_as_long_as_its_text(loop_kept_free):
    short = await speak("Halt.")
    long = await speak(LINE + " " + LINE)

    with wave.open(io.BytesIO(long)) as read:
        assert (read.getnchannels(), read.getsampwidth(), read.getframerate()) == (1, 2, 22050)
    assert rms(long) > 0.03  # speech, not silence
    assert 0.3 < seconds(short) < 1.5
    assert seconds(long) > 4 * seconds(short)
    assert 50 < pitch_hz(long) < 400


async def test_draft_voices_differ_in_pitch_and_sound():
    spoken = {voice.id: await speak(voice=voice.id) for voice in DRAFT_VOICES}

    assert len(set(spoken.values())) == len(spoken)
    pitches = [pitch_hz(spoken[v]) for v in ("man-deep", "man-warm", "woman-warm", "girl")]
    assert pitches == sorted(pitches)
    assert pitches[-1] > 2 * pitches[0]


async def test_direction_changes_rate_pitch_volume_and_voicing():
    plain = await speak(voice="woman-warm")

    assert seconds(await speak(voice="woman-warm", direction="slower")) > 1.15 * seconds(plain)
    assert seconds(await speak(voice="woman-warm", direction="faster")) < 0.9 * seconds(plain)
    assert pitch_hz(await speak(voice="woman-warm", direction="higher")) > 1.08 * pitch_hz(plain)
    assert pitch_hz(await speak(voice="woman-warm", direction="lower")) < 0.93 * pitch_hz(plain)
    assert rms(await speak(voice="woman-warm", direction="louder")) > 1.3 * rms(plain)
    whispered = await speak(voice="woman-warm", direction="whisper")
    assert whispered != plain
    assert seconds(whispered) > seconds(plain)


async def test_the_draft_voice_refuses_unknown_voices_and_empty_lines():
    with pytest.raises(SpeechError, match=r"no voice 'nobody'; it has man-deep, "):
        await speak(voice="nobody")
    with pytest.raises(ValueError, match="empty"):
        await speak("  ")


async def test_draft_lines_spoken_at_once_come_out_whole():
    voices = ("man-deep", "girl", "woman-bright", "man-deep")
    alone = [await speak(voice=voice) for voice in voices]
    together = await asyncio.gather(*(speak(voice=voice) for voice in voices))
    for one, other in zip(alone, together, strict=True):
        assert seconds(other) == pytest.approx(seconds(one), rel=0.01)  # espeak-ng varies a little
        # the median pitch of one voice drifts some 8% with the phase espeak-ng carries over;
        # another of these voices would be an octave apart
        assert pitch_hz(other) == pytest.approx(pitch_hz(one), rel=0.15)


# --- OpenAI-compatible endpoint -------------------------------------------------------------


def endpoint(server: OpenAIServer, **options) -> OpenAISpeech:
    return OpenAISpeech(
        api_key=KEY, model="gpt-4o-mini-tts", base_url=server.base_url, max_retries=0, **options
    )


async def test_openai_speech_sends_the_real_request_and_repairs_the_streamed_header(
    openai_server,
):
    wav = await endpoint(openai_server).synthesize(LINE, voice="coral")

    assert openai_server.speech_requests == [
        {"model": "gpt-4o-mini-tts", "voice": "coral", "input": LINE, "response_format": "wav"}
    ]
    with wave.open(io.BytesIO(wav)) as read:
        assert (read.getnchannels(), read.getsampwidth(), read.getframerate()) == (1, 2, 24000)
        frames = read.getnframes()
    assert len(wav) == 44 + 2 * frames  # the double's 0xFFFFFFFF sizes are real ones again
    assert seconds(wav) == pytest.approx(len(LINE) / 14, abs=0.01)
    assert rms(wav) > 0.05


async def test_openai_speech_sends_direction_as_instructions_and_speed(openai_server):
    wav = await endpoint(openai_server).synthesize(
        LINE, voice="onyx", direction="  Whisper it, slower.  "
    )

    [request] = openai_server.speech_requests
    assert request["instructions"] == "Whisper it, slower."
    assert request["speed"] == pytest.approx(0.72)
    assert seconds(wav) == pytest.approx(len(LINE) / 14 / 0.72, abs=0.01)


async def test_openai_speech_errors_are_one_clear_line_without_the_key(openai_server):
    speech = endpoint(openai_server)

    with pytest.raises(SpeechError) as unknown:
        await speech.synthesize(LINE, voice="bogus")
    message = str(unknown.value)
    assert "\n" not in message
    assert message.startswith(f"speech: gpt-4o-mini-tts at {openai_server.base_url} refused")
    assert "'bogus' (400): Invalid value: 'bogus'. Supported values are: 'alloy'" in message

    with pytest.raises(SpeechError, match=r"\(400\): Invalid 'input': string too long"):
        await speech.synthesize("a" * 4097, voice="alloy")

    openai_server.speech_errors.append(ErrorReply(401, echo_authorization=True))
    with pytest.raises(SpeechError) as refused:
        await speech.synthesize(LINE, voice="alloy")
    assert "(401): Incorrect API key provided: Bearer [redacted]" in str(refused.value)
    assert KEY not in str(refused.value)

    with pytest.raises(ValueError, match="empty"):
        await speech.synthesize("", voice="alloy")


async def test_openai_speech_says_when_the_endpoint_is_unreachable():
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    speech = OpenAISpeech(
        api_key=KEY, model="tts-1", base_url=f"http://127.0.0.1:{port}/v1", max_retries=0
    )
    with pytest.raises(SpeechError, match=rf"^speech: tts-1 at http://127.0.0.1:{port}/v1 is "):
        await speech.synthesize(LINE, voice="alloy")


# --- factory --------------------------------------------------------------------------------


def test_the_factory_speaks_offline_without_a_key_and_through_the_endpoint_with_one():
    assert isinstance(speech_backend(api_key=None), DraftSpeech)
    assert isinstance(DraftSpeech(), SpeechBackend)
    assert "offline" in DraftSpeech().describe()
    assert isinstance(speech_backend(api_key=KEY, backend="draft"), DraftSpeech)
    online = speech_backend(api_key=KEY, base_url="http://127.0.0.1:9/v1", model="tts-1")
    assert isinstance(online, OpenAISpeech)
    assert isinstance(online, SpeechBackend)
    assert online.describe() == "tts-1 at http://127.0.0.1:9/v1"
    assert online.voices() == list(OPENAI_VOICES)
    assert KEY not in online.describe()
    with pytest.raises(SpeechError, match="needs an API key"):
        speech_backend(api_key=None, backend="openai")
