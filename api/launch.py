"""Starting runs, following them in the event log, and waiting for their outcome.

Shared by the runs routes (the Agent Server API), the approval queue and the CLI's driver
(:mod:`api.driver`), so a decision posted to ``/approvals/{id}`` or typed in the terminal
starts exactly the run ``runs.create(command=...)`` would.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from datetime import UTC, datetime
from typing import Any, Literal

import anyio
from fastapi import HTTPException, Request
from pydantic import ValidationError
from sse_starlette import EventSourceResponse, ServerSentEvent

from agents.base import canonical_resume, check_decision
from api.artifacts import MissingArtifactsError, ProjectArtifacts
from api.context import ApiContext
from api.db import (
    TERMINAL_RUN_STATUSES,
    Database,
    GateAnswer,
    GateNotPendingError,
    ThreadBusyError,
    dumps,
)
from api.events import EventHub, wait_for
from api.schemas import THREAD_ID_PATTERN, CommandBody, RunCreate
from api.wire import assistant_id_of, delivered_name
from graphs.base import WorkflowType
from tools.storage import file_keys

__all__ = [
    "HTTP_STATUS",
    "ConflictError",
    "InvalidRunError",
    "NotFoundError",
    "RunRefused",
    "answer_gate",
    "audit_of",
    "check_own_files",
    "final_values",
    "follow_run",
    "last_event_id",
    "queue_run",
    "resolve_workflow",
    "start_run",
    "stream_run",
    "validate_input",
]

_INTERRUPT_ID = re.compile(r"[0-9a-f]{32}")  # LangGraph's interrupt ids: xxh3-128 hex digests
HEARTBEAT_S = 5


class RunRefused(Exception):
    """A run request that cannot be taken; the message says why (the API answers it as 4xx)."""


class NotFoundError(RunRefused):
    """No such thread, assistant (workflow type) or file, as far as the caller can see."""


class ConflictError(RunRefused):
    """The thread is busy or runs another workflow, or the gate is not (or no longer) pending."""


class InvalidRunError(RunRefused, ValueError):
    """The input, config or decision is not valid."""


HTTP_STATUS: dict[type[RunRefused], int] = {
    NotFoundError: 404,
    ConflictError: 409,
    InvalidRunError: 422,
}
"""How the API answers each refusal (:func:`api.app.create_app` maps them)."""


def resolve_workflow(workflows: Mapping[str, WorkflowType], assistant_id: str) -> str:
    """The workflow type an assistant id (its name or its UUID) names.

    Raises:
        NotFoundError: A UUID that is no assistant's.
        InvalidRunError: Neither a UUID nor a workflow type's name, in the official server's
            words (``Invalid assistant: ...``), which agent-chat-ui and Agent Inbox look for.
    """
    for name in workflows:
        if assistant_id in (name, assistant_id_of(name)):
            return name
    known = ", ".join(sorted(workflows))
    try:
        uuid.UUID(assistant_id)
    except ValueError:
        raise InvalidRunError(
            f"Invalid assistant: '{assistant_id}'. Must be either a valid assistant UUID or "
            f"one of the registered graphs: {known}"
        ) from None
    raise NotFoundError(f"no assistant (workflow type) '{assistant_id}' (known: {known})")


def validate_input(workflow: WorkflowType, value: dict[str, Any]) -> None:
    """Check a run's ``input`` for ``workflow`` as every way of starting a run does.

    Raises:
        InvalidRunError: What is wrong with it.
    """
    try:
        workflow.check_input(value)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'input'}: {e['msg']}" for e in error.errors()
        )
        raise InvalidRunError(f"invalid {workflow.name} input: {problems}") from None


async def check_own_files(db: Database, owner: str, value: Any) -> None:
    """Refuse a value that names a file key that is not one of ``owner``'s files.

    Whatever goes into a thread's state must not smuggle in another user's file: a run
    reads the files its state names and derives new ones from them. Someone else's file and
    a file that was never stored get the same answer.

    Raises:
        InvalidRunError: The first such key.
    """
    if unknown := await db.unknown_files(owner, file_keys(value)):
        raise InvalidRunError(
            f"no file '{unknown[0]}': name only files your runs made or you uploaded (POST /files)"
        )


async def start_run(
    ctx: ApiContext,
    owner: str,
    thread_id: str,
    body: RunCreate,
    *,
    gate: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
    new_thread: bool = False,
    run_id: str | None = None,
) -> dict[str, Any]:
    """:func:`queue_run` with the API process's services (a refusal answers 404, 409 or 422).

    ``new_thread``: the server picked ``thread_id`` for a thread the run makes (a run sent
    without a thread), which any server may do; otherwise only a keyless one lets clients.
    """
    if body.named_checkpoint() is not None:
        body = await _at_checkpoint(ctx, owner, thread_id, body)
    return await queue_run(
        ctx.db,
        ctx.services.workflows,
        owner,
        thread_id,
        body,
        gate=gate,
        idempotency_key=idempotency_key,
        may_create_thread=new_thread or ctx.clients_pick_thread_ids,
        run_id=run_id,
    )


async def queue_run(
    db: Database,
    workflows: Mapping[str, WorkflowType],
    owner: str,
    thread_id: str,
    body: RunCreate,
    *,
    gate: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
    may_create_thread: bool = False,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Validate a run request against the thread and queue the run.

    Every run starts here: the API's runs routes, the approval queue and the CLI.

    A resume answers one gate: ``gate`` (an approval row, from the approval queue), the
    gate a LangGraph resume map names by interrupt id, or else the gate the thread waited
    at when the request arrived — never one opened after it, which the sender cannot have
    seen (a late duplicate of a decision is refused, not applied to the next gate). The
    decision is recorded on that gate in the transaction that queues the run, and the run
    resumes with the decision bound to the gate's interrupt id, so it can answer
    no other gate — not the next one, and not after a crash between two gates of an agent.

    Args:
        db: The service tables.
        workflows: The registered workflow types, by name.
        owner: Who asks; only their threads, gates and files exist for them.
        thread_id: The thread to run.
        body: The request, as the API takes it.
        gate: The approval row a resume answers (the approval queue knows it).
        idempotency_key: Recorded with the decision, so a retried decision is recognised.
        may_create_thread: Whether ``if_not_exists: create`` may make the thread (only a
            keyless server lets clients pick thread ids).
        run_id: The new run's id (default: a new one); a caller that waits for the run's
            end picks it, to listen before the run is queued.

    Raises:
        NotFoundError: No such thread (of the caller's) or assistant, or a named file.
        ConflictError: The thread is busy and the strategy is ``reject`` (or it runs
            another workflow), or the gate is not (or no longer) pending.
        InvalidRunError: Invalid input or decision.
    """
    arrived_at = datetime.now(UTC)  # before the first await: when the request came in
    workflow = resolve_workflow(workflows, body.assistant_id)
    await check_own_files(db, owner, [body.input, body.command and body.command.model_dump()])
    thread = await db.thread(thread_id, owner)
    if thread is None:
        if body.if_not_exists != "create" or not may_create_thread:
            raise NotFoundError(f"no thread '{thread_id}'")
        if not re.fullmatch(THREAD_ID_PATTERN, thread_id):
            raise InvalidRunError(f"a new thread's id must match {THREAD_ID_PATTERN}")
        thread = await db.create_thread(thread_id, owner, {}, if_exists="raise")
        if thread is None:  # the id exists, owned by someone else
            raise NotFoundError(f"no thread '{thread_id}'")
    if thread["workflow"] not in (None, workflow):
        raise ConflictError(
            f"thread '{thread_id}' runs workflow '{thread['workflow']}', not '{workflow}'"
        )
    # a new turn of a chat agent leaves its interrupt unanswered, as LangGraph does
    new_turn = workflows[workflow].chat and body.input is not None
    if not new_turn and body.input is not None and body.input.keys() == {"messages"}:
        body = await _chat_at_gate(db, owner, thread_id, body)
    if body.input is not None:
        validate_input(workflows[workflow], body.input)
        await _check_project(db, thread, workflows[workflow], body.input)
    if body.multitask_strategy in ("interrupt", "rollback"):
        await _cut_off_active_runs(db, thread_id, body.multitask_strategy)
    command = body.command.model_dump(exclude_none=True) if body.command else None
    answer = None
    if body.command is not None and body.command.resume is not None:
        gate = gate or await _gate_answered(db, owner, thread_id, body.command.resume, arrived_at)
        decision = _decision_for(gate, body.command.resume)
        diff, feedback = audit_of(gate["payload"], decision)
        answer = GateAnswer(gate["approval_id"], decision, diff, feedback, idempotency_key)
        command = {**(command or {}), "resume": {gate["interrupt_id"]: decision}}
    metadata = {"graph_id": workflow, "assistant_id": assistant_id_of(workflow)}
    breakpoints = _breakpoints(workflows[workflow], body)
    kwargs = {
        **breakpoints,
        "input": body.input,
        "command": command,
        "config": body.config.model_dump(exclude_none=True) if body.config else {},
        "context": body.context or {},
        "stream_mode": body.modes(),
        "stream_subgraphs": body.stream_subgraphs,
    }
    try:
        run = await db.create_run(
            run_id=run_id or str(uuid.uuid4()),
            thread_id=thread_id,
            assistant_id=assistant_id_of(workflow),
            owner=owner,
            kwargs=kwargs,
            metadata={**thread["metadata"], **(body.metadata or {}), **metadata},
            multitask_strategy=body.multitask_strategy,
            answers=answer,
            binds=(workflow, metadata) if thread["workflow"] is None else None,
        )
    except ThreadBusyError:
        raise ConflictError(
            "Thread is already running a task. Wait for it to finish or choose a different "
            "multitask strategy."
        ) from None
    except GateNotPendingError:
        raise ConflictError(
            f"the {gate['stage']} gate was already decided: its decision stands"
        ) from None
    if new_turn:
        await db.close_pending_approvals(thread_id, owner)
    return run


