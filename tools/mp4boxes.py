"""Read an MP4's video track from its boxes: size, frames, frame rate, and format.

:func:`video_track` reads the size, frames and frame rate, so no decoder is started to
measure a clip. :func:`video_format` reads what must match for clips to join without
re-encoding.

The first entry of the video track's sample description (``moov/trak/mdia/minf/stbl/stsd``)
holds the codec, the frame size and the decoder configuration (for H.264 the ``avcC`` box:
profile, level, chroma format, SPS and PPS). Two clips whose entries are equal decode with
the same configuration, so their packets can follow each other in one stream (ffmpeg's
concat demuxer with ``-c copy``); clips that differ in any of it cannot share one. The
entry's ``btrt`` box (the clip's bit rates, different for every clip) is left out.

The track's start delay counts too: the media time of its edit list (``edts/elst``), which
is how far decoding runs ahead of display (two frames for x264 with B-frames, none for a
one-frame clip). Clips with different delays joined by copying would leave a gap in the
decode times at the join, and the file would report the wrong frame rate.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import NamedTuple

__all__ = ["VideoTrack", "video_format", "video_frame_count", "video_track"]

_STBL = (b"mdia", b"minf", b"stbl")
_VISUAL_ENTRY_FIELDS = 78  # a visual sample entry's fixed fields, before its child boxes
_INFORMATIONAL = frozenset({b"btrt"})


def video_format(mp4: bytes) -> bytes | None:
    """The first video track's sample entry (bit rates left out) and start delay, or None."""
    trak = _video_track(mp4)
    stsd = _descend(mp4, trak, (*_STBL, b"stsd")) if trak else None
    entry = _first_entry(mp4, *stsd) if stsd else None
    if trak is None or entry is None:
        return None
    return entry + _start_delay(mp4, trak)


def video_frame_count(mp4: bytes) -> int | None:
    """How many frames (samples) the first video track holds, from ``stsz``; None if no MP4."""
    trak = _video_track(mp4)
    return _frame_count(mp4, trak) if trak else None


def _frame_count(mp4: bytes, trak: tuple[int, int]) -> int | None:
    stsz = _descend(mp4, trak, (*_STBL, b"stsz"))
    if stsz is None or stsz[1] - stsz[0] < 12:
        return None
    (count,) = struct.unpack_from(">I", mp4, stsz[0] + 8)  # after version+flags, sample size
    return count


class VideoTrack(NamedTuple):
    """What the first video track's header says: frame size, frames, average frame rate."""

    width: int
    height: int
    frame_count: int
    fps: float


