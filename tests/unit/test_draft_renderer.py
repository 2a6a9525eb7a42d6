import asyncio
import io
import subprocess
import threading
from dataclasses import replace

import imageio_ffmpeg
import pytest
from PIL import Image

from tools import draft_renderer
from tools.draft_renderer import (
    DraftBackend,
    StoryboardCard,
    VideoInfo,
    assemble,
    frame_size,
    probe,
    render_card,
    render_clip,
)

CARD = StoryboardCard(
    title="Shot 1A · start frame",
    description="Persephone kneels in a sunlit meadow, gathering narcissus flowers.",
    details=(
        ("Framing", "medium close-up"),
        ("Camera", "35mm, low angle, slow push-in"),
        ("In frame", "Persephone (spring innocent)"),
    ),
    style="Pre-Raphaelite, golden light",
    note="Make the crack in the earth more visible.",
    seed=7,
)
SMALL = (160, 96)


def _image(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    image.load()
    return image


def _card(text: str, seed: int = 0) -> bytes:
    return render_card(StoryboardCard(title=text, description=text, seed=seed), size=SMALL)


# --- frame sizes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("aspect_ratio", "ratio"),
    [("16:9", 16 / 9), ("9:16", 9 / 16), ("1:1", 1.0), ("4:3", 4 / 3), ("2.39:1", 2.39)],
)
def test_frame_size_matches_aspect_ratio_with_even_sides(aspect_ratio, ratio):
    width, height = frame_size(aspect_ratio)

    assert width % 2 == 0
    assert height % 2 == 0
    assert width * height <= 640 * 480
    assert width / height == pytest.approx(ratio, rel=0.01)


def test_frame_size_16_9_is_640x360():
    assert frame_size("16:9") == (640, 360)


def test_frame_size_rejects_unknown_ratio():
    with pytest.raises(ValueError, match="unsupported aspect ratio '3:2'"):
        frame_size("3:2")


# --- cards ---------------------------------------------------------------------------------


@pytest.mark.parametrize("aspect_ratio", ["16:9", "9:16", "1:1", "4:3", "2.39:1"])
def test_card_is_png_of_requested_size(aspect_ratio):
    size = frame_size(aspect_ratio)

    image = _image(render_card(CARD, size=size))

    assert image.format == "PNG"
    assert image.mode == "RGB"
    assert image.size == size


def test_card_is_deterministic():
    assert render_card(CARD, size=(640, 360)) == render_card(CARD, size=(640, 360))


@pytest.mark.parametrize(
    "changed",
    [
        replace(CARD, seed=8),
        replace(CARD, title="Shot 1A · end frame"),
        replace(CARD, description="The earth splits open."),
        replace(CARD, details=CARD.details[:1]),
        replace(CARD, style=""),
        replace(CARD, note=""),
    ],
)
def test_any_change_to_card_changes_image(changed):
    assert render_card(changed, size=(640, 360)) != render_card(CARD, size=(640, 360))


def test_seed_tints_background_subtly():
    corner = (2, 300)  # below the header band, outside the text
    first = _image(render_card(CARD, size=(640, 360))).getpixel(corner)
    other = _image(render_card(replace(CARD, seed=8), size=(640, 360)))

    second = other.getpixel(corner)

    assert first != second
    assert all(abs(a - b) <= 16 for a, b in zip(first, second, strict=True))
    assert min(first) > 200


def test_card_has_dark_header_and_light_body():
    image = _image(render_card(CARD, size=(640, 360))).convert("L")

    assert image.getpixel((320, 2)) < 80
    assert image.getpixel((2, 300)) > 200


def test_a_long_description_fills_the_card_down_to_its_rows():
    card = StoryboardCard(
        title="Shot 2A · start frame",
        description="Dora holds the latch as the storm builds over the sea. " * 30,
        details=(("Camera move", "slow push in"), ("Dialogue", 'Dora: "Nobody comes home."')),
    )
    below_header = 50
    image = _image(render_card(card, size=(640, 360))).convert("L")
    ink = image.crop((0, below_header, 640, 360)).point(lambda v: 255 if v < 100 else 0)

    _, _, _, lowest_text = ink.getbbox()

    assert below_header + lowest_text > 0.85 * 360  # not half the card left blank


def test_card_survives_long_and_non_ascii_text():
    card = StoryboardCard(
        title="Szene 12 — Café " + "x" * 200,
        description="naïve → señora " + "word " * 500,
        details=(("Very long label " * 5, "value " * 100),) * 20,
        style="s" * 300,
        note="n " * 300,
    )

    image = _image(render_card(card, size=(640, 360)))

    assert image.size == (640, 360)


def test_printable_replaces_glyphs_the_font_lacks():
    assert draft_renderer._printable("Café — naïve → x") == "Cafe - naive -> x"
    assert draft_renderer._printable("Shot 1A · start") == "Shot 1A · start"
    assert draft_renderer._printable("雨") == "?"


