"""The project's artifacts: every approved version, per branch, and what is stale.

A run on a thread that belongs to a project records what it approved here when it stops
(:meth:`ProjectArtifacts.record`, called by the run driver): each artifact whose content
differs from its branch's current version becomes a new version, with its input hash (of
what it was made from), its parent version, and the run, gate and person that approved it.
A workflow started on the project begins from the current versions it ``takes`` or
``reuses`` (:meth:`ProjectArtifacts.start_values`).

Branches: reopening an approved stage forks the thread from that gate's checkpoint and
starts a branch from the current versions (what the new approval changes shows as stale). The
project records which branch is current; switching back makes that branch's versions
current again. Nothing is ever deleted.
"""

from __future__ import annotations

import uuid
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from agents._lineage import Head, made_per_scene, stale_now, upstream_hash
from agents.artifacts import ByScene, input_hash
from agents.base import artifact_sources, artifact_types, load_agents
from api.db import Database, plain
from graphs.base import WorkflowType

__all__ = ["MAIN", "MissingArtifactsError", "ProjectArtifacts"]

MAIN = "main"

_HEADS = (
    "SELECT a.* FROM auteur_artifact_heads h JOIN auteur_artifacts a"
    " USING (project_id, kind, version) WHERE h.project_id = %s AND h.branch = %s"
)


class MissingArtifactsError(ValueError):
    """A workflow needs approved artifacts its project does not have (yet)."""


def _bookkeeping_of() -> dict[str, tuple[str, ...]]:
    """The bookkeeping keys the agent that provides each artifact keeps."""
    registry = load_agents()
    keys: dict[str, tuple[str, ...]] = {}
    for name in registry.names():
        agent = registry.get(name)()
        for kind in [*(step.stage for step in agent.steps()), *agent.produces]:
            keys[kind] = agent.bookkeeping
    return keys


