"""Does one production fill a pool of ComfyUI servers? Frames and clips makespan over ideal.

For N = 1, 2, 4 copies of the ComfyUI test double, each in a process of its own (as a GPU
server would be: its Pillow and ffmpeg work does not hold this interpreter) and each job held
for ``--job-s`` seconds, the sample production (offline model, ``full_video``) is approved up
to scene 1's shot list (``--shots-times K``: each shot and K - 1 copies of it); then scene 1's
frames stage (its keyframes) and clips stage are each timed from the approval that starts them
to their gate. Production goes scene by scene, so a stage's jobs are one scene's: the sample's
scene 1 has 3 shots (6 keyframes, 3 clips), fewer than 4 servers can fill, and the default K =
4 (24 keyframes, 12 clips) fills whole rounds for N = 1, 2 and 4. Every job's run is read back
from the servers' ``/history`` (ComfyUI's ``execution_start`` and ``execution_success``
timestamps). Printed per stage and N:

- **job**: the mean seconds a job ran on its server;
- **makespan / ideal**: the stage's wall time over (total job time on the servers / N);
  target ≤ 1.15;
- **makespan / rounds**: over ceil(jobs / N) x the mean job — the best equal-length jobs can
  do (3 clips on 4 servers take 1 round: 1.33 x ideal at best);
- **peak**: the most jobs executing at once over all servers (target N), then the verdict:
  target met, missed, or the jobs cannot fill N servers in whole rounds;
- **idle per server** (means): before its first job, between its jobs, after its last — the
  time the agents' own work leaves a server without a prompt; and per server its job count
  and the most prompts it held waiting or running at once.

Then the draft backend (no GPU): the same stages with the agents' fan-out at the draft
backend's capacity against a capacity of 1 — one job after another, as before the fan-out —
in interleaved samples, medians and their ratio (≤ 1 is unchanged or better).

Run: ``python benchmarks/generation_makespan.py [--job-s 1.0] [--servers 1 2 4] [--shots-times
1 4] [--samples 3]`` (``--queue-ahead 0`` for a pool that queues nothing beyond what its
servers run).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from _servers import comfy_server_process
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from agents.base import Context
from api.settings import SAMPLE_INPUT, SAMPLE_RECORDINGS
from graphs.base import load_workflow_types
from tests.helpers import APPROVE, answer, drive_to_gate, new_config, proposal
from tools.comfy import ComfyPool
from tools.comfy.pool import QUEUE_AHEAD
from tools.comfy_tools import ComfyBackend, DraftMedia
from tools.llm import ModelProvider
from tools.storage import LocalFileStore

STAGES = ("frames", "clips")
TARGET = 1.15  # makespan over ideal (#17), with peak concurrency = N


def _context(backend: Any, folder: Path) -> Context:
    return Context(
        models=ModelProvider(api_key=None, recordings=SAMPLE_RECORDINGS),
        backend=backend,
        files=LocalFileStore(folder),
    )


def _repeated(shot_list: dict[str, Any], times: int) -> dict[str, Any]:
    """An edit of the shot list: each shot followed by ``times - 1`` copies of itself.

    The copies have ids of their own and no dialogue (each line is spoken once), so a stage
    has ``times`` as many jobs with the same prompts' shape.
    """
    shots = [
        dict(shot, id=shot["id"] + "Z" * copy, dialogue=[], covers=[]) if copy else shot
        for shot in shot_list["shots"]
        for copy in range(times)
    ]
    edited = {"name": "shots", "args": {**shot_list, "shots": shots}}
    return {"decisions": [{"type": "edit", "edited_action": edited}]}


async def _stages(context: Context, shots_times: int) -> AsyncIterator[tuple[str, float]]:
    """Each stage's wall seconds, from the approval before it to its gate (fresh caches).

    The caller may reset its counters before the first stage and after each one it is given.
    """
    workflow = load_workflow_types().get("full_video")()
    before_frames = workflow.stages()[workflow.stages().index(STAGES[0]) - 1]
    compiled = workflow.compile(checkpointer=InMemorySaver(), store=InMemoryStore())
    config = new_config()
    gate = await drive_to_gate(
        compiled, config, json.loads(SAMPLE_INPUT.read_text()), context, "shots"
    )
    decision = _repeated(proposal(gate), shots_times) if shots_times > 1 else APPROVE
    gate = await answer(compiled, config, decision, context)
    while gate is not None and gate["stage"] != before_frames:
        gate = await answer(compiled, config, APPROVE, context)
    for stage in STAGES:
        yield "start", 0.0
        started = time.monotonic()
        gate = await answer(compiled, config, APPROVE, context)
        seconds = time.monotonic() - started
        assert gate is not None and gate["stage"] == stage, gate
        yield stage, seconds


def _peak(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one instant."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    open_now = peak = 0
    for _, step in edges:
        open_now += step
        peak = max(peak, open_now)
    return peak


@dataclass(frozen=True)
class _Job:
    """One prompt as its server's ``/history`` reports it (wall-clock seconds)."""

    queued: float
    started: float
    ended: float


def _history(url: str) -> dict[str, _Job]:
    """The prompts a server has finished, by id, from ComfyUI's own timestamps."""
    jobs = {}
    for prompt_id, entry in httpx.get(f"{url}/history", timeout=30).json().items():
        stamps = {kind: data.get("timestamp") for kind, data in entry["status"]["messages"]}
        if "execution_success" in stamps:
            jobs[prompt_id] = _Job(
                entry["prompt"][3]["create_time"] / 1000,
                stamps["execution_start"] / 1000,
                stamps["execution_success"] / 1000,
            )
    return jobs