def test_card_rejects_tiny_size():
    with pytest.raises(ValueError, match="too small"):
        render_card(CARD, size=(32, 32))


# --- clips ---------------------------------------------------------------------------------


def test_clip_has_exact_frame_count_and_size():
    start = render_card(CARD, size=(640, 360))
    end = render_card(replace(CARD, title="end"), size=(640, 360))

    info = probe(render_clip(start, end, duration_s=3.0, fps=12))

    assert info == VideoInfo(frame_count=36, fps=12.0, duration_s=3.0, width=640, height=360)


@pytest.mark.parametrize(
    ("duration_s", "fps", "frames"),
    [(1.0, 8, 8), (0.6, 10, 6), (1.3, 12, 16), (0.01, 12, 1), (2.0, 1, 2)],
)
def test_clip_frame_count_is_rounded_duration_times_fps(duration_s, fps, frames):
    png = _card("a")

    info = probe(render_clip(png, png, duration_s=duration_s, fps=fps))

    assert info.frame_count == frames
    assert info.fps == fps
    assert info.duration_s == pytest.approx(frames / fps)
    assert (info.width, info.height) == SMALL


def test_clip_is_h264_yuv420p_mp4(tmp_path):
    png = _card("a")
    clip = render_clip(png, png, duration_s=0.5, fps=12)
    path = tmp_path / "clip.mp4"
    path.write_bytes(clip)

    reader = imageio_ffmpeg.read_frames(str(path))  # what ffmpeg itself reads of it
    metadata = next(reader)
    reader.close()

    assert clip[4:8] == b"ftyp"
    assert metadata["codec"] == "h264"
    assert metadata["pix_fmt"].startswith("yuv420p")


def test_clip_moves_from_start_to_end_card(tmp_path):
    black = _solid((0, 0, 0))
    white = _solid((255, 255, 255))

    frames = _frames(render_clip(black, white, duration_s=1.0, fps=12), tmp_path)

    brightness = [sum(frame) / len(frame) for frame in frames]
    assert brightness[0] < 10
    assert brightness[-1] > 245
    assert brightness == sorted(brightness)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"duration_s": 0.0, "fps": 12}, "duration_s must be positive"),
        ({"duration_s": -1.0, "fps": 12}, "duration_s must be positive"),
        ({"duration_s": float("nan"), "fps": 12}, "duration_s must be positive"),
        ({"duration_s": 1.0, "fps": 0}, "fps must be at least 1"),
    ],
)
def test_clip_rejects_bad_timing(kwargs, message):
    png = _card("a")
    with pytest.raises(ValueError, match=message):
        render_clip(png, png, **kwargs)


def test_clip_rejects_frames_of_different_sizes():
    other = render_card(CARD, size=(128, 96))
    with pytest.raises(ValueError, match="differ in size"):
        render_clip(_card("a"), other, duration_s=1.0, fps=12)


def test_clip_rejects_odd_frame_size():
    odd = render_card(CARD, size=(161, 96))
    with pytest.raises(ValueError, match="even sides"):
        render_clip(odd, odd, duration_s=1.0, fps=12)


# --- assembly ------------------------------------------------------------------------------


def test_assembly_frame_count_is_sum_of_clips():
    clips = [
        render_clip(_card("a"), _card("b"), duration_s=1.0, fps=12),
        render_clip(_card("b"), _card("c"), duration_s=0.5, fps=12),
        render_clip(_card("c"), _card("c"), duration_s=1 / 12, fps=12),
    ]

    info = probe(assemble(clips, fps=12))

    assert info == VideoInfo(frame_count=19, fps=12.0, duration_s=19 / 12, width=160, height=96)


def test_assembly_keeps_clip_order(tmp_path):
    black = render_clip(_solid((0, 0, 0)), _solid((0, 0, 0)), duration_s=0.25, fps=12)
    white = render_clip(_solid((255,) * 3), _solid((255,) * 3), duration_s=0.5, fps=12)

    frames = _frames(assemble([black, white], fps=12), tmp_path)

    dark = [sum(frame) / len(frame) < 128 for frame in frames]
    assert dark == [True] * 3 + [False] * 6


