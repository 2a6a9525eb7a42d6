"""The ``draft`` generation backend: storyboard cards and animatics rendered on the CPU.

It stands in for image and video models so the whole pipeline runs end to end with no GPU:
a keyframe is a storyboard card (title, description, framing and camera notes), a clip is an
animatic that moves from the start card to the end card, and assembly concatenates clips.
Output is small (640x360 for 16:9) and deterministic: the same input gives the same bytes.

Example:
    >>> card = StoryboardCard(title="Shot 1A · start frame", description="A meadow at dawn.",
    ...                       details=(("Framing", "wide"),))
    >>> png = render_card(card, size=frame_size("16:9"))
    >>> info = probe(render_clip(png, png, duration_s=1.0, fps=12))
    >>> info.frame_count, info.width, info.height
    (12, 640, 360)

"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import io
import itertools
import math
import subprocess
import tempfile
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import imageio_ffmpeg
from PIL import Image, ImageDraw, ImageFont

from tools.mp4boxes import video_format, video_frame_count, video_track

__all__ = [
    "DraftBackend",
    "StoryboardCard",
    "VideoInfo",
    "assemble",
    "encode_mp4",
    "frame_size",
    "probe",
    "render_card",
    "render_clip",
]

# Small drafts with even sides, as yuv420p H.264 requires; all but 360 are multiples of 16.
_FRAME_SIZES: dict[str, tuple[int, int]] = {
    "16:9": (640, 360),
    "9:16": (360, 640),
    "1:1": (480, 480),
    "4:3": (512, 384),
    "2.39:1": (768, 320),
}
_MIN_CARD_SIDE = 64
_ROW_LINES = 2  # lines a detail row (label: value) wraps to at most

_Box = tuple[int, int, int, int]  # left, top, right, bottom

_PAPER = (247, 244, 237)
_INK = (33, 33, 38)
_MUTED = (112, 109, 104)
_HEADER = (30, 32, 39)
_HEADER_INK = (246, 244, 239)
_GUIDE = (168, 163, 155)
_THIRDS = (226, 222, 214)
_NOTE = (255, 233, 170)

_ELLIPSIS = "…"
PNG_LEVEL = 1
"""zlib level of the draft PNGs: two thirds of the default's time, files 15-20% larger."""
INSET_FRAME = _HEADER
"""Frame of an image inset in a card (the sheet a new look was drawn from)."""
# Dashes, arrow, multiplication sign and no-break space, which the built-in font lacks.
_FALLBACKS = str.maketrans(
    {"\u2014": "-", "\u2013": "-", "\u2010": "-", "\u2192": "->", "\u00d7": "x", "\u00a0": " "}
)

_HOLD_START = 0.35  # fraction of the clip spent on the start card before the cross-fade
_FADE = 0.3  # fraction of the clip spent cross-fading
_ZOOM = 0.04  # slow push-in over the whole clip


# --- formats -------------------------------------------------------------------------------


def frame_size(aspect_ratio: str) -> tuple[int, int]:
    """Draft frame size ``(width, height)`` for a project aspect ratio such as ``"16:9"``.

    Raises:
        ValueError: If the aspect ratio is not one the project format allows.

    """
    try:
        return _FRAME_SIZES[aspect_ratio]
    except KeyError:
        raise ValueError(
            f"unsupported aspect ratio {aspect_ratio!r}; expected one of {sorted(_FRAME_SIZES)}"
        ) from None


@dataclass(frozen=True)
class StoryboardCard:
    """What a storyboard card shows.

    Attributes:
        title: Header text, e.g. ``"Shot 1A · start frame"``.
        description: The frame description or generation prompt.
        details: Label/value rows, e.g. ``(("Framing", "medium close-up"),)``.
        style: Visual style, shown in small print.
        note: Feedback or other remark, highlighted at the bottom.
        seed: Varies a subtle background tint, so different seeds give different images.

    """

    title: str
    description: str
    details: tuple[tuple[str, str], ...] = ()
    style: str = ""
    note: str = ""
    seed: int = 0


