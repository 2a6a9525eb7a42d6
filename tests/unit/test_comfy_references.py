"""Reference defaulting: the latest approved image in the same look, else the sheet."""

from __future__ import annotations

from agents.artifacts import EntityInFrame, Frame, FrameSet, MediaFile, Shot
from agents.frame_generator import default_references


def _file(n: int) -> MediaFile:
    digest = f"{n:064x}"
    return MediaFile(sha256=digest, key=f"{digest}.png", media_type="image/png", size_bytes=1)


def _shot(shot_id: str, scene: int, *entities: tuple[str, str]) -> Shot:
    return Shot(
        id=shot_id,
        scene=scene,
        size="medium",
        angle="eye level",
        movement="static",
        lens="35mm",
        duration_s=2,
        entities=[EntityInFrame(entity=e, look=look) for e, look in entities],
        start_frame="start",
        end_frame="end",
    )


def _frames(*items: tuple[str, str, int]) -> FrameSet:
    return FrameSet(
        frames=[
            Frame(shot=s, position=p, prompt="", seed=0, workflow="w", file=_file(n))
            for s, p, n in items
        ]
    )


SHOTS = [
    _shot("1A", 1, ("pip", "bobble hat"), ("dora", "apron")),
    _shot("1B", 1, ("pip", "bobble hat")),
    _shot("2A", 2, ("pip", "bobble hat"), ("dora", "raincoat")),
    _shot("3A", 3, ("pip", "bobble hat"), ("dora", "apron")),
]
APPROVED = _frames(("1A", "start", 1), ("1A", "end", 2), ("1B", "start", 3), ("1B", "end", 4))


def test_without_approved_frames_every_entity_uses_its_sheet() -> None:
    assert default_references(SHOTS[2], SHOTS, None) == {}


def test_the_latest_earlier_image_in_the_same_look_is_the_default() -> None:
    references = default_references(SHOTS[2], SHOTS, APPROVED)

    assert references == {"pip": _file(4)}  # 1B's end frame; Dora changed look: her sheet


def test_same_scene_frames_are_not_references() -> None:
    assert default_references(SHOTS[1], SHOTS, APPROVED) == {}


def test_a_later_scene_takes_the_most_recent_scene_with_that_look() -> None:
    approved = _frames(
        *[(f.shot, f.position, int(f.file.sha256, 16)) for f in APPROVED.frames],
        ("2A", "start", 5),
        ("2A", "end", 6),
    )

    references = default_references(SHOTS[3], SHOTS, approved)

    assert references == {"pip": _file(6), "dora": _file(2)}
