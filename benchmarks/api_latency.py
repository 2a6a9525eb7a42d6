"""API latency of Auteur next to ``langgraph dev``, serving the same ``full_video`` graph.

Run by hand from the repository root::

    python benchmarks/api_latency.py [--runs 30] [--warmup 2] [--only auteur|langgraph-dev]

Per run (a fresh thread each time, the sample brief, the offline sample model):

(a) run-create → first SSE event: from sending ``POST /threads/{id}/runs/stream`` (input =
    the sample, ``stream_mode=["updates", "custom"]``, ``stream_subgraphs=true``) to the
    first complete SSE event of the response (on both servers the run's ``metadata``).
(b) decision → next node started: at the first gate (``treatment``), from sending the
    resume ``POST /threads/{id}/runs/stream`` with ``command: {"resume": {"decisions":
    [{"type": "approve"}]}}`` to the first ``custom`` event whose ``stage`` is not
    ``treatment``: the ``{"stage": "script", "message": "drafting script"}`` progress that
    ``draft_script`` (the node after the gate) streams as its first act.

Also shown: the run to the treatment gate end to end (request sent → stream closed).
Every stream is read to its end before the next request; the first ``--warmup`` runs on
each server are not counted.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import partial
from importlib import metadata
from typing import Any

import httpx
from _servers import (
    APPROVE,
    SAMPLE,
    STREAM_MODES,
    Server,
    auteur_server,
    langgraph_dev_server,
    percentile,
    stream_events,
    uvicorn_flavour,
)
from rich.console import Console
from rich.table import Table

GATE = "treatment"
FIRST_EVENT_P50_TARGET_MS = 50.0
SPEEDUP_TARGET = 10.0

out = Console(highlight=False, soft_wrap=True)
wide = Console(highlight=False, width=max(Console().width, 130))


@dataclass
class Samples:
    """Milliseconds per counted run, per measurement."""

    first_event: list[float] = field(default_factory=list)
    next_node: list[float] = field(default_factory=list)
    to_gate: list[float] = field(default_factory=list)


def _run_body(**payload: Any) -> dict[str, Any]:
    return {
        "assistant_id": "full_video",
        "stream_mode": STREAM_MODES,
        "stream_subgraphs": True,
        **payload,
    }


def _is_custom(name: str) -> bool:
    return name == "custom" or name.startswith("custom|")


def _gate_stage(data: Any) -> str | None:
    interrupts = data.get("__interrupt__") if isinstance(data, dict) else None
    return interrupts[0]["value"].get("stage") if interrupts else None


def one_run(client: httpx.Client) -> tuple[float, float, float]:
    """One thread: (a) first event, (b) decision → next node, run to the gate; in ms."""
    thread_id = client.post("/threads", json={}).raise_for_status().json()["thread_id"]
    path = f"/threads/{thread_id}/runs/stream"

    first_at, gate = None, None
    sent = time.perf_counter()
    for event in stream_events(client, path, _run_body(input=SAMPLE)):
        first_at = first_at or event.at
        if event.event == "updates":
            gate = _gate_stage(event.json()) or gate
    ended = time.perf_counter()
    if first_at is None or gate != GATE:
        raise RuntimeError(f"the run did not stop at the {GATE} gate (stopped at {gate!r})")

    next_at, gate = None, None
    resumed = time.perf_counter()
    for event in stream_events(client, path, _run_body(command={"resume": APPROVE})):
        if next_at is None and _is_custom(event.event) and event.json().get("stage") != GATE:
            next_at = event.at
        if event.event == "updates":
            gate = _gate_stage(event.json()) or gate
    if next_at is None:
        raise RuntimeError(f"no progress from the node after the {GATE} gate (gate: {gate!r})")
    return (first_at - sent) * 1000, (next_at - resumed) * 1000, (ended - sent) * 1000


def measure(server: Server, runs: int, warmup: int) -> Samples:
    """``warmup`` + ``runs`` runs against one server, one after another."""
    samples = Samples()
    with httpx.Client(base_url=server.url, timeout=httpx.Timeout(300)) as client:
        for index in range(warmup + runs):
            first, next_node, to_gate = one_run(client)
            counted = index >= warmup
            label = f"{index - warmup + 1}/{runs}" if counted else f"warm-up {index + 1}"
            out.print(
                f"  {server.name} {label}: first event {first:7.1f} ms · "
                f"decision → next node {next_node:7.1f} ms · run to gate {to_gate:7.1f} ms"
            )
            if counted:
                samples.first_event.append(first)
                samples.next_node.append(next_node)
                samples.to_gate.append(to_gate)
    return samples


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def _ratio(slow: float | None, fast: float | None) -> str:
    return "—" if slow is None or not fast else f"{slow / fast:.1f}x"


def report(results: dict[str, Samples], runs: int) -> None:
    """The side-by-side table and the targets."""
    auteur, dev = results.get("Auteur"), results.get("langgraph dev")
    table = Table(title=f"API latency in ms, {runs} runs each, offline sample model")
    table.add_column("measure", no_wrap=True)
    for column in ("Auteur p50", "Auteur p95", "dev p50", "dev p95", "dev/Auteur p50", "p95"):
        table.add_column(column, justify="right", no_wrap=True)
    rows = (
        ("(a) run-create → first SSE event", "first_event"),
        ("(b) decision → next node started", "next_node"),
        ("run-create → treatment gate", "to_gate"),
    )
    for label, key in rows:
        stats: list[float | None] = []
        for samples in (auteur, dev):
            values = getattr(samples, key) if samples else []
            stats += [percentile(values, 50), percentile(values, 95)] if values else [None, None]
        table.add_row(
            label,
            *(_ms(v) for v in stats),
            _ratio(stats[2], stats[0]),
            _ratio(stats[3], stats[1]),
        )
    wide.print(table)
    wide.print("dev = langgraph dev; ratios = langgraph dev / Auteur")
    if auteur is None:
        return
    p50 = percentile(auteur.first_event, 50)
    verdict = "[green]met[/green]" if p50 <= FIRST_EVENT_P50_TARGET_MS else "[red]missed[/red]"
    out.print(
        f"target: first event p50 ≤ {FIRST_EVENT_P50_TARGET_MS:.0f} ms — "
        f"{verdict} (Auteur p50 {p50:.1f} ms)"
    )
    if dev is not None:
        speedup = percentile(dev.first_event, 50) / p50
        verdict = "[green]met[/green]" if speedup >= SPEEDUP_TARGET else "[red]missed[/red]"
        out.print(
            f"target: first event ≥ {SPEEDUP_TARGET:.0f}x faster than langgraph dev — "
            f"{verdict} ({speedup:.1f}x at p50)"
        )


def _versions() -> str:
    names = ("langgraph", "langgraph-api", "langgraph-runtime-inmem", "fastapi", "uvicorn")
    found = []
    for name in names:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(found)


def main(argv: list[str] | None = None) -> int:
    """Measure both servers one after the other and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30, help="counted runs per server")
    parser.add_argument("--warmup", type=int, default=2, help="uncounted runs first")
    parser.add_argument(
        "--only", choices=("auteur", "langgraph-dev"), help="measure one server only"
    )
    parser.add_argument(
        "--plain-asyncio",
        action="store_true",
        help="serve Auteur on uvicorn's asyncio loop and h11, even where uvloop is installed",
    )
    args = parser.parse_args(argv)
    out.print(f"python {platform.python_version()} on {platform.platform()}; {_versions()}")
    out.print(f"Auteur served on {uvicorn_flavour(plain_asyncio=args.plain_asyncio)}")
    servers: dict[str, Callable[[], AbstractContextManager[Server]]] = {
        "auteur": partial(auteur_server, plain_asyncio=args.plain_asyncio),
        "langgraph-dev": langgraph_dev_server,
    }
    results: dict[str, Samples] = {}
    for key, start in servers.items():
        if args.only and args.only != key:
            continue
        out.print(f"[bold]starting {key}[/bold] …")
        with start() as server:
            out.print(f"  {server.name} on {server.url} (pid {server.pid}, log {server.log})")
            results[server.name] = measure(server, args.runs, args.warmup)
    report(results, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
