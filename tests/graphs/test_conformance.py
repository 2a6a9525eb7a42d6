"""Every registered plugin obeys the house contract; a dropped-in file is tested on arrival.

Parametrised over the registries themselves, so adding ``agents/<name>.py`` or
``graphs/<name>.py`` adds its cases here without writing a test.
"""

from __future__ import annotations

import inspect
from collections import Counter
from pathlib import Path

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import StateGraph
from langgraph.graph.state import CompiledStateGraph
from pydantic import BaseModel, ValidationError

import agents
import graphs
from agents.base import ProductionAgent, load_agents
from evals.dataset import EvalItem, load_dataset
from evals.metrics import METRICS
from evals.suite import Suite, load_suites
from graphs.base import WorkflowType, data_flow_problems, load_workflow_types
from tools.plugins import discover

AGENT_NAMES = load_agents().names()
WORKFLOW_NAMES = load_workflow_types().names()
PRODUCTION_NAMES = [name for name in WORKFLOW_NAMES if not load_workflow_types().get(name).chat]
CHAT_NAMES = sorted(set(WORKFLOW_NAMES) - set(PRODUCTION_NAMES))
SUITE_NAMES = load_suites().names()


def _agent(name: str) -> type[ProductionAgent]:
    return load_agents().get(name)


def _workflow(name: str) -> type[WorkflowType]:
    return load_workflow_types().get(name)


def _suite(name: str) -> type[Suite]:
    return load_suites().get(name)


def test_registries_are_not_empty() -> None:
    assert AGENT_NAMES
    assert PRODUCTION_NAMES
    assert CHAT_NAMES


@pytest.mark.parametrize("name", CHAT_NAMES)
def test_a_chat_workflow_type_takes_and_keeps_chat_messages(name: str) -> None:
    """A chat client (agent-chat-ui) sends ``{"messages": [...]}`` and reads them back."""
    workflow = _workflow(name)()
    said = {"messages": [{"type": "human", "content": "hello"}]}

    assert workflow.check_input(said).messages == said["messages"]
    assert "messages" in workflow.build().compile().get_output_jsonschema()["properties"]
    assert not workflow.stages()  # it runs no production agent itself


# --- agents ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", AGENT_NAMES)
def test_agent_declares_name_stage_artifact_and_docstring(name: str) -> None:
    cls = _agent(name)

    assert cls.name == name
    assert isinstance(cls.stage, str)
    assert cls.stage
    assert cls.__doc__
    assert cls.__doc__.strip()
    assert inspect.isclass(cls.artifact)
    assert issubclass(cls.artifact, BaseModel)
    schema = cls.artifact.model_json_schema()
    assert schema["type"] == "object"
    assert schema["properties"]


@pytest.mark.parametrize("name", AGENT_NAMES)
def test_agent_builds_an_uncompiled_graph_with_draft_and_gate_per_step(name: str) -> None:
    agent = _agent(name)()

    graph = agent.build()

    assert isinstance(graph, StateGraph)
    assert not isinstance(graph, CompiledStateGraph)
    assert agent.steps()[0] is agent
    for step in agent.steps():
        assert f"draft_{step.stage}" in graph.nodes
        assert f"approve_{step.stage}" in graph.nodes
        assert step.agent == name
        assert step.artifact.model_json_schema()["type"] == "object"


@pytest.mark.parametrize("name", AGENT_NAMES)
def test_agent_compiles_without_a_checkpointer(name: str) -> None:
    """A subgraph has no checkpointer of its own: it inherits the parent's."""
    compiled = _agent(name)().build().compile(name=name)

    assert isinstance(compiled, CompiledStateGraph)
    assert compiled.checkpointer is None


@pytest.mark.parametrize("name", AGENT_NAMES)
def test_agent_lives_in_a_file_named_after_it(name: str) -> None:
    cls = _agent(name)

    assert cls.__module__ == f"agents.{name}"
    assert Path(inspect.getfile(cls)).resolve() == Path(agents.__file__).parent / f"{name}.py"


def test_one_agent_per_file() -> None:
    modules = Counter(_agent(name).__module__ for name in AGENT_NAMES)

    assert [module for module, count in modules.items() if count > 1] == []


def test_every_agent_file_registers_its_agent() -> None:
    """A public module in agents/ named like no agent is a plugin that silently did nothing."""
    helpers = {"agents.base", "agents.artifacts"}
    plugin_modules = set(discover("agents")) - helpers

    assert plugin_modules == {f"agents.{name}" for name in AGENT_NAMES}


def _all_stages() -> list[str]:
    return [step.stage for name in AGENT_NAMES for step in _agent(name)().steps()]


def test_agent_stages_are_unique() -> None:
    stages = Counter(_all_stages())

    assert [stage for stage, count in stages.items() if count > 1] == []