def _idle(jobs: list[_Job], start: float, end: float) -> tuple[float, float, float]:
    """A server's idle seconds in the stage: before its first job, between jobs, after its last."""
    if not jobs:
        return end - start, 0.0, 0.0
    runs = sorted(jobs, key=lambda job: job.started)
    between = sum(max(0.0, b.started - a.ended) for a, b in itertools.pairwise(runs))
    return runs[0].started - start, between, end - max(job.ended for job in runs)


def _report(
    stage: str,
    n: int,
    makespan: float,
    jobs_by_server: list[list[_Job]],
    window: tuple[float, float],
) -> str:
    runs = [job for jobs in jobs_by_server for job in jobs]
    busy = sum(job.ended - job.started for job in runs)
    ideal = busy / n
    # Equal-length jobs run in whole rounds: ceil(jobs / N) of them at best.
    rounds = math.ceil(len(runs) / n) * busy / len(runs)
    lead, between, tail = (
        sum(parts) / n
        for parts in zip(*(_idle(jobs, *window) for jobs in jobs_by_server), strict=True)
    )
    per_server = " ".join(
        f"{len(jobs)}/{_peak([(job.queued, job.ended) for job in jobs])}" for jobs in jobs_by_server
    )
    first_prompt = min(job.queued for job in runs) - window[0]
    peak = _peak([(job.started, job.ended) for job in runs])
    if makespan / ideal <= TARGET and peak == n:
        verdict = "target met"
    elif len(runs) % n:
        verdict = f"{len(runs)} jobs cannot fill {n} servers in whole rounds"
    else:
        verdict = "target missed"
    return (
        f"{stage:<7} N={n}  jobs {len(runs):>3}  job {busy / len(runs):5.2f} s  "
        f"makespan {makespan:6.2f} s  ideal {ideal:6.2f} s  ratio {makespan / ideal:5.2f}  "
        f"rounds {rounds:6.2f} s  ratio {makespan / rounds:5.2f}  peak {peak}  ({verdict})\n"
        f"        first prompt queued after {first_prompt:5.2f} s\n"
        f"        idle per server: before first {lead:5.2f} s  between jobs {between:5.2f} s  "
        f"after last {tail:5.2f} s;  per server jobs/peak-in-flight {per_server}"
    )


async def _comfy(n: int, job_s: float, slots: int, queue_ahead: int, shots_times: int) -> list[str]:
    lines = []
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="auteur-makespan-") as tmp:
        urls = [stack.enter_context(comfy_server_process(job_delay_s=job_s)).url for _ in range(n)]
        pool = ComfyPool(
            urls,
            timeout_s=120,
            attempts=3,
            backoff_s=0,
            slots_per_server=slots,
            queue_ahead=queue_ahead,
        )
        try:
            context = _context(ComfyBackend(pool, scale=1), Path(tmp))
            seen: list[set[str]] = []
            started = 0.0
            async for stage, makespan in _stages(context, shots_times):
                histories = await asyncio.gather(
                    *(asyncio.to_thread(_history, url) for url in urls)
                )
                if stage == "start":
                    seen = [set(history) for history in histories]
                    started = time.time()
                    continue
                jobs_by_server = [
                    [job for prompt_id, job in history.items() if prompt_id not in old]
                    for history, old in zip(histories, seen, strict=True)
                ]
                window = (started, started + makespan)
                lines.append(_report(stage, n, makespan, jobs_by_server, window))
        finally:
            await pool.aclose()
    return lines


def _draft_samples(samples: int) -> Iterator[tuple[str, int]]:
    for _ in range(samples):
        yield "serial", 1
        yield "fan-out", DraftMedia.capacity


async def _draft(samples: int) -> list[str]:
    default = DraftMedia.capacity
    times: dict[str, dict[str, list[float]]] = {"serial": {}, "fan-out": {}}
    try:
        for name, capacity in _draft_samples(samples):
            DraftMedia.capacity = capacity
            with tempfile.TemporaryDirectory(prefix="auteur-makespan-") as tmp:
                async for stage, seconds in _stages(_context(DraftMedia(), Path(tmp)), 1):
                    times[name].setdefault(stage, []).append(seconds)
    finally:
        DraftMedia.capacity = default
    lines = []
    for stage in STAGES:
        before = statistics.median(times["serial"][stage])
        after = statistics.median(times["fan-out"][stage])
        lines.append(
            f"{stage:<7} draft  capacity 1 {before:6.2f} s  capacity {default} {after:6.2f} s  "
            f"ratio {after / before:5.2f}  (medians of {samples})"
        )
    return lines


async def main() -> None:
    """Print the ComfyUI figures for each N, then the draft comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job-s", type=float, default=1.0, help="seconds each ComfyUI job takes")
    parser.add_argument("--servers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--slots", type=int, default=1, help="AUTEUR_COMFYUI_SLOTS_PER_SERVER")
    parser.add_argument(
        "--queue-ahead", type=int, default=QUEUE_AHEAD, help="queued per server beyond slots"
    )
    parser.add_argument("--samples", type=int, default=3, help="draft samples per variant")
    parser.add_argument(
        "--shots-times",
        type=int,
        nargs="+",
        default=[1, 4],
        help="runs with scene 1's shot list repeated this many times (1: the sample's 3 shots)",
    )
    args = parser.parse_args()
    print(
        f"ComfyUI test double, {args.job_s:g} s per job, {args.slots} slot(s) per server, "
        f"{args.queue_ahead} queued ahead"
    )
    for times in args.shots_times:
        print(f"Scene 1's shot list x {times}")
        for n in args.servers:
            for line in await _comfy(n, args.job_s, args.slots, args.queue_ahead, times):
                print(line, flush=True)
    print("Draft backend: one job at a time (as before) against the fan-out")
    for line in await _draft(args.samples):
        print(line, flush=True)


if __name__ == "__main__":
    asyncio.run(main())
