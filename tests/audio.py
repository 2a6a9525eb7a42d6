"""Measuring audio in tests: samples, pitch and energy of WAVs."""

from __future__ import annotations

import io
import wave

import numpy as np

__all__ = ["pitch_hz", "rms", "samples"]


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
