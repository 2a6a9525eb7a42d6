"""Projects group threads; each lists its latest workflow runs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from api.body import StrictJsonRoute
from api.context import Ctx, User
from api.db import dumps
from api.schemas import MAX_OFFSET, ProjectCreate, ProjectUpdate, valid_config

router = APIRouter(prefix="/projects", tags=["projects"], route_class=StrictJsonRoute)

_PROJECT_COLUMNS = "project_id, name, brief, config, created_at, updated_at"


def _json(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}


@router.post("", status_code=201)
async def create(body: ProjectCreate, ctx: Ctx, user: User) -> dict[str, Any]:
    """A new project."""
    return _json(await ctx.db.create_project(user, body.name, body.brief, body.config))


@router.get("")
async def list_projects(
    ctx: Ctx,
    user: User,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> list[dict[str, Any]]:
    """The caller's projects, newest first, with where their latest thread is.

    Each carries that thread's status, stage and scene in production (``latest_scene``, null
    outside a scene cycle) and its latest progress event (``{"stage", "message", "shot"?}``),
    so a card can say "Scene 3 · Frames".
    """
    rows = await ctx.db.fetch(
        "SELECT p.project_id, p.name, p.brief, p.config, p.created_at, p.updated_at,"
        " t.thread_id AS latest_thread_id, t.status AS latest_status, t.stage AS latest_stage,"
        " t.workflow AS latest_workflow, t.scene AS latest_scene, ev.data AS latest_progress"
        " FROM auteur_projects p LEFT JOIN LATERAL (SELECT thread_id, status, stage, workflow,"
        " thread_values->'scene' AS scene FROM auteur_threads"
        " WHERE project_id = p.project_id AND owner = p.owner"
        " ORDER BY updated_at DESC LIMIT 1) t ON true"
        " LEFT JOIN LATERAL (SELECT e.data FROM auteur_runs r JOIN auteur_run_events e"
        " USING (run_id) WHERE r.thread_id = t.thread_id AND e.event LIKE 'custom%%'"
        " ORDER BY r.created_at DESC, e.id DESC LIMIT 1) ev ON true WHERE p.owner = %s"
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


@router.patch("/{project_id}")
async def update(project_id: str, body: ProjectUpdate, ctx: Ctx, user: User) -> dict[str, Any]:
    """Rename a project or save configuration.

    Given keys are merged into the saved ones one level deep, so ``{"format": {"fps": 24}}``
    keeps the aspect ratio; the result must be a valid configuration.
    """
    saved = await get(project_id, ctx, user)
    config = saved["config"]
    if body.config is not None:
        config = {
            key: {**config[key], **value}
            if isinstance(value, dict) and isinstance(config.get(key), dict)
            else value
            for key, value in {**config, **body.config}.items()
        }
        try:
            valid_config(config)
        except ValueError as error:
            raise HTTPException(422, f"invalid configuration: {error}") from None
    row = await ctx.db.fetch_one(
        f"UPDATE auteur_projects SET name = %s, config = %s::jsonb, updated_at = now()"
        f" WHERE project_id = %s AND owner = %s RETURNING {_PROJECT_COLUMNS}",
        (body.name or saved["name"], dumps(config), project_id, user),
    )
    assert row is not None
    return _json(row)


@router.get("/{project_id}/runs")
async def runs(
    project_id: str,
    ctx: Ctx,
    user: User,
    limit: Annotated[int, Query(ge=1, le=200)] = 10,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> list[dict[str, Any]]:
    """The project's latest workflow runs, newest first.

    Each has its status, the stage and message of its latest progress event ("retrying
    frame 4 (2/3)"), its error and timings, its Langfuse ``trace_url`` and its ``cost``
    ledger (tokens and USD per agent and stage, ComfyUI GPU seconds, totals).
    """
    await get(project_id, ctx, user)
    rows = await ctx.db.fetch(
        "SELECT r.run_id, r.thread_id, t.workflow, r.status, e.data->>'stage' AS stage,"
        " e.data->>'message' AS message, r.error, r.trace_url, r.cost, r.created_at,"
        " r.updated_at,"
        " EXTRACT(EPOCH FROM r.updated_at - r.created_at) AS duration_s"
        " FROM auteur_runs r JOIN auteur_threads t USING (thread_id)"
        " LEFT JOIN LATERAL (SELECT data FROM auteur_run_events WHERE run_id = r.run_id"
        " AND event LIKE 'custom%%' ORDER BY id DESC LIMIT 1) e ON true"
        " WHERE t.project_id = %s AND r.owner = %s ORDER BY r.created_at DESC"
        " LIMIT %s OFFSET %s",
        (project_id, user, limit, offset),
    )
    return [_json({**row, "duration_s": float(row["duration_s"])}) for row in rows]


@router.get("/{project_id}/progress")
async def progress(
    project_id: str,
    ctx: Ctx,
    user: User,
    limit: Annotated[int, Query(ge=1, le=200)] = 40,
) -> list[dict[str, Any]]:
    """The project's latest progress messages over all its runs, oldest first.

    Read from the run event log, so a reloaded page (or a run that failed long ago) shows
    the same log as a page that watched the runs live; ``id`` is the event's position in
    its run's stream, where a live stream picks up.
    """
    await get(project_id, ctx, user)
    rows = await ctx.db.fetch(
        "SELECT e.id, e.run_id, e.data->>'stage' AS stage, e.data->>'message' AS message"
        " FROM auteur_run_events e JOIN auteur_runs r USING (run_id)"
        " JOIN auteur_threads t ON t.thread_id = r.thread_id"
        " WHERE t.project_id = %s AND r.owner = %s AND e.event LIKE 'custom%%'"
        " AND e.data ? 'message' ORDER BY e.id DESC LIMIT %s",
        (project_id, user, limit),
    )
    return [dict(row) for row in reversed(rows)]
