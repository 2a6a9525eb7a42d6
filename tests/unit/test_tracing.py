"""Tracing checked by what the real Langfuse SDK exports to a Langfuse double on 127.0.0.1."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph
from langgraph.store.memory import InMemoryStore
from typing_extensions import TypedDict

import prompts
from agents.base import Context
from graphs.base import load_workflow_types
from tests.doubles.langfuse_server import LangfuseServer, run_langfuse_server
from tools import ledger, tracing

THREAD = "thread-tracing-1"
USAGE = "langfuse.observation.usage_details"
PROMPT_NAME = "langfuse.observation.prompt.name"
PROMPT_VERSION = "langfuse.observation.prompt.version"


@pytest.fixture
def langfuse() -> Iterator[LangfuseServer]:
    """A Langfuse double, with tracing configured to send to it."""
    with run_langfuse_server() as server:
        tracing.configure(server.config)
        try:
            yield server
        finally:
            tracing.configure(None)


async def draft_treatment(context: Context, sample_input: dict[str, Any]) -> dict[str, Any]:
    """Run the full_video workflow to its first gate (the treatment), offline.

    Returns the state of the script writer's subgraph, which stopped at the gate.
    """
    graph = (
        load_workflow_types()
        .get("full_video")()
        .compile(checkpointer=InMemorySaver(), store=InMemoryStore())
    )
    config = {"configurable": {"thread_id": THREAD}}
    await graph.ainvoke(sample_input, config, context=context)
    snapshot = await graph.aget_state(config, subgraphs=True)
    return snapshot.tasks[0].state.values


async def test_a_traced_run_exports_stage_spans_session_user_and_generations(
    langfuse, offline_context, sample_input
):
    with tracing.trace_run(
        thread_id=THREAD, workflow="full_video", user="alice", name="start", tags=("test",)
    ) as run:
        await draft_treatment(offline_context, sample_input)
    tracing.flush()

    assert run.url == f"{langfuse.base_url}/trace/{run.trace_id}"
    names = {span.name for span in langfuse.spans}
    assert {"start", "full_video", "set_up_project", "script_writer"} <= names
    assert {"draft_treatment", "approve_treatment"} <= names  # the stage's nodes
    for span in langfuse.spans:
        assert span.trace_id == run.trace_id
        assert span.attributes["session.id"] == THREAD
        assert span.attributes["user.id"] == "alice"
        assert span.attributes["langfuse.trace.name"] == "full_video"
        assert set(span.attributes["langfuse.trace.tags"]) == {"full_video", "test"}
    [root] = [span for span in langfuse.spans if span.parent_span_id is None]
    assert root.name == "start"
    [generation] = [
        s for s in langfuse.spans if s.attributes["langfuse.observation.type"] == "generation"
    ]
    assert generation.name == "treatment (draft_treatments)"
    assert generation.attributes["langfuse.observation.model.name"] == "auteur-offline-sample"
    usage = generation.attribute_json(USAGE)
    assert usage["input"] > 0
    assert usage["output"] > 0
    assert usage["total"] == usage["input"] + usage["output"]


async def test_comfyui_jobs_and_gate_decisions_land_in_the_run_trace(langfuse):
    class State(TypedDict):
        done: bool

    async def render_frame(state: State) -> dict[str, Any]:
        with tracing.comfy_span("flux_keyframe", "http://comfy:8188"):
            ledger.record_gpu_seconds("flux_keyframe", 4.5, "http://comfy:8188")
        return {"done": True}

    graph = StateGraph(State)
    graph.add_node(render_frame)
    graph.add_edge(START, "render_frame")
    with (
        ledger.collect({}) as spent,
        tracing.trace_run(thread_id=THREAD, workflow="frames", user="bob", name="resume") as run,
    ):
        run.gate_decision("frames", {"decisions": [{"type": "reject", "message": "warmer"}]})
        await graph.compile().ainvoke({"done": False})
    tracing.flush()

    [job] = langfuse.spans_named("comfyui flux_keyframe")
    assert job.trace_id == run.trace_id
    assert job.attributes["langfuse.observation.type"] == "tool"
    assert job.attribute_json("langfuse.observation.output") == {"gpu_seconds": 4.5}
    assert spent.summary()["comfyui"] == [
        {"workflow": "flux_keyframe", "server": "http://comfy:8188", "gpu_seconds": 4.5}
    ]
    [event] = langfuse.spans_named("decision at frames")
    assert event.trace_id == run.trace_id
    assert event.attributes["langfuse.observation.type"] == "event"
    [score] = langfuse.scores
    assert score["traceId"] == run.trace_id
    assert (score["name"], score["value"], score["dataType"]) == (
        "gate_decision",
        "reject",
        "CATEGORICAL",
    )
    assert score["comment"] == "warmer"
    assert score["metadata"] == {"stage": "frames"}


async def test_a_langfuse_prompt_is_used_recorded_and_linked(
    langfuse, offline_context, sample_input
):
    name = "script_writer/draft_treatments"
    file_text = prompts.file_prompts()[name]
    langfuse.add_prompt(name, "old", labels=[])
    langfuse.add_prompt(name, file_text, labels=["production"])  # version 2

    with tracing.trace_run(thread_id=THREAD, workflow="full_video", user="alice", name="start"):
        state = await draft_treatment(offline_context, sample_input)
    tracing.flush()

    [generation] = langfuse.spans_named("treatment (draft_treatments)")
    assert generation.attributes[PROMPT_NAME] == name
    assert generation.attributes[PROMPT_VERSION] == 2
    [record] = state["generations"]
    assert (record["prompt"], record["langfuse_version"]) == (name, 2)
    assert record["prompt_version"] == prompts.PromptSource(file_text).version


def test_the_langfuse_text_of_a_prompt_replaces_the_file(langfuse):
    langfuse.add_prompt(
        "shared/project", "Brief from Langfuse: {{ project.brief }}", labels=["production"]
    )
    langfuse.add_prompt(
        "shot_lister/list_scene_shots",
        "Shot lister.\n<!-- user -->\n{% include 'shared/project.md' %}",
        labels=["production"],
    )

    rendered = prompts.render("shot_lister/list_scene_shots", project={"brief": "Rain."})

    assert (rendered.system, rendered.user) == ("Shot lister.", "Brief from Langfuse: Rain.")
    assert rendered.langfuse_version == 1


async def test_an_agent_asks_langfuse_for_its_prompt_off_the_event_loop(langfuse, monkeypatch):
    langfuse.add_prompt(
        _MOTION, "Motion from Langfuse.\n<!-- user -->\nMove.", labels=["production"]
    )
    asked_on: list[int] = []
    remote = prompts._remote

    def recorded(name: str) -> prompts.PromptSource | None:
        asked_on.append(threading.get_ident())
        return remote(name)

    monkeypatch.setattr(prompts, "_remote", recorded)
    rendered = await prompts.arender(_MOTION, shot=_SHOT, feedback=[])

    assert (rendered.user, rendered.langfuse_version) == ("Move.", 1)
    # a fetch can take seconds: not on the loop, where it would hold up every run
    assert asked_on and threading.get_ident() not in asked_on


def test_an_edited_template_file_is_read_again(tmp_path, monkeypatch):
    folder = tmp_path / "prompts"
    (folder / "demo").mkdir(parents=True)
    template = folder / "demo" / "note.md"
    template.write_text("System.\n<!-- user -->\nFirst {{ word }}.", encoding="utf-8")
    monkeypatch.setattr(prompts, "PROMPTS_DIR", folder)
    assert prompts.render("demo/note", word="take").user == "First take."

    template.write_text("System.\n<!-- user -->\nSecond, longer {{ word }}.", encoding="utf-8")

    assert prompts.render("demo/note", word="take").user == "Second, longer take."


def test_unreachable_langfuse_falls_back_to_the_files_quietly(langfuse, caplog):
    langfuse.unavailable = True
    caplog.set_level(logging.DEBUG)

    rendered = prompts.render("video_generator/motion", shot=_SHOT, feedback=[])

    assert rendered.langfuse_version is None
    assert rendered.version == prompts.PromptSource(prompts.file_prompts()[_MOTION]).version
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("using the file" in r.getMessage() for r in caplog.records)


async def test_without_keys_nothing_is_created_sent_or_logged(
    offline_context, sample_input, caplog
):
    tracing.configure(None)
    caplog.set_level(logging.DEBUG)
    with run_langfuse_server() as server:
        with (
            ledger.collect({}) as spent,
            tracing.trace_run(thread_id=THREAD, workflow="full_video", user="a", name="s") as run,
        ):
            with tracing.comfy_span("wf", "http://comfy"):
                ledger.record_gpu_seconds("wf", 1.0, "http://comfy")
            run.gate_decision("treatment", {"decisions": [{"type": "approve"}]})
            state = await draft_treatment(offline_context, sample_input)
        tracing.flush()

        assert server.requests == []
    assert (run.trace_id, run.url, tracing.client()) == (None, None, None)
    assert state["generations"][0]["langfuse_version"] is None
    assert spent.summary()["totals"]["llm_calls"] == 1  # the ledger works without Langfuse
    noisy = [
        r
        for r in caplog.records
        if r.levelno >= logging.WARNING or r.name.startswith(("langfuse", "opentelemetry"))
    ]
    assert noisy == []


_MOTION = "video_generator/motion"
_SHOT = {
    "id": "1A",
    "movement": "static",
    "action": "Rain falls.",
    "start_frame": "Grey sky.",
    "end_frame": "Puddles.",
}
