"""Dialogue fitted to shots, mixed with the scenes' beds and mastered into the film with ffmpeg.

The ffmpeg binary is imageio-ffmpeg's (ffmpeg 7: loudnorm, adelay, amix, atempo, alimiter
and its native AAC encoder). Every function here is synchronous and CPU-bound, and spills
its media to a temporary folder; callers run it in a worker thread.

Mastering is for web delivery: EBU R128 at -16 LUFS integrated, true peak at most -1 dBTP,
in two passes: the mix is measured (ffmpeg's ebur128 meter), then given one linear gain to
the target. Speech peaks high above its loudness, so that gain alone would often push peaks
past the ceiling: then the gain is applied under a true-peak limiter first (oversampled, its
delay compensated), the result measured again, and the last small gain applied. The gain is
ffmpeg's ``volume`` filter rather than a second loudnorm pass, because loudnorm in
``linear=true`` silently falls back to its dynamic mode (a gain that moves through the film)
whenever the measured range or peak is out of its bounds; a fixed gain is what linear mode
means, every time. Gain and limiter keep digital silence silent: nothing adds a noise floor
between the lines.

Example::

    line = fit_line(wav, max_s=2.5)
    mp4 = mix_into_video(assembled, [Placement(start_s=1.0, wav=line.wav)], beds=[
        Bed(start_s=0.0, duration_s=4.0, audio=rain_flac)])
    loudness(mp4).integrated_lufs  # about -16.0
"""

from __future__ import annotations

import io
import math
import re
import subprocess
import tempfile
import wave
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg

from tools.mp4boxes import video_track

__all__ = [
    "Bed",
    "FFmpegError",
    "FittedLine",
    "Loudness",
    "Placement",
    "fit_line",
    "loudness",
    "mix_into_video",
    "run_ffmpeg",
    "spilled",
    "to_wav",
    "wav_duration_s",
]

_RATE = 48_000
_STEREO = f"aresample={_RATE},aformat=sample_fmts=fltp:channel_layouts=stereo"
# Room under the true-peak ceiling for the limiter's own overshoot and the AAC encoder's.
_PEAK_MARGIN_DB = 1.0
_LIMITER_PASSES = 3
_STDERR_LINES = 6


class FFmpegError(RuntimeError):
    """ffmpeg failed; the message ends with the last lines it wrote to stderr."""


def run_ffmpeg(
    *args: str, what: str, loglevel: str = "error"
) -> subprocess.CompletedProcess[bytes]:
    """Run imageio-ffmpeg's ffmpeg with ``args``; its output and log, as bytes.

    Raises:
        FFmpegError: If ffmpeg exits with an error; ``what`` says what it could not do.

    """
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-y"]
    done = subprocess.run(
        [*command, "-loglevel", loglevel, *args], capture_output=True, check=False
    )
    if done.returncode != 0:
        log = done.stderr.decode(errors="replace").strip().splitlines()[-_STDERR_LINES:]
        raise FFmpegError(f"ffmpeg could not {what} (exit {done.returncode}): " + " | ".join(log))
    return done


@contextmanager
def spilled(data: bytes, name: str) -> Iterator[Path]:
    """``data`` as a file named ``name`` in a temporary folder, removed after the block."""
    with tempfile.TemporaryDirectory(prefix="auteur-sound-") as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        yield path


# --- lines ----------------------------------------------------------------------------------


def to_wav(audio: bytes) -> bytes:
    """Any audio ffmpeg reads (a ComfyUI workflow's FLAC, say) as a 16-bit mono PCM WAV.

    The form every line and bed is stored in, so the mix, the timing and the web player
    read one format; the sample rate is kept.

    Raises:
        FFmpegError: If ffmpeg cannot read ``audio``.

    """
    with spilled(audio, "audio") as path:
        done = run_ffmpeg(
            *("-i", str(path), "-map", "0:a:0", "-ac", "1", "-c:a", "pcm_s16le"),
            *("-fflags", "+bitexact", "-f", "wav", "pipe:1"),
            what="decode the audio to WAV",
        )
    return _with_sizes(done.stdout)


