"""The LLM layer against the real ChatOpenAI client and an OpenAI wire-protocol double."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field

from tests.doubles.openai_server import ErrorReply, OpenAIServer
from tools.llm import (
    LLMUnavailableError,
    ModelProvider,
    NoModelConfiguredError,
    OfflineChatModel,
    StructuredOutputError,
    generate_structured,
)

SAMPLE_BRIEF = "A lighthouse keeper befriends a storm."


class Logline(BaseModel):
    title: str = Field(min_length=1)
    scenes: int = Field(ge=1)


VALID = {"title": "Keeper", "scenes": 3}


def online_model(server: OpenAIServer, tmp_path: Path) -> ChatOpenAI:
    provider = ModelProvider(
        api_key="test-key", base_url=server.base_url, recordings=tmp_path / "unused.json"
    )
    model = provider.chat_model(agent="script_writer", task="script")
    assert isinstance(model, ChatOpenAI)
    return model


async def ask(server: OpenAIServer, tmp_path: Path, **options: object) -> Logline:
    messages = [SystemMessage("You write loglines."), HumanMessage(SAMPLE_BRIEF)]
    return await generate_structured(
        online_model(server, tmp_path), Logline, messages, backoff_s=0, **options
    )


# --- structured output over the wire -------------------------------------------------------


async def test_structured_output_is_parsed_and_validated(openai_server, tmp_path):
    openai_server.replies.append(VALID)

    assert await ask(openai_server, tmp_path) == Logline(**VALID)

    [request] = openai_server.requests
    assert request["model"] == "gpt-4.1-mini"
    assert not request.get("stream")
    system, human = request["messages"]
    assert system["role"] == "system"
    assert system["content"].startswith("You write loglines.")
    assert '"scenes"' in system["content"]  # the JSON schema travels with the instruction
    assert human == {"role": "user", "content": SAMPLE_BRIEF}


async def test_fenced_json_with_prose_is_tolerated(openai_server, tmp_path):
    openai_server.replies.append(f"Here it is:\n```json\n{json.dumps(VALID)}\n```\nEnjoy!")

    assert await ask(openai_server, tmp_path) == Logline(**VALID)


async def test_invalid_answer_is_repaired_with_the_validation_error(openai_server, tmp_path):
    openai_server.replies += [{"title": "Keeper", "scenes": 0}, VALID]

    assert await ask(openai_server, tmp_path) == Logline(**VALID)

    first, repair = openai_server.requests
    *_, bad_answer, feedback = repair["messages"]
    assert repair["messages"][: len(first["messages"])] == first["messages"]
    assert bad_answer["role"] == "assistant"
    assert json.loads(bad_answer["content"]) == {"title": "Keeper", "scenes": 0}
    assert feedback["role"] == "user"
    assert "scenes" in feedback["content"]
    assert "greater than or equal to 1" in feedback["content"]


async def test_three_invalid_answers_raise_structured_output_error(openai_server, tmp_path):
    openai_server.replies += ["not json at all", {"title": ""}, {"title": "Keeper"}]

    with pytest.raises(StructuredOutputError, match="Field required"):
        await ask(openai_server, tmp_path)

    assert len(openai_server.requests) == 3


# --- transport errors ----------------------------------------------------------------------


async def test_server_errors_are_retried_visibly(openai_server, tmp_path):
    openai_server.replies += [ErrorReply(500), ErrorReply(500), VALID]
    progress: list[str] = []

    async def on_retry(message: str) -> None:
        progress.append(message)

    result = await ask(openai_server, tmp_path, label="logline", on_retry=on_retry)

    assert result == Logline(**VALID)
    assert progress == ["retrying logline (1/3)", "retrying logline (2/3)"]
    assert len(openai_server.requests) == 3


async def test_rate_limit_is_retried_with_a_sync_callback(openai_server, tmp_path):
    openai_server.replies += [ErrorReply(429), VALID]
    progress: list[str] = []

    await ask(openai_server, tmp_path, on_retry=progress.append)

    assert progress == ["retrying LLM call (1/3)"]


async def test_persistent_server_errors_raise_llm_unavailable(openai_server, tmp_path):
    openai_server.replies += [ErrorReply(500, "engine overloaded")] * 4

    with pytest.raises(LLMUnavailableError) as raised:
        await ask(openai_server, tmp_path)

    assert len(openai_server.requests) == 4
    message = str(raised.value)
    assert "gpt-4.1-mini" in message
    assert openai_server.base_url in message
    assert "engine overloaded" in message


async def test_rejected_key_fails_at_once(openai_server, tmp_path):
    openai_server.replies += [ErrorReply(401, "Incorrect API key provided"), VALID]

    with pytest.raises(LLMUnavailableError, match="Incorrect API key provided"):
        await ask(openai_server, tmp_path, on_retry=pytest.fail)

    assert len(openai_server.requests) == 1


async def test_unreachable_endpoint_raises_llm_unavailable(tmp_path):
    provider = ModelProvider(
        api_key="test-key", base_url="http://127.0.0.1:9/v1", recordings=tmp_path / "unused.json"
    )
    model = provider.chat_model(agent="script_writer", task="script")
    progress: list[str] = []

    with pytest.raises(LLMUnavailableError, match="after 1 retries"):
        await generate_structured(
            model,
            Logline,
            [HumanMessage(SAMPLE_BRIEF)],
            max_retries=1,
            backoff_s=0,
            on_retry=progress.append,
        )

    assert progress == ["retrying LLM call (1/1)"]


# --- offline sample model ------------------------------------------------------------------


@pytest.fixture
def recordings(tmp_path: Path) -> Path:
    path = tmp_path / "recordings.json"
    drafts = [{"title": "Draft one", "scenes": 1}, {"title": "Draft two", "scenes": 2}]
    path.write_text(json.dumps({"brief": SAMPLE_BRIEF, "responses": {"logline": drafts}}))
    return path


def test_offline_model_picks_the_revision_by_earlier_drafts(recordings):
    model = OfflineChatModel(task="logline", recordings=recordings)
    conversation = [SystemMessage("You write loglines."), HumanMessage(f"Brief: {SAMPLE_BRIEF}")]

    first = model.invoke(conversation)
    second = model.invoke([*conversation, first, HumanMessage("make it longer")])
    third = model.invoke([*conversation, first, HumanMessage("no"), second, HumanMessage("no")])

    assert json.loads(first.text)["title"] == "Draft one"
    assert json.loads(second.text)["title"] == "Draft two"
    assert json.loads(third.text)["title"] == "Draft two"  # the last recording repeats


async def test_offline_model_serves_generate_structured(recordings):
    model = ModelProvider(api_key=None, recordings=recordings).chat_model(
        agent="script_writer", task="logline"
    )

    result = await generate_structured(model, Logline, [HumanMessage(SAMPLE_BRIEF)])

    assert result == Logline(title="Draft one", scenes=1)


async def test_offline_model_refuses_other_briefs(recordings):
    model = OfflineChatModel(task="logline", recordings=recordings)

    with pytest.raises(NoModelConfiguredError) as raised:
        await generate_structured(model, Logline, [HumanMessage("A heist on the moon.")])

    message = str(raised.value)
    assert "OPENAI_API_KEY" in message
    assert "OPENAI_BASE_URL" in message
    assert "evals/datasets/sample_input.json" in message


def test_offline_model_replays_the_scene_it_is_asked_for(tmp_path):
    path = tmp_path / "recordings.json"
    by_scene = [{"1": {"title": "One", "scenes": 1}, "2": {"title": "Two", "scenes": 1}}]
    path.write_text(json.dumps({"brief": SAMPLE_BRIEF, "responses": {"beat": by_scene}}))
    provider = ModelProvider(api_key=None, recordings=path)

    second = provider.chat_model(agent="script_writer", task="beat", scene=2)
    third = provider.chat_model(agent="script_writer", task="beat", scene=3)

    assert json.loads(second.invoke([HumanMessage(SAMPLE_BRIEF)]).text)["title"] == "Two"
    with pytest.raises(NoModelConfiguredError, match="'beat', scene 3"):
        third.invoke([HumanMessage(SAMPLE_BRIEF)])


def test_offline_model_names_an_unknown_task(recordings):
    model = OfflineChatModel(task="soundtrack", recordings=recordings)

    with pytest.raises(NoModelConfiguredError, match="'soundtrack'"):
        model.invoke([HumanMessage(SAMPLE_BRIEF)])


# --- provider ------------------------------------------------------------------------------


def test_provider_without_key_is_offline(recordings):
    provider = ModelProvider(api_key=None, recordings=recordings)

    assert provider.offline
    assert "offline" in provider.describe()
    assert isinstance(provider.chat_model(agent="script_writer", task="logline"), OfflineChatModel)


def test_provider_with_key_builds_the_agents_model(tmp_path):
    provider = ModelProvider(
        api_key="sk-secret",
        base_url="http://127.0.0.1:1234/v1",
        agent_models={"script_writer": "gpt-4.1"},
        recordings=tmp_path / "unused.json",
        timeout_s=30,
    )

    writer = provider.chat_model(agent="script_writer", task="script")
    lister = provider.chat_model(agent="shot_lister", task="shots")

    assert not provider.offline
    assert isinstance(writer, ChatOpenAI)
    assert isinstance(lister, ChatOpenAI)
    assert (writer.model_name, lister.model_name) == ("gpt-4.1", "gpt-4.1-mini")
    assert writer.openai_api_base == "http://127.0.0.1:1234/v1"
    assert writer.max_retries == 0
    assert writer.request_timeout == 30
    assert not writer.streaming
    assert "gpt-4.1-mini at http://127.0.0.1:1234/v1" in provider.describe()
    assert "sk-secret" not in provider.describe()


async def test_requests_to_one_endpoint_share_its_slots(openai_server, tmp_path):
    openai_server.responder = lambda body: VALID
    openai_server.delay_s = 0.2
    providers = [
        ModelProvider(
            api_key="test-key",
            base_url=openai_server.base_url,
            recordings=tmp_path / "unused.json",
            concurrency=2,
        )
        for _ in range(2)
    ]
    messages = [SystemMessage("You write loglines."), HumanMessage(SAMPLE_BRIEF)]

    await asyncio.gather(
        *(
            generate_structured(
                provider.chat_model(agent="script_writer", task="logline"),
                Logline,
                messages,
                slots=provider.slots(),
            )
            for provider in providers
            for _ in range(3)
        )
    )

    assert providers[0].slots() is providers[1].slots()
    assert len(openai_server.requests) == 6
    assert openai_server.peak_in_flight == 2
