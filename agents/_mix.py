"""The cut and its sound: the approved clips in order with their placed lines, mixed and mastered.

:func:`cut` lays the approved clips end to end (their measured lengths) with each spoken
line where the dialogue artifact placed it in its shot; the assembly mixes those lines in
(:func:`mix_dialogue`), and the editorial export (``auteur export``, the API) writes the
same cut as an OpenTimelineIO timeline, so what is heard, read and edited agree. The mix is
loudness-normalised for the web (EBU R128, -16 LUFS, true peak at most -1 dBTP) and encoded
as AAC beside the untouched video stream (:func:`tools.sound.mix_into_video`); the subtitles
(SRT and WebVTT) come from the same placements. Each scene's ambience bed, when the dialogue
stage made one, plays under that scene's shots in the mix and on its own track in the export
(:func:`cut_beds`). A mix is made once per (video, lines, beds, places).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from langgraph.runtime import Runtime

from agents.artifacts import Clip, MediaFile, SceneBed, SpokenLine, Video, input_hash
from agents.base import Context, Step
from tools.editorial import (
    TimelineBed,
    TimelineLine,
    TimelineShot,
    scene_spans,
    srt,
    subtitle_cues,
    webvtt,
)
from tools.sound import Bed, Placement, loudness, mix_into_video

__all__ = ["cut", "cut_beds", "mix_dialogue"]


def cut(
    clips: list[Clip],
    lines: list[SpokenLine],
    scenes: dict[str, int],
    locate: Callable[[MediaFile], str],
) -> list[TimelineShot]:
    """The film's shots in order: each clip (``locate``-d) with the lines spoken in its shot.

    ``scenes`` gives each shot's scene number.
    """
    return [
        TimelineShot(
            id=clip.shot,
            scene=scenes[clip.shot],
            duration_s=clip.duration_s,
            media=locate(clip.file),
            lines=[
                TimelineLine(
                    line.start_s, line.duration_s, locate(line.file), line.speaker, line.text
                )
                for line in lines
                if line.shot == clip.shot
            ],
        )
        for clip in clips
    ]


def cut_beds(beds: list[SceneBed], locate: Callable[[MediaFile], str]) -> list[TimelineBed]:
    """The scenes' beds (``locate``-d) for the cut; each plays under its scene's shots."""
    return [TimelineBed(bed.scene, locate(bed.file), bed.prompt) for bed in beds]


async def mix_dialogue(
    step: Step,
    runtime: Runtime[Context],
    video: Video,
    film: list[TimelineShot],
    beds: list[TimelineBed] | None = None,
) -> Video:
    """``video`` with the lines of ``film`` and the ``beds`` (located by key) mixed in."""
    files = runtime.context.files
    cues = subtitle_cues(film)
    keys = [line.media for shot in film for line in shot.lines]
    spans = scene_spans(film)
    under = [(*spans[bed.scene], bed.media) for bed in beds or [] if bed.scene in spans]

    async def mix() -> bytes:
        def run() -> bytes:
            placements = [
                Placement(start_s=cue.start_s, wav=files.read(key))
                for cue, key in zip(cues, keys, strict=True)
            ]
            scene_beds = [Bed(start, length, files.read(key)) for start, length, key in under]
            return mix_into_video(files.read(video.file), placements, beds=scene_beds)

        return await asyncio.to_thread(run)

    placed = [(cue.start_s, key) for cue, key in zip(cues, keys, strict=True)]
    # A film without beds keeps the key its mix always had: no mix is made again for nothing.
    key = input_hash("mix", video.file.key, placed, *([under] if under else []))
    mixed = await step.generate_media(runtime, key, mix, extension="mp4", media_type="video/mp4")
    measured = await asyncio.to_thread(lambda: loudness(files.read(mixed)))
    srt_file, vtt_file = await asyncio.to_thread(
        lambda: (
            files.put(srt(cues).encode(), extension="srt", media_type="application/x-subrip"),
            files.put(webvtt(cues).encode(), extension="vtt", media_type="text/vtt"),
        )
    )
    return video.model_copy(
        update={
            "file": mixed,
            "subtitles": {"srt": srt_file, "vtt": vtt_file},
            "loudness_lufs": round(measured.integrated_lufs, 1),
        }
    )
