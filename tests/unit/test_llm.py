"""The LLM layer against the real ChatOpenAI client and an OpenAI wire-protocol double."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field

from tests.doubles.openai_server import ErrorReply, OpenAIServer, estimated_tokens
from tools import ledger
from tools.llm import (
    AgentLLM,
    Call,
    LLMUnavailableError,
    ModelProvider,
    NoModelConfiguredError,
    OfflineChatModel,
    RetryPolicy,
    StructuredOutputError,
    generate_structured,
    lenient_json,
    response_schema,
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


async def ask(
    server: OpenAIServer, tmp_path: Path, model: ChatOpenAI | None = None, **options: Any
) -> Logline:
    messages = [SystemMessage("You write loglines."), HumanMessage(SAMPLE_BRIEF)]
    return await generate_structured(
        model or online_model(server, tmp_path), Logline, messages, backoff_s=0, **options
    )


# --- structured output over the wire, each mode --------------------------------------------


async def test_schema_mode_sends_the_schema_as_response_format(openai_server, tmp_path):
    openai_server.replies.append(VALID)

    assert await ask(openai_server, tmp_path) == Logline(**VALID)

    [request] = openai_server.requests
    assert request["model"] == "gpt-4.1-mini"
    assert not request.get("stream")
    assert request["max_completion_tokens"] == 4096
    response_format = request["response_format"]
    assert response_format["type"] == "json_schema"
    spec = response_format["json_schema"]
    assert (spec["name"], spec["strict"]) == ("Logline", True)
    assert spec["schema"]["additionalProperties"] is False
    assert spec["schema"]["required"] == ["title", "scenes"]
    system, human = request["messages"]
    assert system["role"] == "system"
    assert system["content"].startswith("You write loglines.")
    assert '"scenes"' not in system["content"]  # the schema travels in the response format
    assert human == {"role": "user", "content": SAMPLE_BRIEF}


async def test_json_mode_asks_for_a_json_object_with_the_schema_in_the_prompt(
    openai_server, tmp_path
):
    openai_server.replies.append(VALID)

    assert await ask(openai_server, tmp_path, mode="json_mode") == Logline(**VALID)

    [request] = openai_server.requests
    assert request["response_format"] == {"type": "json_object"}
    assert '"scenes"' in request["messages"][0]["content"]


async def test_prompt_mode_puts_the_inlined_schema_in_the_prompt(openai_server, tmp_path):
    openai_server.replies.append(VALID)

    assert await ask(openai_server, tmp_path, mode="prompt") == Logline(**VALID)

    [request] = openai_server.requests
    assert "response_format" not in request
    system = request["messages"][0]["content"]
    assert '"scenes"' in system
    assert "$defs" not in system


async def test_a_small_model_validates_only_when_the_schema_is_sent(openai_server, tmp_path):
    openai_server.responder = lambda body: VALID
    openai_server.unconstrained = 'Sure! Here is the schema: {"$defs": {"Logline": {}}}'

    assert await ask(openai_server, tmp_path, mode="json_schema") == Logline(**VALID)
    assert len(openai_server.requests) == 1
    for mode in ("json_mode", "prompt"):
        with pytest.raises(StructuredOutputError):
            await ask(openai_server, tmp_path, mode=mode)
    assert len(openai_server.requests) == 1 + 3 + 3


async def test_a_schema_that_cannot_be_strict_is_sent_unstrict(openai_server, tmp_path):
    class Tagged(BaseModel):
        tags: dict[str, int]

    openai_server.replies.append({"tags": {"a": 1}})

    result = await generate_structured(
        online_model(openai_server, tmp_path), Tagged, [HumanMessage(SAMPLE_BRIEF)]
    )

    assert result.tags == {"a": 1}
    assert openai_server.requests[0]["response_format"]["json_schema"]["strict"] is False
    assert response_schema(Tagged)[1] is False


async def test_a_strict_server_refusal_of_the_schema_names_the_setting(openai_server, tmp_path):
    openai_server.replies.append(
        ErrorReply(
            400,
            "Invalid schema for response_format 'Logline': In context=(), 'additionalProperties' "
            "is required to be supplied and to be false.",
        )
    )

    # langchain-openai warns of the refused schema as it passes the error on
    with (
        pytest.raises(LLMUnavailableError, match="AUTEUR_STRUCTURED_OUTPUT"),
        pytest.warns(UserWarning, match="Invalid schema for OpenAI's structured output"),
    ):
        await ask(openai_server, tmp_path)


def test_nested_models_are_inlined_and_made_strict():
    class Line(BaseModel):
        text: str
        speaker: str | None = None

    class Scene(BaseModel):
        lines: list[Line] = []

    schema, strict = response_schema(Scene)

    assert strict
    assert "$defs" not in json.dumps(schema)
    line = schema["properties"]["lines"]["items"]
    assert line["required"] == ["text", "speaker"]
    assert line["additionalProperties"] is False
    assert "default" not in json.dumps(schema)


def test_lenient_json_reads_fences_prose_and_trailing_commas():
    text = 'Sure!\n```json\n{"title": "a, }", "scenes": [1, 2,],}\n```\nEnjoy!'

    assert lenient_json(text) == {"title": "a, }", "scenes": [1, 2]}
    with pytest.raises(ValueError, match="no JSON object"):
        lenient_json("I cannot do that.")


async def test_fenced_json_with_prose_and_trailing_commas_is_tolerated(openai_server, tmp_path):
    openai_server.replies.append('Here it is:\n```json\n{"title": "Keeper", "scenes": 3,}\n```')

    assert await ask(openai_server, tmp_path, mode="prompt") == Logline(**VALID)


async def test_invalid_answer_is_repaired_with_the_validation_error(openai_server, tmp_path):
    openai_server.replies += [{"title": "Keeper", "scenes": 0}, VALID]

    assert await ask(openai_server, tmp_path, mode="prompt") == Logline(**VALID)

    first, repair = openai_server.requests
    *_, bad_answer, feedback = repair["messages"]
    assert repair["messages"][: len(first["messages"])] == first["messages"]
    assert bad_answer["role"] == "assistant"
    assert json.loads(bad_answer["content"]) == {"title": "Keeper", "scenes": 0}
    assert feedback["role"] == "user"
    assert "scenes" in feedback["content"]
    assert "greater than or equal to 1" in feedback["content"]


async def test_repairs_do_not_grow_with_each_bad_answer(openai_server, tmp_path):
    openai_server.replies += ["not json at all", {"title": "x" * 400}, {"title": "x" * 400}]

    with pytest.raises(StructuredOutputError, match="Field required"):
        await ask(openai_server, tmp_path, mode="prompt")

    first, second, third = openai_server.requests
    assert len(second["messages"]) == len(first["messages"]) + 1  # prose is not sent back
    assert "not json at all" not in json.dumps(second["messages"])
    assert len(third["messages"]) == len(first["messages"]) + 2  # only the latest answer
    assert len(json.dumps(third["messages"])) < len(json.dumps(first["messages"])) + 1000


async def test_three_invalid_answers_raise_structured_output_error(openai_server, tmp_path):
    openai_server.replies += ["not json at all", {"title": ""}, {"title": "Keeper"}]

    with pytest.raises(StructuredOutputError, match="Field required"):
        await ask(openai_server, tmp_path, mode="prompt")

    assert len(openai_server.requests) == 3


# --- context overflow ----------------------------------------------------------------------


@pytest.mark.parametrize("style", ["openai", "vllm", "llama.cpp"])
async def test_a_context_overflow_ends_in_structured_output_error(openai_server, tmp_path, style):
    openai_server.responder = lambda body: VALID
    openai_server.context_tokens = 20
    openai_server.overflow_style = style

    with pytest.raises(StructuredOutputError, match="does not fit the context") as raised:
        await ask(openai_server, tmp_path, on_retry=pytest.fail if style == "openai" else None)

    assert "--ctx-size" in str(raised.value)
    assert "OPENAI_API_KEY" not in str(raised.value)  # not a rejected key


async def test_an_overflow_of_the_completion_budget_asks_for_fewer_tokens(openai_server, tmp_path):
    openai_server.responder = lambda body: VALID
    openai_server.context_tokens = 1000
    openai_server.overflow_style = "vllm"
    progress: list[str] = []

    assert await ask(openai_server, tmp_path, on_retry=progress.append) == Logline(**VALID)

    first, second = openai_server.requests
    prompt = estimated_tokens(first["messages"])
    assert first["max_completion_tokens"] == 4096
    assert second["max_completion_tokens"] == 1000 - prompt - 16
    assert progress == [
        f"LLM call: too long for the model's context; asking for at most "
        f"{1000 - prompt - 16} tokens"
    ]


async def test_an_overflowing_repair_is_sent_without_the_answer(openai_server, tmp_path):
    long_title = {"title": "x" * 2000}
    openai_server.replies += [long_title, VALID]
    model = online_model(openai_server, tmp_path).model_copy(update={"max_tokens": None})

    def fit_the_first_request(body: dict[str, Any]) -> None:
        if openai_server.context_tokens is None:
            openai_server.context_tokens = estimated_tokens(body["messages"]) + 200

    openai_server.on_request = fit_the_first_request

    assert await ask(openai_server, tmp_path, model, mode="prompt") == Logline(**VALID)

    first, with_answer, without = openai_server.requests
    assert len(with_answer["messages"]) == len(first["messages"]) + 2
    assert len(without["messages"]) == len(first["messages"]) + 1
    assert "x" * 2000 not in json.dumps(without["messages"])


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


async def test_a_timeout_is_retried_once_and_names_its_setting(openai_server, tmp_path):
    openai_server.responder = lambda body: VALID
    openai_server.delay_s = 0.5
    provider = ModelProvider(
        api_key="test-key",
        base_url=openai_server.base_url,
        recordings=tmp_path / "unused.json",
        timeout_s=0.1,
    )
    progress: list[str] = []

    with pytest.raises(LLMUnavailableError) as raised:
        await ask(
            openai_server,
            tmp_path,
            provider.chat_model(agent="script_writer", task="logline"),
            label="logline",
            on_retry=progress.append,
        )

    message = str(raised.value)
    assert "AUTEUR_LLM_TIMEOUT_S" in message
    assert "0.1 s" in message
    assert len(openai_server.requests) == 2  # once more, not four times in silence
    assert progress == ["logline: no answer within 0.1 s (AUTEUR_LLM_TIMEOUT_S); retrying (1/1)"]


async def test_timeout_retries_are_a_setting(openai_server, tmp_path):
    openai_server.responder = lambda body: VALID
    openai_server.delay_s = 0.5
    model = ModelProvider(
        api_key="test-key",
        base_url=openai_server.base_url,
        recordings=tmp_path / "unused.json",
        timeout_s=0.1,
    ).chat_model(agent="script_writer", task="logline")

    with pytest.raises(LLMUnavailableError, match="AUTEUR_LLM_TIMEOUT_S"):
        await ask(openai_server, tmp_path, model, timeout_retries=0, on_retry=pytest.fail)

    assert len(openai_server.requests) == 1


# --- every call recorded -------------------------------------------------------------------


async def test_every_call_is_reported_and_counted_in_the_ledger(openai_server, tmp_path):
    openai_server.replies += [ErrorReply(500), {"title": "Keeper"}, VALID]
    calls: list[Call] = []

    with ledger.collect({}) as spent:
        await ask(openai_server, tmp_path, mode="prompt", on_call=calls.append)

    assert [call.outcome for call in calls] == ["error", "invalid", "valid"]
    assert "500" in (calls[0].error or "")
    assert "scenes" in (calls[1].error or "")
    assert all(call.mode == "prompt" for call in calls)
    assert calls[2].input_tokens > 0
    assert spent.summary()["totals"]["llm_calls"] == len(calls) == len(openai_server.requests)


async def test_a_failed_structured_output_reports_every_call(openai_server, tmp_path):
    openai_server.replies += ["no", "no", "no"]
    calls: list[Call] = []

    with ledger.collect({}) as spent, pytest.raises(StructuredOutputError):
        await ask(openai_server, tmp_path, mode="prompt", on_call=calls.append)

    assert [call.outcome for call in calls] == ["invalid"] * 3
    assert spent.summary()["totals"]["llm_calls"] == 3


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


def test_provider_settings_per_model_and_agent(tmp_path):
    provider = ModelProvider(
        api_key="sk-secret",
        agent_models={"shot_lister": "local-small"},
        recordings=tmp_path / "unused.json",
        model_structured_output={"local-small": "json_mode"},
        max_tokens=2048,
        temperature=0.7,
        agent_llm={"shot_lister": AgentLLM(temperature=0.2)},
        retry=RetryPolicy(retries=1, timeout_retries=0),
    )

    lister = provider.chat_model(agent="shot_lister", task="shots")
    writer = provider.chat_model(agent="script_writer", task="script")

    assert provider.structured_output("shot_lister") == "json_mode"
    assert provider.structured_output("script_writer") == "json_schema"
    assert (lister.max_tokens, lister.temperature) == (2048, 0.2)
    assert (writer.max_tokens, writer.temperature) == (2048, 0.7)
    assert provider.retry.timeout_retries == 0
    assert ModelProvider(api_key=None, recordings=tmp_path).structured_output("x") == "prompt"


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