def _breakpoints(workflow: WorkflowType, body: RunCreate) -> dict[str, Any]:
    """The run's static breakpoints (``interrupt_before`` / ``_after``), checked by name.

    A breakpoint pauses the run between nodes; unlike a gate it asks nothing, and a run with
    no input goes on from it.

    Raises:
        InvalidRunError: A breakpoint names no node of the workflow's graph.
    """
    nodes = workflow.nodes()
    found = {}
    for field in ("interrupt_before", "interrupt_after"):
        names = getattr(body, field)
        if not names:
            continue
        unknown = [name for name in names if name not in nodes] if names != "*" else []
        if unknown:
            raise InvalidRunError(
                f"{field} names no node of {workflow.name}: {', '.join(unknown)} "
                f"(its nodes: {', '.join(nodes)})"
            )
        found[field] = names
    return found


async def _at_checkpoint(ctx: ApiContext, owner: str, thread_id: str, body: RunCreate) -> RunCreate:
    """``body`` to run from the checkpoint it names: the latest, or an earlier one (a fork).

    agent-chat-ui names the thread's latest checkpoint on every run; that is no fork. A run
    with no input from an earlier checkpoint (agent-chat-ui's regenerate) forks the thread
    there with LangGraph's own fork: the stage the checkpoint had not yet approved is drafted
    again and its gate shown. A project's thread moves to a new branch of the project, as
    reopening the stage would (``POST /projects/{id}/branches``), so versions stay apart.
    A chat agent's conversation (the director's) forks there as it is, with or without input
    (agent-chat-ui's edited message): what it started elsewhere stays as it is.

    Raises:
        InvalidRunError: A production's fork with input or a decision, from no checkpoint
            of the thread's, or with nothing left to make.
        ConflictError: A fork while the thread is running.
    """
    thread = await ctx.db.thread(thread_id, owner)
    if thread is None or thread["workflow"] is None:
        return body.from_latest()  # a new thread has one place to start: its beginning
    if resolve_workflow(ctx.services.workflows, body.assistant_id) != thread["workflow"]:
        return body  # another workflow's run on this thread: queue_run refuses it
    named = body.named_checkpoint()
    graph = ctx.services.graph(thread["workflow"])
    latest = await graph.aget_state({"configurable": {"thread_id": thread_id}})
    if latest.config["configurable"].get("checkpoint_id") == named:
        return body.from_latest()
    if ctx.services.workflows[thread["workflow"]].chat:  # a conversation forks as LangGraph's
        await _check_checkpoint(graph, thread_id, named)
        return body.forked_at(named, None)
    if body.input is not None or body.command is not None:
        raise InvalidRunError(
            f"checkpoint '{named}' is not the thread's latest: a run from an earlier checkpoint "
            "goes back to it with no input or decision (the stage there is made again); a "
            "decision answers the gate the thread waits at now"
        )
    earlier = await _check_checkpoint(graph, thread_id, named)
    approved = earlier.values.get("approved", [])
    stages = [s for s in ctx.services.workflows[thread["workflow"]].stages() if s not in approved]
    if not stages:
        raise InvalidRunError(f"nothing is left to make after checkpoint '{named}'")
    if await ctx.db.active_runs(thread_id):
        raise ConflictError("the thread is running: wait for it, or cancel it, first")
    if thread["project_id"] is None:  # a branch of the thread alone: its gates shown anew
        branch = f"{stages[0]}-{uuid.uuid4().hex[:8]}"
        await ctx.db.set_thread_branch(thread_id, branch)
    else:
        store = ProjectArtifacts(ctx.db)
        branch = await store.fork(
            thread["project_id"],
            thread_id=thread_id,
            parent=await store.branch_of(thread["project_id"], thread["branch"]),
            stage=stages[0],
            checkpoint_id=named,
        )
    return body.forked_at(named, branch)


