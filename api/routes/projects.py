"""Projects group threads; each lists its latest workflow runs."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from api.context import Ctx, User
from api.db import dumps
from api.schemas import MAX_OFFSET, ProjectCreate

router = APIRouter(prefix="/projects", tags=["projects"])

_PROJECT_COLUMNS = "project_id, name, brief, config, created_at, updated_at"


def _json(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}


@router.post("", status_code=201)
async def create(body: ProjectCreate, ctx: Ctx, user: User) -> dict[str, Any]:
    """A new project."""
    row = await ctx.db.fetch_one(
        f"INSERT INTO auteur_projects (project_id, owner, name, brief, config)"
        f" VALUES (%s, %s, %s, %s, %s::jsonb) RETURNING {_PROJECT_COLUMNS}",
        (str(uuid.uuid4()), user, body.name, body.brief, dumps(body.config)),
    )
    assert row is not None
    return _json(row)


@router.get("")
async def list_projects(
    ctx: Ctx,
    user: User,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> list[dict[str, Any]]:
    """The caller's projects, newest first, each with the stage its latest thread is at."""
    rows = await ctx.db.fetch(
        "SELECT p.project_id, p.name, p.brief, p.config, p.created_at, p.updated_at,"
        " t.status AS latest_status, t.stage AS latest_stage, t.workflow AS latest_workflow"
        " FROM auteur_projects p LEFT JOIN LATERAL (SELECT status, stage, workflow FROM"
        " auteur_threads WHERE project_id = p.project_id AND owner = p.owner"
        " ORDER BY updated_at DESC LIMIT 1) t ON true WHERE p.owner = %s"
        " ORDER BY p.created_at DESC LIMIT %s OFFSET %s",
        (user, limit, offset),
    )
    return [_json(row) for row in rows]


@router.get("/{project_id}")
async def get(project_id: str, ctx: Ctx, user: User) -> dict[str, Any]:
    """One project."""
    row = await ctx.db.fetch_one(
        f"SELECT {_PROJECT_COLUMNS} FROM auteur_projects WHERE project_id = %s AND owner = %s",
        (project_id, user),
    )
    if row is None:
        raise HTTPException(404, f"no project '{project_id}'")
    return _json(row)


@router.get("/{project_id}/runs")
async def runs(
    project_id: str,
    ctx: Ctx,
    user: User,
    limit: Annotated[int, Query(ge=1, le=200)] = 10,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> list[dict[str, Any]]:
    """The project's latest workflow runs: status, stage, timings (newest first)."""
    await get(project_id, ctx, user)
    rows = await ctx.db.fetch(
        "SELECT r.run_id, r.thread_id, t.workflow, r.status, t.stage, t.message,"
        " r.created_at, r.updated_at, EXTRACT(EPOCH FROM r.updated_at - r.created_at)"
        " AS duration_s FROM auteur_runs r JOIN auteur_threads t USING (thread_id)"
        " WHERE t.project_id = %s AND r.owner = %s ORDER BY r.created_at DESC"
        " LIMIT %s OFFSET %s",
        (project_id, user, limit, offset),
    )
    return [_json({**row, "duration_s": float(row["duration_s"])}) for row in rows]
