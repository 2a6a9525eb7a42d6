"""Measuring audio in tests: samples, pitch and energy of WAVs; energy and loudness of files."""

from __future__ import annotations

import io
import json
import wave

import numpy as np

from tools.sound import run_ffmpeg, spilled

__all__ = ["decoded", "loudnorm_analysis", "pitch_hz", "rms", "rms_windows", "samples"]


def samples(wav: bytes) -> tuple[np.ndarray, int]:
    """A 16-bit mono WAV's samples in -1..1, and its sample rate."""
    with wave.open(io.BytesIO(wav)) as read:
        assert (read.getnchannels(), read.getsampwidth()) == (1, 2)
        rate = read.getframerate()
        pcm = read.readframes(read.getnframes())
    return np.frombuffer(pcm, "<i2").astype(np.float64) / 32768, rate


def rms(wav: bytes) -> float:
    """Root mean square of a WAV's samples (full scale is 1)."""
    signal, _ = samples(wav)
    return float(np.sqrt(np.mean(signal**2)))


def pitch_hz(wav: bytes) -> float:
    """The median fundamental of a WAV's voiced 40 ms frames, by autocorrelation (60-500 Hz)."""
    signal, rate = samples(wav)
    size = int(0.04 * rate)
    energy = [np.sqrt(np.mean(signal[i : i + size] ** 2)) for i in range(0, len(signal), size)]
    loud = 0.3 * max(energy)
    found = []
    for start in range(0, len(signal) - size, size):
        frame = signal[start : start + size]
        if np.sqrt(np.mean(frame**2)) < loud:
            continue
        frame = frame - frame.mean()
        correlation = np.correlate(frame, frame, "full")[size - 1 :]
        low, high = rate // 500, rate // 60
        lag = low + int(np.argmax(correlation[low:high]))
        if correlation[lag] > 0.3 * correlation[0]:
            found.append(rate / lag)
    assert found, "no voiced frame"
    return float(np.median(found))


def decoded(media: bytes, rate: int = 16_000) -> np.ndarray:
    """A file's audio decoded by ffmpeg to mono at ``rate``, in -1..1."""
    with spilled(media, "media") as path:
        pcm = run_ffmpeg(
            *("-i", str(path), "-vn", "-ac", "1", "-ar", str(rate), "-f", "s16le", "-"),
            what="decode the audio",
        ).stdout
    return np.frombuffer(pcm, "<i2").astype(np.float64) / 32768


def rms_windows(media: bytes, window_s: float) -> list[float]:
    """The RMS of each ``window_s`` of a file's audio (mono, 16 kHz)."""
    signal, size = decoded(media), round(window_s * 16_000)
    return [float(np.sqrt(np.mean(signal[i : i + size] ** 2))) for i in range(0, len(signal), size)]


def loudnorm_analysis(media: bytes) -> tuple[float, float]:
    """Integrated loudness and true peak by ffmpeg's loudnorm, independent of ebur128."""
    with spilled(media, "media") as path:
        log = run_ffmpeg(
            *("-i", str(path), "-vn", "-af", "loudnorm=print_format=json", "-f", "null", "-"),
            what="measure loudness",
            loglevel="info",
        ).stderr.decode()
    report = json.loads(log[log.rindex("{") : log.rindex("}") + 1])
    return float(report["input_i"]), float(report["input_tp"])
