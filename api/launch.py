"""Starting runs, streaming them from the event log, and waiting for their outcome.

Shared by the runs routes (the Agent Server API) and the approval queue, so a decision
posted to ``/approvals/{id}`` starts exactly the run ``runs.create(command=...)`` would.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import HTTPException, Request
from pydantic import TypeAdapter, ValidationError
from sse_starlette import EventSourceResponse, ServerSentEvent

from agents.base import check_decision
from api.context import ApiContext
from api.db import TERMINAL_RUN_STATUSES, dumps
from api.events import wait_for
from api.routes.files import require_own_files
from api.schemas import THREAD_ID_PATTERN, RunCreate
from api.wire import assistant_id_of
from graphs.base import WorkflowInput

__all__ = [
    "audit_of",
    "final_values",
    "last_event_id",
    "resolve_workflow",
    "start_run",
    "stream_run",
]

_workflow_input = TypeAdapter(WorkflowInput)
HEARTBEAT_S = 5


def resolve_workflow(ctx: ApiContext, assistant_id: str) -> str:
    """The workflow type an assistant id (its name or its UUID) names; 404 otherwise."""
    for name in ctx.services.workflows:
        if assistant_id in (name, assistant_id_of(name)):
            return name
    raise HTTPException(
        404, f"no assistant '{assistant_id}' (known: {', '.join(sorted(ctx.services.workflows))})"
    )


async def start_run(
    ctx: ApiContext, owner: str, thread_id: str, body: RunCreate, *, audited: bool = False
) -> dict[str, Any]:
    """Validate a run request against the thread and queue the run.

    A resume through the runs API (not the approval queue, which keeps its own audit,
    ``audited``) is recorded as the decision of the gate it answers.

    Raises:
        HTTPException: 404 no such thread (of the caller's; ``if_not_exists: create``
            makes one only on a keyless server) or assistant, 409 the thread is busy and the
            strategy is ``reject`` (or it runs another workflow), 422 invalid input or decision.
    """
    workflow = resolve_workflow(ctx, body.assistant_id)
    await require_own_files(ctx, owner, [body.input, body.command and body.command.model_dump()])
    thread = await ctx.db.thread(thread_id, owner)
    if thread is None:
        if body.if_not_exists != "create" or not ctx.clients_pick_thread_ids:
            raise HTTPException(404, f"no thread '{thread_id}'")
        if not re.fullmatch(THREAD_ID_PATTERN, thread_id):
            raise HTTPException(422, f"a new thread's id must match {THREAD_ID_PATTERN}")
        thread = await ctx.db.create_thread(thread_id, owner, {}, if_exists="raise")
        if thread is None:  # the id exists, owned by someone else
            raise HTTPException(404, f"no thread '{thread_id}'")
    if thread["workflow"] not in (None, workflow):
        raise HTTPException(
            409, f"thread '{thread_id}' runs workflow '{thread['workflow']}', not '{workflow}'"
        )
    _validate_payload(body, thread)
    active = await ctx.db.active_runs(thread_id)
    if active and body.multitask_strategy == "reject":
        raise HTTPException(
            409,
            "Thread is already running a task. Wait for it to finish or choose a different "
            "multitask strategy.",
        )
    if body.multitask_strategy in ("interrupt", "rollback"):
        for run in active:
            status = await ctx.db.request_cancel(run["run_id"], body.multitask_strategy)
            if status == "interrupted" and body.multitask_strategy == "rollback":
                await ctx.db.roll_back(run["run_id"], thread_id)  # it never started
    metadata = {"graph_id": workflow, "assistant_id": assistant_id_of(workflow)}
    if thread["workflow"] is None:
        await ctx.db.bind_workflow(thread_id, workflow, metadata)
    kwargs = {
        "input": body.input,
        "command": body.command.model_dump(exclude_none=True) if body.command else None,
        "config": body.config or {},
        "context": body.context or {},
        "stream_mode": body.modes(),
        "stream_subgraphs": body.stream_subgraphs,
    }
    run = await ctx.db.create_run(
        run_id=str(uuid.uuid4()),
        thread_id=thread_id,
        assistant_id=assistant_id_of(workflow),
        owner=owner,
        kwargs=kwargs,
        metadata={**thread["metadata"], **(body.metadata or {}), **metadata},
        multitask_strategy=body.multitask_strategy,
    )
    if body.command is not None and body.command.resume is not None and not audited:
        await _audit_resume(ctx, owner, thread, body.command.resume, run["run_id"])
    return run


async def _audit_resume(
    ctx: ApiContext, owner: str, thread: dict[str, Any], resume: Any, run_id: str
) -> None:
    rows, _ = await ctx.db.approvals(
        owner, status="pending", thread_id=thread["thread_id"], limit=10, offset=0
    )
    for row in rows:
        diff, feedback = audit_of(row["payload"], resume)
        if await ctx.db.decide_approval(
            row["approval_id"],
            owner,
            decision=resume,
            diff=diff,
            feedback=feedback,
            idempotency_key=None,
        ):
            await ctx.db.link_resume_run(row["approval_id"], run_id, owner)


def audit_of(gate: dict[str, Any], decision: Any) -> tuple[list[dict[str, Any]], str | None]:
    """What an approval's audit trail keeps of a decision: an edit's diff, feedback text."""
    first = (decision.get("decisions") or [{}])[0] if isinstance(decision, dict) else {}
    if first.get("type") == "reject":
        return [], first.get("message")
    if first.get("type") == "edit":
        before = gate["action_requests"][0]["args"]
        return _diff(before, first["edited_action"]["args"], ""), None
    return [], None


def _diff(before: Any, after: Any, path: str) -> list[dict[str, Any]]:
    """Changed leaves between two JSON values, as ``{"path", "before", "after"}``."""
    if isinstance(before, dict) and isinstance(after, dict):
        return [
            change
            for key in sorted({*before, *after}, key=str)
            for change in _diff(before.get(key), after.get(key), f"{path}.{key}".lstrip("."))
        ]
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [
            change
            for index, (old, new) in enumerate(zip(before, after, strict=True))
            for change in _diff(old, new, f"{path}[{index}]")
        ]
    return [] if before == after else [{"path": path, "before": before, "after": after}]


def _validate_payload(body: RunCreate, thread: dict[str, Any]) -> None:
    if body.input is not None and body.command is not None:
        raise HTTPException(422, "send either 'input' or 'command', not both")
    if body.input is not None:
        try:
            _workflow_input.validate_python(body.input)
        except ValidationError as error:
            raise HTTPException(422, f"invalid workflow input: {error}") from None
    if body.command is not None and body.command.resume is not None:
        gates = [i["value"] for items in (thread["interrupts"] or {}).values() for i in items]
        if not gates:
            raise HTTPException(409, "the thread waits at no gate: there is nothing to resume")
        try:
            check_decision(gates[0], body.command.resume)
        except ValueError as error:
            raise HTTPException(422, f"invalid decision: {error}") from None


def last_event_id(request: Request) -> int:
    """The ``Last-Event-ID`` header as a log position (``-1`` or absent: from the start)."""
    raw = request.headers.get("last-event-id")
    if raw is None or raw.strip() in ("", "-1"):
        return 0
    try:
        return max(int(raw), 0)
    except ValueError:
        raise HTTPException(400, f"Last-Event-ID must be an event id or -1, not {raw!r}") from None


def _delivered_name(event: str, modes: set[str] | None, subgraphs: bool) -> str | None:
    """The SSE event name a client gets for a logged event, or None when it did not ask."""
    mode, _, namespace = event.partition("|")
    if mode in ("metadata", "error"):
        return event
    if modes is not None and mode not in modes:
        return None
    if namespace and not subgraphs:
        return mode if mode == "custom" else None  # progress from inside agents still shows
    return event


def stream_run(
    ctx: ApiContext,
    run: dict[str, Any],
    *,
    after: int,
    modes: set[str] | None,
    subgraphs: bool,
    headers: dict[str, str],
) -> EventSourceResponse:
    """SSE of a run's logged events after ``after``, live until the run ends."""
    run_id = run["run_id"]

    async def events() -> AsyncIterator[ServerSentEvent]:
        position = after
        try:
            while True:
                news = ctx.hub.run_news(run_id)
                current = await ctx.db.run(run_id)
                rows = await ctx.db.events_after(run_id, position)
                for row in rows:
                    position = row["id"]
                    name = _delivered_name(row["event"], modes, subgraphs)
                    if name is not None:
                        yield ServerSentEvent(
                            data=dumps(row["data"]), event=name, id=str(row["id"])
                        )
                if rows:
                    continue
                if current is None or current["status"] in TERMINAL_RUN_STATUSES:
                    return
                await wait_for(news, HEARTBEAT_S)
        finally:
            ctx.hub.forget_run(run_id)

    return EventSourceResponse(
        events(), ping=HEARTBEAT_S, headers={**headers, "Cache-Control": "no-store"}
    )


async def final_values(ctx: ApiContext, run: dict[str, Any]) -> dict[str, Any]:
    """What ``/wait`` and ``/join`` answer once the run ended: values, interrupts or error."""
    while True:
        news = ctx.hub.run_news(run["run_id"])
        current = await ctx.db.run(run["run_id"])
        if current is None or current["status"] in TERMINAL_RUN_STATUSES:
            break
        await wait_for(news, HEARTBEAT_S)
    ctx.hub.forget_run(run["run_id"])
    if current is not None and current["status"] == "error":
        return {"__error__": current["error"]}
    thread = await ctx.db.fetch_one(
        "SELECT thread_values, interrupts FROM auteur_threads WHERE thread_id = %s",
        (run["thread_id"],),
    )
    if thread is None:
        return {}
    values = dict(thread["thread_values"] or {})
    interrupts = [i for items in (thread["interrupts"] or {}).values() for i in items]
    if interrupts:
        values["__interrupt__"] = interrupts
    return values
