"""Per-step cost of a run through Auteur's API against bare LangGraph on the same Postgres.

Run by hand from the repository root::

    python benchmarks/step_cost.py [--samples 40] [--warmup 3]

Starts the embedded Postgres in a fresh folder, then ``auteur serve`` on it (``DATABASE_URL``)
serving the trivial workflow types of :mod:`_step_graphs`: ``steps_1`` (one node) and
``steps_20`` (twenty in a chain, each adding one to a counter). Each sample times four runs,
in a shuffled order, each on a fresh thread:

- **Auteur**: ``POST /threads/{id}/runs/wait`` (input ``{"brief": ...}``, the default
  ``values`` stream mode) from sending to the answer: queue, executor, event log, settle;
- **bare LangGraph**: the same graph compiled in this process with ``AsyncPostgresSaver``
  on the same database, ``astream(stream_mode=["custom", "values"], subgraphs=True,
  durability="sync")`` (what the executor asks for) drained to its end.

Per-step cost = (p50 of the 20-step run - p50 of the 1-step run) / 19: what one more step
costs, without the per-run costs (queueing, settling) that the gate park rate measures
(``gate_capacity.py``). It prints both and their ratio; target: Auteur ≤ 2x bare LangGraph.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from _servers import auteur_server
from _step_graphs import MANY, chain
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.graph.state import CompiledStateGraph
from rich.console import Console
from rich.table import Table

from graphs.persistence import embedded_database_url, stop_embedded_server

TARGET_RATIO = 2.0
BRIEF = {"brief": "count the steps"}

out = Console(highlight=False, soft_wrap=True)


async def through_api(client: httpx.AsyncClient, steps: int) -> float:
    """Seconds for one run of ``steps_<steps>`` through the API, request to answer."""
    thread = (await client.post("/threads", json={})).raise_for_status().json()
    started = time.perf_counter()
    response = await client.post(
        f"/threads/{thread['thread_id']}/runs/wait",
        json={"assistant_id": f"steps_{steps}", "input": BRIEF},
    )
    elapsed = time.perf_counter() - started
    values = response.raise_for_status().json()
    if values.get("count") != steps:
        raise RuntimeError(f"steps_{steps} answered {values}")
    return elapsed


async def bare(graph: CompiledStateGraph, steps: int) -> float:
    """Seconds for one run of the same graph with ``astream`` on the Postgres checkpointer."""
    config = {"configurable": {"thread_id": str(uuid.uuid4())}}
    started = time.perf_counter()
    last = None
    async for _, mode, chunk in graph.astream(
        BRIEF,
        config,
        stream_mode=["custom", "values"],
        subgraphs=True,
        durability="sync",
    ):
        if mode == "values":
            last = chunk
    elapsed = time.perf_counter() - started
    if not last or last.get("count") != steps:
        raise RuntimeError(f"bare {steps}-step run ended with {last}")
    return elapsed


async def measure(url: str, database_url: str, samples: int, warmup: int) -> dict[str, list[float]]:
    """Milliseconds per run, per (runner, steps), over ``samples`` shuffled rounds."""
    times: dict[str, list[float]] = {}
    async with (
        httpx.AsyncClient(base_url=url, timeout=120) as client,
        AsyncPostgresSaver.from_conn_string(database_url) as saver,
    ):
        graphs = {n: chain(n).compile(checkpointer=saver) for n in (1, MANY)}
        runs: dict[str, Callable[[], Awaitable[float]]] = {}
        for n in (1, MANY):
            runs[f"auteur {n}"] = lambda n=n: through_api(client, n)
            runs[f"bare {n}"] = lambda n=n: bare(graphs[n], n)
        order = list(runs)
        for sample in range(warmup + samples):
            random.shuffle(order)
            for name in order:
                elapsed = await runs[name]()
                if sample >= warmup:
                    times.setdefault(name, []).append(elapsed * 1000)
    return times


def main(argv: list[str] | None = None) -> int:
    """Serve the step graphs, time both runners, print per-step cost and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=40, help="counted rounds of four runs")
    parser.add_argument("--warmup", type=int, default=3, help="rounds not counted")
    args = parser.parse_args(argv)

    random.seed(17)
    folder = Path(tempfile.mkdtemp(prefix="auteur-steps-"))
    try:
        database_url = embedded_database_url(folder)
        out.print(f"[bold]starting auteur serve[/bold] on the embedded Postgres in {folder} …")
        with auteur_server(env={"DATABASE_URL": database_url}, plugins=["_step_graphs"]) as server:
            times = asyncio.run(measure(server.url, database_url, args.samples, args.warmup))
    finally:
        stop_embedded_server(folder)
        shutil.rmtree(folder, ignore_errors=True)

    p50 = {name: statistics.median(samples) for name, samples in times.items()}
    per_step = {
        runner: (p50[f"{runner} {MANY}"] - p50[f"{runner} 1"]) / (MANY - 1)
        for runner in ("auteur", "bare")
    }
    table = Table(title=f"{args.samples} samples each, p50 ms (same Postgres, same run)")
    table.add_column("runner", no_wrap=True)
    table.add_column("1-step run", justify="right")
    table.add_column(f"{MANY}-step run", justify="right")
    table.add_column("per step", justify="right")
    for runner, label in (("bare", "bare LangGraph astream"), ("auteur", "Auteur API /runs/wait")):
        table.add_row(
            label,
            f"{p50[f'{runner} 1']:.2f}",
            f"{p50[f'{runner} {MANY}']:.2f}",
            f"{per_step[runner]:.2f}",
        )
    Console(highlight=False, width=max(Console().width, 100)).print(table)
    ratio = per_step["auteur"] / per_step["bare"]
    verdict = "[green]met[/green]" if ratio <= TARGET_RATIO else "[red]missed[/red]"
    out.print(
        f"per-step cost: Auteur {per_step['auteur']:.2f} ms / bare {per_step['bare']:.2f} ms"
        f" = {ratio:.2f}x (target ≤ {TARGET_RATIO:.0f}x: {verdict})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