def _with_sizes(wav: bytes) -> bytes:
    """A WAV ffmpeg wrote to a pipe, its header's sizes (left unknown) filled in."""
    data = wav.find(b"data", 12)
    if data < 0:
        raise FFmpegError("ffmpeg wrote a WAV without samples")
    body = len(wav) - data - 8
    return (
        wav[:4]
        + (len(wav) - 8).to_bytes(4, "little")
        + wav[8 : data + 4]
        + body.to_bytes(4, "little")
        + wav[data + 8 :]
    )


def wav_duration_s(wav: bytes) -> float:
    """How long a PCM WAV plays, in seconds, from its header."""
    frames, rate = _frames(wav)
    return frames / rate


def _frames(wav: bytes) -> tuple[int, int]:
    """A PCM WAV's length in samples, and its sample rate."""
    with wave.open(io.BytesIO(wav)) as read:
        return read.getnframes(), read.getframerate()


@dataclass(frozen=True)
class FittedLine:
    """A spoken line after :func:`fit_line`.

    Attributes:
        wav: The line, sped up by ``tempo`` (the input itself when it already fitted).
        duration_s: How long it now plays.
        tempo: The speed-up applied (1.0 for none).
        fits: Whether it now plays within the time it was given.

    """

    wav: bytes
    duration_s: float
    tempo: float
    fits: bool


def fit_line(wav: bytes, max_s: float, *, max_tempo: float = 1.35) -> FittedLine:
    """Speed a line up, pitch unchanged, so it plays within ``max_s`` if ``max_tempo`` allows.

    A line that fits is returned as it is. A longer one is sped up by ffmpeg's atempo as
    much as needed, never past ``max_tempo`` (beyond about 1.35 speech sounds hurried);
    :attr:`FittedLine.fits` says whether that was enough, and the caller decides what a
    line that does not fit means (a longer shot, a shorter line).

    Raises:
        ValueError: If ``max_s`` is not positive or ``max_tempo`` is below 1.

    """
    if not max_s > 0:
        raise ValueError(f"max_s must be positive, got {max_s}")
    if not max_tempo >= 1:
        raise ValueError(f"max_tempo must be at least 1, got {max_tempo}")
    frames, rate = _frames(wav)
    limit = round(max_s * rate)  # fitting is to the sample
    if frames <= limit:
        return FittedLine(wav=wav, duration_s=frames / rate, tempo=1.0, fits=True)
    tempo = min(max_tempo, frames / rate / max_s)
    chain = f"atempo={tempo:.6f}"
    if tempo < max_tempo:  # atempo runs some milliseconds past the length asked: cut there
        chain += f",atrim=end_sample={limit}"
    with spilled(wav, "line.wav") as source:
        out = source.with_name("fitted.wav")
        run_ffmpeg(
            *("-i", str(source), "-filter:a", chain, "-c:a", "pcm_s16le"),
            *("-fflags", "+bitexact", str(out)),
            what="change the line's tempo",
        )
        fitted = out.read_bytes()
    frames, _ = _frames(fitted)
    return FittedLine(wav=fitted, duration_s=frames / rate, tempo=tempo, fits=frames <= limit)


# --- loudness -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Loudness:
    """EBU R128 measures of a file's audio; ``integrated_lufs`` is ``-inf`` for silence."""

    integrated_lufs: float
    true_peak_db: float


def loudness(media: bytes) -> Loudness:
    """Measure the audio of a WAV, MP4 or any file ffmpeg reads (its ebur128 filter)."""
    with spilled(media, "media") as path:
        return _measure(path)


_SUMMARY = re.compile(r"I:\s+(?P<i>\S+) LUFS.*Peak:\s+(?P<peak>\S+) dBFS", re.DOTALL)
_ABSOLUTE_GATE_LUFS = -70.0  # what ebur128 reports when no block is louder than the gate


