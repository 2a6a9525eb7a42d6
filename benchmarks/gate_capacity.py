"""How many runs waiting at approval gates one Auteur API process holds, and at what memory.

Run by hand from the repository root::

    python benchmarks/gate_capacity.py [--threads 1000] [--concurrency 32] [--langgraph-dev]

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

The park rate (runs driven to their gate per second) is printed against ``langgraph dev``'s,
and the CPU each parked run cost the API process and the embedded Postgres (user + system
time over the timed runs), against ``langgraph dev``'s processes:
with ``--langgraph-dev`` (needs the ``bench`` extra) the same drive is run against ``langgraph
dev`` serving the same graph, right after Auteur on the same machine; without it, against the
rate measured for it before on the development machine.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
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
        pending = iter(range(threads))
        done = 0
        every = max(1, threads // 10)
        started = time.perf_counter()

        async def worker() -> None:
            nonlocal done
            for _ in pending:
                await run_to_gate(client)
                done += 1
                if done % every == 0 or done == threads:
                    elapsed = time.perf_counter() - started
                    out.print(
                        f"  {done:>6}/{threads} waiting at the {GATE} gate · {elapsed:6.1f} s · "
                        f"{done / elapsed:6.1f} runs/s · API RSS {rss(server.pid) / MIB:7.1f} MiB"
                    )

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started


async def interrupted_count(server: Server) -> int:
    """How many threads the server reports as ``interrupted``."""
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        response = await client.post("/threads/count", json={"status": "interrupted"})
        return int(response.raise_for_status().json())


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
        help="also drive langgraph dev the same way and compare the park rates",
    )
    args = parser.parse_args(argv)

    flavour = uvicorn_flavour(plain_asyncio=args.plain_asyncio)
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

    per_run = (rss_full - rss_warm) / args.threads
    table = Table(title=f"{args.threads} runs waiting at a gate in one Auteur API process")
    table.add_column("measure", no_wrap=True)
    table.add_column("value", justify="right", no_wrap=True)
    table.add_row("threads interrupted (server's count, incl. warm-up)", str(waiting))
    table.add_row("time to fill", f"{elapsed:.1f} s ({args.threads / elapsed:.1f} runs/s)")
    table.add_row("API CPU per parked run", f"{api_cpu / args.threads * 1000:.1f} ms")
    table.add_row("Postgres CPU per parked run (info)", f"{pg_cpu / args.threads * 1000:.1f} ms")
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
    rate = args.threads / elapsed
    if args.langgraph_dev:
        dev_rate, dev_cpu = langgraph_dev_park_rate(args.threads, args.concurrency)
        measured = "now"
        out.print(
            f"CPU per parked run: Auteur's API {api_cpu / args.threads * 1000:.1f} ms "
            f"(+ {pg_cpu / args.threads * 1000:.1f} ms in Postgres), langgraph dev "
            f"{dev_cpu / args.threads * 1000:.1f} ms (in memory)"
        )
    else:
        dev_rate, measured = LANGGRAPH_DEV_PARK_RATE, "before on the 2-core development machine"
    out.print(
        f"park rate: Auteur {rate:.1f} runs/s = {rate / dev_rate:.2f}x langgraph dev's "
        f"{dev_rate:.1f} runs/s (measured {measured}); target ≥ 1x"
    )
    return 0 if waiting >= args.threads else 1


def langgraph_dev_park_rate(threads: int, concurrency: int) -> tuple[float, float]:
    """``langgraph dev``'s runs driven to the first gate per second, and its CPU seconds.

    One warm-up run first; the CPU is what its processes used during the timed runs.
    """
    out.print("[bold]starting langgraph dev[/bold] (in-memory runtime, the same graph) …")
    with langgraph_dev_server() as server:
        out.print(f"  langgraph dev on {server.url} (pid {server.pid}, log {server.log})")
        asyncio.run(fill(server, 1, 1))
        processes = process_tree(server.pid)
        cpu = cpu_seconds(processes)
        elapsed = asyncio.run(fill(server, threads, concurrency))
        return threads / elapsed, cpu_seconds(processes) - cpu


if __name__ == "__main__":
    sys.exit(main())