@dataclass(frozen=True)
class VideoInfo:
    """Measured properties of a video; ``frame_count`` is every frame it holds."""

    frame_count: int
    fps: float
    duration_s: float
    width: int
    height: int


# --- cards ---------------------------------------------------------------------------------


def render_card(card: StoryboardCard, *, size: tuple[int, int]) -> bytes:
    """Render a storyboard card as PNG bytes of exactly ``size``.

    Text that does not fit is cut off with an ellipsis; characters the built-in font lacks
    are replaced by ASCII look-alikes.

    Raises:
        ValueError: If either side of ``size`` is under 64 pixels.

    """
    width, height = size
    if min(width, height) < _MIN_CARD_SIDE:
        raise ValueError(f"card size {size} too small: both sides must be >= {_MIN_CARD_SIDE}")
    image = Image.new("RGB", (width, height), _paper(card.seed))
    draw = ImageDraw.Draw(image)
    unit = min(width, height)
    pad = max(6, unit // 28)
    header_height = _draw_header(draw, card.title, width=width, pad=pad, unit=unit)
    body = (pad, header_height + pad, width - pad, height - pad)
    _draw_frame_guide(draw, body, unit=unit)
    _draw_body(draw, card, _inset(body, pad), font=_font(max(11, unit // 23)))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=PNG_LEVEL)
    return buffer.getvalue()


def _paper(seed: int) -> tuple[int, int, int]:
    digest = hashlib.sha256(str(seed).encode()).digest()
    red, green, blue = (base - digest[i] % 14 for i, base in enumerate(_PAPER))
    return red, green, blue


def _draw_header(draw: ImageDraw.ImageDraw, title: str, *, width: int, pad: int, unit: int) -> int:
    """Draw the dark title band with a ``DRAFT`` tag; return its height."""
    title_font, tag_font = _font(max(13, unit // 16)), _font(max(10, unit // 28))
    height = _line_height(title_font) + pad
    draw.rectangle((0, 0, width, height), fill=_HEADER)
    tag_width = tag_font.getlength("DRAFT")
    draw.text((width - pad, height // 2), "DRAFT", font=tag_font, fill=_GUIDE, anchor="rm")
    text = _fit(_printable(title), title_font, width - 3 * pad - tag_width)
    draw.text((pad, height // 2), text, font=title_font, fill=_HEADER_INK, anchor="lm")
    return height


def _draw_frame_guide(draw: ImageDraw.ImageDraw, box: _Box, *, unit: int) -> None:
    """Draw a viewfinder behind the text: faint thirds, corner brackets, centre cross."""
    left, top, right, bottom = box
    for i in (1, 2):
        x = left + (right - left) * i // 3
        y = top + (bottom - top) * i // 3
        draw.line((x, top, x, bottom), fill=_THIRDS)
        draw.line((left, y, right, y), fill=_THIRDS)
    arm, stroke = max(8, unit // 12), max(1, unit // 180)
    corners = (
        (left, top, 1, 1),
        (right, top, -1, 1),
        (left, bottom, 1, -1),
        (right, bottom, -1, -1),
    )
    for x, y, dx, dy in corners:
        draw.line((x, y, x + dx * arm, y), fill=_GUIDE, width=stroke)
        draw.line((x, y, x, y + dy * arm), fill=_GUIDE, width=stroke)
    centre_x, centre_y, cross = (left + right) // 2, (top + bottom) // 2, arm // 3
    draw.line((centre_x - cross, centre_y, centre_x + cross, centre_y), fill=_GUIDE)
    draw.line((centre_x, centre_y - cross, centre_x, centre_y + cross), fill=_GUIDE)


def _draw_body(
    draw: ImageDraw.ImageDraw, card: StoryboardCard, box: _Box, *, font: ImageFont.FreeTypeFont
) -> None:
    """Lay out the note at the bottom, then description, details and style from the top.

    The description gets every line the details and the style leave (at least two), so a
    long description fills the card instead of stopping halfway down it.
    """
    flow = _Flow(draw, box, font)
    if card.note:
        flow.note(f"Note: {card.note}", max_lines=3)
    label_width = math.ceil(
        min(
            max((font.getlength(_printable(label)) for label, _ in card.details), default=0),
            (box[2] - box[0]) * 0.4,
        )
        + font.size
    )
    value_width = box[2] - box[0] - label_width
    below = sum(
        len(_wrap(_printable(value), font, value_width, _ROW_LINES)) for _, value in card.details
    )
    if card.style:
        below += len(_wrap(_printable(f"Style: {card.style}"), font, box[2] - box[0], 2)) + 1
    flow.paragraph(card.description, fill=_INK, max_lines=max(2, flow.capacity() - below - 1))
    flow.gap()
    for label, value in card.details:
        flow.row(label, value, label_width=label_width)
    if card.style:
        flow.gap()
        flow.paragraph(f"Style: {card.style}", fill=_MUTED, max_lines=2)


class _Flow:
    """Draws text top to bottom inside a box, cutting off what does not fit."""

    def __init__(self, draw: ImageDraw.ImageDraw, box: _Box, font: ImageFont.FreeTypeFont) -> None:
        self.draw, self.font = draw, font
        self.left, self.y, self.right, self.bottom = box
        self.line_height = _line_height(font)

    def capacity(self) -> int:
        """How many more lines fit."""
        return max(0, (self.bottom - self.y) // self.line_height)

    def gap(self) -> None:
        """Leave half a line of space."""
        self.y += self.line_height // 2

    def paragraph(
        self, text: str, *, fill: tuple[int, int, int], max_lines: int, x: int | None = None
    ) -> None:
        """Draw word-wrapped text starting at the current line."""
        x = self.left if x is None else x
        lines = _wrap(_printable(text), self.font, self.right - x, min(max_lines, self.capacity()))
        for line in lines:
            self.draw.text((x, self.y), line, font=self.font, fill=fill)
            self.y += self.line_height

    def row(self, label: str, value: str, *, label_width: int) -> None:
        """Draw a muted label with its value wrapped in a column to its right."""
        if self.capacity() == 0:
            return
        label_text = _fit(_printable(label), self.font, label_width - self.font.size)
        self.draw.text((self.left, self.y), label_text, font=self.font, fill=_MUTED)
        self.paragraph(value, fill=_INK, max_lines=_ROW_LINES, x=self.left + label_width)

    def note(self, text: str, *, max_lines: int) -> None:
        """Draw a highlighted box at the bottom and shrink the flow above it."""
        inner = self.line_height // 4
        width = self.right - self.left - 2 * inner
        lines = _wrap(_printable(text), self.font, width, min(max_lines, self.capacity()))
        top = self.bottom - len(lines) * self.line_height - 2 * inner
        self.draw.rectangle((self.left, top, self.right, self.bottom), fill=_NOTE)
        for i, line in enumerate(lines):
            position = (self.left + inner, top + inner + i * self.line_height)
            self.draw.text(position, line, font=self.font, fill=_INK)
        self.bottom = top - self.line_height // 2


def _wrap(text: str, font: ImageFont.FreeTypeFont, width: float, max_lines: int) -> list[str]:
    """Greedy word wrap into at most ``max_lines``; an ellipsis marks cut-off text."""
    lines: list[str] = []
    # a line's width is its words' widths plus the spaces', each word measured once (measuring
    # the growing line again at every word cost most of a card's drawing)
    space, line_width = font.getlength(" "), 0.0
    for word in text.split():
        word_width = font.getlength(word)
        if lines and line_width + space + word_width <= width:
            lines[-1] = f"{lines[-1]} {word}"
            line_width += space + word_width
        elif len(lines) > max_lines:
            break  # the text is cut off here: wrapping the rest would only be measured
        else:
            lines.append(word)
            line_width = word_width
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        if lines:
            lines[-1] = _fit(lines[-1], font, width, cut=True)
    return [_fit(line, font, width) for line in lines]


def _fit(text: str, font: ImageFont.FreeTypeFont, width: float, *, cut: bool = False) -> str:
    """``text`` if it fits in ``width``, else its longest prefix that fits with an ellipsis."""
    if not cut and font.getlength(text) <= width:
        return text
    # the longest prefix that fits, by bisection: a prompt's first line can run for pages
    fits, too_long = 0, len(text) + 1
    while too_long - fits > 1:
        middle = (fits + too_long) // 2
        if font.getlength(text[:middle].rstrip() + _ELLIPSIS) <= width:
            fits = middle
        else:
            too_long = middle
    return text[:fits].rstrip() + _ELLIPSIS


def _printable(text: str) -> str:
    """Map text onto the glyphs of Pillow's built-in font, which covers little beyond ASCII."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_FALLBACKS))
    kept = (char for char in decomposed if not unicodedata.combining(char))
    return "".join(char if _has_glyph(char) else "?" for char in kept)


@functools.cache
def _has_glyph(char: str) -> bool:
    if char.isspace():
        return True
    font = _font(16)
    return bytes(font.getmask(char)) != bytes(font.getmask("\U0010fffd"))


@functools.cache
def _font(size: int) -> ImageFont.FreeTypeFont:
    font = ImageFont.load_default(size=size)
    if not isinstance(font, ImageFont.FreeTypeFont):  # Pillow without FreeType
        raise RuntimeError("the draft renderer needs Pillow built with FreeType support")
    return font


def _line_height(font: ImageFont.FreeTypeFont) -> int:
    return math.ceil(font.size * 1.3)


def _inset(box: _Box, amount: int) -> _Box:
    left, top, right, bottom = box
    return left + amount, top + amount, right - amount, bottom - amount


# --- clips ---------------------------------------------------------------------------------


def render_clip(start_png: bytes, end_png: bytes, *, duration_s: float, fps: int) -> bytes:
    """Render an H.264 MP4 animatic from a start frame to an end frame.

    The clip holds the start frame, cross-fades to the end frame and holds it, with a slow
    push-in throughout. It has exactly ``max(1, round(duration_s * fps))`` frames.

    Raises:
        ValueError: If the frames differ in size or have an odd side, or if ``duration_s`` or
            ``fps`` is not positive.

    """
    if not (math.isfinite(duration_s) and duration_s > 0):
        raise ValueError(f"duration_s must be positive, got {duration_s}")
    start, end = _decode_png(start_png), _decode_png(end_png)
    if start.size != end.size:
        raise ValueError(f"start and end frames differ in size: {start.size} != {end.size}")
    count = max(1, round(duration_s * fps))
    frames = (_cross_fade(start, end, i / max(1, count - 1)) for i in range(count))
    return encode_mp4(frames, size=start.size, fps=fps, video_filter=_push_in(start.size, count))


def _decode_png(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def _cross_fade(start: Image.Image, end: Image.Image, progress: float) -> bytes:
    """Return the RGB24 bytes of the frame at ``progress`` (0 to 1) through the clip."""
    mix = _smoothstep((progress - _HOLD_START) / _FADE)
    return (Image.blend(start, end, mix) if 0 < mix < 1 else (end if mix else start)).tobytes()


def _push_in(size: tuple[int, int], count: int) -> str:
    """The push-in as ffmpeg filters: each frame scaled up by its zoom, its centre cut out.

    Scaling in ffmpeg rather than Pillow: resampling every frame in Python took most of a
    clip's rendering. The sides stay even, so the zoom steps two pixels at a time.
    """
    width, height = size
    zoom = f"(1+{_ZOOM}*n/{max(1, count - 1)})"
    return (
        f"scale=w='2*trunc({width}*{zoom}/2)':h='2*trunc({height}*{zoom}/2)'"
        f":eval=frame:flags=bilinear,crop={width}:{height}"
    )


def _smoothstep(x: float) -> float:
    x = min(1.0, max(0.0, x))
    return x * x * (3 - 2 * x)


# --- assembly and probing ------------------------------------------------------------------


def assemble(clips: list[bytes], *, fps: int) -> bytes:
    """Concatenate MP4 clips of one frame size into one MP4, frame for frame, at ``fps``.

    Clips that share one format (:func:`tools.mp4boxes.video_format`: codec, size, decoder
    configuration, start delay; and ``fps``) are joined as they are, their packets copied by
    ffmpeg's concat demuxer; a clip in another format is re-encoded first, to the format of
    the most common one. Only if a re-encoded clip still differs (the majority is another
    codec's) is everything decoded and encoded once. Either way the result has exactly the
    sum of the clips' frames.

    Raises:
        ValueError: If ``clips`` is empty or the clips differ in frame size.

    """
    if not clips:
        raise ValueError("nothing to assemble: clips is empty")
    with tempfile.TemporaryDirectory(prefix="auteur-assemble-") as tmp:
        paths = [_spill(Path(tmp) / f"clip-{i}.mp4", clip) for i, clip in enumerate(clips)]
        metadata = [_metadata(path) for path in paths]
        size = tuple(metadata[0]["size"])
        for path, clip in zip(paths, metadata, strict=True):
            if tuple(clip["size"]) != size:
                raise ValueError(
                    f"{path.name} is {tuple(clip['size'])}, expected {size} like the first"
                )
        formats = [_format(path, clip, fps) for path, clip in zip(paths, metadata, strict=True)]
        if (parts := _one_format(paths, formats, size, fps)) is not None:
            return _concat(parts, Path(tmp), fps)
        frames = itertools.chain.from_iterable(_decoded_frames(path, size) for path in paths)
        return encode_mp4(frames, size=size, fps=fps)


def _format(path: Path, metadata: dict[str, Any], fps: int) -> bytes | None:
    """What must match for clips to join by copying: their video format, at ``fps``.

    None for a clip at another frame rate (copying would change its timing) or with no MP4
    video track: it is always re-encoded.
    """
    if not math.isclose(float(metadata["fps"]), fps, rel_tol=1e-3):
        return None
    return video_format(path.read_bytes())


def _one_format(
    paths: list[Path], formats: list[bytes | None], size: tuple[int, int], fps: int
) -> list[Path] | None:
    """The clips, those not in the most common format re-encoded; None if they still differ."""
    common = Counter(found for found in formats if found is not None).most_common(1)
    if not common:
        return None
    reference = common[0][0]
    parts = []
    for path, found in zip(paths, formats, strict=True):
        if found != reference:
            frames = _decoded_frames(path, size)
            path = _spill(path.with_suffix(".encoded.mp4"), encode_mp4(frames, size=size, fps=fps))
            if video_format(path.read_bytes()) != reference:
                return None
        parts.append(path)
    return parts


def _microseconds(path: Path, fps: int) -> int:
    """How long a clip of one format plays: its frames at ``fps``, in whole microseconds."""
    frames = video_frame_count(path.read_bytes())
    assert frames is not None, "a clip of a known format is an MP4 with a video track"
    return round(frames * 1_000_000 / fps)


def _concat(paths: list[Path], tmp: Path, fps: int) -> bytes:
    """Join clips of one format by copying their packets unchanged (ffmpeg's concat demuxer)."""
    listing = tmp / "clips.txt"
    # Each clip lasts exactly its frames: the container's own duration is rounded (to the
    # millisecond), which would shift every later clip off the frame grid.
    listing.write_text(
        "".join(f"file '{path.name}'\nduration {_microseconds(path, fps)}us\n" for path in paths)
    )
    out = tmp / "assembled.mp4"
    command = [
        imageio_ffmpeg.get_ffmpeg_exe(),
        "-hide_banner",
        "-loglevel",
        "error",
        "-f",
        "concat",
        "-safe",
        "0",
        "-auto_convert",  # no bitstream filter: the packets stay byte for byte as they were
        "0",
        "-i",
        str(listing),
        "-map",
        "0:v",
        "-c",
        "copy",
        "-movflags",
        "+faststart",
        str(out),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not out.is_file():
        raise RuntimeError(f"ffmpeg could not join the clips: {done.stderr.strip()}")
    return out.read_bytes()


def probe(data: bytes) -> VideoInfo:
    """Measure a video: size, frames and frame rate from its MP4 header.

    Only a file that is no MP4 with a video track is handed to ffmpeg, and decoded to count
    its frames.
    """
    if (track := video_track(data)) is not None:
        width, height, frame_count, fps = track
    else:
        with tempfile.TemporaryDirectory(prefix="auteur-probe-") as tmp:
            path = _spill(Path(tmp) / "video.mp4", data)
            metadata = _metadata(path)
            frame_count, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
        width, height = metadata["size"]
        fps = float(metadata["fps"])
    return VideoInfo(
        frame_count=frame_count,
        fps=fps,
        duration_s=frame_count / fps,
        width=width,
        height=height,
    )


def encode_mp4(
    frames: Iterable[bytes], *, size: tuple[int, int], fps: int, video_filter: str | None = None
) -> bytes:
    """Encode RGB24 frames as H.264 yuv420p MP4 bytes.

    ``video_filter``, if given, is an ffmpeg filter chain the frames pass through; it must keep
    their size.
    """
    if fps < 1:
        raise ValueError(f"fps must be at least 1, got {fps}")
    if size[0] % 2 or size[1] % 2:
        raise ValueError(f"frame size {size} must have even sides for yuv420p H.264")
    with tempfile.TemporaryDirectory(prefix="auteur-encode-") as tmp:
        path = Path(tmp) / "out.mp4"
        writer = imageio_ffmpeg.write_frames(
            str(path),
            size,
            fps=fps,
            codec="libx264",
            pix_fmt_out="yuv420p",
            macro_block_size=2,
            ffmpeg_log_level="error",
            # animatics of still cards: x264's still-image tuning at a fast preset
            output_params=[
                *(["-vf", video_filter] if video_filter else []),
                "-preset",
                "superfast",
                "-tune",
                "stillimage",
                "-movflags",
                "+faststart",
            ],
        )
        writer.send(None)
        try:
            for frame in frames:
                writer.send(frame)
        finally:
            writer.close()
        if not path.is_file() or path.stat().st_size == 0:
            raise RuntimeError("ffmpeg wrote no video; see its log above")
        return path.read_bytes()


def _decoded_frames(path: Path, size: tuple[int, int]) -> Iterator[bytes]:
    """Yield a clip's frames as RGB24 bytes, checking it has the expected size."""
    reader = imageio_ffmpeg.read_frames(str(path))
    try:
        clip_size = tuple(next(reader)["size"])
        if clip_size != tuple(size):
            raise ValueError(f"{path.name} is {clip_size}, expected {tuple(size)} like the first")
        yield from reader
    finally:
        reader.close()


def _metadata(path: Path) -> dict[str, Any]:
    """Size and frame rate: from the MP4 header, else from ffmpeg reading the file."""
    if (track := video_track(path.read_bytes())) is not None:
        return {"size": (track.width, track.height), "fps": track.fps}
    reader = imageio_ffmpeg.read_frames(str(path))
    try:
        return next(reader)
    finally:
        reader.close()


def _spill(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# --- backend -------------------------------------------------------------------------------


class DraftBackend:
    """The generation backend agents call when no GPU backend is configured.

    Each method runs its CPU-bound work in a worker thread, so the event loop stays free.
    """

    name: ClassVar[str] = "draft"

    async def keyframe(self, card: StoryboardCard, *, size: tuple[int, int]) -> bytes:
        """Render a keyframe as a PNG storyboard card."""
        return await asyncio.to_thread(render_card, card, size=size)

    async def clip(self, start_png: bytes, end_png: bytes, *, duration_s: float, fps: int) -> bytes:
        """Render an MP4 animatic between two keyframes."""
        return await asyncio.to_thread(
            render_clip, start_png, end_png, duration_s=duration_s, fps=fps
        )

    async def assemble(self, clips: list[bytes], *, fps: int) -> bytes:
        """Concatenate MP4 clips into the production video."""
        return await asyncio.to_thread(assemble, clips, fps=fps)
