"""The Agent Server's JSON shapes: threads, runs, assistants, thread states.

Field names follow ``langgraph-sdk``'s schema, so the official client, agent-chat-ui and
Agent Inbox read Auteur's answers unchanged.
"""

from __future__ import annotations

import functools
import uuid
from typing import Any

from langgraph.types import StateSnapshot

from graphs.base import WorkflowType

__all__ = [
    "assistant_id_of",
    "assistant_json",
    "graph_stream_mode",
    "latest_state",
    "run_json",
    "state_json",
    "thread_json",
]

# The Agent Server's stream modes that LangGraph names otherwise: its "messages" mode gives
# (message, metadata) pairs — every message a node writes to the state (each stage's draft,
# each decision), and a chat model's tokens — which is what "messages-tuple" sends.
_GRAPH_MODES = {"messages-tuple": "messages"}
# The namespace the Agent Server derives a graph's system assistant id from.
_ASSISTANT_NAMESPACE = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")


@functools.cache  # every run request looks up its assistant among all the workflow types
def assistant_id_of(workflow: str) -> str:
    """The assistant id of a workflow type (as the Agent Server derives it from a graph id)."""
    return str(uuid.uuid5(_ASSISTANT_NAMESPACE, workflow))


def graph_stream_mode(mode: str) -> str:
    """The LangGraph stream mode that produces an Agent Server stream mode's events."""
    return _GRAPH_MODES.get(mode, mode)


def delivered_name(event: str, modes: set[str] | None, subgraphs: bool) -> str | None:
    """The SSE event name a client gets for a logged ``event``, or None when it did not ask.

    ``modes`` are the stream modes asked for (None: all the run streams); ``subgraphs`` is
    the run's ``stream_subgraphs``. With ``modes=None`` it also says what the executor logs
    at all: an event no stream of the run can deliver is not written.
    """
    mode, _, namespace = event.partition("|")
    if mode in ("metadata", "error"):
        return event
    if modes is not None and mode not in {*map(graph_stream_mode, modes)}:
        return None
    if namespace and not subgraphs:
        # progress and chat messages from inside agents (their subgraphs) still show
        return mode if mode in ("custom", "messages") else None
    return event


def assistant_json(workflow: WorkflowType, created_at: str) -> dict[str, Any]:
    """One workflow type as an assistant."""
    return {
        "assistant_id": assistant_id_of(workflow.name),
        "graph_id": workflow.name,
        "name": workflow.name,
        "description": workflow.description,
        "config": {},
        "context": {},
        "metadata": {
            "created_by": "system",
            "stages": workflow.stages(),
            "scene_stages": workflow.scene_stages(),
            "artifacts": workflow.artifacts(),
            "takes": list(workflow.takes),
            "chat": workflow.chat,
        },
        "version": 1,
        "created_at": created_at,
        "updated_at": created_at,
    }


def thread_json(row: dict[str, Any]) -> dict[str, Any]:
    """A thread row as the SDK's ``Thread``."""
    return {
        "thread_id": row["thread_id"],
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
        "state_updated_at": row["updated_at"].isoformat(),
        "metadata": row["metadata"],
        "status": row["status"],
        "config": {},
        "values": row["thread_values"],
        "interrupts": row["interrupts"] or {},
        "error": row["error"],
        "project_id": row["project_id"],
        "stage": row["stage"],
        "message": row["message"],
    }


def run_json(row: dict[str, Any]) -> dict[str, Any]:
    """A run row as the SDK's ``Run``, plus its Langfuse ``trace_url`` and ``cost`` ledger."""
    return {
        "run_id": row["run_id"],
        "thread_id": row["thread_id"],
        "assistant_id": row["assistant_id"],
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
        "status": row["status"],
        "metadata": row["metadata"],
        "multitask_strategy": row["multitask_strategy"],
        "kwargs": row["kwargs"],
        "error": row["error"],
        "trace_url": row["trace_url"],
        "cost": row["cost"],
    }


def _checkpoint(config: dict[str, Any] | None) -> dict[str, Any] | None:
    # A running subgraph's snapshot (state?subgraphs=true) may have no checkpoint yet.
    configurable = (config or {}).get("configurable", {})
    if "checkpoint_id" not in configurable:
        return None
    return {
        "thread_id": configurable["thread_id"],
        "checkpoint_ns": configurable.get("checkpoint_ns", ""),
        "checkpoint_id": configurable["checkpoint_id"],
    }


async def latest_state(graph: Any, config: dict[str, Any]) -> StateSnapshot:
    """The thread's latest state with its subgraphs', showing the waiting stage's messages.

    An agent of several steps runs as a subgraph: what its steps said (each draft's message,
    the person's feedback) reaches the parent's ``messages`` only when the agent ends. Chat
    clients read the top-level messages — agent-chat-ui shows a gate under the last AI
    message, and fails on a thread at a gate with none — so a thread that waits inside an
    agent shows that agent's messages, which begin with the parent's.
    """
    snapshot = await graph.aget_state(config, subgraphs=True)
    inner = snapshot
    while (
        deeper := next((t.state for t in inner.tasks if isinstance(t.state, StateSnapshot)), None)
    ) is not None:
        inner = deeper
    messages = inner.values.get("messages") if inner is not snapshot else None
    if not messages:
        return snapshot
    return snapshot._replace(values={**snapshot.values, "messages": messages})


def state_json(snapshot: StateSnapshot) -> dict[str, Any]:
    """A checkpoint as the SDK's ``ThreadState``."""
    checkpoint = _checkpoint(snapshot.config)
    parent = _checkpoint(snapshot.parent_config)
    return {
        "values": snapshot.values,
        "next": list(snapshot.next),
        "tasks": [
            {
                "id": task.id,
                "name": task.name,
                "path": list(task.path),
                "error": str(task.error) if task.error else None,
                "interrupts": [{"value": i.value, "id": i.id} for i in task.interrupts],
                "checkpoint": None,
                "state": state_json(task.state) if isinstance(task.state, StateSnapshot) else None,
                "result": task.result,
            }
            for task in snapshot.tasks
        ],
        "checkpoint": checkpoint,
        "parent_checkpoint": parent,
        "metadata": snapshot.metadata,
        "created_at": snapshot.created_at,
        "interrupts": [{"value": i.value, "id": i.id} for i in snapshot.interrupts],
        "checkpoint_id": checkpoint["checkpoint_id"] if checkpoint else None,
        "parent_checkpoint_id": parent["checkpoint_id"] if parent else None,
    }
