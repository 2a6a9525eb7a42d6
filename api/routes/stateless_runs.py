"""Runs without a thread (``POST /runs``, ``/runs/stream``, ``/runs/wait``).

The official server runs these on a temporary thread that it deletes when the run completes.
A production stops at gates that only its thread can resume, so here the run gets a new
thread of the caller's that is kept; its id comes back in the run (``thread_id``), and the
run's ``Content-Location`` points into it. A resume names no gate without a thread: 422.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Response
from sse_starlette import EventSourceResponse

from api.body import StrictJsonRoute
from api.context import ApiContext, Ctx, User
from api.launch import InvalidRunError, resolve_workflow, start_run, validate_input
from api.routes import runs
from api.schemas import RunCreate

router = APIRouter(prefix="/runs", tags=["runs"], route_class=StrictJsonRoute)


def _new_thread(ctx: ApiContext, body: RunCreate) -> str:
    """A new thread's id for the run, once the run is known to be one that can start.

    Raises:
        InvalidRunError: The run resumes (there is no gate to answer) or its input is invalid.
        NotFoundError: No such assistant.
    """
    if body.command is not None:
        raise InvalidRunError("a run without a thread has nothing to resume: name the thread")
    workflows = ctx.services.workflows
    validate_input(workflows[resolve_workflow(workflows, body.assistant_id)], body.input or {})
    return str(uuid.uuid4())


async def _start(
    ctx: ApiContext, user: str, body: RunCreate, run_id: str | None = None
) -> dict[str, Any]:
    """Start the run on a new thread, made for it (``if_not_exists: create``)."""
    thread_id = _new_thread(ctx, body)
    creating = body.model_copy(update={"if_not_exists": "create"})
    return await start_run(ctx, user, thread_id, creating, new_thread=True, run_id=run_id)


@router.post("")
async def create(body: RunCreate, ctx: Ctx, user: User, response: Response) -> dict[str, Any]:
    """Queue a run on a new thread, in the background."""
    return runs.queued(await _start(ctx, user, body), response)


@router.post("/stream", response_class=EventSourceResponse)
async def create_and_stream(body: RunCreate, ctx: Ctx, user: User) -> EventSourceResponse:
    """Queue a run on a new thread and stream its events (SSE) until it ends."""
    return runs.streamed(ctx, await _start(ctx, user, body), body)


@router.post("/wait")
async def create_and_wait(
    body: RunCreate, ctx: Ctx, user: User, response: Response
) -> dict[str, Any]:
    """Queue a run on a new thread and answer its final values."""
    return await runs.waited(ctx, lambda run_id: _start(ctx, user, body, run_id), response)