def video_track(mp4: bytes) -> VideoTrack | None:
    """The first video track's size (``stsd``), frames (``stsz``) and frame rate, or None.

    The frame rate is the frames over their total duration (``stts``) in the track's time
    scale (``mdhd``): read from the header, with no decoder started.
    """
    if (trak := _video_track(mp4)) is None:
        return None
    frame_count = _frame_count(mp4, trak)
    stsd = _descend(mp4, trak, (*_STBL, b"stsd"))
    entry = next(_all_boxes(mp4, stsd[0] + 8, stsd[1]), None) if stsd else None
    mdhd = _descend(mp4, trak, (b"mdia", b"mdhd"))
    stts = _descend(mp4, trak, (*_STBL, b"stts"))
    if None in (frame_count, entry, mdhd, stts) or entry[2] - entry[1] < _VISUAL_ENTRY_FIELDS:
        return None
    timescale_at = mdhd[0] + (20 if mp4[mdhd[0]] == 1 else 12)  # after the two dates
    if mdhd[1] - timescale_at < 4 or stts[1] - stts[0] < 8:
        return None  # truncated: ffmpeg may make more of it
    # sample entry: reserved and data reference (8), pre-defined and reserved (16), then size
    width, height = struct.unpack_from(">HH", mp4, entry[1] + 24)
    (timescale,) = struct.unpack_from(">I", mp4, timescale_at)
    (entries,) = struct.unpack_from(">I", mp4, stts[0] + 4)
    entries = min(entries, (stts[1] - stts[0] - 8) // 8)  # no more than the box holds
    runs = [struct.unpack_from(">II", mp4, stts[0] + 8 + 8 * i) for i in range(entries)]
    duration = sum(count * delta for count, delta in runs)
    if not (frame_count and duration and timescale):
        return None
    return VideoTrack(width, height, frame_count, frame_count * timescale / duration)


def _video_track(mp4: bytes) -> tuple[int, int] | None:
    """The payload span of the first ``trak`` whose handler is ``vide``."""
    for moov in _boxes(mp4, 0, len(mp4), b"moov"):
        for trak in _boxes(mp4, *moov, b"trak"):
            if _handler(mp4, trak) == b"vide":
                return trak
    return None


def _descend(mp4: bytes, span: tuple[int, int], path: tuple[bytes, ...]) -> tuple[int, int] | None:
    """The payload span of the first box at ``path`` below ``span``, or None."""
    found: tuple[int, int] | None = span
    for kind in path:
        found = next(_boxes(mp4, *found, kind), None)
        if found is None:
            return None
    return found


def _first_entry(mp4: bytes, start: int, end: int) -> bytes | None:
    """``stsd``'s first entry (after version, flags and count): type, fields, child boxes."""
    entry = next(_all_boxes(mp4, start + 8, end), None)
    if entry is None or entry[2] - entry[1] < _VISUAL_ENTRY_FIELDS:
        return None
    kind, fields_start, entry_end = entry
    children_start = fields_start + _VISUAL_ENTRY_FIELDS
    children = b"".join(
        child_kind + mp4[payload:child_end]
        for child_kind, payload, child_end in _all_boxes(mp4, children_start, entry_end)
        if child_kind not in _INFORMATIONAL
    )
    return kind + mp4[fields_start:children_start] + children


def _start_delay(mp4: bytes, trak: tuple[int, int]) -> bytes:
    """The media time of the track's first edit (after version+flags and count), or nothing."""
    edts = next(_boxes(mp4, *trak, b"edts"), None)
    elst = next(_boxes(mp4, *edts, b"elst"), None) if edts else None
    if elst is None or elst[1] - elst[0] < 16:
        return b""
    version = mp4[elst[0]]
    width = 8 if version == 1 else 4  # segment duration, then media time, each this wide
    first = elst[0] + 8
    return mp4[first + width : first + 2 * width]


def _handler(mp4: bytes, trak: tuple[int, int]) -> bytes | None:
    """The track's handler type (``vide``, ``soun``…): version+flags, pre_defined, then it."""
    mdia = next(_boxes(mp4, *trak, b"mdia"), None)
    hdlr = next(_boxes(mp4, *mdia, b"hdlr"), None) if mdia else None
    if hdlr is None or hdlr[1] - hdlr[0] < 12:
        return None
    return mp4[hdlr[0] + 8 : hdlr[0] + 12]


def _boxes(mp4: bytes, start: int, end: int, kind: bytes) -> Iterator[tuple[int, int]]:
    """The payload spans of the boxes of type ``kind`` directly inside ``[start, end)``."""
    for found, payload, box_end in _all_boxes(mp4, start, end):
        if found == kind:
            yield payload, box_end


def _all_boxes(mp4: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """Type, payload start and end of each box directly inside ``[start, end)``."""
    while start + 8 <= end:
        size, kind = struct.unpack_from(">I4s", mp4, start)
        header = 8
        if size == 1 and start + 16 <= end:  # a 64-bit size follows the type
            (size,) = struct.unpack_from(">Q", mp4, start + 8)
            header = 16
        elif size == 0:  # the box runs to the end of its parent
            size = end - start
        if size < header or start + size > end:
            return  # truncated, or not an MP4
        yield kind, start + header, start + size
        start += size
