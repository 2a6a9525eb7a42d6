"""Fitting lines and mixing them into a film: real espeak-ng lines, real ffmpeg, measured."""

from __future__ import annotations

import asyncio
import io
import re
import wave
from dataclasses import dataclass

import numpy as np
import pytest

from tests.audio import decoded, loudnorm_analysis, pitch_hz, rms, rms_windows
from tools.draft_renderer import StoryboardCard, render_card, render_clip
from tools.mp4boxes import video_format, video_track
from tools.sound import (
    Bed,
    FFmpegError,
    Placement,
    fit_line,
    loudness,
    mix_into_video,
    run_ffmpeg,
    spilled,
    wav_duration_s,
)
from tools.speech import DraftSpeech, OpenAISpeech

FILM_S = 8.0
AAC_FRAME_S = 1024 / 48_000
WINDOW_S = 0.05


def tone_wav(seconds: float, hz: float, *, rate: int = 24_000, amplitude: float = 0.5) -> bytes:
    t = np.arange(round(seconds * rate)) / rate
    pcm = (amplitude * np.sin(2 * np.pi * hz * t) * 32767).astype("<i2").tobytes()
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm)
    return buffer.getvalue()


def spoken(text: str, voice: str) -> bytes:
    return asyncio.run(DraftSpeech().synthesize(text, voice=voice))


@pytest.fixture(scope="module")
def film() -> bytes:
    card = render_card(StoryboardCard(title="Shot 1", description="A lighthouse."), size=(320, 180))
    return render_clip(card, card, duration_s=FILM_S, fps=12)


@dataclass(frozen=True)
class Mixed:
    mp4: bytes
    spans: list[tuple[float, float]]


@pytest.fixture(scope="module")
def mixed(film: bytes) -> Mixed:
    lines = [
        Placement(1.0, spoken("Who goes there? Speak now.", "man-deep")),
        Placement(5.0, spoken("Only the keeper of the light.", "girl")),
    ]
    spans = [(p.start_s, p.start_s + wav_duration_s(p.wav)) for p in lines]
    return Mixed(mix_into_video(film, lines), spans)


def audio_codec(mp4: bytes) -> str:
    with spilled(mp4, "film.mp4") as path:
        log = run_ffmpeg(
            *("-i", str(path), "-map", "0:a", "-c", "copy", "-f", "null", "-"),
            what="read the streams",
            loglevel="info",
        ).stderr.decode()
    found = re.search(r"Stream #0:\d+.*: Audio: (\w+)", log)
    assert found, log
    return found.group(1)


def windows_within(spans: list[tuple[float, float]], margin_s: float) -> tuple[set[int], set[int]]:
    """Indexes of the windows well inside a span, and of those well clear of every span."""
    inside, clear = set(), set()
    for i in range(round(FILM_S / WINDOW_S)):
        start, end = i * WINDOW_S, (i + 1) * WINDOW_S
        if any(a + margin_s <= start and end <= b - margin_s for a, b in spans):
            inside.add(i)
        if all(end <= a - margin_s or start >= b + margin_s for a, b in spans):
            clear.add(i)
    return inside, clear


# --- lines ----------------------------------------------------------------------------------


def test_wav_duration_is_read_from_the_header():
    assert wav_duration_s(tone_wav(1.25, 200)) == pytest.approx(1.25)


def test_a_line_that_fits_is_left_as_it_is():
    line = spoken("Halt.", "man-warm")
    fitted = fit_line(line, max_s=5.0)
    assert (fitted.wav, fitted.tempo, fitted.fits) == (line, 1.0, True)
    assert fitted.duration_s == pytest.approx(wav_duration_s(line))


def test_a_long_line_is_sped_up_to_fit_with_its_pitch_kept():
    line = spoken("Who goes there? Speak now, or I will loose the dogs.", "woman-warm")
    duration = wav_duration_s(line)

    fitted = fit_line(line, max_s=duration / 1.2)

    assert fitted.fits
    assert fitted.tempo == pytest.approx(1.2)
    assert fitted.duration_s == pytest.approx(duration / 1.2, abs=1 / 22050)
    assert wav_duration_s(fitted.wav) == fitted.duration_s
    assert pitch_hz(fitted.wav) == pytest.approx(pitch_hz(line), rel=0.05)
    assert rms(fitted.wav) == pytest.approx(rms(line), rel=0.15)


def test_a_line_too_long_for_the_tempo_limit_says_it_does_not_fit():
    line = spoken("Who goes there? Speak now, or I will loose the dogs.", "woman-warm")
    duration = wav_duration_s(line)

    fitted = fit_line(line, max_s=duration / 2, max_tempo=1.35)

    assert not fitted.fits
    assert fitted.tempo == 1.35
    assert fitted.duration_s == pytest.approx(duration / 1.35, abs=0.03)
    with pytest.raises(ValueError, match="max_s must be positive"):
        fit_line(line, max_s=0)


# --- mix and master -------------------------------------------------------------------------


def test_the_dialogue_sounds_inside_its_spans_and_silence_stays_silent(mixed):
    energy = rms_windows(mixed.mp4, WINDOW_S)
    inside, clear = windows_within(mixed.spans, margin_s=0.1)

    assert len(inside) > 20 and len(clear) > 40
    for start, end in mixed.spans:
        span = [energy[i] for i in inside if start <= i * WINDOW_S < end]
        assert np.mean(span) > 0.05, (start, end)
    assert max(energy[i] for i in clear) < 1e-4


