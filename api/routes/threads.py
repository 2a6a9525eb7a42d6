"""Threads: create, read, patch, delete, search, count; state, state updates and history."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Response
from langgraph.errors import InvalidUpdateError
from langgraph.types import StateSnapshot

from api.body import StrictJsonRoute
from api.context import ApiContext, Ctx, User
from api.executor import interrupts_of, thread_status_of
from api.launch import check_own_files
from api.schemas import (
    ThreadCount,
    ThreadCreate,
    ThreadHistory,
    ThreadPatch,
    ThreadSearch,
    ThreadStateUpdate,
)
from api.wire import latest_state, state_json, thread_json

router = APIRouter(prefix="/threads", tags=["threads"], route_class=StrictJsonRoute)

_EMPTY_STATE: dict[str, Any] = {
    "values": {},
    "next": [],
    "tasks": [],
    "checkpoint": None,
    "metadata": None,
    "created_at": None,
    "parent_checkpoint": None,
    "interrupts": [],
}


async def owned_thread(ctx: ApiContext, thread_id: str, owner: str) -> dict[str, Any]:
    """The caller's thread, or 404 (another user's thread does not exist for the caller)."""
    thread = await ctx.db.thread(thread_id, owner)
    if thread is None:
        raise HTTPException(404, f"no thread '{thread_id}'")
    return thread


@router.post("")
async def create(body: ThreadCreate, ctx: Ctx, user: User) -> dict[str, Any]:
    """A new thread (``if_exists``: ``raise`` → 409, ``do_nothing`` → the existing one).

    With API keys, ``thread_id`` may only name one of the caller's threads (422 otherwise,
    see :attr:`ApiContext.clients_pick_thread_ids`).
    """
    if (
        body.thread_id
        and not ctx.clients_pick_thread_ids
        and await ctx.db.thread(body.thread_id, user) is None
    ):
        raise HTTPException(
            422,
            f"thread_id '{body.thread_id}' is none of your threads: with API keys set, the "
            "server picks a new thread's id (leave thread_id out)",
        )
    thread_id = body.thread_id or str(uuid.uuid4())
    row = await ctx.db.create_thread(thread_id, user, body.metadata, if_exists=body.if_exists)
    if row is None or row["owner"] != user:
        raise HTTPException(409, f"thread '{thread_id}' already exists")
    return thread_json(row)


@router.post("/search")
async def search(body: ThreadSearch, ctx: Ctx, user: User, response: Response) -> list[dict]:
    """The caller's threads matching metadata, values, status and ids."""
    rows = await ctx.db.search_threads(
        user,
        metadata=body.metadata,
        values=body.values,
        status=body.status,
        ids=body.ids,
        limit=body.limit + 1,
        offset=body.offset,
        sort_by=body.sort_by,
        sort_order=body.sort_order,
    )
    assert isinstance(rows, list)
    if len(rows) > body.limit:
        response.headers["X-Pagination-Next"] = str(body.offset + body.limit)
    return [thread_json(row) for row in rows[: body.limit]]


@router.post("/count")
async def count(body: ThreadCount, ctx: Ctx, user: User) -> int:
    """How many of the caller's threads match."""
    total = await ctx.db.search_threads(
        user,
        metadata=body.metadata,
        values=body.values,
        status=body.status,
        ids=None,
        limit=0,
        offset=0,
        sort_by="updated_at",
        sort_order="desc",
        count_only=True,
    )
    assert isinstance(total, int)
    return total


@router.get("/{thread_id}")
async def get(thread_id: str, ctx: Ctx, user: User) -> dict[str, Any]:
    """One thread."""
    return thread_json(await owned_thread(ctx, thread_id, user))


@router.patch("/{thread_id}")
async def patch(
    thread_id: str,
    body: ThreadPatch,
    ctx: Ctx,
    user: User,
    prefer: Annotated[str | None, Header()] = None,
) -> Any:
    """Merge metadata into a thread."""
    row = await ctx.db.patch_thread(thread_id, user, body.metadata)
    if row is None:
        raise HTTPException(404, f"no thread '{thread_id}'")
    if prefer and "return=minimal" in prefer:
        return Response(status_code=204)
    return thread_json(row)


@router.delete("/{thread_id}", status_code=204)
async def delete(thread_id: str, ctx: Ctx, user: User) -> Response:
    """Delete a thread with its runs, events, approvals and checkpoints."""
    await owned_thread(ctx, thread_id, user)
    for run in await ctx.db.active_runs(thread_id):
        await ctx.db.request_cancel(run["run_id"], "interrupt")
    await ctx.db.delete_thread(thread_id, user)
    await ctx.services.persistence.checkpointer.adelete_thread(thread_id)
    return Response(status_code=204)


