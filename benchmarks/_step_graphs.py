"""Workflow types of trivial steps, served by ``step_cost.py``'s Auteur and run bare beside it.

Imported by the server before it starts (``auteur_server(plugins=["_step_graphs"])``), so
they register themselves like any workflow type in ``graphs/``. ``steps_1`` runs one node,
``steps_20`` twenty in a chain; each node only adds one to a counter, so what a run costs
beyond its graph's own work is the service's: checkpoints, the event log, the queue.
"""

from __future__ import annotations

from typing import Any, ClassVar

from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

from graphs.base import WorkflowType

__all__ = ["MANY", "chain"]

MANY = 20  # within LangGraph's default recursion limit of 25 steps


class StepsState(TypedDict, total=False):
    """A brief (every workflow input has one) and how many steps ran."""

    brief: str
    count: int


def step(state: StepsState) -> dict[str, Any]:
    """Node: count one step."""
    return {"count": state.get("count", 0) + 1}


def chain(steps: int) -> StateGraph:
    """``steps`` trivial nodes, one after another."""
    graph = StateGraph(StepsState)
    previous = START
    for i in range(steps):
        graph.add_node(f"step_{i}", step)
        graph.add_edge(previous, f"step_{i}")
        previous = f"step_{i}"
    graph.add_edge(previous, END)
    return graph


class OneStep(WorkflowType):
    """One trivial node."""

    name: ClassVar[str] = "steps_1"
    description: ClassVar[str] = "Benchmark: one trivial step."

    def build(self) -> StateGraph:
        """A one-node chain."""
        return chain(1)


class ManySteps(WorkflowType):
    """``MANY`` trivial nodes in a chain."""

    name: ClassVar[str] = f"steps_{MANY}"
    description: ClassVar[str] = f"Benchmark: {MANY} trivial steps."

    def build(self) -> StateGraph:
        """A chain of ``MANY`` nodes."""
        return chain(MANY)
