"""Workflow discovery: find the ComfyUI workflow that fits an intent, by meaning.

Each workflow's :meth:`~tools.workflows.WorkflowSpec.search_text` is embedded once and the
vector kept in Postgres (pgvector), next to the workflow's version; a search embeds the
intent and ranks the catalogue by cosine similarity in SQL. The folder is the truth: every
call first checks whether any file in it changed (a ``stat`` of each file, no parsing), and
only then reloads it and re-embeds the workflows whose version changed; removed workflows
are dropped. Dropping a JSON and its metadata into the folder makes it findable with no
restart.

Vectors live in a table of their own, keyed by catalogue folder, embedding model and
workflow name. Its column is an untyped ``vector``, so the local model's 384-dimensional
vectors and OpenAI's 1536-dimensional ones sit side by side and switching models never
needs a migration (LangGraph's store fixes one dimension for the whole database). The
search is an exact scan: a catalogue is tens to hundreds of rows
(``benchmarks/discovery_search.py`` measures it over ~650).

Example:
    >>> discovery = WorkflowDiscovery(pool, embedding_model("local"))  # doctest: +SKIP
    >>> [(spec.name, round(score, 2)) for spec, score in await discovery.search(
    ...     "make it sharper", k=1)]  # doctest: +SKIP
    [('upscale_image', 0.41)]
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from tools.embeddings import EmbeddingModel
from tools.workflows import COMFY_WORKFLOWS, WatchedCatalogue, WorkflowSpec

__all__ = ["SCHEMA", "SyncReport", "WorkflowDiscovery"]

SCHEMA = (
    "CREATE EXTENSION IF NOT EXISTS vector",
    """
