"""How many runs waiting at approval gates one Auteur API process holds, and at what memory.

Run by hand from the repository root::

    python benchmarks/gate_capacity.py [--threads 1000] [--concurrency 32]
        [--langgraph-dev [--slices 5]]

Starts ``auteur serve`` (embedded Postgres in a fresh temp folder, offline sample model),
then drives ``--threads`` new threads through the API, each with ``POST
/threads/{id}/runs/wait`` (input = the sample brief) until it stops at its first gate
(``treatment``), ``--concurrency`` at a time. Then it checks with ``POST /threads/count``
that every thread is ``interrupted`` and reports the API process's resident memory (RSS,
psutil): after start-up, after one warm-up run, with every run waiting, and its peak, plus
RSS per waiting run = (RSS with all waiting - RSS after warm-up) / threads. Goal: 1,000
waiting runs in under 1 GiB. The embedded Postgres (a separate set of processes) is
reported beside it for information: proportional set size (PSS) summed over its processes,
and its data folder on disk.

The park rate (runs driven to their gate per second) is compared with ``langgraph dev``'s,
with the CPU each parked run cost (user + system time over the timed runs). With
``--langgraph-dev`` (needs the ``bench`` extra) three more are started, fresh, side by
side: Auteur, ``langgraph dev`` serving the same graph, and the floor, bare LangGraph: the
same graph run in this process on LangGraph's own Postgres saver and store, with no server
around it. Each parks ``--threads`` runs in ``--slices`` slices, taking turns, the order
rotating every turn; a turn takes seconds, so a drift of the host's speed (it halves within
minutes here) hits the three of a turn alike. It prints each turn and the median ratios.
Without it, the rate measured for ``langgraph dev`` before on the development machine is
used.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
from _servers import (
    SAMPLE,
    Server,
    auteur_server,
    langgraph_dev_server,
    postgres_pids,
    uvicorn_flavour,
)
from rich.console import Console
from rich.table import Table

GATE = "treatment"
GOAL_THREADS = 1000
GOAL_BYTES = 1 << 30
# Runs parked per second by `langgraph dev` (in-memory runtime) on the 2-core development
# machine, the same drive (#17); --langgraph-dev measures it again beside Auteur.
LANGGRAPH_DEV_PARK_RATE = 51.0
MIB = 1 << 20

out = Console(highlight=False, soft_wrap=True)


def rss(pid: int) -> int:
    """Resident set size of one process, in bytes."""
    return psutil.Process(pid).memory_info().rss


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds the processes ``pids`` have used so far (those alive)."""
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    return [pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))]


def peak_rss(pid: int) -> int | None:
    """The process's peak resident set size (``VmHWM``, Linux only), in bytes."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return None


def postgres_memory(server: Server) -> int:
    """PSS summed over the embedded Postgres processes (shared memory counted once)."""
    total = 0
    for pid in postgres_pids(server):
        try:
            total += psutil.Process(pid).memory_full_info().pss
        except psutil.Error:
            continue
    return total


def folder_size(path: Path) -> int:
    """Bytes in the files under ``path``."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


async def run_to_gate(client: httpx.AsyncClient) -> None:
    """Create a thread and run it until it waits at the first gate."""
    thread = (await client.post("/threads", json={})).raise_for_status().json()
    response = await client.post(
        f"/threads/{thread['thread_id']}/runs/wait",
        json={"assistant_id": "full_video", "input": SAMPLE},
    )
    values: dict[str, Any] = response.raise_for_status().json()
    interrupts = values.get("__interrupt__") or []
    stage = interrupts[0]["value"].get("stage") if interrupts else None
    if stage != GATE:
        raise RuntimeError(f"thread {thread['thread_id']} stopped at {stage!r}, not {GATE!r}")


