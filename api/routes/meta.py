"""Health and server information."""

from __future__ import annotations

from typing import Any

import langgraph.version
from fastapi import APIRouter

router = APIRouter(tags=["meta"])


@router.get("/ok")
async def ok() -> dict[str, bool]:
    """Liveness."""
    return {"ok": True}


@router.get("/info")
async def info() -> dict[str, Any]:
    """Server information, in the Agent Server's shape."""
    return {
        "version": "auteur",
        "langgraph_py_version": langgraph.version.__version__,
        "flags": {"assistants": True, "crons": False, "langsmith": False},
        "host": {"kind": "self-hosted", "project_id": None, "tenant_id": None},
    }
