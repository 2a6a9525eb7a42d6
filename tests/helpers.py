"""Driving a compiled workflow graph gate by gate, as a client would."""

from __future__ import annotations

import uuid
from typing import Any

from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command

from agents.base import Context

APPROVE = {"decisions": [{"type": "approve"}]}


def new_config() -> dict[str, Any]:
    return {"configurable": {"thread_id": str(uuid.uuid4())}}


async def run_until_stop(
    graph: CompiledStateGraph, config: dict[str, Any], payload: Any, context: Context
) -> dict[str, Any] | None:
    """Run to the next gate; return its payload, or None when the run finished."""
    async for _ in graph.astream(
        payload, config, context=context, stream_mode="updates", durability="sync"
    ):
        pass
    snapshot = await graph.aget_state(config)
    return snapshot.interrupts[0].value if snapshot.interrupts else None


async def answer(
    graph: CompiledStateGraph, config: dict[str, Any], decision: dict[str, Any], context: Context
) -> dict[str, Any] | None:
    """Resume with ``decision`` bound to the pending gate's interrupt id, as Auteur's drivers do."""
    snapshot = await graph.aget_state(config)
    return await run_until_stop(
        graph, config, Command(resume={snapshot.interrupts[0].id: decision}), context
    )


async def drive_to_gate(
    graph: CompiledStateGraph,
    config: dict[str, Any],
    payload: dict[str, Any],
    context: Context,
    stage: str,
) -> dict[str, Any]:
    """Start a run and approve every gate before ``stage``; return ``stage``'s gate."""
    gate = await run_until_stop(graph, config, payload, context)
    while gate is not None and gate["stage"] != stage:
        gate = await answer(graph, config, APPROVE, context)
    assert gate is not None, f"the run never reached the {stage} gate"
    return gate


def proposal(gate: dict[str, Any]) -> dict[str, Any]:
    return gate["action_requests"][0]["args"]


def treatment_options(gate: dict[str, Any]) -> dict[str, Any]:
    """A treatment gate's proposal without the configuration the writer derives from it."""
    return {k: v for k, v in proposal(gate).items() if k != "configuration"}


async def current_values(graph: CompiledStateGraph, config: dict[str, Any]) -> dict[str, Any]:
    """Values of the run as the stage in progress sees them (inside its subgraph)."""
    snapshot = await graph.aget_state(config, subgraphs=True)
    values = dict(snapshot.values)
    for task in snapshot.tasks:
        if task.state is not None and hasattr(task.state, "values"):
            values.update(task.state.values)
    return values