async def fill(server: Server, threads: int, concurrency: int) -> float:
    """Drive ``threads`` runs to their gate, ``concurrency`` at a time; the seconds it took."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=server.url, timeout=httpx.Timeout(600), limits=limits
    ) as client:
        done = 0
        every = max(1, threads // 10)
        started = time.perf_counter()

        async def one() -> None:
            nonlocal done
            await run_to_gate(client)
            done += 1
            if done % every == 0 or done == threads:
                elapsed = time.perf_counter() - started
                out.print(
                    f"  {done:>6}/{threads} waiting at the {GATE} gate · {elapsed:6.1f} s · "
                    f"{done / elapsed:6.1f} runs/s · API RSS {rss(server.pid) / MIB:7.1f} MiB"
                )

        return await _in_parallel(one, threads, concurrency)


async def interrupted_count(server: Server) -> int:
    """How many threads the server reports as ``interrupted``."""
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        response = await client.post("/threads/count", json={"status": "interrupted"})
        return int(response.raise_for_status().json())


@dataclass(frozen=True)
class Fill:
    """One timed fill of a server: runs parked per second and CPU per parked run."""

    rate: float
    cpu_ms: float
    postgres_cpu_ms: float = 0.0


def fill_auteur(
    args: argparse.Namespace, flavour: str, *, report: bool = False
) -> tuple[int, Fill]:
    """Fill a fresh ``auteur serve``; how many threads then wait, and the fill's rate and CPU.

    With ``report`` the memory table and the 1 GiB goal are printed.
    """
    out.print(
        f"[bold]starting auteur serve[/bold] (embedded Postgres, offline sample model, {flavour}) …"
    )
    with auteur_server(
        worker_concurrency=args.worker_concurrency, plain_asyncio=args.plain_asyncio
    ) as server:
        out.print(f"  API on {server.url} (pid {server.pid}, log {server.log})")
        rss_started = rss(server.pid)
        asyncio.run(fill(server, 1, 1))
        rss_warm = rss(server.pid)
        out.print(f"  after one warm-up run: API RSS {rss_warm / MIB:.1f} MiB")
        api_cpu, pg_cpu = cpu_seconds([server.pid]), cpu_seconds(postgres_pids(server))
        elapsed = asyncio.run(fill(server, args.threads, args.concurrency))
        api_cpu = cpu_seconds([server.pid]) - api_cpu
        pg_cpu = cpu_seconds(postgres_pids(server)) - pg_cpu
        waiting = asyncio.run(interrupted_count(server))
        time.sleep(1)
        rss_full, peak = rss(server.pid), peak_rss(server.pid)
        pg_memory = postgres_memory(server)
        pg_disk = folder_size(server.data_dir / "data" / "postgres")
    result = Fill(
        args.threads / elapsed, api_cpu / args.threads * 1000, pg_cpu / args.threads * 1000
    )
    if not report:
        return waiting, result

    per_run = (rss_full - rss_warm) / args.threads
    table = Table(title=f"{args.threads} runs waiting at a gate in one Auteur API process")
    table.add_column("measure", no_wrap=True)
    table.add_column("value", justify="right", no_wrap=True)
    table.add_row("threads interrupted (server's count, incl. warm-up)", str(waiting))
    table.add_row("time to fill", f"{elapsed:.1f} s ({result.rate:.1f} runs/s)")
    table.add_row("API CPU per parked run", f"{result.cpu_ms:.1f} ms")
    table.add_row("Postgres CPU per parked run (info)", f"{result.postgres_cpu_ms:.1f} ms")
    table.add_row("API RSS after start-up", f"{rss_started / MIB:.1f} MiB")
    table.add_row("API RSS after one warm-up run", f"{rss_warm / MIB:.1f} MiB")
    table.add_row("API RSS with all runs waiting", f"{rss_full / MIB:.1f} MiB")
    table.add_row("API peak RSS (VmHWM)", "—" if peak is None else f"{peak / MIB:.1f} MiB")
    table.add_row("API RSS per waiting run", f"{per_run / 1024:.1f} KiB")
    table.add_row("Postgres PSS, all processes (info)", f"{pg_memory / MIB:.1f} MiB")
    table.add_row("Postgres data folder on disk (info)", f"{pg_disk / MIB:.1f} MiB")
    Console(highlight=False, width=max(Console().width, 100)).print(table)

    projected = rss_warm + per_run * GOAL_THREADS
    met = waiting >= args.threads and rss_full < GOAL_BYTES and projected < GOAL_BYTES
    verdict = "[green]met[/green]" if met else "[red]missed[/red]"
    out.print(
        f"goal: {GOAL_THREADS:,} waiting runs in under 1 GiB — {verdict} "
        f"(measured {rss_full / MIB:.1f} MiB with {args.threads:,}; "
        f"{projected / MIB:.1f} MiB projected for {GOAL_THREADS:,})"
    )
    return waiting, result


def main(argv: list[str] | None = None) -> int:
    """Fill one Auteur process with waiting runs and report its memory."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=GOAL_THREADS, help="runs to leave waiting")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight at once")
    parser.add_argument(
        "--worker-concurrency",
        type=int,
        default=None,
        help="AUTEUR_WORKER_CONCURRENCY of the server (default: the server's own, 32)",
    )
    parser.add_argument(
        "--plain-asyncio",
        action="store_true",
        help="serve Auteur on uvicorn's asyncio loop and h11, even where uvloop is installed",
    )
    parser.add_argument(
        "--langgraph-dev",
        action="store_true",
        help="also drive langgraph dev and bare LangGraph the same way; compare the park rates",
    )
    parser.add_argument(
        "--slices",
        type=int,
        default=5,
        help="with --langgraph-dev: the --threads runs of each are parked in this many slices, "
        "the three taking turns (the median ratios of the turns)",
    )
    args = parser.parse_args(argv)

    if not 1 <= args.slices <= args.threads:
        parser.error("--slices must be between 1 and --threads")
    flavour = uvicorn_flavour(plain_asyncio=args.plain_asyncio)
    waiting, auteur = fill_auteur(args, flavour, report=True)
    if not args.langgraph_dev:
        rate = auteur.rate
        out.print(
            f"park rate: Auteur {rate:.1f} runs/s = {rate / LANGGRAPH_DEV_PARK_RATE:.2f}x "
            f"langgraph dev's {LANGGRAPH_DEV_PARK_RATE:.1f} runs/s (measured before on the "
            "2-core development machine); target ≥ 1x"
        )
        return 0 if waiting >= args.threads else 1
    return 0 if compare(args, flavour) else 1


