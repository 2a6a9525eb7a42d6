"""Every registered agent's gate, run once on the sample: what it approves lands in the run's
state and in the project store. Parametrised over the registry, so a dropped-in agent is
covered without writing a test; the check itself fails on a schema that drops an artifact."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph
from langgraph.store.memory import InMemoryStore
from typing_extensions import TypedDict

from agents.base import Context, load_agents, state_schema
from api.artifacts import ProjectArtifacts
from api.db import SCHEMA, Database
from api.settings import SAMPLE_INPUT, SAMPLE_RECORDINGS
from graphs.base import load_workflow_types
from graphs.persistence import Persistence
from tests.helpers import APPROVE, answer, new_config, run_until_stop
from tools.draft_renderer import DraftBackend
from tools.llm import ModelProvider
from tools.storage import LocalFileStore

AGENT_NAMES = load_agents().names()


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> Context:
    """The offline context, its files shared by the sample run and every agent's run."""
    return Context(
        models=ModelProvider(api_key=None, recordings=SAMPLE_RECORDINGS),
        backend=DraftBackend(),
        files=LocalFileStore(tmp_path_factory.mktemp("files")),
    )


@pytest.fixture(scope="module")
def store() -> InMemoryStore:
    """The sample run's generation cache, reused by each agent's own run (no render twice)."""
    return InMemoryStore()


@pytest.fixture(scope="module")
async def sample_values(context: Context, store: InMemoryStore) -> dict[str, Any]:
    """The values of the sample production, every gate approved."""
    graph = (
        load_workflow_types().get("full_video")().compile(checkpointer=InMemorySaver(), store=store)
    )
    config = new_config()
    gate = await run_until_stop(graph, config, json.loads(SAMPLE_INPUT.read_text()), context)
    while gate is not None:
        gate = await answer(graph, config, APPROVE, context)
    return (await graph.aget_state(config)).values


async def approve_every_gate(
    name: str, values: dict[str, Any], context: Context, schema: type, store: InMemoryStore
) -> dict[str, Any]:
    """Run agent ``name`` alone on what its steps require of ``values``, approving each gate.

    An agent made scene by scene runs as in a production's scene cycle: scene 1 in production.
    """
    agent = load_agents().get(name)()
    own = {step.stage for step in agent.steps()} | set(agent.produces)
    needed = {key for step in agent.steps() for key in step.requires} - own
    scene = {"scene": 1} if any(step.per_scene for step in agent.steps()) else {}
    graph = StateGraph(schema, context_schema=Context)
    graph.add_node(name, agent.build().compile(name=name))
    graph.add_edge(START, name)
    compiled = graph.compile(checkpointer=InMemorySaver(), store=store)
    config = new_config()
    given = {**{k: values[k] for k in needed}, **scene}
    gate = await run_until_stop(compiled, config, given, context)
    while gate is not None:
        gate = await answer(compiled, config, APPROVE, context)
    return (await compiled.aget_state(config)).values


def assert_every_artifact_landed(name: str, values: dict[str, Any]) -> None:
    agent = load_agents().get(name)()
    for kind in [*(step.stage for step in agent.steps()), *agent.produces]:
        assert kind in values, f"{name}'s approved {kind} was dropped from the state"


@pytest.mark.parametrize("name", AGENT_NAMES)
async def test_an_approved_artifact_lands_in_the_state_and_the_project(
    name: str,
    sample_values: dict[str, Any],
    context: Context,
    store: InMemoryStore,
    persistence: Persistence,
) -> None:
    values = await approve_every_gate(name, sample_values, context, state_schema(), store)

    assert_every_artifact_landed(name, values)
    db = Database(persistence.pool)
    async with persistence.pool.connection() as conn:
        for statement in SCHEMA:
            await conn.execute(statement)
    project_id = str(uuid.uuid4())
    await db.fetch(
        "INSERT INTO auteur_projects (project_id, owner, name) VALUES (%s, 'alice', 'p')"
        " RETURNING project_id",
        (project_id,),
    )
    thread = {"thread_id": str(uuid.uuid4()), "project_id": project_id, "owner": "alice"}
    added = await ProjectArtifacts(db).record(thread=thread, run_id=None, values=values)
    agent = load_agents().get(name)()
    provided = {step.stage for step in agent.steps()} | set(agent.produces)
    assert provided <= {version["kind"] for version in added}
    for version in added:
        assert version["data"] == values[version["kind"]]


async def test_the_check_fails_when_the_state_drops_an_artifact(
    sample_values: dict[str, Any], context: Context, store: InMemoryStore
) -> None:
    """A state schema without the shot list's key (an agent's undeclared artifact) is caught."""
    dropping = _without(state_schema(), "shots")

    values = await approve_every_gate("shot_lister", sample_values, context, dropping, store)

    with pytest.raises(AssertionError, match="approved shots was dropped"):
        assert_every_artifact_landed("shot_lister", values)


def _without(schema: type, key: str) -> type:
    fields = {k: v for k, v in schema.__annotations__.items() if k != key}
    return TypedDict("WithoutOneArtifact", fields)  # type: ignore[operator]
