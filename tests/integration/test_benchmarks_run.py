"""The benchmarks that drive a production's stages still run against today's workflow.

Benchmarks are run by hand, so a change to the stages (a new gate, a scene cycle) broke two
of them unnoticed for a round. These run their driving code once, on the smallest settings,
and check what it produced, never how long it took.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))  # the benchmarks import their `_servers` module as scripts

import gate_capacity  # noqa: E402
import generation_makespan  # noqa: E402
import scene_parallel  # noqa: E402


async def test_the_makespan_benchmark_times_scene_one_frames_and_clips() -> None:
    lines = await generation_makespan._comfy(1, job_s=0.0, slots=1, queue_ahead=1, shots_times=1)

    frames, clips = lines
    assert frames.startswith("frames  N=1  jobs   6 "), frames  # scene 1: 3 shots, 2 keyframes
    assert clips.startswith("clips   N=1  jobs   3 "), clips
    assert all("peak 1" in line for line in lines), lines


async def test_the_scene_parallel_benchmark_drafts_valid_gates(
    capsys: pytest.CaptureFixture[str],
) -> None:
    await scene_parallel.main([2], delay_s=0.01, repeat=1)  # each gate is checked inside

    printed = capsys.readouterr().out
    rows = [line.split() for line in printed.splitlines() if line.startswith(("master", "shots"))]
    # the stage and its scene count; how many requests overlapped is the benchmark's measure
    # (timing), and tests/graphs/test_scene_parallel.py checks the concurrency itself
    assert [row[:2] for row in rows] == [["master_script", "2"], ["shots", "2"]]


async def test_the_park_rate_floor_parks_bare_runs_at_their_first_gate() -> None:
    # each bare run raises unless it stopped at a gate; the CPU is this process's own
    async with gate_capacity.bare_langgraph() as park:
        floor = await park(3, 2)

    assert floor.rate > 0
    assert floor.cpu_ms > 0