def compare(args: argparse.Namespace, flavour: str) -> bool:
    """Park runs on Auteur, ``langgraph dev`` and bare LangGraph in turns; print the ratios.

    The three are started once, fresh, and each parks ``--threads`` runs in ``--slices``
    slices, one slice each in turn, in an order that rotates every turn. A turn takes
    seconds, so a drift of the host's speed hits the three of a turn alike (on this host
    it halves the speed within minutes). True if every Auteur run waits at its gate.
    """
    sizes = [len(part) for part in _split(range(args.threads), args.slices)]
    out.print(
        f"[bold]side by side[/bold]: {args.threads} runs each in {args.slices} turns of "
        f"{sizes[0]}, {args.concurrency} at a time; Auteur on {flavour} …"
    )
    with (
        auteur_server(
            worker_concurrency=args.worker_concurrency, plain_asyncio=args.plain_asyncio
        ) as auteur,
        langgraph_dev_server() as dev,
    ):
        out.print(f"  Auteur on {auteur.url}, langgraph dev on {dev.url}")
        turns, waiting = asyncio.run(_take_turns(args, sizes, auteur, dev))
    table = Table(title="park rate, the three in turns (order rotating)")
    for column in ("turn", "runs/s: Auteur", "langgraph dev", "bare LangGraph", "Auteur / dev"):
        table.add_column(column, justify="right", no_wrap=True)
    for column in ("CPU ms/run: Auteur (+ PG)", "langgraph dev", "bare (+ PG)"):
        table.add_column(column, justify="right", no_wrap=True)
    for number, turn in enumerate(turns, 1):
        a, d, b = turn["auteur"], turn["dev"], turn["bare"]
        table.add_row(
            str(number),
            f"{a.rate:.1f}",
            f"{d.rate:.1f}",
            f"{b.rate:.1f}",
            f"{a.rate / d.rate:.2f}x",
            f"{a.cpu_ms:.1f} (+ {a.postgres_cpu_ms:.1f})",
            f"{d.cpu_ms:.1f}",
            f"{b.cpu_ms:.1f} (+ {b.postgres_cpu_ms:.1f})",
        )
    Console(highlight=False, width=max(Console().width, 150)).print(table)
    ratios = [turn["auteur"].rate / turn["dev"].rate for turn in turns]
    floors = [turn["bare"].rate / turn["dev"].rate for turn in turns]
    cpu = [turn["auteur"].cpu_ms / turn["dev"].cpu_ms for turn in turns]
    overall = {  # all the runs over all their time
        name: sum(sizes)
        / sum(size / turn[name].rate for size, turn in zip(sizes, turns, strict=True))
        for name in turns[0]
    }
    out.print(
        f"park rate, median of {len(turns)} turns: Auteur {statistics.median(ratios):.2f}x "
        f"langgraph dev's (turns {min(ratios):.2f} to {max(ratios):.2f}x; target ≥ 1x), "
        f"its API CPU per run {statistics.median(cpu):.2f}x dev's; bare LangGraph on its "
        f"Postgres saver {statistics.median(floors):.2f}x; {waiting} Auteur threads waiting"
    )
    out.print(
        "all turns together: "
        + " · ".join(f"{name} {rate:.1f} runs/s" for name, rate in overall.items())
        + f" (Auteur / dev {overall['auteur'] / overall['dev']:.2f}x)"
    )
    return waiting >= args.threads


