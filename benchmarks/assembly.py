"""Assembly of 24 s of 720p clips: stream copy against re-encoding every clip.

Run by hand from the repository root::

    python benchmarks/assembly.py [--clips 6] [--seconds 4] [--fps 24] [--repeats 5]

Renders ``--clips`` draft animatics of ``--seconds`` each at 1280x720 (H.264 yuv420p, as
:func:`tools.draft_renderer.render_clip` makes them), then times, interleaved,
:func:`tools.draft_renderer.assemble` (same-format clips: packets copied by ffmpeg's concat
demuxer) against the baseline measured in the same run: every clip decoded and encoded
once more, as assembly did before. Both results are checked to hold every frame.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tools.draft_renderer import (
    StoryboardCard,
    _decoded_frames,
    assemble,
    encode_mp4,
    probe,
    render_card,
    render_clip,
)

SIZE = (1280, 720)


def reencode_all(clips: list[bytes], *, fps: int) -> bytes:
    """The baseline: decode every clip and encode all the frames again."""
    with tempfile.TemporaryDirectory(prefix="auteur-bench-assembly-") as tmp:
        paths = []
        for i, clip in enumerate(clips):
            paths.append(Path(tmp) / f"clip-{i}.mp4")
            paths[-1].write_bytes(clip)
        frames = itertools.chain.from_iterable(_decoded_frames(path, SIZE) for path in paths)
        return encode_mp4(frames, size=SIZE, fps=fps)


def main(argv: list[str] | None = None) -> int:
    """Render the clips, time both assemblies, print the medians and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--fps", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    cards = [
        render_card(StoryboardCard(title=f"Shot {i}", description="A meadow.", seed=i), size=SIZE)
        for i in range(args.clips + 1)
    ]
    print(f"rendering {args.clips} clips of {args.seconds:g} s at {SIZE[0]}x{SIZE[1]} …")
    clips = [
        render_clip(cards[i], cards[i + 1], duration_s=args.seconds, fps=args.fps)
        for i in range(args.clips)
    ]
    frames = sum(probe(clip).frame_count for clip in clips)
    times: dict[str, list[float]] = {"assemble": [], "re-encode every clip": []}
    for _ in range(args.repeats):
        for name, join in (("assemble", assemble), ("re-encode every clip", reencode_all)):
            started = time.perf_counter()
            video = join(clips, fps=args.fps)
            times[name].append(time.perf_counter() - started)
            if probe(video).frame_count != frames:
                raise RuntimeError(f"{name} lost frames")
    medians = {name: statistics.median(samples) for name, samples in times.items()}
    for name, median in medians.items():
        print(f"{name:>22}: median {median:6.3f} s over {args.repeats} ({frames} frames)")
    ratio = medians["re-encode every clip"] / medians["assemble"]
    print(f"assemble is {ratio:.1f}x faster than re-encoding every clip")
    return 0


if __name__ == "__main__":
    sys.exit(main())