class ProjectArtifacts:
    """Versioned artifacts and branches of the projects, in Postgres."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def branch_of(self, project_id: str, thread_branch: str | None = None) -> str:
        """A thread's branch, or the project's current branch for a thread without one."""
        if thread_branch is not None:
            return thread_branch
        row = await self.db.fetch_one(
            "SELECT current_branch FROM auteur_projects WHERE project_id = %s", (project_id,)
        )
        return row["current_branch"] if row else MAIN

    async def heads(self, project_id: str, branch: str) -> dict[str, dict[str, Any]]:
        """The branch's current version of each artifact, by kind."""
        rows = await self.db.fetch(_HEADS, (project_id, branch))
        return {row["kind"]: row for row in rows}

    async def lineage(self, project_id: str, branch: str) -> dict[str, Head]:
        """What staleness needs of each current version: version, content and upstream hashes."""
        return {
            kind: {k: row[k] for k in ("version", "content_hash", "upstream")}
            for kind, row in (await self.heads(project_id, branch)).items()
        }

    async def start_values(
        self, project_id: str, branch: str, workflow: WorkflowType
    ) -> dict[str, Any]:
        """The artifacts (and their agents' bookkeeping) a run of ``workflow`` starts with.

        Raises:
            MissingArtifactsError: The project lacks an artifact the workflow ``takes``.
        """
        heads = await self.heads(project_id, branch)
        missing = [kind for kind in workflow.takes if kind not in heads]
        if missing:
            raise MissingArtifactsError(
                f"{workflow.name} starts from the project's approved {', '.join(missing)}, "
                "which it does not have yet: run a workflow that makes "
                f"{'it' if len(missing) == 1 else 'them'} first"
            )
        values: dict[str, Any] = {}
        for kind in (*workflow.takes, *workflow.reuses):
            if kind in heads:
                values |= {kind: heads[kind]["data"], **heads[kind]["bookkeeping"]}
        return values

    async def record(
        self, *, thread: dict[str, Any], run_id: str | None, values: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """Record each artifact in ``values`` that differs from its branch's current version.

        An artifact differs by its content, or — when this thread approved it — by what it
        was made from (re-approving the same registry for a changed master script makes it
        current for that script). Idempotent: recording the same values again adds nothing.
        Returns the new versions.
        """
        project_id = thread.get("project_id")
        if project_id is None:
            return []
        sources, bookkeeping, types = artifact_sources(), _bookkeeping_of(), artifact_types()
        kinds = [kind for kind in types if kind in sources and kind in values]
        by_scene = {kind for kind, model in types.items() if issubclass(model, ByScene)}
        added = []
        async with self.db.pool.connection() as conn, conn.transaction():
            project = await _locked_project(conn, project_id)
            if project is None:
                return []
            branch = thread.get("branch") or project["current_branch"]
            cursor = await conn.execute(_HEADS, (project_id, branch))
            heads = {row["kind"]: row for row in await cursor.fetchall()}
            approved_here = set(values.get("approved", []))
            scene = values.get("scene")  # the scene in production, if any
            for kind in kinds:
                content_hash = input_hash(values[kind])
                upstream = {
                    s: upstream_hash(types[kind], values[kind], types[s], values[s])
                    for s in sources[kind]
                    if s in values
                }
                head = heads.get(kind)
                same = head is not None and head["content_hash"] == content_hash
                # the same content approved again for changed inputs is a version made from
                # those; taken unchanged from the project, it is not
                if same and (
                    kind not in approved_here or head["input_hash"] == input_hash(upstream)
                ):
                    continue
                approval = await _approval_of(conn, thread["thread_id"], kind)
                # nor is the part a scene cycle approved for an earlier scene, while a later
                # scene's inputs come in
                if same and kind in by_scene and (approval or {}).get("scene") != scene:
                    continue
                row = {
                    "project_id": project_id,
                    "kind": kind,
                    "branch": branch,
                    "data": values[kind],
                    "bookkeeping": {k: values[k] for k in bookkeeping[kind] if k in values},
                    "content_hash": content_hash,
                    "input_hash": input_hash(upstream),
                    "upstream": upstream,
                    "parent_version": head["version"] if head else None,
                    "thread_id": thread["thread_id"],
                    "run_id": run_id,
                    "approval_id": approval["approval_id"] if approval else None,
                    "stage": kind if approval else None,
                    "approved_by": approval["decided_by"] if approval else thread["owner"],
                }
                added.append(await _insert_version(conn, row))
        return added

    async def listing(
        self, project_id: str, *, history: bool = False, branch: str | None = None
    ) -> dict[str, Any]:
        """The project's current artifacts with what is stale (and every version, if asked)."""
        branch = branch or await self.branch_of(project_id)
        heads = await self.heads(project_id, branch)
        types = artifact_types()
        made_from_now = {
            kind: {
                source: upstream_hash(
                    types[kind], row["data"], types[source], heads[source]["data"]
                )
                for source in row["upstream"]
                if source in heads
                and kind in types
                and source in types
                and made_per_scene(types[kind], types[source])  # else its content hash
            }
            for kind, row in heads.items()
        }
        stale = stale_now(
            {
                kind: {k: row[k] for k in ("version", "content_hash", "upstream")}
                for kind, row in heads.items()
            },
            made_from_now,
        )
        current = [
            {**_public(row), "stale": kind in stale, "stale_because": stale.get(kind, [])}
            for kind, row in heads.items()
        ]
        answer: dict[str, Any] = {"project_id": project_id, "branch": branch, "current": current}
        if history:
            rows = await self.db.fetch(
                "SELECT * FROM auteur_artifacts WHERE project_id = %s ORDER BY kind, version",
                (project_id,),
            )
            answer["versions"] = [_public(row, data=False) for row in rows]
        return answer

    async def branches(self, project_id: str) -> list[dict[str, Any]]:
        """Every branch of the project (``main`` first), marking the current one."""
        project = await self.db.fetch_one(
            "SELECT current_branch FROM auteur_projects WHERE project_id = %s", (project_id,)
        )
        current = project["current_branch"] if project else MAIN
        rows = await self.db.fetch(
            "SELECT branch, parent, thread_id, stage, checkpoint_id, created_at"
            " FROM auteur_branches WHERE project_id = %s ORDER BY created_at",
            (project_id,),
        )
        main = {"branch": MAIN, "parent": None, "thread_id": None, "stage": None}
        return [
            {**row, "current": row["branch"] == current}
            for row in [main, *(_public(row) for row in rows)]
        ]

    async def fork(
        self,
        project_id: str,
        *,
        thread_id: str,
        parent: str,
        stage: str,
        checkpoint_id: str,
    ) -> str:
        """Start a branch from ``parent`` with its current versions; make it current.

        The thread moves to the new branch: what it approves from now on lands there, and
        what that makes stale shows against the versions the branch started with.
        """
        branch = f"{stage}-{uuid.uuid4().hex[:8]}"
        async with self.db.pool.connection() as conn, conn.transaction():
            await _locked_project(conn, project_id)
            await conn.execute(
                "INSERT INTO auteur_branches (project_id, branch, parent, thread_id, stage,"
                " checkpoint_id) VALUES (%s, %s, %s, %s, %s, %s)",
                (project_id, branch, parent, thread_id, stage, checkpoint_id),
            )
            await conn.execute(
                "INSERT INTO auteur_artifact_heads (project_id, branch, kind, version)"
                " SELECT project_id, %s, kind, version FROM auteur_artifact_heads"
                " WHERE project_id = %s AND branch = %s",
                (branch, project_id, parent),
            )
            await conn.execute(
                "UPDATE auteur_projects SET current_branch = %s, updated_at = now()"
                " WHERE project_id = %s",
                (branch, project_id),
            )
            await conn.execute(
                "UPDATE auteur_threads SET branch = %s WHERE thread_id = %s", (branch, thread_id)
            )
        return branch

    async def switch(self, project_id: str, branch: str) -> bool:
        """Make ``branch`` the project's current one; False if it has no such branch."""
        known = branch == MAIN or await self.db.fetch_one(
            "SELECT 1 FROM auteur_branches WHERE project_id = %s AND branch = %s",
            (project_id, branch),
        )
        if not known:
            return False
        await self.db.fetch(
            "UPDATE auteur_projects SET current_branch = %s, updated_at = now()"
            " WHERE project_id = %s RETURNING project_id",
            (branch, project_id),
        )
        return True


async def _locked_project(conn: AsyncConnection, project_id: str) -> dict[str, Any] | None:
    """The project row, locked: its versions are numbered one writer at a time."""
    cursor = await conn.execute(
        "SELECT current_branch FROM auteur_projects WHERE project_id = %s FOR UPDATE",
        (project_id,),
    )
    return await cursor.fetchone()


async def _approval_of(conn: AsyncConnection, thread_id: str, stage: str) -> dict[str, Any] | None:
    """The thread's latest approving decision at ``stage``, if any."""
    cursor = await conn.execute(
        "SELECT approval_id, decided_by, (payload->>'scene')::int AS scene"
        " FROM auteur_approvals WHERE thread_id = %s"
        " AND stage = %s AND status = 'decided' AND decision->'decisions'->0->>'type'"
        " IN ('approve', 'edit') ORDER BY decided_at DESC LIMIT 1",
        (thread_id, stage),
    )
    return await cursor.fetchone()


async def _insert_version(conn: AsyncConnection, row: dict[str, Any]) -> dict[str, Any]:
    cursor = await conn.execute(
        "INSERT INTO auteur_artifacts (project_id, kind, version, branch, data, bookkeeping,"
        " content_hash, input_hash, upstream, parent_version, thread_id, run_id, approval_id,"
        " stage, approved_by) SELECT %s, %s, COALESCE(MAX(version), 0) + 1, %s, %s, %s, %s,"
        " %s, %s, %s, %s, %s, %s, %s, %s FROM auteur_artifacts WHERE project_id = %s"
        " AND kind = %s RETURNING *",
        (
            row["project_id"],
            row["kind"],
            row["branch"],
            Jsonb(plain(row["data"])),
            Jsonb(plain(row["bookkeeping"])),
            row["content_hash"],
            row["input_hash"],
            Jsonb(row["upstream"]),
            row["parent_version"],
            row["thread_id"],
            row["run_id"],
            row["approval_id"],
            row["stage"],
            row["approved_by"],
            row["project_id"],
            row["kind"],
        ),
    )
    version = await cursor.fetchone()
    assert version is not None
    await conn.execute(
        "INSERT INTO auteur_artifact_heads (project_id, branch, kind, version)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT (project_id, branch, kind)"
        " DO UPDATE SET version = EXCLUDED.version",
        (row["project_id"], row["branch"], row["kind"], version["version"]),
    )
    return version


def _public(row: dict[str, Any], *, data: bool = True) -> dict[str, Any]:
    """A row as JSON (timestamps as ISO strings), without its data unless asked."""
    return {
        key: value.isoformat() if hasattr(value, "isoformat") else value
        for key, value in row.items()
        if data or key != "data"
    }
