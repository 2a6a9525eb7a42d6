"""Starting runs, streaming them from the event log, and waiting for their outcome.

Shared by the runs routes (the Agent Server API) and the approval queue, so a decision
posted to ``/approvals/{id}`` starts exactly the run ``runs.create(command=...)`` would.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import HTTPException, Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from agents.base import check_decision
from api.artifacts import MissingArtifactsError, ProjectArtifacts
from api.context import ApiContext
from api.db import (
    TERMINAL_RUN_STATUSES,
    GateAnswer,
    GateNotPendingError,
    ThreadBusyError,
    dumps,
)
from api.events import wait_for
from api.routes.files import require_own_files
from api.schemas import THREAD_ID_PATTERN, RunCreate
from api.wire import assistant_id_of
from graphs.base import WorkflowType

__all__ = [
    "audit_of",
    "final_values",
    "last_event_id",
    "resolve_workflow",
    "start_run",
    "stream_run",
]

_INTERRUPT_ID = re.compile(r"[0-9a-f]{32}")  # LangGraph's interrupt ids: xxh3-128 hex digests
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
    ctx: ApiContext,
    owner: str,
    thread_id: str,
    body: RunCreate,
    *,
    gate: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """Validate a run request against the thread and queue the run.

    A resume answers one gate: ``gate`` (an approval row, from the approval queue), the
    gate a LangGraph resume map names by interrupt id, or else the gate the thread waited
    at when the request arrived — never one opened after it, which the sender cannot have
    seen (a late duplicate of a decision is refused, not applied to the next gate). The
    decision is recorded on that gate in the transaction that queues the run, and the run
    resumes with the decision bound to the gate's interrupt id, so it can answer
    no other gate — not the next one, and not after a crash between two gates of an agent.

    Raises:
        HTTPException: 404 no such thread (of the caller's; ``if_not_exists: create``
            makes one only on a keyless server) or assistant, 409 the thread is busy and the
            strategy is ``reject`` (or it runs another workflow), or the gate is not (or no
            longer) pending, 422 invalid input or decision.
    """
    arrived_at = datetime.now(UTC)  # before the first await: when the request came in
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
    _validate_input(ctx.services.workflows[workflow], body)
    if body.input is not None:
        await _check_project(ctx, thread, ctx.services.workflows[workflow])
    if body.multitask_strategy in ("interrupt", "rollback"):
        await _cut_off_active_runs(ctx, thread_id, body.multitask_strategy)
    command = body.command.model_dump(exclude_none=True) if body.command else None
    answer = None
    if body.command is not None and body.command.resume is not None:
        gate = gate or await _gate_answered(ctx, owner, thread_id, body.command.resume, arrived_at)
        decision = _decision_for(gate, body.command.resume)
        diff, feedback = audit_of(gate["payload"], decision)
        answer = GateAnswer(gate["approval_id"], decision, diff, feedback, idempotency_key)
        command = {**(command or {}), "resume": {gate["interrupt_id"]: decision}}
    metadata = {"graph_id": workflow, "assistant_id": assistant_id_of(workflow)}
    if thread["workflow"] is None:
        await ctx.db.bind_workflow(thread_id, workflow, metadata)
    kwargs = {
        "input": body.input,
        "command": command,
        "config": body.config.model_dump(exclude_none=True) if body.config else {},
        "context": body.context or {},
        "stream_mode": body.modes(),
        "stream_subgraphs": body.stream_subgraphs,
    }
    try:
        return await ctx.db.create_run(
            run_id=str(uuid.uuid4()),
            thread_id=thread_id,
            assistant_id=assistant_id_of(workflow),
            owner=owner,
            kwargs=kwargs,
            metadata={**thread["metadata"], **(body.metadata or {}), **metadata},
            multitask_strategy=body.multitask_strategy,
            answers=answer,
        )
    except ThreadBusyError:
        raise HTTPException(
            409,
            "Thread is already running a task. Wait for it to finish or choose a different "
            "multitask strategy.",
        ) from None
    except GateNotPendingError:
        raise HTTPException(
            409, f"the {gate['stage']} gate was already decided: its decision stands"
        ) from None


async def _check_project(ctx: ApiContext, thread: dict[str, Any], workflow: WorkflowType) -> None:
    """A workflow that starts from a project's approved artifacts needs a project with them."""
    if not workflow.takes:
        return
    if thread["project_id"] is None:
        raise HTTPException(
            422,
            f"{workflow.name} starts from a project's approved {', '.join(workflow.takes)}: "
            "run it on a thread created with metadata.project_id",
        )
    store = ProjectArtifacts(ctx.db)
    branch = await store.branch_of(thread["project_id"], thread.get("branch"))
    try:
        await store.start_values(thread["project_id"], branch, workflow)
    except MissingArtifactsError as missing:
        raise HTTPException(409, str(missing)) from None


async def _cut_off_active_runs(
    ctx: ApiContext, thread_id: str, strategy: Literal["interrupt", "rollback"]
) -> None:
    """Cancel the thread's active runs; a rollback also takes back the decisions they carried."""
    for run in await ctx.db.active_runs(thread_id):
        status = await ctx.db.request_cancel(run["run_id"], strategy)
        if strategy == "rollback":
            await ctx.db.take_back_decision(run["run_id"])
            if status == "interrupted":
                await ctx.db.roll_back(run["run_id"], thread_id)  # it never started


async def _gate_answered(
    ctx: ApiContext, owner: str, thread_id: str, resume: Any, arrived_at: datetime
) -> dict[str, Any]:
    """The pending gate a resume answers: the one its interrupt id names, or the thread's."""
    named = _interrupt_ids(resume)
    if len(named) > 1:
        raise HTTPException(422, "a resume answers one gate: name one interrupt id")
    gate = await ctx.db.pending_gate(thread_id, owner, named[0] if named else None)
    if gate is None:
        if named:
            raise HTTPException(409, f"interrupt '{named[0]}' is not pending: already decided")
        raise HTTPException(409, "the thread waits at no gate: there is nothing to resume")
    if not named and gate["created_at"] > arrived_at:
        raise HTTPException(
            409,
            f"the thread moved on to the {gate['stage']} gate after this decision was sent; "
            "decide that gate anew (or name its interrupt id)",
        )
    return gate


def _interrupt_ids(resume: Any) -> list[str]:
    """The interrupt ids of a LangGraph resume map (``{interrupt_id: value}``), else none."""
    if isinstance(resume, dict) and resume and all(map(_INTERRUPT_ID.fullmatch, resume)):
        return list(resume)
    return []


def _decision_for(gate: dict[str, Any], resume: Any) -> Any:
    """The decision a resume carries, validated against the gate as the gate will (422)."""
    decision = resume[gate["interrupt_id"]] if _interrupt_ids(resume) else resume
    try:
        check_decision(gate["payload"], decision)
    except ValueError as error:
        raise HTTPException(422, f"invalid decision: {error}") from None
    return decision


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


def _validate_input(workflow: WorkflowType, body: RunCreate) -> None:
    if body.input is not None and body.command is not None:
        raise HTTPException(422, "send either 'input' or 'command', not both")
    if body.input is not None:
        try:
            workflow.check_input(body.input)
        except ValueError as error:  # pydantic's ValidationError is one
            raise HTTPException(422, f"invalid {workflow.name} input: {error}") from None


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