# --- workflow types ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", WORKFLOW_NAMES)
def test_workflow_type_declares_name_and_description(name: str) -> None:
    cls = _workflow(name)

    assert cls.name == name
    assert isinstance(cls.description, str)
    assert cls.description.strip()


@pytest.mark.parametrize("name", WORKFLOW_NAMES)
def test_workflow_type_builds_an_uncompiled_graph(name: str) -> None:
    graph = _workflow(name)().build()

    assert isinstance(graph, StateGraph)
    assert not isinstance(graph, CompiledStateGraph)


@pytest.mark.parametrize("name", WORKFLOW_NAMES)
def test_workflow_type_compiles_with_a_checkpointer(name: str) -> None:
    saver = InMemorySaver()

    compiled = _workflow(name)().build().compile(checkpointer=saver)

    assert isinstance(compiled, CompiledStateGraph)
    assert compiled.checkpointer is saver


@pytest.mark.parametrize("name", WORKFLOW_NAMES)
def test_workflow_type_input_model_refuses_unknown_keys(name: str) -> None:
    workflow = _workflow(name)()

    with pytest.raises(ValidationError, match="master_scirpt"):
        workflow.check_input({"brief": "A robot learns to paint.", "master_scirpt": "typo"})


@pytest.mark.parametrize("name", WORKFLOW_NAMES)
def test_workflow_type_data_flow_is_complete(name: str) -> None:
    """Every artifact a step requires is provided by an earlier step, the input or the project."""
    assert _workflow(name)().data_flow_problems() == []


def test_the_data_flow_check_finds_what_nothing_provides() -> None:
    agents = load_agents()
    shot_lister, frames = agents.get("shot_lister")(), agents.get("frame_generator")()

    given = {"project", "assets", "references", "instances"}
    problems = data_flow_problems(given, [shot_lister, frames])

    assert problems == [
        "shots requires script, which nothing before it provides",
        "shots requires master_script, which nothing before it provides",
    ]


@pytest.mark.parametrize("name", PRODUCTION_NAMES)
def test_workflow_type_runs_registered_agents(name: str) -> None:
    known_stages = set(_all_stages())

    stages = _workflow(name)().stages()

    assert stages
    assert set(stages) <= known_stages


@pytest.mark.parametrize("name", PRODUCTION_NAMES)
def test_workflow_type_agent_subgraphs_have_no_checkpointer(name: str) -> None:
    """Agent nodes are compiled subgraphs that inherit the parent's checkpointer."""
    graph = _workflow(name)().build()
    agent_nodes = {node: spec for node, spec in graph.nodes.items() if node in AGENT_NAMES}

    assert agent_nodes
    for node, spec in agent_nodes.items():
        assert isinstance(spec.runnable, CompiledStateGraph), node
        assert spec.runnable.checkpointer is None, node


@pytest.mark.parametrize("name", WORKFLOW_NAMES)
def test_workflow_type_lives_in_a_file_named_after_it(name: str) -> None:
    cls = _workflow(name)

    assert cls.__module__ == f"graphs.{name}"
    assert Path(inspect.getfile(cls)).resolve() == Path(graphs.__file__).parent / f"{name}.py"


def test_full_video_runs_every_stage_in_order() -> None:
    workflow = _workflow("full_video")()
    before = ["treatment", "script", "master_script", "assets", "references", "casting"]
    cycle = ["instances", "shots", "dialogue", "frames", "clips"]

    assert workflow.stages() == before + cycle
    assert workflow.scene_stages() == cycle
    assert workflow.gates(scenes=2) == before + cycle + cycle


# --- eval suites -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SUITE_NAMES)
def test_suite_targets_a_registered_agent_or_workflow_type(name: str) -> None:
    cls = _suite(name)

    assert cls.name == name
    assert cls.target in (WORKFLOW_NAMES if cls.workflow else AGENT_NAMES)


@pytest.mark.parametrize("name", SUITE_NAMES)
def test_suite_lives_beside_its_target_or_in_evals_suites(name: str) -> None:
    cls = _suite(name)
    folder = "graphs" if cls.workflow else "agents"

    assert cls.__doc__
    assert cls.__module__ == f"{folder}.{cls.target}" or cls.__module__.startswith("evals.suites.")


@pytest.mark.parametrize("name", SUITE_NAMES)
def test_suite_reports_known_metrics_from_its_own_dataset(name: str) -> None:
    suite = _suite(name)()
    items = load_dataset(suite.dataset)

    assert set(suite.metrics) <= set(METRICS)
    assert set(suite.needs) <= set(EvalItem.model_fields)
    for item in items:
        if all(getattr(item, need) is not None for need in suite.needs):
            assert "project" in suite.payload(item) or "brief" in suite.payload(item)
