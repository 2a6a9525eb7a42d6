"""The cost ledger: tokens and cost per agent and stage, GPU seconds per ComfyUI job, totals."""

from __future__ import annotations

import asyncio
from typing import Any

from langchain_core.messages import HumanMessage
from langchain_openai import ChatOpenAI
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph
from langgraph.store.memory import InMemoryStore
from pydantic import BaseModel
from typing_extensions import TypedDict

from api.settings import Settings
from graphs.base import load_workflow_types
from tools import ledger
from tools.ledger import ModelPrice
from tools.llm import OFFLINE_LLM_TYPE, generate_structured

PRICES = {"gpt-test": ModelPrice(input=2.0, output=8.0)}


class Title(BaseModel):
    title: str


def test_summary_prices_rows_and_adds_up_totals():
    spent = ledger.Ledger(prices=PRICES)
    spent.add_tokens(
        agent="script_writer",
        stage="script",
        model="gpt-test",
        input_tokens=1000,
        output_tokens=500,
    )
    spent.add_tokens(
        agent="script_writer", stage="script", model="gpt-test", input_tokens=1000, output_tokens=0
    )
    spent.add_tokens(
        agent="shot_lister", stage="shots", model="mystery", input_tokens=10, output_tokens=20
    )
    spent.add_gpu_seconds(workflow="flux", server="http://a", seconds=2.5)
    spent.add_gpu_seconds(workflow="wan", server="http://b", seconds=10.25)
    spent.add_speech(backend="draft", voice="girl", characters=31, seconds=2.25)
    spent.add_speech(backend="draft", voice="boy", characters=12, seconds=0.75)

    summary = spent.summary()

    assert summary["by_agent_stage"] == [
        {
            "agent": "script_writer",
            "stage": "script",
            "model": "gpt-test",
            "calls": 2,
            "input_tokens": 2000,
            "output_tokens": 500,
            "cost_usd": 0.008,  # 2000 * $2/M + 500 * $8/M
        },
        {
            "agent": "shot_lister",
            "stage": "shots",
            "model": "mystery",
            "calls": 1,
            "input_tokens": 10,
            "output_tokens": 20,
            "cost_usd": None,
        },
    ]
    assert summary["comfyui"] == [
        {"workflow": "flux", "server": "http://a", "gpu_seconds": 2.5},
        {"workflow": "wan", "server": "http://b", "gpu_seconds": 10.25},
    ]
    assert summary["totals"] == {
        "llm_calls": 3,
        "input_tokens": 2010,
        "output_tokens": 520,
        "cost_usd": 0.008,
        "unpriced_models": ["mystery"],
        "comfyui_jobs": 2,
        "gpu_seconds": 12.75,
        "speech_jobs": 2,
        "speech_characters": 43,
        "speech_seconds": 3.0,
    }
    assert summary["speech"][0] == {
        "backend": "draft",
        "voice": "girl",
        "characters": 31,
        "seconds": 2.25,
    }


def test_recording_outside_a_run_is_a_no_op():
    ledger.record_gpu_seconds("flux", 3.0, "http://comfy")
    ledger.record_tokens(model="gpt-test", input_tokens=1, output_tokens=1)

    with ledger.collect(PRICES) as spent:
        pass

    assert spent.summary()["totals"]["llm_calls"] == 0
    assert spent.summary()["comfyui"] == []


def test_calls_count_under_their_agent_and_stage_in_every_open_ledger():
    with ledger.collect(PRICES) as outer:
        with ledger.collect(PRICES) as inner, ledger.attribute_to(agent="a", stage="s"):
            ledger.record_tokens(model="gpt-test", input_tokens=5, output_tokens=7)
        ledger.record_tokens(model="gpt-test", input_tokens=1, output_tokens=1)

    assert [(r["agent"], r["stage"], r["calls"]) for r in inner.summary()["by_agent_stage"]] == [
        ("a", "s", 1)
    ]
    assert [(r["agent"], r["calls"]) for r in outer.summary()["by_agent_stage"]] == [
        ("a", 1),
        ("unattributed", 1),
    ]


async def test_gpu_seconds_recorded_inside_graph_nodes_reach_the_run_ledger():
    class State(TypedDict):
        shots: list[str]

    async def render(state: State) -> dict[str, Any]:
        async def job(shot: str) -> None:
            ledger.record_gpu_seconds("flux", 1.5, f"http://comfy/{shot}")

        await asyncio.gather(*(job(shot) for shot in state["shots"]))
        return {}

    graph = StateGraph(State)
    graph.add_node(render)
    graph.add_edge(START, "render")
    with ledger.collect(PRICES) as spent:
        await graph.compile().ainvoke({"shots": ["1A", "1B"]})

    assert spent.summary()["totals"]["gpu_seconds"] == 3.0
    assert spent.summary()["totals"]["comfyui_jobs"] == 2


async def test_generate_structured_counts_the_usage_the_endpoint_reports(openai_server):
    openai_server.replies += ["not json", Title(title="Rain")]
    model = ChatOpenAI(
        model="gpt-test", api_key="test-key", base_url=openai_server.base_url, max_retries=0
    )

    with ledger.collect(PRICES) as spent, ledger.attribute_to(agent="writer", stage="title"):
        await generate_structured(model, Title, [HumanMessage("A title, please.")], mode="prompt")

    [row] = spent.summary()["by_agent_stage"]
    replies = [openai_server.completion(r, c) for r, c in _exchanges(openai_server)]
    assert row["calls"] == 2  # the answer and its repair
    assert row["input_tokens"] == sum(r["usage"]["prompt_tokens"] for r in replies)
    assert row["output_tokens"] == sum(r["usage"]["completion_tokens"] for r in replies)
    assert row["cost_usd"] == round(
        (row["input_tokens"] * 2.0 + row["output_tokens"] * 8.0) / 1_000_000, 6
    )


async def test_an_offline_demo_stage_costs_nothing_but_counts_tokens(offline_context, sample_input):
    graph = (
        load_workflow_types()
        .get("full_video")()
        .compile(checkpointer=InMemorySaver(), store=InMemoryStore())
    )

    with ledger.collect(Settings(_env_file=None).prices) as spent:
        await graph.ainvoke(
            sample_input, {"configurable": {"thread_id": "t"}}, context=offline_context
        )

    [row] = spent.summary()["by_agent_stage"]
    assert (row["agent"], row["stage"], row["model"]) == (
        "script_writer",
        "treatment",
        OFFLINE_LLM_TYPE,
    )
    assert row["input_tokens"] > 0
    assert row["output_tokens"] > 0
    assert row["cost_usd"] == 0
    assert spent.summary()["totals"]["unpriced_models"] == []


def _exchanges(server: Any) -> list[tuple[dict[str, Any], str]]:
    """Each request the double answered, with the content it answered it with."""
    return [
        (server.requests[0], "not json"),
        (server.requests[1], Title(title="Rain").model_dump_json()),
    ]
