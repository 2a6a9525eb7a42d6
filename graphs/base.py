"""Workflow types: parent graphs composed of production agents, one file each in ``graphs/``.

A workflow type subclasses :class:`WorkflowType` (which registers it) and builds an
uncompiled graph; :meth:`WorkflowType.compile` is the only place a graph gets the Postgres
checkpointer — agent subgraphs inherit it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, NotRequired

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore
from pydantic import ValidationError
from typing_extensions import TypedDict

from agents._screenplay import parse_screenplay
from agents.artifacts import Project
from agents.base import Context, ProductionState, load_agents
from tools.plugins import Registry, discover, is_concrete

__all__ = [
    "SET_UP_NODE",
    "WorkflowInput",
    "WorkflowType",
    "agent_pipeline",
    "load_workflow_types",
]

SET_UP_NODE = "set_up_project"


class WorkflowInput(TypedDict):
    """What a run starts from: ``{"brief": "..."}``, optionally with project configuration.

    ``script`` is the person's own screenplay (Fountain or plain text): "skip to script".
    """

    brief: str
    config: NotRequired[dict[str, Any]]
    project_id: NotRequired[str]
    script: NotRequired[str]


class WorkflowState(ProductionState, total=False):
    """Production state plus the raw input keys the set-up node reads."""

    brief: str
    config: dict[str, Any]
    project_id: str


def set_up_project(state: WorkflowState) -> dict[str, Any]:
    """Node: validate the brief and configuration, and parse a given screenplay."""
    try:
        project = Project.model_validate({**state.get("config", {}), "brief": state["brief"]})
    except ValidationError as error:
        raise ValueError(f"invalid workflow input: {error}") from None
    update: dict[str, Any] = {"project": project.model_dump(mode="json")}
    if isinstance(state.get("script"), str):
        try:
            script = parse_screenplay(state["script"])
        except ValueError as error:
            raise ValueError(f"invalid workflow input: unreadable script: {error}") from None
        update["script"] = script.model_dump(mode="json")
    return update


def agent_pipeline(agent_names: Sequence[str]) -> StateGraph:
    """A graph that sets up the project, then runs the named agents one after another."""
    agents = load_agents()
    graph = StateGraph(WorkflowState, context_schema=Context, input_schema=WorkflowInput)
    graph.add_node(SET_UP_NODE, set_up_project)
    graph.add_edge(START, SET_UP_NODE)
    previous = SET_UP_NODE
    for name in agent_names:
        agent = agents.get(name)()
        graph.add_node(name, agent.build().compile(name=name))
        graph.add_edge(previous, name)
        previous = name
    graph.add_edge(previous, END)
    return graph


class WorkflowType(ABC):
    """A workflow type, exposed as an assistant whose id is its name."""

    name: ClassVar[str]
    description: ClassVar[str]
    registry: ClassVar[Registry[WorkflowType]] = Registry("workflow type")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if is_concrete(cls):
            WorkflowType.registry.add(cls.name, cls)

    @abstractmethod
    def build(self) -> StateGraph:
        """The uncompiled parent graph."""

    def stages(self) -> list[str]:
        """Stages of the agents' steps this workflow runs, in order."""
        agents = load_agents()
        nodes = self.build().nodes
        return [step.stage for n in nodes if n in agents for step in agents.get(n)().steps()]

    def compile(
        self, *, checkpointer: BaseCheckpointSaver | None, store: BaseStore | None
    ) -> CompiledStateGraph:
        """Compile with the run's checkpointer and store (subgraphs inherit both)."""
        return self.build().compile(checkpointer=checkpointer, store=store, name=self.name)


def load_workflow_types() -> Registry[WorkflowType]:
    """Import every module in ``graphs/`` and return the filled registry."""
    load_agents()
    discover("graphs")
    return WorkflowType.registry
