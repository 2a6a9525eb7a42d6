"""Workflow discovery over ComfyUI's ~650 official templates: p95 search latency.

Run by hand from the repository root (needs the ``bench`` extra: the local embedding model
and ``comfyui-workflow-templates-json``, whose ``index.json`` describes every official
template)::

    python benchmarks/discovery_search.py [--queries 200] [--warmup 10] [--k 5]

Each template becomes a catalogue entry in a scratch folder (a one-node API-format JSON and
its YAML metadata: title + description, category, tags), indexed by
:class:`tools.discovery.WorkflowDiscovery` into pgvector on the embedded Postgres with the
bundled all-MiniLM-L6-v2. Queries are template titles and plain-language intents, in a
shuffled order (seeded). Measured per query:

- **search**: ``WorkflowDiscovery.search(q, k)`` end to end, as the API and the agents call
  it: the folder's change check, the query embedding, the pgvector ranking in SQL;
- **baseline**: the same query embedding plus a brute-force numpy cosine over the same
  vectors held in memory (no database, no change check): the floor a search could reach;
- the parts: the change check alone (``workflows()`` on the unchanged folder), the SQL
  ranking alone and numpy alone (both with the query vector given).

It prints p50/p95 (linear interpolation) and p95 ratios against the baseline, and checks
that SQL and numpy agree on the top ``k``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from _servers import percentile
from rich.console import Console
from rich.table import Table

from graphs.persistence import embedded_database_url, open_persistence, stop_embedded_server
from tools.discovery import WorkflowDiscovery
from tools.embeddings import embedding_model

out = Console(highlight=False, soft_wrap=True)

INTENTS = [
    "turn a photo into a short video clip",
    "make the image sharper and 4x larger",
    "remove the background from a product photo",
    "replace the masked region with something else",
    "generate a song from lyrics",
    "text to 3D model",
    "animate between a first and a last frame",
    "change the outfit of the character",
    "character turnaround sheet on white background",
    "consistent character across several images",
    "talking head video from a portrait and audio",
    "turn a sketch into a photo",
]


def templates() -> list[dict[str, Any]]:
    """The official templates from ``comfyui-workflow-templates-json``'s ``index.json``."""
    try:
        import comfyui_workflow_templates_json as package
    except ImportError:
        sys.exit(
            "needs comfyui-workflow-templates-json: pip install -e '.[bench]' in a venv of its"
            " own (benchmarks/README.md)"
        )
    index = json.loads((Path(package.__file__).parent / "templates" / "index.json").read_text())
    return [
        {**template, "group": group.get("title", "")}
        for group in index
        for template in group["templates"]
    ]


def write_catalogue(folder: Path, entries: list[dict[str, Any]]) -> dict[str, str]:
    """One workflow per template in ``folder``; answers workflow name by template title."""
    by_title = {}
    for entry in entries:
        name = re.sub(r"[^a-z0-9_]", "_", entry["name"].lower())
        kind = "video" if entry.get("mediaType") == "video" else "image"
        graph = {"1": {"class_type": "SaveImage", "inputs": {"filename_prefix": name}}}
        metadata = {
            "name": name,
            "description": f"{entry.get('title', name)}. {entry.get('description', '')}",
            "category": entry["group"] or "other",
            "tags": [str(tag) for tag in entry.get("tags", [])],
            "outputs": [{"node": "1", "kind": kind}],
        }
        (folder / f"{name}.json").write_text(json.dumps(graph))
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(metadata, sort_keys=False))
        by_title[entry.get("title", name)] = name
    return by_title


async def timed(samples: list[float], call: Callable[[], Awaitable[Any]]) -> Any:
    """Await ``call()`` and append its duration in ms to ``samples``."""
    start = time.perf_counter()
    result = await call()
    samples.append((time.perf_counter() - start) * 1000)
    return result


