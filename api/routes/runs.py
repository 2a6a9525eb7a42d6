"""Runs of a thread: create (background, streamed, waited on), list, get, join, cancel."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Query, Request, Response
from sse_starlette import EventSourceResponse

from api.body import StrictJsonRoute
from api.context import ApiContext, Ctx, User
from api.launch import final_values, last_event_id, start_run, stream_run
from api.routes.threads import owned_thread
from api.schemas import MAX_OFFSET, RunCreate
from api.wire import run_json

router = APIRouter(prefix="/threads/{thread_id}/runs", tags=["runs"], route_class=StrictJsonRoute)


def _path(run: dict[str, Any]) -> str:
    return f"/threads/{quote(run['thread_id'], safe='')}/runs/{run['run_id']}"


def _stream_headers(run: dict[str, Any]) -> dict[str, str]:
    """Where the SDK reconnects to (``Location``) and learns the run id (``Content-Location``)."""
    return {"Location": f"{_path(run)}/stream", "Content-Location": _path(run)}


async def _owned_run(ctx: ApiContext, thread_id: str, run_id: str, user: str) -> dict[str, Any]:
    run = await ctx.db.run(run_id, user)
    if run is None or run["thread_id"] != thread_id:
        raise HTTPException(404, f"no run '{run_id}' in thread '{thread_id}'")
    return run


@router.post("")
async def create(
    thread_id: str, body: RunCreate, ctx: Ctx, user: User, response: Response
) -> dict[str, Any]:
    """Queue a run in the background."""
    return queued(await start_run(ctx, user, thread_id, body), response)


@router.post("/stream", response_class=EventSourceResponse)
async def create_and_stream(
    thread_id: str, body: RunCreate, ctx: Ctx, user: User
) -> EventSourceResponse:
    """Queue a run and stream its events (SSE) until it ends."""
    return streamed(ctx, await start_run(ctx, user, thread_id, body), body)


@router.post("/wait")
async def create_and_wait(
    thread_id: str, body: RunCreate, ctx: Ctx, user: User, response: Response
) -> dict[str, Any]:
    """Queue a run and answer its final values (with ``__interrupt__`` at a gate)."""
    return await waited(
        ctx, lambda run_id: start_run(ctx, user, thread_id, body, run_id=run_id), response
    )


def queued(run: dict[str, Any], response: Response) -> dict[str, Any]:
    """The answer to a queued run: the run, and where it is."""
    response.headers["Content-Location"] = _path(run)
    return run_json(run)


def streamed(ctx: ApiContext, run: dict[str, Any], body: RunCreate) -> EventSourceResponse:
    """The answer to a queued run that streams it: its events from the first."""
    return stream_run(
        ctx,
        run,
        after=0,
        modes=set(body.modes()),
        subgraphs=body.stream_subgraphs,
        headers=_stream_headers(run),
        cancel_on_disconnect=body.on_disconnect == "cancel",
    )


async def waited(
    ctx: ApiContext, start: Callable[[str], Awaitable[dict[str, Any]]], response: Response
) -> dict[str, Any]:
    """Queue a run with ``start(run_id)`` and answer its final values once it ends.

    The run's end is listened for before the run is queued, so the answer takes one read of
    its outcome, after it ended, instead of a read to see it still running and another.
    """
    run_id = str(uuid.uuid4())
    ending = ctx.hub.run_status_news(run_id)
    try:
        run = await start(run_id)
    except BaseException:
        ctx.hub.forget_run_status(run_id)
        raise
    base = _path(run)
    response.headers["Content-Location"] = base
    response.headers["Location"] = f"{base}/join"
    return await final_values(ctx, run, ending=ending)


@router.get("")
async def list_runs(
    thread_id: str,
    ctx: Ctx,
    user: User,
    response: Response,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    status: str | None = None,
) -> list[dict[str, Any]]:
    """The thread's runs, newest first."""
    await owned_thread(ctx, thread_id, user)
    runs = await ctx.db.list_runs(thread_id, status=status, limit=limit + 1, offset=offset)
    if len(runs) > limit:
        response.headers["X-Pagination-Next"] = str(offset + limit)
    return [run_json(run) for run in runs[:limit]]


@router.get("/{run_id}")
async def get(thread_id: str, run_id: str, ctx: Ctx, user: User) -> dict[str, Any]:
    """One run."""
    return run_json(await _owned_run(ctx, thread_id, run_id, user))


@router.get("/{run_id}/join")
async def join(thread_id: str, run_id: str, ctx: Ctx, user: User) -> dict[str, Any]:
    """Wait for the run to end; its final values."""
    return await final_values(ctx, await _owned_run(ctx, thread_id, run_id, user))


def _modes(raw: list[str]) -> set[str] | None:
    """Stream modes from repeated keys, a JSON array or a comma list; None = all."""
    modes: set[str] = set()
    for item in raw:
        text = item.strip()
        if text.startswith("["):
            try:
                modes.update(str(mode) for mode in json.loads(text))
            except json.JSONDecodeError:
                raise HTTPException(422, f"stream_mode {text!r} is not a JSON array") from None
        else:
            modes.update(part for part in text.split(",") if part)
    return modes or None


@router.get("/{run_id}/stream", response_class=EventSourceResponse)
async def join_stream(
    thread_id: str,
    run_id: str,
    request: Request,
    ctx: Ctx,
    user: User,
    stream_mode: Annotated[list[str], Query()] = [],  # noqa: B006 - FastAPI reads the default
) -> EventSourceResponse:
    """Stream a run's events after ``Last-Event-ID`` (exclusive; ``-1`` = from the start)."""
    run = await _owned_run(ctx, thread_id, run_id, user)
    return stream_run(
        ctx,
        run,
        after=last_event_id(request),
        modes=_modes(stream_mode),
        subgraphs=bool(run["kwargs"].get("stream_subgraphs")),
        headers=_stream_headers(run),
    )


@router.post("/{run_id}/cancel")
async def cancel(
    thread_id: str,
    run_id: str,
    ctx: Ctx,
    user: User,
    wait: bool = False,
    action: Annotated[str, Query(pattern="^(interrupt|rollback)$")] = "interrupt",
) -> Any:
    """Stop a pending or running run (``interrupt`` keeps its checkpoints)."""
    run = await _owned_run(ctx, thread_id, run_id, user)
    if await ctx.db.request_cancel(run_id, action) is None:
        raise HTTPException(409, f"run '{run_id}' is {run['status']}: nothing to cancel")
    if wait:
        return await final_values(ctx, run)
    return Response(status_code=202)


@router.delete("/{run_id}", status_code=204)
async def delete(thread_id: str, run_id: str, ctx: Ctx, user: User) -> Response:
    """Delete a finished run and its events."""
    run = await _owned_run(ctx, thread_id, run_id, user)
    if run["status"] in ("pending", "running"):
        raise HTTPException(409, f"run '{run_id}' is {run['status']}; cancel it first")
    await ctx.db.delete_run(run_id)
    return Response(status_code=204)