CREATE TABLE IF NOT EXISTS auteur_workflow_vectors (
    catalogue   text NOT NULL,
    embedder    text NOT NULL,
    name        text NOT NULL,
    version     text NOT NULL,
    embedding   vector NOT NULL,
    PRIMARY KEY (catalogue, embedder, name)
)""",
)
_SCHEMA_LOCK = 0x61757466  # advisory-lock id serialising the set-up across processes


@dataclass(frozen=True)
class SyncReport:
    """What a re-index did: workflows (re-)embedded and workflows dropped."""

    embedded: tuple[str, ...]
    removed: tuple[str, ...]


class WorkflowDiscovery:
    """Search a workflow folder by intent; re-indexes changed files on every call.

    One instance per process keeps the last folder snapshot, so an unchanged folder costs
    one ``stat`` per file per call. Safe to share between tasks; several processes may
    index the same folder (writes are idempotent upserts).
    """

    def __init__(
        self,
        pool: AsyncConnectionPool,
        model: EmbeddingModel,
        *,
        folder: Path = COMFY_WORKFLOWS,
    ) -> None:
        self.pool = pool
        self.model = model
        self.folder = Path(folder).resolve()
        self._catalogue = str(self.folder)
        self._files = WatchedCatalogue(self.folder)
        self._specs: dict[str, WorkflowSpec] = {}
        self._indexed = False
        self._lock = asyncio.Lock()
        self._schema_ready = False

    async def workflows(self) -> dict[str, WorkflowSpec]:
        """The folder's workflows as they are now, by name (no embedding needed).

        Raises:
            WorkflowError: A file in the folder is broken; the message names it.
        """
        async with self._lock:
            return dict(await asyncio.to_thread(self._reload_if_changed))

    async def get(self, name: str) -> WorkflowSpec:
        """One workflow of the folder as it is now.

        Raises:
            KeyError: No workflow has this name (the message lists those that exist).
            WorkflowError: A file in the folder is broken; the message names it.
        """
        specs = await self.workflows()
        if name not in specs:
            known = ", ".join(sorted(specs)) or "none"
            raise KeyError(f"no workflow '{name}' in {self.folder} (known: {known})")
        return specs[name]

    async def sync(self) -> SyncReport:
        """Bring the vectors up to date with the folder; embeds only what changed.

        Raises:
            WorkflowError: A file in the folder is broken; the message names it.
            EmbeddingsUnavailable: The embedding model cannot be used here.
        """
        async with self._lock:
            await asyncio.to_thread(self._reload_if_changed)  # file reads off the event loop
            if self._indexed:
                return SyncReport(embedded=(), removed=())
            report = await self._index()
            self._indexed = True
            return report

    async def search(self, intent: str, k: int = 5) -> list[tuple[WorkflowSpec, float]]:
        """The ``k`` workflows that best fit ``intent``, best first, with cosine scores.

        Raises:
            ValueError: ``intent`` is blank or ``k`` is below 1.
            WorkflowError: A file in the folder is broken; the message names it.
            EmbeddingsUnavailable: The embedding model cannot be used here.
        """
        if not intent.strip():
            raise ValueError("the search text is empty: say what the workflow should do")
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        await self.sync()
        query = await self.model.embeddings.aembed_query(intent)
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cursor:
            await cursor.execute(
                "SELECT name, 1 - (embedding <=> %(q)s::vector) AS score"
                " FROM auteur_workflow_vectors"
                " WHERE catalogue = %(catalogue)s AND embedder = %(embedder)s"
                " ORDER BY embedding <=> %(q)s::vector LIMIT %(k)s",
                {
                    "q": _literal(query),
                    "catalogue": self._catalogue,
                    "embedder": self.model.id,
                    "k": k,
                },
            )
            rows = await cursor.fetchall()
        specs = self._specs
        return [(specs[row["name"]], float(row["score"])) for row in rows if row["name"] in specs]

    def _reload_if_changed(self) -> dict[str, WorkflowSpec]:
        specs = self._files.current()
        if _versions(specs) != _versions(self._specs):
            self._indexed = False
        self._specs = specs
        return specs

    async def _index(self) -> SyncReport:
        await self._ensure_schema()
        scope = {"catalogue": self._catalogue, "embedder": self.model.id}
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cursor:
            await cursor.execute(
                "SELECT name, version FROM auteur_workflow_vectors"
                " WHERE catalogue = %(catalogue)s AND embedder = %(embedder)s",
                scope,
            )
            stored = {row["name"]: row["version"] for row in await cursor.fetchall()}
        changed = [s for s in self._specs.values() if stored.get(s.name) != s.version]
        removed = sorted(stored.keys() - self._specs.keys())
        vectors = await self.model.embeddings.aembed_documents([s.search_text() for s in changed])
        async with self.pool.connection() as conn, conn.transaction():
            async with conn.cursor() as cursor:
                await cursor.executemany(
                    "INSERT INTO auteur_workflow_vectors"
                    " (catalogue, embedder, name, version, embedding)"
                    " VALUES (%(catalogue)s, %(embedder)s, %(name)s, %(version)s,"
                    " %(embedding)s::vector)"
                    " ON CONFLICT (catalogue, embedder, name) DO UPDATE"
                    " SET version = excluded.version, embedding = excluded.embedding",
                    [
                        {**scope, "name": s.name, "version": s.version, "embedding": _literal(v)}
                        for s, v in zip(changed, vectors, strict=True)
                    ],
                )
            if removed:
                await conn.execute(
                    "DELETE FROM auteur_workflow_vectors WHERE catalogue = %(catalogue)s"
                    " AND embedder = %(embedder)s AND name = ANY(%(names)s)",
                    {**scope, "names": removed},
                )
        return SyncReport(embedded=tuple(s.name for s in changed), removed=tuple(removed))

    async def _ensure_schema(self) -> None:
        if self._schema_ready:
            return
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            for statement in SCHEMA:
                await conn.execute(statement)
        self._schema_ready = True


def _versions(specs: dict[str, WorkflowSpec]) -> dict[str, str]:
    return {name: spec.version for name, spec in specs.items()}


def _literal(vector: list[float]) -> str:
    """The text form of a vector that pgvector parses, ``[0.1,0.2,...]``."""
    return "[" + ",".join(map(repr, vector)) + "]"