async def _check_checkpoint(graph: Any, thread_id: str, checkpoint_id: str) -> Any:
    """The thread's state at ``checkpoint_id``.

    Raises:
        InvalidRunError: The thread has no such checkpoint.
    """
    earlier = await graph.aget_state(
        {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": "",
                "checkpoint_id": checkpoint_id,
            }
        }
    )
    if earlier.created_at is None:
        raise InvalidRunError(f"thread '{thread_id}' has no checkpoint '{checkpoint_id}'")
    return earlier


async def _chat_at_gate(db: Database, owner: str, thread_id: str, body: RunCreate) -> RunCreate:
    """A chat message sent to a production waiting at a gate: feedback for that gate.

    agent-chat-ui sends what the person types as ``{"messages": [...]}``; the last human
    message becomes a ``reject`` with that text, so the stage is drafted again with it.

    Raises:
        InvalidRunError: The thread waits at no gate, or no message has text.
    """
    if await db.pending_gate(thread_id, owner, None) is None:
        raise InvalidRunError(
            "the thread waits at no gate, so a chat message has nothing to answer: a "
            "production starts from input with a brief"
        )
    texts = [_text(m) for m in body.input["messages"] if _from_person(m)] if body.input else []
    if not texts or not texts[-1].strip():
        raise InvalidRunError("the chat message has no text to give the gate as feedback")
    resume = {"decisions": [{"type": "reject", "message": texts[-1]}]}
    return body.model_copy(update={"input": None, "command": CommandBody(resume=resume)})


