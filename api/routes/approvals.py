"""The approval queue: pending gates across the caller's threads, decisions, a live feed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Response
from sse_starlette import EventSourceResponse, ServerSentEvent

from api.body import StrictJsonRoute
from api.context import ApiContext, Ctx, User
from api.db import dumps
from api.events import wait_for
from api.launch import HEARTBEAT_S, ConflictError, answer_gate
from api.schemas import MAX_OFFSET, ApprovalDecision
from api.wire import run_json

router = APIRouter(prefix="/approvals", tags=["approvals"], route_class=StrictJsonRoute)

Page = Annotated[int, Query(ge=1, le=200)]


def approval_json(row: dict[str, Any]) -> dict[str, Any]:
    """An approval as the API shows it."""
    return {
        key: (value.isoformat() if hasattr(value, "isoformat") else value)
        for key, value in row.items()
        if key not in ("owner", "total", "idempotency_key")
    }


async def _page(
    ctx: ApiContext,
    user: str,
    *,
    status: str = "pending",
    project_id: str | None = None,
    stage: str | None = None,
    workflow: str | None = None,
    limit: int = 20,
    offset: int = 0,
) -> dict[str, Any]:
    rows, total = await ctx.db.approvals(
        user,
        status=status,
        project_id=project_id,
        stage=stage,
        workflow=workflow,
        limit=limit,
        offset=offset,
    )
    return {
        "items": [approval_json(row) for row in rows],
        "total": total,
        "limit": limit,
        "offset": offset,
    }


@router.get("")
async def list_approvals(
    ctx: Ctx,
    user: User,
    project_id: str | None = None,
    stage: str | None = None,
    workflow: str | None = None,
    status: Annotated[str, Query(pattern="^(pending|decided|stale)$")] = "pending",
    limit: Page = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> dict[str, Any]:
    """Gates waiting for the caller, newest first, filterable and paginated."""
    return await _page(
        ctx,
        user,
        status=status,
        project_id=project_id,
        stage=stage,
        workflow=workflow,
        limit=limit,
        offset=offset,
    )


@router.get("/stream", response_class=EventSourceResponse)
async def stream(ctx: Ctx, user: User) -> EventSourceResponse:
    """SSE: the pending queue now (``queue``), then again after every change."""

    async def events() -> AsyncIterator[ServerSentEvent]:
        while True:
            news = ctx.hub.approval_news(user)
            yield ServerSentEvent(data=dumps(await _page(ctx, user, limit=200)), event="queue")
            await wait_for(news, 3600)

    return EventSourceResponse(events(), ping=HEARTBEAT_S)


@router.get("/{approval_id}")
async def get(approval_id: str, ctx: Ctx, user: User) -> dict[str, Any]:
    """One approval, with its decision once taken (the audit trail)."""
    row = await ctx.db.approval(approval_id, user)
    if row is None:
        raise HTTPException(404, f"no approval '{approval_id}'")
    return approval_json(row)


@router.post("/{approval_id}", status_code=202)
async def decide(
    approval_id: str,
    body: ApprovalDecision,
    ctx: Ctx,
    user: User,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> dict[str, Any]:
    """Answer a gate; the run resumes in the background.

    A retried request with the same ``Idempotency-Key`` gets the first answer again; any
    other second decision, or one on a gate the thread has moved past, gets 409.
    """
    row = await ctx.db.approval(approval_id, user)
    if row is None:
        raise HTTPException(404, f"no approval '{approval_id}'")
    if row["status"] == "pending":
        try:
            run = await answer_gate(
                ctx.db,
                ctx.services.workflows,
                user,
                row,
                body.model_dump(),
                idempotency_key=idempotency_key,
            )
        except ConflictError:
            row = await ctx.db.approval(approval_id, user)
            if row is None or row["status"] == "pending":
                raise
        else:
            decided = await ctx.db.approval(approval_id, user)
            assert decided is not None
            return {"approval": approval_json(decided), "run": run_json(run)}
    if idempotency_key and row["idempotency_key"] == idempotency_key:
        run = await ctx.db.run(row["resume_run_id"], user) if row["resume_run_id"] else None
        response.status_code = 200
        return {"approval": approval_json(row), "run": run_json(run) if run else None}
    reason = "already decided" if row["status"] == "decided" else "stale: the thread moved on"
    raise HTTPException(409, f"approval '{approval_id}' is {reason}")