def test_the_mix_is_mastered_to_minus_16_lufs_under_minus_1_dbtp(mixed):
    integrated, true_peak = loudnorm_analysis(mixed.mp4)  # another meter than the product's
    assert integrated == pytest.approx(-16.0, abs=1.0)
    assert true_peak <= -1.0
    measured = loudness(mixed.mp4)
    assert measured.integrated_lufs == pytest.approx(-16.0, abs=0.5)
    assert measured.true_peak_db <= -1.0


def test_the_video_stream_is_copied_and_the_audio_is_aac_as_long_as_the_video(film, mixed):
    assert video_track(mixed.mp4) == video_track(film)
    assert video_format(mixed.mp4) == video_format(film)
    assert audio_codec(mixed.mp4) == "aac"
    audio_s = len(decoded(mixed.mp4, 48_000)) / 48_000
    assert FILM_S <= audio_s < FILM_S + AAC_FRAME_S


async def test_lines_from_an_openai_compatible_endpoint_mix_the_same_way(openai_server, film):
    speech = OpenAISpeech(api_key="test-key", model="tts-1", base_url=openai_server.base_url)
    first = await speech.synthesize("Who goes there? Speak now.", voice="onyx")
    second = await speech.synthesize("Only the keeper of the light.", voice="nova")
    fitted = fit_line(second, max_s=1.6)  # the double speaks 14 characters a second
    lines = [Placement(0.5, first), Placement(5.0, fitted.wav)]

    mp4 = await asyncio.to_thread(mix_into_video, film, lines)

    assert fitted.fits
    assert fitted.tempo == pytest.approx(len("Only the keeper of the light.") / 14 / 1.6, rel=1e-3)
    energy = rms_windows(mp4, WINDOW_S)
    spans = [(p.start_s, p.start_s + wav_duration_s(p.wav)) for p in lines]
    inside, clear = windows_within(spans, margin_s=0.1)
    assert min(energy[i] for i in inside) > 0.01
    assert max(energy[i] for i in clear) < 1e-4
    integrated, true_peak = loudnorm_analysis(mp4)
    assert integrated == pytest.approx(-16.0, abs=1.0)
    assert true_peak <= -1.0


def test_each_scene_bed_plays_under_its_scene_only_and_ducks_under_the_dialogue(film):
    # Scene 1 is 0-3.5 s under a 3 kHz bed, scene 2 3.5-8 s under a 1 kHz one (each shorter
    # than its scene: looped); a 200 Hz line at 5-7 s is apart from both in frequency.
    beds = [Bed(0.0, 3.5, tone_wav(1.5, 3000)), Bed(3.5, 4.5, tone_wav(1.0, 1000))]
    mp4 = mix_into_video(film, [Placement(5.0, tone_wav(2.0, 200))], beds=beds)

    signal = decoded(mp4)
    windows = range(0, 16000 * 8 - 1600, 1600)  # 0.1 s each: a bin is 10 Hz
    high = [np.abs(np.fft.rfft(signal[i : i + 1600]))[300] for i in windows]
    low = [np.abs(np.fft.rfft(signal[i : i + 1600]))[100] for i in windows]
    first, second = np.mean(high[2:33]), np.mean(low[37:49])
    assert min(high[2:33]) > 0.5 * first  # looped through its scene
    assert max(high[37:]) < 0.01 * first  # and not a moment past it
    assert max(low[:33]) < 0.01 * second  # the second bed waits for its scene
    assert np.mean(low[52:68]) < 0.5 * second  # ducked under the line
    assert min(low[76:]) > 0.5 * second  # back after it (a 0.4 s release), to the end
    integrated, true_peak = loudnorm_analysis(mp4)
    assert integrated == pytest.approx(-16.0, abs=1.0)
    assert true_peak <= -1.0


def test_a_film_with_nothing_to_say_gets_a_silent_track(film):
    mp4 = mix_into_video(film, [])

    assert audio_codec(mp4) == "aac"
    assert max(rms_windows(mp4, 0.5)) == 0.0
    assert loudness(mp4).integrated_lufs == float("-inf")
    assert video_track(mp4) == video_track(film)


def test_a_line_running_past_the_end_is_cut_at_the_end(film):
    mp4 = mix_into_video(film, [Placement(FILM_S - 0.5, tone_wav(2.0, 220))])

    audio_s = len(decoded(mp4, 48_000)) / 48_000
    assert FILM_S <= audio_s < FILM_S + AAC_FRAME_S
    energy = rms_windows(mp4, 0.25)
    assert max(energy[:30]) < 1e-3
    assert min(energy[30:32]) > 0.05


def test_bad_input_fails_clearly(film):
    with pytest.raises(ValueError, match=r"outside the 8\.000 s film"):
        mix_into_video(film, [Placement(8.0, tone_wav(1.0, 200))])
    with pytest.raises(ValueError, match=r"a bed placed at 9\.0 s starts outside"):
        mix_into_video(film, [], beds=[Bed(9.0, 1.0, tone_wav(1.0, 200))])
    with pytest.raises(ValueError, match="needs an MP4 with a video track"):
        mix_into_video(tone_wav(1.0, 200), [])
    with pytest.raises(FFmpegError, match=r"^ffmpeg could not mix the dialogue \(exit \d+\): .*"):
        mix_into_video(film, [Placement(1.0, b"not a wav")])