def _from_person(message: Any) -> bool:
    return isinstance(message, dict) and message.get("type", message.get("role")) in (
        "human",
        "user",
    )


def _text(message: dict[str, Any]) -> str:
    """A chat message's text: its content, or the text parts of a multi-part content."""
    content = message.get("content")
    if isinstance(content, list):
        return " ".join(
            part.get("text", "") for part in content if isinstance(part, dict) and "text" in part
        )
    return content if isinstance(content, str) else ""


async def _check_project(
    db: Database, thread: dict[str, Any], workflow: WorkflowType, value: dict[str, Any]
) -> None:
    """A workflow that starts from a project's approved artifacts needs a project with them.

    Raises:
        InvalidRunError: The thread belongs to no project, or the input does not fit the
            project's artifacts (:meth:`WorkflowType.check_start`).
        ConflictError: The project lacks an artifact the workflow takes.
    """
    if not workflow.takes:
        return
    if thread["project_id"] is None:
        raise InvalidRunError(
            f"{workflow.name} starts from a project's approved {', '.join(workflow.takes)}: "
            "run it on a thread created with metadata.project_id"
        )
    store = ProjectArtifacts(db)
    branch = await store.branch_of(thread["project_id"], thread.get("branch"))
    try:
        start = await store.start_values(thread["project_id"], branch, workflow)
    except MissingArtifactsError as missing:
        raise ConflictError(str(missing)) from None
    try:
        workflow.check_start(workflow.check_input(value), start)
    except ValueError as error:
        raise InvalidRunError(str(error)) from None