def _measure(path: Path) -> Loudness:
    """Integrated loudness and true peak by ffmpeg's ebur128 (a BS.1770 meter, 4x oversampled).

    ebur128 rather than loudnorm's analysis: the same measures, five times as fast.
    """
    log = run_ffmpeg(
        *("-nostats", "-i", str(path), "-vn", "-filter:a", "ebur128=peak=true:framelog=quiet"),
        *("-f", "null", "-"),
        what=f"measure the loudness of {path.name}",
        loglevel="info",
    ).stderr.decode(errors="replace")
    found = _SUMMARY.search(log, log.rindex("Summary:"))
    if found is None:
        raise FFmpegError(f"ffmpeg's ebur128 printed no summary for {path.name}")
    integrated = float(found["i"])
    return Loudness(
        integrated_lufs=-math.inf if integrated <= _ABSOLUTE_GATE_LUFS else integrated,
        true_peak_db=float(found["peak"]),
    )


# --- mix and master -------------------------------------------------------------------------


@dataclass(frozen=True)
class Placement:
    """A spoken line (a WAV) placed ``start_s`` seconds into the film."""

    start_s: float
    wav: bytes


@dataclass(frozen=True)
class Bed:
    """An ambience or music bed (any audio ffmpeg reads) under ``duration_s`` of the film.

    It plays from ``start_s``, looped when shorter than its span and cut at its end.
    """

    start_s: float
    duration_s: float
    audio: bytes


_BED_FADE_S = 0.05  # in and out, so a bed starting or ending mid-film does not click


def mix_into_video(
    video_mp4: bytes,
    placements: Sequence[Placement],
    *,
    beds: Sequence[Bed] = (),
    bed_gain_db: float = -12.0,
    target_lufs: float = -16.0,
    true_peak_db: float = -1.0,
) -> bytes:
    """The film with its dialogue (and beds) mixed, mastered and encoded as AAC.

    Each line starts at its placement; lines that overlap are summed. Each bed plays under
    its span (a scene's), lowered by ``bed_gain_db`` and ducked under the dialogue. The
    audio is mastered to ``target_lufs`` integrated with true peaks at most
    ``true_peak_db``, and lasts exactly as long as the video, whose stream is copied
    unchanged; any audio the video had is replaced. With nothing to play, the film gets a
    silent track.

    Raises:
        ValueError: If the video is no MP4 with a video track, or a line or bed starts
            outside it.
        FFmpegError: If ffmpeg fails.

    """
    track = video_track(video_mp4)
    if track is None:
        raise ValueError("mix_into_video needs an MP4 with a video track")
    duration = track.frame_count / track.fps
    for what, start in [("line", p.start_s) for p in placements] + [
        ("bed", b.start_s) for b in beds
    ]:
        if not 0 <= start < duration:
            raise ValueError(
                f"a {what} placed at {start} s starts outside the {duration:.3f} s film"
            )
    with tempfile.TemporaryDirectory(prefix="auteur-mix-") as name:
        tmp = Path(name)
        video = tmp / "video.mp4"
        video.write_bytes(video_mp4)
        mix = _premix(tmp, placements, beds, bed_gain_db=bed_gain_db, duration=duration)
        mix, gain_db = _leveled(mix, target_lufs=target_lufs, true_peak_db=true_peak_db)
        out = tmp / "mixed.mp4"
        run_ffmpeg(
            *("-i", str(video), "-i", str(mix), "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy"),
            *("-filter:a", f"volume={gain_db:.3f}dB", "-c:a", "aac", "-b:a", "160k"),
            *("-movflags", "+faststart", str(out)),
            what="encode the mixed audio into the film",
        )
        return out.read_bytes()


