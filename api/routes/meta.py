"""Health and server information."""

from __future__ import annotations

import json
from typing import Any

import langgraph.version
from fastapi import APIRouter

from api.body import StrictJsonRoute
from api.context import Ctx
from api.settings import SAMPLE_INPUT

router = APIRouter(tags=["meta"], route_class=StrictJsonRoute)


OK_TIMEOUT_S = 2.0


@router.get("/ok", responses={503: {"description": "The database is unavailable."}})
async def ok(ctx: Ctx) -> dict[str, bool]:
    """Health: 200 once the database answers; 503 saying why while it is unavailable."""
    async with ctx.db.pool.connection(timeout=OK_TIMEOUT_S) as conn:
        await conn.execute("SELECT 1")
    return {"ok": True}


@router.get("/info")
async def info(ctx: Ctx) -> dict[str, Any]:
    """Server information, in the Agent Server's shape, plus the models Auteur drafts with."""
    return {
        "auteur": {"models": ctx.services.context.models.describe()},
        "version": "auteur",
        "langgraph_py_version": langgraph.version.__version__,
        "flags": {"assistants": True, "crons": False, "langsmith": False},
        "host": {"kind": "self-hosted", "project_id": None, "tenant_id": None},
    }


@router.get("/sample")
async def sample() -> dict[str, Any]:
    """The sample production's input (brief and configuration) the offline model knows."""
    return json.loads(SAMPLE_INPUT.read_text(encoding="utf-8"))