async def answer_gate(
    db: Database,
    workflows: Mapping[str, WorkflowType],
    owner: str,
    gate: dict[str, Any],
    decision: dict[str, Any],
    *,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """Record ``decision`` on a pending gate (an approval row) and queue the run it resumes.

    How ``POST /approvals/{id}`` and a decision typed in the CLI take effect.

    Raises:
        ConflictError: The gate is no longer pending.
        InvalidRunError: The decision does not fit the gate.
    """
    request = RunCreate(
        assistant_id=gate["workflow"],
        command=CommandBody(resume=decision),
        stream_mode=["values", "updates", "custom"],
    )
    return await queue_run(
        db, workflows, owner, gate["thread_id"], request, gate=gate, idempotency_key=idempotency_key
    )


async def _cut_off_active_runs(
    db: Database, thread_id: str, strategy: Literal["interrupt", "rollback"]
) -> None:
    """Cancel the thread's active runs; a rollback also takes back the decisions they carried."""
    for run in await db.active_runs(thread_id):
        status = await db.request_cancel(run["run_id"], strategy)
        if strategy == "rollback":
            await db.take_back_decision(run["run_id"])
            if status == "interrupted":
                await db.roll_back(run["run_id"], thread_id)  # it never started


async def _gate_answered(
    db: Database, owner: str, thread_id: str, resume: Any, arrived_at: datetime
) -> dict[str, Any]:
    """The pending gate a resume answers: the one its interrupt id names, or the thread's."""
    named = _interrupt_ids(resume)
    if len(named) > 1:
        raise InvalidRunError("a resume answers one gate: name one interrupt id")
    gate = await db.pending_gate(thread_id, owner, named[0] if named else None)
    if gate is None:
        if named:
            raise ConflictError(f"interrupt '{named[0]}' is not pending: already decided")
        raise ConflictError("the thread waits at no gate: there is nothing to resume")
    if not named and gate["created_at"] > arrived_at:
        raise ConflictError(
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
    """The decision a resume carries (in Auteur's shape), validated as the gate will (422)."""
    decision = resume[gate["interrupt_id"]] if _interrupt_ids(resume) else resume
    try:
        decision = canonical_resume(decision)
        check_decision(gate["payload"], decision)
    except ValueError as error:
        raise InvalidRunError(f"invalid decision: {error}") from None
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


def last_event_id(request: Request) -> int:
    """The ``Last-Event-ID`` header as a log position (``-1`` or absent: from the start)."""
    raw = request.headers.get("last-event-id")
    if raw is None or raw.strip() in ("", "-1"):
        return 0
    try:
        return max(int(raw), 0)
    except ValueError:
        raise HTTPException(400, f"Last-Event-ID must be an event id or -1, not {raw!r}") from None


async def follow_run(
    db: Database, hub: EventHub, run_id: str, *, after: int = 0
) -> AsyncIterator[dict[str, Any]]:
    """A run's logged events after ``after``, live until the run ends, wherever it executes.

    Rows have ``id``, ``event`` and ``data``.
    """
    position = after
    try:
        while True:
            news = hub.run_news(run_id)
            current = await db.run(run_id)
            rows = await db.events_after(run_id, position)
            for row in rows:
                position = row["id"]
                yield row
            if rows:
                continue
            if current is None or current["status"] in TERMINAL_RUN_STATUSES:
                return
            await wait_for(news, HEARTBEAT_S)
    finally:
        hub.forget_run(run_id)


def stream_run(
    ctx: ApiContext,
    run: dict[str, Any],
    *,
    after: int,
    modes: set[str] | None,
    subgraphs: bool,
    headers: dict[str, str],
    cancel_on_disconnect: bool = False,
) -> EventSourceResponse:
    """SSE of a run's logged events after ``after``, live until the run ends.

    ``cancel_on_disconnect`` (a run created with ``on_disconnect: cancel``): a client that goes
    away before the run ends cancels it, keeping its checkpoints (``interrupt``).
    """

    async def events() -> AsyncIterator[ServerSentEvent]:
        rows = follow_run(ctx.db, ctx.hub, run["run_id"], after=after)
        ended = False
        try:
            async with aclosing(rows):
                async for row in rows:
                    name = delivered_name(row["event"], modes, subgraphs)
                    if name is not None:
                        yield ServerSentEvent(
                            data=dumps(row["data"]), event=name, id=str(row["id"])
                        )
            ended = True
        finally:
            if cancel_on_disconnect and not ended:
                with anyio.CancelScope(shield=True):  # the response's own scope is cancelled
                    await ctx.db.request_cancel(run["run_id"], "interrupt")

    return EventSourceResponse(
        events(), ping=HEARTBEAT_S, headers={**headers, "Cache-Control": "no-store"}
    )


async def final_values(
    ctx: ApiContext, run: dict[str, Any], *, ending: asyncio.Event | None = None
) -> dict[str, Any]:
    """What ``/wait`` and ``/join`` answer once the run ended: values, interrupts or error.

    ``ending``: news of the run's end taken before the run was queued (see :func:`waited`),
    so its end cannot pass unseen and the first read waits for it.
    """
    news = ending
    while True:
        if news is not None:
            await wait_for(news, HEARTBEAT_S)
        news = ctx.hub.run_status_news(run["run_id"])
        outcome = await ctx.db.run_outcome(run["run_id"], run["thread_id"])
        if outcome["status"] is None or outcome["status"] in TERMINAL_RUN_STATUSES:
            break
    ctx.hub.forget_run_status(run["run_id"])
    if outcome["status"] == "error":
        return {"__error__": outcome["error"]}
    values = dict(outcome["thread_values"] or {})
    interrupts = [i for items in (outcome["interrupts"] or {}).values() for i in items]
    if interrupts:
        values["__interrupt__"] = interrupts
    return values
