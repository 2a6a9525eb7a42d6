"""The OpenAI test double answers tool calls as the real chat-completions API does."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

from api.settings import SAMPLE_CONVERSATION, SAMPLE_INPUT, SAMPLE_RECORDINGS
from tests.doubles.openai_server import (
    OpenAIServer,
    ToolCallReply,
    play_conversation,
    replay_recordings,
    run_openai_server,
)

PROMPTS = Path(__file__).parents[2] / "prompts"
DIRECTOR = (PROMPTS / "director" / "chat.md").read_text().splitlines()[0]
SAMPLE = json.loads(SAMPLE_INPUT.read_text())
WEATHER = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}


@tool
def pending_gates() -> str:
    """The gates waiting for the person's decision."""
    return "No gate is waiting."


@tool
def start_production(workflow: str, brief: str | None = None, config: dict | None = None) -> str:
    """Start a workflow type on the project.

    Args:
        workflow: The workflow type's name.
        brief: What the film is about.
        config: Project configuration for a new project.
    """
    return "started"


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with run_openai_server() as double:
        yield double


def _client(server: OpenAIServer) -> openai.OpenAI:
    return openai.OpenAI(api_key="test-key", base_url=server.base_url, max_retries=0)


def test_a_tool_call_is_answered_as_the_api_answers_it(server: OpenAIServer) -> None:
    server.replies += [
        ToolCallReply("weather", {"city": "Oslo"}),
        ToolCallReply("weather", {}, "…"),
    ]
    ask = {"model": "m", "messages": [{"role": "user", "content": "Rain?"}], "tools": [WEATHER]}

    choice = _client(server).chat.completions.create(**ask).choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.id.startswith("call_") and call.type == "function"
    assert (call.function.name, json.loads(call.function.arguments)) == (
        "weather",
        {"city": "Oslo"},
    )

    # said alongside the call, the words are the content
    assert _client(server).chat.completions.create(**ask).choices[0].message.content == "…"


def test_a_call_of_a_tool_the_request_does_not_offer_is_refused(server: OpenAIServer) -> None:
    server.replies += [ToolCallReply("forecast", {"city": "Oslo"}), ToolCallReply("weather")]
    with pytest.raises(openai.BadRequestError, match="'forecast', which the request does not"):
        _client(server).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "Rain?"}], tools=[WEATHER]
        )
    with pytest.raises(openai.BadRequestError, match=r"its tools: none"):
        _client(server).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "Rain?"}]
        )


def test_a_strict_tool_call_must_fit_its_parameters(server: OpenAIServer) -> None:
    strict = {"type": "function", "function": {**WEATHER["function"], "strict": True}}
    server.replies += [ToolCallReply("weather", {"town": "Oslo"}), ToolCallReply("weather", {})]
    with pytest.raises(openai.BadRequestError, match="breaks its parameters"):
        _client(server).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "Rain?"}], tools=[strict]
        )
    # not strict, the model may say anything: the client's tool validation catches it
    answer = _client(server).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "Rain?"}], tools=[WEATHER]
    )
    assert answer.choices[0].message.tool_calls[0].function.arguments == "{}"


def test_tool_calls_round_trip_through_bind_tools(server: OpenAIServer) -> None:
    server.replies += [ToolCallReply("pending_gates", {}, "Let me look."), "Nothing waits."]
    model = ChatOpenAI(api_key="test-key", base_url=server.base_url, max_retries=0)
    agent = model.bind_tools([pending_gates, start_production])

    asked = agent.invoke([HumanMessage("What is pending?")])
    assert isinstance(asked, AIMessage) and asked.text == "Let me look."
    [call] = asked.tool_calls
    assert (call["name"], call["args"]) == ("pending_gates", {})
    answer = pending_gates.invoke(call)
    assert isinstance(answer, ToolMessage)

    said = agent.invoke([HumanMessage("What is pending?"), asked, answer])
    assert said.text == "Nothing waits." and not said.tool_calls
    sent = server.requests[1]["messages"]
    assert sent[1]["tool_calls"][0]["id"] == call["id"] == sent[2]["tool_call_id"]
    offered = {t["function"]["name"] for t in server.requests[0]["tools"]}
    assert offered == {"pending_gates", "start_production"}


def test_the_sample_conversation_plays_the_director_over_the_wire(server: OpenAIServer) -> None:
    server.responder = play_conversation(
        SAMPLE_CONVERSATION, otherwise=replay_recordings(SAMPLE_RECORDINGS, PROMPTS)
    )
    model = ChatOpenAI(api_key="test-key", base_url=server.base_url, max_retries=0)
    director = model.bind_tools([pending_gates, start_production])
    system = SystemMessage(f"{DIRECTOR}\nNow: there is no project yet.")

    started = director.invoke([system, HumanMessage("Start the sample film")])
    [call] = started.tool_calls
    assert call["name"] == "start_production"
    assert call["args"] == {
        "workflow": "full_video",
        "brief": SAMPLE["brief"],
        "config": SAMPLE["config"],
    }
    assert started.text.startswith("[offline sample director] Starting the sample film")

    # a tool's result is passed on; words it has no rule for get the script's answer
    result = ToolMessage("Started full_video.", tool_call_id=call["id"])
    relayed = director.invoke([system, HumanMessage("Start the sample film"), started, result])
    assert (
        relayed.text == "[offline sample director] Started full_video." and not relayed.tool_calls
    )
    opera = director.invoke([system, HumanMessage([{"type": "text", "text": "Write an opera"}])])
    assert "only the sample conversation" in opera.text and not opera.tool_calls

    # a rule whose tool the request does not offer is the script's bug: 400
    with pytest.raises(openai.BadRequestError, match="'give_feedback', which the request"):
        director.invoke([system, HumanMessage("Make it funnier")])

    # the productions' requests go on to the recordings
    treatment = (PROMPTS / "script_writer" / "draft_treatments.md").read_text().splitlines()[0]
    drafted = model.invoke([SystemMessage(treatment), HumanMessage(SAMPLE["brief"])])
    assert json.loads(drafted.text)
