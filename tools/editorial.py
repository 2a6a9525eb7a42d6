"""Subtitles and the editorial cut: SRT and WebVTT from the placed lines, OTIO and its formats.

A film maker finishes a cut in an editor. :func:`timeline` builds the film as an
OpenTimelineIO timeline: one clip per shot on a video track, with its media and in and out
points; every spoken line on an audio track, where it was placed; each scene's ambience bed,
if it has one, under the scene on an audio track of its own; a marker where each scene
starts. :func:`export` writes it as OTIO JSON, or through OTIO's adapter plugins as FCPXML
(Final Cut Pro, DaVinci Resolve, Premiere) or a CMX 3600 EDL. :func:`subtitle_cues` places
the same lines for :func:`srt` and :func:`webvtt`, so subtitles and cut agree.

Example::

    line = TimelineLine(0.5, 1.8, media="lines/1A-0.wav", speaker="KEEPER", text="Who?")
    shots = [TimelineShot(id="1A", scene=1, duration_s=3.0, media="clips/1A.mp4", lines=[line])]
    print(srt(subtitle_cues(shots)))  # 1 / 00:00:00,500 --> 00:00:02,300 / KEEPER: Who?
    export(timeline("The Keeper", shots, fps=24), "fcpxml")
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

import opentimelineio as otio

__all__ = [
    "Cue",
    "ExportFormat",
    "TimelineBed",
    "TimelineLine",
    "TimelineShot",
    "export",
    "scene_spans",
    "srt",
    "subtitle_cues",
    "timeline",
    "webvtt",
]

ExportFormat = Literal["otio", "fcpxml", "edl"]

_ADAPTERS: dict[str, str] = {"otio": "otio_json", "fcpxml": "fcpx_xml", "edl": "cmx_3600"}
# The rates otio-fcpx-xml-adapter writes (its NTSC rates only when given as 23.98, 29.97 and
# 59.94 exactly), and the EDL timecode rates editors expect.
_EDITOR_RATES = (24.0, 25.0, 30.0, 50.0, 60.0)
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


# --- subtitles ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cue:
    """One subtitle: ``text`` shown from ``start_s`` to ``end_s``, said by ``speaker``."""

    start_s: float
    end_s: float
    text: str
    speaker: str = ""

    def __post_init__(self) -> None:
        if not 0 <= self.start_s < self.end_s:
            raise ValueError(f"a cue must end after it starts, at 0 s or later: {self}")


def srt(cues: Sequence[Cue]) -> str:
    """SubRip subtitles: numbered cues in time order, ``SPEAKER: text``.

    Example:
        >>> print(srt([Cue(1.0, 2.5, "Who goes there?", "KEEPER")]), end="")
        1
        00:00:01,000 --> 00:00:02,500
        KEEPER: Who goes there?

    """
    blocks = [
        f"{number}\n{_timestamp(cue.start_s, ',')} --> {_timestamp(cue.end_s, ',')}\n"
        f"{cue.speaker + ': ' if cue.speaker else ''}{_one_line(cue.text)}\n"
        for number, cue in enumerate(_in_order(cues), start=1)
    ]
    return "\n".join(blocks)


def webvtt(cues: Sequence[Cue]) -> str:
    """WebVTT subtitles: cues in time order, the speaker as a voice tag (``<v KEEPER>``).

    Example:
        >>> print(webvtt([Cue(1.0, 2.5, "Who goes there?", "KEEPER")]), end="")
        WEBVTT
        <BLANKLINE>
        1
        00:00:01.000 --> 00:00:02.500
        <v KEEPER>Who goes there?

    """
    blocks = [
        f"{number}\n{_timestamp(cue.start_s, '.')} --> {_timestamp(cue.end_s, '.')}\n"
        f"{_voice(cue.speaker)}{html.escape(_one_line(cue.text), quote=False)}\n"
        for number, cue in enumerate(_in_order(cues), start=1)
    ]
    return "\n".join(["WEBVTT\n", *blocks])


def _in_order(cues: Sequence[Cue]) -> list[Cue]:
    return sorted(cues, key=lambda cue: (cue.start_s, cue.end_s))


def _timestamp(seconds: float, decimal: str) -> str:
    milliseconds = round(seconds * 1000)
    hours, rest = divmod(milliseconds, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}{decimal}{rest % 1000:03d}"


def _one_line(text: str) -> str:
    """Text on one line: a blank line would end the cue."""
    return " ".join(text.split())


def _voice(speaker: str) -> str:
    return f"<v {html.escape(_one_line(speaker), quote=False)}>" if speaker.strip() else ""


# --- timeline -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimelineLine:
    """A spoken line in its shot.

    Attributes:
        start_s: When it starts, from the start of its shot.
        duration_s: How long it plays.
        media: Its audio file: a URL, or a path (an absolute one becomes a ``file://`` URL).
        speaker: Who says it.
        text: What is said.

    """

    start_s: float
    duration_s: float
    media: str
    speaker: str
    text: str


@dataclass(frozen=True)
class TimelineShot:
    """A shot of the cut: its clip (a URL or path, as for lines) and the lines said in it."""

    id: str
    scene: int
    duration_s: float
    media: str
    lines: Sequence[TimelineLine] = ()


@dataclass(frozen=True)
class TimelineBed:
    """A scene's ambience or music bed (a URL or path, as for lines), under the whole scene."""

    scene: int
    media: str
    prompt: str = ""


def scene_spans(shots: Sequence[TimelineShot]) -> dict[int, tuple[float, float]]:
    """Each scene's start in the film and its length, in seconds (shots play in order)."""
    spans: dict[int, tuple[float, float]] = {}
    start = 0.0
    for shot in shots:
        first, length = spans.get(shot.scene, (start, 0.0))
        spans[shot.scene] = (first, length + shot.duration_s)
        start += shot.duration_s
    return spans


def subtitle_cues(shots: Sequence[TimelineShot]) -> list[Cue]:
    """The shots' lines as cues, at their places in the film (shots play in order)."""
    cues: list[Cue] = []
    shot_start = 0.0
    for shot in shots:
        cues += [
            Cue(shot_start + line.start_s, shot_start + line.start_s + line.duration_s,
                line.text, line.speaker)
            for line in shot.lines
        ]  # fmt: skip
        shot_start += shot.duration_s
    return cues


def timeline(
    title: str, shots: Sequence[TimelineShot], fps: float, beds: Sequence[TimelineBed] = ()
) -> otio.schema.Timeline:
    """The cut as an OTIO timeline at ``fps``, every time rounded to a frame.

    One video track holds a clip per shot, in order, each its media from frame 0 for its
    duration, with a marker where a new scene starts. The lines are on audio tracks, as
    many as lines overlap, gaps between them; a line's clip is named for its speaker and
    carries its text in its metadata (``auteur.text``). The beds are on an ``Ambience``
    audio track, each spanning its scene's shots (its prompt in ``auteur.prompt``).

    Raises:
        ValueError: If ``fps`` is not positive.

    """
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    film = otio.schema.Timeline(name=title, global_start_time=otio.opentime.RationalTime(0, fps))
    video = otio.schema.Track(name="Video", kind=otio.schema.TrackKind.Video)
    placed: list[_Placed] = []
    spans: dict[int, tuple[int, int]] = {}  # each scene's first frame and length in frames
    start, scene = 0, None
    for shot in shots:
        frames = _frames(shot.duration_s, fps)
        first, length = spans.get(shot.scene, (start, 0))
        spans[shot.scene] = (first, length + frames)
        clip = _clip(shot.id, shot.media, frames, fps)
        clip.metadata["auteur"] = {"shot": shot.id, "scene": shot.scene}
        if shot.scene != scene:
            clip.markers.append(
                otio.schema.Marker(
                    name=f"Scene {shot.scene}",
                    marked_range=_range(0, 0, fps),
                    color=otio.schema.MarkerColor.RED,
                )
            )
            scene = shot.scene
        video.append(clip)
        placed += [
            _Placed(start + round(line.start_s * fps), _frames(line.duration_s, fps), shot.id, line)
            for line in shot.lines
        ]
        start += frames
    film.tracks.append(video)
    for number, lines in enumerate(_lanes(placed), start=1):
        film.tracks.append(_dialogue_track(f"Dialogue {number}", lines, fps))
    if placed_beds := [bed for bed in beds if bed.scene in spans]:
        film.tracks.append(_bed_track(placed_beds, spans, fps))
    return film


class _Placed(NamedTuple):
    start: int  # frames from the start of the film
    frames: int
    shot: str
    line: TimelineLine


def _lanes(placed: list[_Placed]) -> list[list[_Placed]]:
    """Lines spread over as few tracks as hold them without overlap (first that fits)."""
    lanes: list[list[_Placed]] = []
    for line in sorted(placed, key=lambda item: item.start):
        lane = next(
            (lane for lane in lanes if lane[-1].start + lane[-1].frames <= line.start), None
        )
        if lane is None:
            lanes.append(lane := [])
        lane.append(line)
    return lanes


def _dialogue_track(name: str, lines: list[_Placed], fps: float) -> otio.schema.Track:
    track = otio.schema.Track(name=name, kind=otio.schema.TrackKind.Audio)
    end = 0
    for start, frames, shot, line in lines:
        if start > end:
            track.append(otio.schema.Gap(source_range=_range(0, start - end, fps)))
        clip = _clip(line.speaker or "line", line.media, frames, fps)
        clip.metadata["auteur"] = {"shot": shot, "speaker": line.speaker, "text": line.text}
        track.append(clip)
        end = start + frames
    return track


def _bed_track(
    beds: list[TimelineBed], spans: dict[int, tuple[int, int]], fps: float
) -> otio.schema.Track:
    track = otio.schema.Track(name="Ambience", kind=otio.schema.TrackKind.Audio)
    end = 0
    for bed in sorted(beds, key=lambda bed: spans[bed.scene][0]):
        start, frames = spans[bed.scene]
        if start > end:
            track.append(otio.schema.Gap(source_range=_range(0, start - end, fps)))
        clip = _clip(f"Scene {bed.scene} ambience", bed.media, frames, fps)
        clip.metadata["auteur"] = {"scene": bed.scene, "prompt": bed.prompt}
        track.append(clip)
        end = start + frames
    return track


def _clip(name: str, media: str, frames: int, fps: float) -> otio.schema.Clip:
    """A clip of ``media`` from its frame 0 for ``frames``, the media as long as that."""
    reference = otio.schema.ExternalReference(
        target_url=_url(media), available_range=_range(0, frames, fps)
    )
    return otio.schema.Clip(
        name=name, media_reference=reference, source_range=_range(0, frames, fps)
    )


def _url(media: str) -> str:
    if _URL.match(media) or not Path(media).is_absolute():
        return media
    return Path(media).as_uri()


def _frames(seconds: float, fps: float) -> int:
    return max(1, round(seconds * fps))


def _range(start: int, frames: int, fps: float) -> otio.opentime.TimeRange:
    return otio.opentime.TimeRange(
        otio.opentime.RationalTime(start, fps), otio.opentime.RationalTime(frames, fps)
    )


# --- export ---------------------------------------------------------------------------------


def export(film: otio.schema.Timeline, fmt: ExportFormat) -> str:
    """The timeline as OTIO JSON, FCPXML or a CMX 3600 EDL.

    FCPXML and EDL are written at a rate editors use (24, 25, 30, 50 or 60 fps): a timeline
    at another rate is carried over to the first of them that is a whole multiple of it
    (12 fps drafts to 24), else to 24, each time on the nearest frame. An EDL holds one
    video track and nothing else: it gets the video alone, and the dialogue is left to the
    OTIO and FCPXML exports.
    """
    if fmt != "otio":
        film = _at_rate(film, _editor_rate(_rate(film)))
    if fmt == "edl":
        video_only = otio.schema.Timeline(name=film.name, global_start_time=film.global_start_time)
        video_only.tracks.append(film.video_tracks()[0].deepcopy())
        film = video_only
    return otio.adapters.write_to_string(film, _ADAPTERS[fmt])


def _rate(film: otio.schema.Timeline) -> float:
    start = film.global_start_time
    return start.rate if start is not None else film.duration().rate


def _editor_rate(fps: float) -> float:
    if fps in _EDITOR_RATES:
        return fps
    return next((rate for rate in _EDITOR_RATES if (rate / fps).is_integer()), 24.0)


def _at_rate(film: otio.schema.Timeline, rate: float) -> otio.schema.Timeline:
    """A copy of ``film`` with every time on whole frames at ``rate``."""
    film = film.deepcopy()
    if film.global_start_time is not None:
        film.global_start_time = _on_frames(film.global_start_time, rate)
    for item in film.find_children():
        if item.source_range is not None:
            item.source_range = _range_at(item.source_range, rate)
        reference = getattr(item, "media_reference", None)
        if reference is not None and reference.available_range is not None:
            reference.available_range = _range_at(reference.available_range, rate)
        for marker in item.markers:
            marker.marked_range = _range_at(marker.marked_range, rate)
    return film


def _range_at(span: otio.opentime.TimeRange, rate: float) -> otio.opentime.TimeRange:
    return otio.opentime.TimeRange(
        _on_frames(span.start_time, rate), _on_frames(span.duration, rate)
    )


def _on_frames(time: otio.opentime.RationalTime, rate: float) -> otio.opentime.RationalTime:
    return otio.opentime.RationalTime(round(time.value_rescaled_to(rate)), rate)
