"""Does one production fill a pool of ComfyUI servers? Frames and clips makespan over ideal.

For N = 1, 2, 4 copies of the ComfyUI test double, each job held for ``--job-s`` seconds, the
sample production (offline model, ``full_video``) is approved up to the shot list; then the
frames stage (reference sheets, then keyframes) and the clips stage are each timed from the
approval that starts them to their gate. Printed per stage and N:

- **makespan / ideal**: the stage's wall time over (total job time on the servers / N);
  target ≤ 1.15;
- **peak**: the most jobs executing at once over all servers (target N), and per server its
  job count and the most prompts it held waiting or running at once.

Then the draft backend (no GPU): the same stages with the agents' fan-out at the draft
backend's capacity against a capacity of 1 — one job after another, as before the fan-out —
in interleaved samples, medians and their ratio (≤ 1 is unchanged or better).

Run: ``python benchmarks/generation_makespan.py [--job-s 1.0] [--servers 1 2 4] [--samples 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from agents.base import Context
from api.settings import SAMPLE_INPUT, SAMPLE_RECORDINGS
from graphs.base import load_workflow_types
from tests.doubles.comfy_server import ComfyServer, run_comfy_server
from tests.helpers import APPROVE, answer, drive_to_gate, new_config
from tools.comfy import ComfyPool
from tools.comfy_tools import ComfyBackend, DraftMedia
from tools.llm import ModelProvider
from tools.storage import LocalFileStore

STAGES = ("frames", "clips")


def _context(backend: Any, folder: Path) -> Context:
    return Context(
        models=ModelProvider(api_key=None, recordings=SAMPLE_RECORDINGS),
        backend=backend,
        files=LocalFileStore(folder),
    )


async def _stages(context: Context) -> AsyncIterator[tuple[str, float]]:
    """Each stage's wall seconds, from the approval before it to its gate (fresh caches).

    The caller may reset its counters before the first stage and after each one it is given.
    """
    graph = load_workflow_types().get("full_video")()
    compiled = graph.compile(checkpointer=InMemorySaver(), store=InMemoryStore())
    config = new_config()
    await drive_to_gate(compiled, config, json.loads(SAMPLE_INPUT.read_text()), context, "shots")
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


async def _comfy(n: int, job_s: float, slots: int) -> list[str]:
    lines = []
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="auteur-makespan-") as tmp:
        servers: list[ComfyServer] = [
            stack.enter_context(run_comfy_server(job_delay_s=job_s)) for _ in range(n)
        ]
        pool = ComfyPool(
            [s.url for s in servers], timeout_s=120, attempts=3, backoff_s=0, slots_per_server=slots
        )
        try:
            context = _context(ComfyBackend(pool, scale=1), Path(tmp))
            async for stage, makespan in _stages(context):
                if stage == "start":
                    for server in servers:
                        server.executions.clear()
                        server.peak_queue = 0
                    continue
                runs = [interval for s in servers for interval in s.executions]
                ideal = sum(end - start for start, end in runs) / n
                per_server = " ".join(f"{len(s.executions)}/{s.peak_queue}" for s in servers)
                lines.append(
                    f"{stage:<7} N={n}  jobs {len(runs):>3}  makespan {makespan:6.2f} s  "
                    f"ideal {ideal:6.2f} s  ratio {makespan / ideal:5.2f}  peak {_peak(runs)}  "
                    f"per server jobs/peak-in-flight {per_server}"
                )
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
                async for stage, seconds in _stages(_context(DraftMedia(), Path(tmp))):
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
    parser.add_argument("--samples", type=int, default=3, help="draft samples per variant")
    args = parser.parse_args()
    print(f"ComfyUI test double, {args.job_s:g} s per job, {args.slots} slot(s) per server")
    for n in args.servers:
        for line in await _comfy(n, args.job_s, args.slots):
            print(line, flush=True)
    print("Draft backend: one job at a time (as before) against the fan-out")
    for line in await _draft(args.samples):
        print(line, flush=True)


if __name__ == "__main__":
    asyncio.run(main())