async def _take_turns(
    args: argparse.Namespace, sizes: list[int], auteur: Server, dev: Server
) -> tuple[list[dict[str, Fill]], int]:
    """Each turn, park a slice on each of the three; the fills of each turn, Auteur's count."""
    limits = httpx.Limits(max_connections=args.concurrency)
    async with (
        httpx.AsyncClient(base_url=auteur.url, timeout=600, limits=limits) as to_auteur,
        httpx.AsyncClient(base_url=dev.url, timeout=600, limits=limits) as to_dev,
        bare_langgraph() as bare,
    ):
        dev_processes = process_tree(dev.pid)
        parkers = {
            "auteur": _over_http(to_auteur, [auteur.pid], lambda: postgres_pids(auteur)),
            "dev": _over_http(to_dev, dev_processes, list),
            "bare": bare,
        }
        for park in parkers.values():
            await park(1, 1)  # warm-up
        order = list(parkers)
        turns = []
        for number, size in enumerate(sizes):
            turn = {}
            for name in order[number % 3 :] + order[: number % 3]:
                turn[name] = await parkers[name](size, args.concurrency)
            out.print(
                f"  turn {number + 1}/{len(sizes)}: "
                + " · ".join(f"{name} {fill.rate:5.1f} runs/s" for name, fill in turn.items())
            )
            turns.append(turn)
        return turns, await interrupted_count(auteur)


Parker = Callable[[int, int], Awaitable[Fill]]
"""Parks ``runs`` runs at their first gate, ``concurrency`` at a time: the fill it was."""


def _over_http(
    client: httpx.AsyncClient, pids: list[int], postgres: Callable[[], list[int]]
) -> Parker:
    """A server's parker: its runs over HTTP, the CPU of its processes ``pids``."""

    async def park(runs: int, concurrency: int) -> Fill:
        own, pg = cpu_seconds(pids), cpu_seconds(postgres())
        elapsed = await _in_parallel(lambda: run_to_gate(client), runs, concurrency)
        return Fill(
            runs / elapsed,
            (cpu_seconds(pids) - own) / runs * 1000,
            (cpu_seconds(postgres()) - pg) / runs * 1000,
        )

    return park


async def _in_parallel(one: Callable[[], Awaitable[None]], runs: int, concurrency: int) -> float:
    """Call ``one`` ``runs`` times, ``concurrency`` at once; the seconds it took."""
    pending = iter(range(runs))

    async def worker() -> None:
        for _ in pending:
            await one()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


def _split(items: range, parts: int) -> list[range]:
    """``items`` in ``parts`` consecutive slices of sizes differing by at most one."""
    size, extra = divmod(len(items), parts)
    bounds = [i * size + min(i, extra) for i in range(parts + 1)]
    return [items[a:b] for a, b in itertools.pairwise(bounds)]


@asynccontextmanager
async def bare_langgraph() -> AsyncIterator[Parker]:
    """The floor: the same graph run bare in this process on LangGraph's Postgres saver.

    The offline context, LangGraph's ``AsyncPostgresSaver`` and ``AsyncPostgresStore`` on
    a pool like Auteur's (opened as Auteur opens it, so serializing on the loop and without
    the saver's lock, ``graphs/_saver_*.py``), a fresh embedded Postgres,
    ``durability="sync"`` (as Auteur runs): no HTTP, no run queue, no event log, no
    approvals. What a server that keeps LangGraph's checkpoints in Postgres, in one Python
    process, pays at the least. Its CPU is this process's own while it parks.
    """
    from langgraph_dev_graph import OFFLINE_CONTEXT

    from graphs.full_video import FullVideo
    from graphs.persistence import embedded_database_url, open_persistence, stop_embedded_server

    folder = Path(tempfile.mkdtemp(prefix="auteur-bare-"))

    def postgres() -> list[int]:
        pid_file = folder / "postgres" / "postmaster.pid"
        return process_tree(int(pid_file.read_text().split()[0]))

    try:
        async with open_persistence(embedded_database_url(folder)) as persistence:
            graph = (
                FullVideo()
                .build()
                .compile(checkpointer=persistence.checkpointer, store=persistence.store)
            )

            async def one() -> None:
                config = {"configurable": {"thread_id": str(uuid.uuid4())}}
                values = await graph.ainvoke(
                    SAMPLE, config, context=OFFLINE_CONTEXT, durability="sync"
                )
                if not values.get("__interrupt__"):
                    raise RuntimeError("a bare run did not stop at a gate")

            async def park(runs: int, concurrency: int) -> Fill:
                own, pg = time.process_time(), cpu_seconds(postgres())
                elapsed = await _in_parallel(one, runs, concurrency)
                return Fill(
                    runs / elapsed,
                    (time.process_time() - own) / runs * 1000,
                    (cpu_seconds(postgres()) - pg) / runs * 1000,
                )

            yield park
    finally:
        stop_embedded_server(folder)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