def _premix(
    tmp: Path,
    placements: Sequence[Placement],
    beds: Sequence[Bed],
    *,
    bed_gain_db: float,
    duration: float,
) -> Path:
    """The lines (and beds) mixed into one 48 kHz float WAV ``duration`` long, to the sample."""
    samples = round(duration * _RATE)
    inputs: list[str] = []
    graph: list[str] = []
    lines: list[str] = []
    for i, placement in enumerate(placements):
        path = tmp / f"line-{i}.wav"
        path.write_bytes(placement.wav)
        inputs += ["-i", str(path)]
        delay = round(placement.start_s * _RATE)
        graph.append(f"[{i}:a]{_STEREO},adelay=delays={delay}S:all=1[line{i}]")
        lines.append(f"[line{i}]")
    if lines:
        graph.append(
            f"{''.join(lines)}amix=inputs={len(lines)}:normalize=0:duration=longest"
            f":dropout_transition=0,apad=whole_len={samples}[dialogue]"
        )
    mixed = "[dialogue]" if lines else None
    if beds:
        graph.append(_beds(tmp, beds, inputs, first=len(placements), gain_db=bed_gain_db))
        mixed = "[bed]"
        if lines:
            graph += [
                "[dialogue]asplit=2[voice][key]",
                "[bed][key]sidechaincompress=threshold=0.02:ratio=8:attack=20:release=400[ducked]",
                "[voice][ducked]amix=inputs=2:normalize=0:duration=longest[dialogue_bed]",
            ]
            mixed = "[dialogue_bed]"
    if mixed is None:
        inputs += ["-f", "lavfi", "-i", f"anullsrc=r={_RATE}:cl=stereo"]
        mixed = "[0:a]"
    graph.append(f"{mixed}apad=whole_len={samples},atrim=end_sample={samples}[mix]")
    out = tmp / "premix.wav"
    run_ffmpeg(
        *inputs,
        *("-filter_complex", ";".join(graph), "-map", "[mix]", "-c:a", "pcm_f32le", str(out)),
        what="mix the dialogue",
    )
    return out


def _beds(tmp: Path, beds: Sequence[Bed], inputs: list[str], *, first: int, gain_db: float) -> str:
    """The filters laying every bed under its span (inputs from ``first`` on), as ``[bed]``."""
    chains, labels = [], []
    for n, bed in enumerate(beds):
        path = tmp / f"bed-{n}"
        path.write_bytes(bed.audio)
        inputs += ["-stream_loop", "-1", "-i", str(path)]
        length = round(bed.duration_s * _RATE)
        fade = min(_BED_FADE_S, bed.duration_s / 2)
        chains.append(
            f"[{first + n}:a]{_STEREO},atrim=end_sample={length},volume={gain_db}dB,"
            f"afade=t=in:d={fade},afade=t=out:st={bed.duration_s - fade:.6f}:d={fade},"
            f"adelay=delays={round(bed.start_s * _RATE)}S:all=1[bed{n}]"
        )
        labels.append(f"[bed{n}]")
    mixed = f"{''.join(labels)}amix=inputs={len(labels)}:normalize=0:duration=longest[bed]"
    return ";".join([*chains, mixed])


def _leveled(mix: Path, *, target_lufs: float, true_peak_db: float) -> tuple[Path, float]:
    """The mix to encode, and the gain that brings it to ``target_lufs`` (0 for silence).

    When that gain would lift the true peaks past the ceiling (``true_peak_db`` less a
    margin), the mix is raised under the limiter instead and measured again. Limiting costs
    some loudness, so the shortfall is added to the gain and the mix limited again from the
    start (not the limited result: its peaks would be squeezed twice); a pass or two settles.
    """
    ceiling = true_peak_db - _PEAK_MARGIN_DB
    level = _measure(mix)
    if not math.isfinite(level.integrated_lufs):
        return mix, 0.0
    leveled, gain_db = mix, target_lufs - level.integrated_lufs
    for _ in range(_LIMITER_PASSES):
        if level.true_peak_db + target_lufs - level.integrated_lufs <= ceiling:
            break
        leveled = _limited(mix, gain_db=gain_db, ceiling=ceiling)
        level = _measure(leveled)
        gain_db += target_lufs - level.integrated_lufs
    return leveled, target_lufs - level.integrated_lufs


def _limited(mix: Path, *, gain_db: float, ceiling: float) -> Path:
    """``mix`` raised by ``gain_db`` under a true-peak limiter at ``ceiling`` dBTP.

    The limiter runs at four times the rate, so it catches the peaks between samples that
    a true-peak meter sees; its look-ahead delay is compensated, so nothing moves in time.
    """
    out = mix.with_stem(f"{mix.stem}-limited")
    limit = 10 ** (ceiling / 20)
    chain = (
        f"volume={gain_db:.3f}dB,aresample={4 * _RATE},"
        f"alimiter=limit={limit:.5f}:attack=1:release=60:level=false:latency=true,"
        f"aresample={_RATE}"
    )
    run_ffmpeg(
        *("-i", str(mix), "-filter:a", chain, "-c:a", "pcm_f32le", str(out)),
        what="limit the mix's peaks",
    )
    return out