def _packets(video: bytes, tmp_path) -> list[str]:
    """The MD5 of each of the video's packets as stored (read without decoding)."""
    path = tmp_path / f"packets-{len(list(tmp_path.iterdir()))}.mp4"
    path.write_bytes(video)
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    listing = subprocess.run(
        [
            ffmpeg,
            "-v",
            "error",
            "-i",
            str(path),
            "-map",
            "0:v",
            "-c",
            "copy",
            "-f",
            "framemd5",
            "-",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line.rsplit(",", 1)[1].strip() for line in listing.splitlines() if line[:1] != "#"]


def test_assembly_of_one_format_copies_every_packet(tmp_path):
    clips = [
        render_clip(_card("a"), _card("b"), duration_s=1.0, fps=12),
        render_clip(_card("b"), _card("c"), duration_s=0.5, fps=12),
        render_clip(_card("c"), _card("d"), duration_s=0.25, fps=12),
    ]

    video = assemble(clips, fps=12)

    assert _packets(video, tmp_path) == [p for clip in clips for p in _packets(clip, tmp_path)]
    assert probe(video) == VideoInfo(
        frame_count=21, fps=12.0, duration_s=21 / 12, width=160, height=96
    )


def test_assembly_reencodes_only_the_clip_in_another_format(tmp_path):
    first = render_clip(_card("a"), _card("b"), duration_s=0.5, fps=12)
    last = render_clip(_card("c"), _card("d"), duration_s=0.5, fps=12)
    other = tmp_path / "mpeg4.mp4"
    writer = imageio_ffmpeg.write_frames(str(other), SMALL, fps=12, codec="mpeg4")
    writer.send(None)
    for shade in range(0, 250, 50):
        writer.send(bytes([shade]) * (SMALL[0] * SMALL[1] * 3))
    writer.close()

    video = assemble([first, other.read_bytes(), last], fps=12)

    packets = _packets(video, tmp_path)
    assert packets[:6] == _packets(first, tmp_path)
    assert packets[-6:] == _packets(last, tmp_path)
    assert probe(video) == VideoInfo(
        frame_count=17, fps=12.0, duration_s=17 / 12, width=160, height=96
    )


def test_assembly_of_clips_with_different_start_delays_keeps_the_frame_rate():
    with_b_frames = render_clip(_card("a"), _card("b"), duration_s=1.0, fps=12)
    one_frame = render_clip(_card("c"), _card("c"), duration_s=1 / 12, fps=12)

    info = probe(assemble([with_b_frames, with_b_frames, one_frame], fps=12))

    assert info == VideoInfo(frame_count=25, fps=12.0, duration_s=25 / 12, width=160, height=96)


def test_assembly_rejects_empty_list():
    with pytest.raises(ValueError, match="clips is empty"):
        assemble([], fps=12)


def test_assembly_rejects_mixed_sizes():
    small = render_clip(_card("a"), _card("a"), duration_s=0.25, fps=12)
    other = render_card(CARD, size=(128, 96))
    large = render_clip(other, other, duration_s=0.25, fps=12)

    with pytest.raises(ValueError, match=r"clip-1\.mp4 is \(128, 96\), expected \(160, 96\)"):
        assemble([small, large], fps=12)


# --- backend -------------------------------------------------------------------------------


async def test_backend_renders_off_the_event_loop(monkeypatch):
    loop_thread = threading.get_ident()
    threads: list[int] = []
    real_render_card = draft_renderer.render_card

    def recording_render_card(card, *, size):
        threads.append(threading.get_ident())
        return real_render_card(card, size=size)

    monkeypatch.setattr(draft_renderer, "render_card", recording_render_card)

    png = await DraftBackend().keyframe(CARD, size=SMALL)

    assert _image(png).size == SMALL
    assert threads and threads[0] != loop_thread


async def test_backend_runs_the_whole_draft_pipeline():
    backend = DraftBackend()
    start, end = await asyncio.gather(
        backend.keyframe(CARD, size=SMALL),
        backend.keyframe(replace(CARD, seed=1), size=SMALL),
    )
    clips = await asyncio.gather(
        backend.clip(start, end, duration_s=0.5, fps=12),
        backend.clip(end, start, duration_s=1.0, fps=12),
    )

    video = await backend.assemble(list(clips), fps=12)

    assert backend.name == "draft"
    assert probe(video).frame_count == 18


# --- helpers -------------------------------------------------------------------------------


def _solid(color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", SMALL, color).save(buffer, format="PNG")
    return buffer.getvalue()


def _frames(video: bytes, tmp_path) -> list[bytes]:
    path = tmp_path / "video.mp4"
    path.write_bytes(video)
    reader = imageio_ffmpeg.read_frames(str(path))
    next(reader)  # metadata
    return list(reader)


@pytest.mark.parametrize("max_lines", [1, 3, 8])
def test_long_text_wraps_into_the_lines_it_may_fill_and_says_it_was_cut(max_lines: int) -> None:
    font = draft_renderer._font(14)
    words = [f"word{i}" for i in range(400)]
    lines = draft_renderer._wrap(" ".join(words), font, 150, max_lines)

    assert len(lines) == max_lines
    assert all(font.getlength(line) <= 150 for line in lines)
    assert lines[-1].endswith("…")
    kept = " ".join(lines).removesuffix("…").split()
    assert kept == words[: len(kept)]


def test_text_that_fits_is_wrapped_whole_and_a_long_word_is_shortened() -> None:
    font = draft_renderer._font(14)
    text = "a few short words " + "x" * 300

    lines = draft_renderer._wrap(text, font, 150, 6)

    assert lines[:-1] and " ".join(lines[:-1]).split() == ["a", "few", "short", "words"]
    assert lines[-1].startswith("xxx") and lines[-1].endswith("…")
    assert font.getlength(lines[-1]) <= 150
