"""Workflow types: parent graphs composed of production agents, one file each in ``graphs/``.

A workflow type subclasses :class:`WorkflowType` (which registers it) and builds an
uncompiled graph; :meth:`WorkflowType.compile` is the only place a graph gets the Postgres
checkpointer — agent subgraphs inherit it.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, NotRequired

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from typing_extensions import TypedDict

from agents.artifacts import MasterScript, Project, ProjectConfig
from agents.base import (
    Context,
    ProductionAgent,
    all_steps,
    artifact_types,
    load_agents,
    state_schema,
)
from tools.plugins import Registry, discover, is_concrete

__all__ = [
    "SET_UP_NODE",
    "BriefInput",
    "ProjectInput",
    "WorkflowType",
    "agent_pipeline",
    "load_workflow_types",
]

SET_UP_NODE = "set_up_project"


class ProjectInput(BaseModel):
    """The input of a workflow that works on a project's approved artifacts.

    The brief and configuration default to the project's; ``config`` keys given here
    override them for this run.
    """

    model_config = ConfigDict(extra="forbid", title="ProjectInput")

    project_id: str | None = Field(
        None, description="The project (its thread's project is used when absent)."
    )
    brief: str | None = Field(None, min_length=1, description="The project's brief if absent.")
    config: ProjectConfig | None = Field(None, description="Project configuration to apply.")


class BriefInput(ProjectInput):
    """What a production starts from: a brief (or your own screenplay) and a configuration."""

    model_config = ConfigDict(title="BriefInput")

    brief: str = Field(min_length=1, description="What the film is about.")
    script: str | None = Field(
        None,
        min_length=1,
        description="Your own screenplay (Fountain or plain text): writing skips to the script.",
    )


def workflow_state(input_model: type[BaseModel] = BriefInput) -> type:
    """The run state plus the raw input keys the workflow's own nodes read.

    LangGraph drops input keys its state lacks, so every field of the input model that is
    not an artifact gets a channel.
    """
    schema = state_schema()
    inputs = [name for name in input_model.model_fields if name not in schema.__annotations__]
    return TypedDict(  # type: ignore[operator]
        "WorkflowState", {**schema.__annotations__, **dict.fromkeys(inputs, NotRequired[Any])}
    )


async def set_up_project(state: dict[str, Any]) -> dict[str, Any]:
    """Node: validate the brief and configuration, and read artifacts given as text.

    A step that declares ``from_text`` (the script writer's script: a screenplay) reads its
    artifact from the text the input gave under its key. Validation only, so it runs on the
    event loop (a sync node would cost a thread hop, more than its work).
    """
    try:
        project = Project.model_validate({**state.get("config", {}), "brief": state["brief"]})
    except (KeyError, ValidationError) as error:
        raise ValueError(f"invalid workflow input: {error}") from None
    update: dict[str, Any] = {"project": project.model_dump(mode="json")}
    for step in all_steps():
        if step.from_text is not None and isinstance(state.get(step.stage), str):
            try:
                artifact = step.from_text(state[step.stage])
            except ValueError as error:
                raise ValueError(
                    f"invalid workflow input: unreadable {step.stage}: {error}"
                ) from None
            update[step.stage] = artifact.model_dump(mode="json")
    return update


def agent_pipeline(
    agent_names: Sequence[str],
    *,
    scene_cycle: Sequence[str] = (),
    input_model: type[BaseModel] = BriefInput,
    prepare: Sequence[Callable[[dict[str, Any]], dict[str, Any]]] = (),
) -> StateGraph:
    """A graph that sets up the project, then runs the named agents one after another.

    Args:
        agent_names: The agents, in order.
        scene_cycle: Agents run after those, once per scene of the master script, scene 1
            to N (the node :data:`NEXT_SCENE_NODE` puts the next scene in production and
            clears their drafts); each per-scene agent drafts and approves that scene's
            part. What they make after their last approval (an assembly) is made once,
            after the last scene.
        input_model: The workflow's input model (its fields get state channels).
        prepare: Nodes run after the set-up and before the first agent, in order (each
            named after its function).
    """
    agents = load_agents()
    graph = StateGraph(workflow_state(input_model), context_schema=Context)
    graph.add_node(SET_UP_NODE, set_up_project)
    graph.add_edge(START, SET_UP_NODE)
    previous = SET_UP_NODE
    for node in prepare:
        graph.add_node(node.__name__, node)
        graph.add_edge(previous, node.__name__)
        previous = node.__name__
    for name in agent_names:
        agent = agents.get(name)()
        graph.add_node(name, agent.build().compile(name=name))
        graph.add_edge(previous, name)
        previous = name
    if scene_cycle:
        previous = _add_scene_cycle(graph, previous, [agents.get(n)() for n in scene_cycle])
    graph.add_edge(previous, END)
    return graph


NEXT_SCENE_NODE = "next_scene"
AFTER_SCENES_NODE = "after_scenes"


def _add_scene_cycle(graph: StateGraph, previous: str, cycle: Sequence[ProductionAgent]) -> str:
    """Add the scene loop after ``previous``; returns the node the graph goes on from.

    LangGraph's own loop (a conditional edge back to :data:`NEXT_SCENE_NODE`) keeps every
    gate a checkpoint: a run killed in scene 2 resumes in scene 2 with scene 1 approved. The
    scenes are those of the approved master script (the artifact of type ``MasterScript``).
    """
    stages = [step.stage for agent in cycle for step in agent.steps()]

    def next_scene(state: dict[str, Any]) -> dict[str, Any]:
        """Node: the next scene in production, its stages' drafts cleared."""
        return {"scene": state.get("scene", 0) + 1, "drafts": dict.fromkeys(stages)}

    (master,) = [key for key, model in artifact_types().items() if model is MasterScript]

    def scenes_left(state: dict[str, Any]) -> str:
        scenes = MasterScript.model_validate(state[master]).scenes
        return NEXT_SCENE_NODE if state["scene"] < len(scenes) else AFTER_SCENES_NODE

    def after_scenes(state: dict[str, Any]) -> dict[str, Any]:
        """Node: the cycle is over; what follows works on the whole film."""
        del state
        return {"scene": None}

    graph.add_node(NEXT_SCENE_NODE, next_scene)
    graph.add_edge(previous, NEXT_SCENE_NODE)
    previous = NEXT_SCENE_NODE
    for agent in cycle:
        graph.add_node(agent.name, agent.build(finish=False).compile(name=agent.name))
        graph.add_edge(previous, agent.name)
        previous = agent.name
    graph.add_node(AFTER_SCENES_NODE, after_scenes)
    graph.add_conditional_edges(previous, scenes_left, [NEXT_SCENE_NODE, AFTER_SCENES_NODE])
    previous = AFTER_SCENES_NODE
    for agent in cycle:
        if agent.finish_node is not None:
            graph.add_node(agent.finish_node, agent.finish, input_schema=graph.state_schema)
            graph.add_edge(previous, agent.finish_node)
            previous = agent.finish_node
    return previous


class WorkflowType(ABC):
    """A workflow type, exposed as an assistant whose id is its name.

    ``input_model`` validates a run's input (the API answers 422 naming the field, and
    ``/assistants/{id}/schemas`` shows its schema); ``takes`` names the artifacts a run
    starts with from its project's current approved versions (so the workflow needs a
    project that has them), ``reuses`` those it starts with when the project has them (with
    the bookkeeping their agents kept, so e.g. an extraction is incremental).
    """

    name: ClassVar[str]
    description: ClassVar[str]
    input_model: ClassVar[type[BaseModel]] = BriefInput
    takes: ClassVar[tuple[str, ...]] = ()
    reuses: ClassVar[tuple[str, ...]] = ()
    chat: ClassVar[bool] = False
    """A chat agent (its input is chat messages) in front of the productions, not one itself."""
    registry: ClassVar[Registry[WorkflowType]] = Registry("workflow type")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if is_concrete(cls):
            WorkflowType.registry.add(cls.name, cls)

    @abstractmethod
    def build(self) -> StateGraph:
        """The uncompiled parent graph."""

    def check_input(self, raw: object) -> BaseModel:
        """``raw`` validated by the workflow's input model (unknown keys are refused).

        Raises:
            ValidationError: Field by field, what is wrong.
        """
        return self.input_model.model_validate(raw)

    def check_start(self, given: BaseModel, start: dict[str, Any]) -> None:
        """Check the validated input against the project's artifacts the run starts from.

        Lets the API refuse (422) an input that only the project can show to be wrong.

        Raises:
            ValueError: What is wrong with the input.
        """
        del given, start  # by default, any valid input fits any project that has the takes

    def nodes(self) -> tuple[str, ...]:
        """The nodes of the workflow's graph, in the order it adds them (breakpoints name them)."""
        return _node_names(type(self))

    def agents(self) -> list[ProductionAgent]:
        """The agents this workflow runs, in the order its graph adds them."""
        agents = load_agents()
        return [agents.get(node)() for node in self.nodes() if node in agents]

    def stages(self) -> list[str]:
        """Stages of the agents' steps this workflow runs, in order (a scene cycle's once)."""
        return _stages_of(self.nodes())

    def scene_stages(self) -> list[str]:
        """The stages of its scene cycle, made once per scene (none without a cycle)."""
        return _stages_of(self._around_cycle()[1])

    def gates(self, scenes: int) -> list[str]:
        """The gates a run of a production with ``scenes`` scenes stops at, in order."""
        before, cycle, after = self._around_cycle()
        return _stages_of(before) + _stages_of(cycle) * scenes + _stages_of(after)

    def _around_cycle(self) -> tuple[list[str], list[str], list[str]]:
        """The workflow's nodes before its scene cycle, in it, and after it."""
        nodes = list(self.nodes())
        if NEXT_SCENE_NODE not in nodes:
            return nodes, [], []
        start, end = nodes.index(NEXT_SCENE_NODE), nodes.index(AFTER_SCENES_NODE)
        return nodes[:start], nodes[start + 1 : end], nodes[end + 1 :]

    def artifacts(self) -> list[dict[str, str]]:
        """What the workflow's steps provide, in order: each artifact's key and model name.

        Clients render an artifact by its type, not by the stage that made it.
        """
        types = artifact_types()
        keys = [
            key
            for agent in self.agents()
            for key in [*(step.stage for step in agent.steps()), *agent.produces]
        ]
        return [{"key": key, "type": types[key].__name__} for key in keys]

    def given(self) -> set[str]:
        """The artifact keys a run has before its first step: the project, input and ``takes``."""
        keys = {"project", *self.takes, *self.reuses}
        return keys | (set(self.input_model.model_fields) & set(artifact_types()))

    def data_flow_problems(self) -> list[str]:
        """Each artifact a step requires that no earlier step, input or ``takes`` provides."""
        return data_flow_problems(self.given(), self.agents())

    def compile(
        self, *, checkpointer: BaseCheckpointSaver | None, store: BaseStore | None
    ) -> CompiledStateGraph:
        """Compile with the run's checkpointer and store (subgraphs inherit both)."""
        return self.build().compile(checkpointer=checkpointer, store=store, name=self.name)


def data_flow_problems(given: set[str], agents: Sequence[ProductionAgent]) -> list[str]:
    """What the steps of ``agents``, run in order on ``given`` artifacts, require and lack."""
    available = set(given)
    problems = []
    for agent in agents:
        for step in agent.steps():
            problems += [
                f"{step.stage} requires {key}, which nothing before it provides"
                for key in step.requires
                if key not in available
            ]
            available.add(step.stage)
        available |= set(agent.produces)
    return problems


def load_workflow_types() -> Registry[WorkflowType]:
    """Import every module in ``graphs/`` and return the filled registry."""
    load_agents()
    discover("graphs")
    return WorkflowType.registry


def _stages_of(nodes: Sequence[str]) -> list[str]:
    """The stages of the agents among ``nodes``, in order."""
    agents = load_agents()
    return [step.stage for n in nodes if n in agents for step in agents.get(n)().steps()]


@functools.cache
def _node_names(workflow: type[WorkflowType]) -> tuple[str, ...]:
    """The nodes of ``workflow``'s graph, in the order it adds them.

    Building the graph compiles every agent's subgraph; its shape is fixed by the class, so
    the answers that list a workflow's stages and artifacts build it once per process.
    """
    return tuple(workflow().build().nodes)