async def bench(queries: list[str], warmup: int, k: int) -> None:
    """Index the templates, then time every measure for every query."""
    entries = templates()
    # Outside any private (0700) parent: the embedded Postgres runs as its own system user
    # when the benchmark runs as root, and must reach its data folder.
    root = Path(tempfile.mkdtemp(prefix="auteur-bench-discovery-"))
    folder = root / "catalogue"
    folder.mkdir()
    by_title = write_catalogue(folder, entries)
    try:
        url = embedded_database_url(root)
        async with open_persistence(url) as persistence:
            model = embedding_model("local")
            embed = model.embeddings
            discovery = WorkflowDiscovery(persistence.pool, model, folder=folder)
            start = time.perf_counter()
            report = await discovery.sync()
            indexed_s = time.perf_counter() - start
            out.print(
                f"indexed {len(report.embedded)} workflows ({len(entries)} templates) in "
                f"{indexed_s:.1f} s with {model.id}"
            )
            async with persistence.pool.connection() as conn:
                cursor = await conn.execute(
                    "SELECT name, embedding::text AS vector FROM auteur_workflow_vectors"
                    " WHERE catalogue = %s AND embedder = %s ORDER BY name",
                    (str(folder.resolve()), model.id),
                )
                rows = await cursor.fetchall()
            names = [row["name"] for row in rows]
            matrix = np.array([json.loads(row["vector"]) for row in rows], dtype=np.float32)

            def brute_force(vector: list[float]) -> list[str]:
                scores = matrix @ np.asarray(vector, dtype=np.float32)
                top = np.argpartition(-scores, k)[:k]
                return [names[i] for i in top[np.argsort(-scores[top])]]

            async def sql_only(vector: list[float]) -> list[str]:
                async with persistence.pool.connection() as conn:
                    cursor = await conn.execute(
                        "SELECT name FROM auteur_workflow_vectors"
                        " WHERE catalogue = %s AND embedder = %s"
                        " ORDER BY embedding <=> %s::vector LIMIT %s",
                        (str(folder.resolve()), model.id, json.dumps(vector), k),
                    )
                    return [row["name"] for row in await cursor.fetchall()]

            async def baseline(query: str) -> list[str]:
                vector = await embed.aembed_query(query)
                return brute_force(vector)

            async def in_memory(vector: list[float]) -> list[str]:
                return brute_force(vector)

            measures: dict[str, list[float]] = {
                name: [] for name in ("search", "baseline", "change check", "SQL", "numpy")
            }
            agree = found = titled = 0
            for index, query in enumerate(queries):
                sink = measures if index >= warmup else {m: [] for m in measures}
                ranked = await timed(sink["search"], lambda q=query: discovery.search(q, k=k))
                await timed(sink["baseline"], lambda q=query: baseline(q))
                await timed(sink["change check"], discovery.workflows)
                vector = await embed.aembed_query(query)
                by_sql = await timed(sink["SQL"], lambda v=vector: sql_only(v))
                by_numpy = await timed(sink["numpy"], lambda v=vector: in_memory(v))
                assert [spec.name for spec, _ in ranked] == by_sql
                agree += by_sql == by_numpy
                if query in by_title:
                    titled += 1
                    found += by_sql[0] == by_title[query]
        stop_embedded_server(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    table_report(measures, len(entries), len(queries) - warmup, k)
    out.print(f"SQL and numpy agree on the top {k} for {agree}/{len(queries)} queries")
    out.print(f"a template's title finds that template first for {found}/{titled} title queries")


def table_report(measures: dict[str, list[float]], corpus: int, counted: int, k: int) -> None:
    """p50 / p95 per measure and p95 ratios against the baseline."""
    table = Table(
        "measure",
        "p50 ms",
        "p95 ms",
        "p95 / baseline p95",
        title=f"discovery over {corpus} workflows, top {k}, {counted} queries",
    )
    base = percentile(measures["baseline"], 95)
    for name, samples in measures.items():
        p95 = percentile(samples, 95)
        table.add_row(name, f"{percentile(samples, 50):.2f}", f"{p95:.2f}", f"{p95 / base:.2f}x")
    out.print(table)


def main(argv: list[str] | None = None) -> int:
    """Parse the options and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=200, help="Queries timed (after warm-up).")
    parser.add_argument("--warmup", type=int, default=10, help="First queries not counted.")
    parser.add_argument("--k", type=int, default=5, help="Results per search.")
    parser.add_argument("--seed", type=int, default=7, help="Seed of the query order.")
    args = parser.parse_args(argv)
    titles = [entry.get("title", entry["name"]) for entry in templates()]
    rng = random.Random(args.seed)
    pool = INTENTS + titles
    queries = [rng.choice(pool) for _ in range(args.queries + args.warmup)]
    asyncio.run(bench(queries, args.warmup, args.k))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