def _config(thread_id: str, checkpoint_id: str | None = None) -> dict[str, Any]:
    configurable = {"thread_id": thread_id}
    if checkpoint_id:
        configurable |= {"checkpoint_ns": "", "checkpoint_id": checkpoint_id}
    return {"configurable": configurable}


@router.get("/{thread_id}/state")
async def state(thread_id: str, ctx: Ctx, user: User, subgraphs: bool = False) -> dict[str, Any]:
    """The thread's latest state."""
    return await _state(ctx, await owned_thread(ctx, thread_id, user), None, subgraphs)


@router.get("/{thread_id}/state/{checkpoint_id}")
async def state_at(
    thread_id: str, checkpoint_id: str, ctx: Ctx, user: User, subgraphs: bool = False
) -> dict[str, Any]:
    """The thread's state at a checkpoint."""
    return await _state(ctx, await owned_thread(ctx, thread_id, user), checkpoint_id, subgraphs)


async def _state(
    ctx: ApiContext, thread: dict[str, Any], checkpoint_id: str | None, subgraphs: bool
) -> dict[str, Any]:
    if thread["workflow"] is None:
        return _EMPTY_STATE
    graph = ctx.services.graph(thread["workflow"])
    config = _config(thread["thread_id"], checkpoint_id)
    if checkpoint_id is None:
        snapshot = await latest_state(graph, config)
    else:
        snapshot = await graph.aget_state(config, subgraphs=subgraphs)
    if snapshot.config is None or not snapshot.created_at:
        if checkpoint_id:
            raise HTTPException(404, f"no checkpoint '{checkpoint_id}' in this thread")
        return _EMPTY_STATE
    shown = state_json(snapshot)
    if not subgraphs:
        for task in shown["tasks"]:
            task["state"] = None
    return shown


@router.post("/{thread_id}/state")
async def update_state(
    thread_id: str, body: ThreadStateUpdate, ctx: Ctx, user: User
) -> dict[str, Any]:
    """Write values into the thread's state as if ``as_node`` had returned them."""
    thread = await owned_thread(ctx, thread_id, user)
    if thread["workflow"] is None:
        raise HTTPException(400, "the thread has never run: no workflow to update the state of")
    if await ctx.db.active_runs(thread_id):
        raise HTTPException(409, "the thread is running; update its state when it stops")
    await check_own_files(ctx.db, user, body.values)
    graph = ctx.services.graph(thread["workflow"])
    try:
        config = await graph.aupdate_state(
            _config(thread_id, body.checkpoint_id), body.values, as_node=body.as_node
        )
    except (ValueError, KeyError, TypeError, InvalidUpdateError) as error:
        raise HTTPException(400, f"cannot update the state: {error}") from None
    snapshot = await latest_state(graph, _config(thread_id))
    await ctx.db.set_thread_state(
        thread_id,
        status=thread_status_of(snapshot),
        values=snapshot.values,
        interrupts=interrupts_of(snapshot),
        message="state updated",
    )
    if not snapshot.interrupts:
        await ctx.db.close_pending_approvals(thread_id, user)
    return {"checkpoint": config["configurable"]}


@router.post("/{thread_id}/history")
async def history(
    thread_id: str, body: ThreadHistory, ctx: Ctx, user: User
) -> list[dict[str, Any]]:
    """Earlier states, newest first."""
    return await _history(ctx, await owned_thread(ctx, thread_id, user), body)


@router.get("/{thread_id}/history")
async def history_get(
    thread_id: str,
    ctx: Ctx,
    user: User,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    before: str | None = None,
) -> list[dict[str, Any]]:
    """Earlier states, newest first."""
    body = ThreadHistory(limit=limit, before=before)
    return await _history(ctx, await owned_thread(ctx, thread_id, user), body)


async def _history(
    ctx: ApiContext, thread: dict[str, Any], body: ThreadHistory
) -> list[dict[str, Any]]:
    if thread["workflow"] is None:
        return []
    before = body.before
    graph = ctx.services.graph(thread["workflow"])
    states = [
        state_json(snapshot)
        async for snapshot in graph.aget_state_history(
            _config(thread["thread_id"]),
            limit=body.limit,
            before=_config(thread["thread_id"], before) if before else None,
        )
    ]
    if states and before is None:  # the newest, as the thread's state shows it
        latest = await latest_state(graph, _config(thread["thread_id"]))
        if _checkpoint_id(latest) == states[0]["checkpoint_id"]:
            states[0]["values"] = latest.values
    return states


def _checkpoint_id(snapshot: StateSnapshot) -> str | None:
    return (snapshot.config or {}).get("configurable", {}).get("checkpoint_id")
