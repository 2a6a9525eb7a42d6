"""Speech through the library's ComfyUI text-to-speech workflow, on the ComfyUI test server."""

from __future__ import annotations

import io
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from api.runs import run_context
from api.settings import Settings
from tests.doubles.comfy_server import ComfyServer, comfy_server
from tools.comfy import ComfyPool
from tools.comfy_speech import ComfySpeech, comfy_speech, directed
from tools.comfy_tools import ComfyBackend, DraftMedia
from tools.sound import wav_duration_s
from tools.speech import SpeechBackend, SpeechError, delivery
from tools.workflows import load_workflows

__all__ = ["comfy_server"]


@pytest.fixture
async def speech(comfy_server: ComfyServer) -> AsyncIterator[ComfySpeech]:
    pool = ComfyPool([comfy_server.url], timeout_s=60)
    try:
        yield await comfy_speech(ComfyBackend(pool), None)
    finally:
        await pool.aclose()


def _node(server: ComfyServer, class_type: str) -> dict[str, object]:
    prompt = server.submitted[-1]["prompt"]
    return next(n["inputs"] for n in prompt.values() if n["class_type"] == class_type)


async def test_the_library_workflow_is_found_and_offers_its_voices(speech: ComfySpeech) -> None:
    voices = {voice.id: voice for voice in speech.voices()}

    assert isinstance(speech, SpeechBackend)
    assert speech.spec.category == "text_to_speech"
    assert speech.model.startswith(f"{speech.spec.name}@")
    assert list(voices) == speech.spec.inputs["voice"].choices
    assert (voices["Energetic Male (en)"].gender, voices["Energetic Male (en)"].age) == (
        "male",
        "adult",
    )
    assert (voices["E-girl (en)"].gender, voices["E-girl (en)"].age) == ("female", "young")
    assert voices["Friendly Women (en)"].gender == "female"
    assert voices["Narrator (en)"].gender == "neutral"


async def test_a_line_is_spoken_through_the_workflow_in_the_chosen_voice(
    speech: ComfySpeech, comfy_server: ComfyServer
) -> None:
    text = "Who goes there?"

    wav = await speech.synthesize(text, voice="Sarah (en)", direction="slower, louder")

    assert comfy_server.jobs == 1
    assert _node(comfy_server, "FishAudioVoiceSelector")["voice"] == "Sarah (en)"
    spoken = _node(comfy_server, "FishAudioTextToSpeech")
    assert spoken["text"] == text
    assert (spoken["model.speed"], spoken["model.volume"]) == (0.8, 3.52)
    with wave.open(io.BytesIO(wav)) as read:
        assert (read.getnchannels(), read.getsampwidth()) == (1, 2)
    assert wav_duration_s(wav) == pytest.approx(0.3 + 0.04 * len(text), abs=0.01)

    other = await speech.synthesize(text, voice="Adrian (en)")

    assert comfy_server.jobs == 2
    assert _node(comfy_server, "FishAudioVoiceSelector")["voice"] == "Adrian (en)"
    assert _node(comfy_server, "FishAudioTextToSpeech")["model.speed"] == 1.0  # the default
    assert other != wav


async def test_a_voice_the_workflow_lacks_is_refused_before_any_job(
    speech: ComfySpeech, comfy_server: ComfyServer
) -> None:
    with pytest.raises(SpeechError, match="has no voice 'alloy'"):
        await speech.synthesize("Hello.", voice="alloy")

    assert comfy_server.jobs == 0


def test_direction_goes_to_the_parameters_the_workflow_has_within_their_limits() -> None:
    spec = load_workflows()["text_to_speech_fish"]

    assert directed(spec, delivery("")) == {}
    assert directed(spec, delivery("faster, quieter")) == {"speed": 1.25, "volume": -4.44}
    assert directed(spec, delivery("monotone")) == {"temperature": 0.14}
    assert directed(spec, delivery("angry shouting")) == {
        "speed": 1.21,
        "volume": 8.03,  # 1.4 x 1.8 as dB
        "temperature": 1.0,  # 0.7 x 2.1, held at the input's maximum
    }
    assert directed(spec, delivery("whisper")) == {"speed": 0.9}  # no parameter whispers


async def test_comfyui_speech_without_a_comfyui_server_says_what_to_set() -> None:
    with pytest.raises(SpeechError, match=r"^AUTEUR_SPEECH=comfyui .*AUTEUR_COMFYUI_URLS$"):
        await comfy_speech(DraftMedia(), None)


async def test_the_run_context_refuses_comfyui_speech_without_servers(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, speech="comfyui", comfyui_urls=[], data_dir=tmp_path)

    with pytest.raises(SpeechError, match=r"set AUTEUR_COMFYUI_URLS$"):
        await run_context(settings, discovery=None)  # type: ignore[arg-type]  # never reached
