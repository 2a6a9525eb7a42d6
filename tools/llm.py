"""Chat models for the agents, and one robust way to get a validated artifact out of them.

``ModelProvider`` is the single factory every agent asks for a model: a ``ChatOpenAI`` for any
OpenAI-compatible endpoint when a key is configured, otherwise an ``OfflineChatModel`` that
replays recorded responses for the bundled sample brief so the demo runs with no LLM at all.

``generate_structured`` asks a model for one JSON object, validates it against a Pydantic
schema, repairs invalid answers conversationally and retries transient transport errors with
backoff, reporting each retry so the person sees it (DESIGN §4). Calls are never streamed.

Every call to an endpoint holds one of its slots (:meth:`ModelProvider.slots`): the process
sends at most ``concurrency`` requests to one endpoint at a time, however many agents and
scenes are drafting at once.

Example::

    provider = ModelProvider(api_key=None, recordings=Path("evals/datasets/sample_responses.json"))
    model = provider.chat_model(agent="script_writer", task="script")
    script = await generate_structured(model, Script, messages, label="script")
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import math
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

import openai
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, SecretStr

from tools import ledger
from tools.errors import ExpectedFailure

__all__ = [
    "OFFLINE_LLM_TYPE",
    "LLMError",
    "LLMUnavailableError",
    "ModelProvider",
    "NoModelConfiguredError",
    "OfflineChatModel",
    "StructuredOutputError",
    "generate_structured",
]

T = TypeVar("T", bound=BaseModel)

OFFLINE_LLM_TYPE = "auteur-offline-sample"

_DEFAULT_BASE_URL = "https://api.openai.com/v1"
_NO_AGENT_MODELS: Mapping[str, str] = MappingProxyType({})
_HOW_TO_CONFIGURE = (
    "To use your own brief, configure an LLM: set OPENAI_API_KEY (and OPENAI_BASE_URL for any "
    "OpenAI-compatible endpoint); choose models with AUTEUR_DEFAULT_MODEL or the per-agent "
    "model settings."
)
_NOT_THE_SAMPLE_BRIEF = (
    "No LLM is configured, and the offline sample model only knows the bundled sample brief "
    "(evals/datasets/sample_input.json). " + _HOW_TO_CONFIGURE
)
# The statuses the openai SDK itself treats as worth retrying; 5xx is added in `_is_transient`.
_TRANSIENT_STATUSES = frozenset({408, 409, 429})


class LLMError(ExpectedFailure):
    """Base of every error this module raises; a run stops on it with the message shown."""


class NoModelConfiguredError(LLMError):
    """The offline sample model was asked for something it has no recording of."""


class StructuredOutputError(LLMError):
    """The model kept answering with JSON that does not validate against the schema."""


class LLMUnavailableError(LLMError):
    """The LLM endpoint refused the request or stayed unreachable through every retry."""


# --- model factory -------------------------------------------------------------------------


class ModelProvider:
    """Hands each agent its chat model: the configured endpoint, or the offline sample model."""

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str | None = None,
        default_model: str = "gpt-4.1-mini",
        agent_models: Mapping[str, str] = _NO_AGENT_MODELS,
        recordings: Path,
        timeout_s: float = 120,
        concurrency: int = 8,
    ) -> None:
        self._api_key = SecretStr(api_key) if api_key else None
        self._base_url = base_url
        self._default_model = default_model
        self._agent_models = dict(agent_models)
        self._recordings = recordings
        self._timeout_s = timeout_s
        self._concurrency = concurrency

    @property
    def offline(self) -> bool:
        """True when no API key is configured and the offline sample model stands in."""
        return self._api_key is None

    def describe(self) -> str:
        """Return a human label for logs and the UI; it never contains the key."""
        if self.offline:
            return (
                "offline sample model — replays recorded responses for the sample brief "
                "(no LLM configured)"
            )
        label = f"{self._default_model} at {self._base_url or _DEFAULT_BASE_URL}"
        if self._agent_models:
            overrides = ", ".join(f"{a}: {m}" for a, m in sorted(self._agent_models.items()))
            label += f" ({overrides})"
        return label

    def model_name(self, agent: str) -> str:
        """Return the model ``agent`` uses: its own, the default, or the offline sample model."""
        if self.offline:
            return OFFLINE_LLM_TYPE
        return self._agent_models.get(agent, self._default_model)

    def slots(self) -> asyncio.Semaphore:
        """The endpoint's request slots in this process: one is held per request in flight.

        Shared by every provider of the process that names the same endpoint and limit, so
        concurrent runs and scenes together stay within ``concurrency`` requests.
        """
        endpoint = "offline" if self.offline else self._base_url or _DEFAULT_BASE_URL
        return _endpoint_slots(endpoint, self._concurrency)

    def chat_model(self, *, agent: str, task: str, scene: int | None = None) -> BaseChatModel:
        """Build the chat model ``agent`` uses for ``task`` (scene ``scene`` of it, if given).

        The task (and scene) pick the offline recording; an endpoint's model ignores them.
        """
        if self._api_key is None:
            return OfflineChatModel(task=task, scene=scene, recordings=self._recordings)
        # Our own retry loop in `generate_structured` retries, so that retries are visible.
        return ChatOpenAI(
            model=self.model_name(agent),
            api_key=self._api_key,
            base_url=self._base_url,
            max_retries=0,
            timeout=self._timeout_s,
            streaming=False,
            disable_streaming=True,
        )


# An asyncio.Semaphore belongs to the event loop it is used on: one set of slots per loop.
_slots: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str, int], asyncio.Semaphore]
] = weakref.WeakKeyDictionary()


def _endpoint_slots(endpoint: str, concurrency: int) -> asyncio.Semaphore:
    per_loop = _slots.setdefault(asyncio.get_running_loop(), {})
    return per_loop.setdefault((endpoint, concurrency), asyncio.Semaphore(concurrency))


# --- offline sample model ------------------------------------------------------------------


class _Recordings(BaseModel):
    brief: str
    responses: dict[str, list[Any]]

    def mentions_brief(self, text: str) -> bool:
        """Whether ``text`` contains the sample brief, ignoring how whitespace was wrapped."""
        return " ".join(self.brief.split()) in " ".join(text.split())


class OfflineChatModel(BaseChatModel):
    """Replays recorded responses for the sample brief, so the demo runs with no LLM.

    The recordings file is ``{"brief": "...", "responses": {"<task>": [<revision 0>, ...]}}``.
    Each earlier draft in the conversation is one ``AIMessage`` (followed by the person's
    feedback), so the number of ``AIMessage``s picks the revision to replay; past the last
    recorded revision the last one repeats. A task drafted scene by scene records each
    revision as ``{"<scene number>": <answer>, ...}``, and ``scene`` picks the answer. Token
    usage is reported as a real model's is, estimated at four characters per token, so traces
    and the cost ledger show it.
    """

    task: str
    recordings: Path
    scene: int | None = None
    model_name: str = OFFLINE_LLM_TYPE

    @property
    def _llm_type(self) -> str:
        return OFFLINE_LLM_TYPE

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"task": self.task, "scene": self.scene, "recordings": str(self.recordings)}

    @cached_property
    def _recorded(self) -> _Recordings:
        return _Recordings.model_validate_json(self.recordings.read_text(encoding="utf-8"))

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if not any(self._recorded.mentions_brief(message.text) for message in messages):
            raise NoModelConfiguredError(_NOT_THE_SAMPLE_BRIEF)
        revisions = self._recorded.responses.get(self.task)
        if not revisions:
            raise NoModelConfiguredError(
                f"The offline sample model has no recorded response for task {self.task!r}. "
                + _HOW_TO_CONFIGURE
            )
        revision = sum(isinstance(message, AIMessage) for message in messages)
        answer = revisions[min(revision, len(revisions) - 1)]
        if self.scene is not None:
            answer = answer.get(str(self.scene))
            if answer is None:
                raise NoModelConfiguredError(
                    f"The offline sample model has no recorded response for task {self.task!r}, "
                    f"scene {self.scene}. " + _HOW_TO_CONFIGURE
                )
        content = json.dumps(answer)
        reply = AIMessage(
            content,
            usage_metadata=_estimated_usage(messages, content),
            response_metadata={"model_name": self.model_name},
        )
        return ChatResult(generations=[ChatGeneration(message=reply)])


def _estimated_usage(messages: Sequence[BaseMessage], reply: str) -> UsageMetadata:
    input_tokens = sum(math.ceil(len(message.text) / 4) for message in messages)
    output_tokens = math.ceil(len(reply) / 4)
    return UsageMetadata(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=input_tokens + output_tokens,
    )


# --- structured generation -----------------------------------------------------------------


async def generate_structured(
    model: BaseChatModel,
    schema: type[T],
    messages: Sequence[BaseMessage],
    *,
    label: str = "LLM call",
    max_repairs: int = 2,
    max_retries: int = 3,
    backoff_s: float = 1.0,
    on_retry: Callable[[str], Awaitable[None] | None] | None = None,
    slots: asyncio.Semaphore | None = None,
) -> T:
    """Ask ``model`` for one JSON object and return it validated as ``schema``.

    An answer that is not valid JSON or fails validation gets a repair turn: the bad answer and
    the validation error go back to the model, at most ``max_repairs`` times, then
    ``StructuredOutputError``. Transient transport errors are retried ``max_retries`` times with
    exponential backoff, calling ``on_retry("retrying <label> (n/max)")`` before each retry, then
    ``LLMUnavailableError``; a rejected request (401, 400, ...) raises it at once.

    Each call is named ``label`` (the generation's name in traces) and its token usage is
    counted in the run's cost ledger (:mod:`tools.ledger`). With ``slots``, each request holds
    one slot while it is in flight (not while it waits to be retried).
    """
    conversation = _with_json_instruction(messages, schema)
    repairs = 0
    while True:
        reply = await _invoke_with_retries(
            model,
            conversation,
            label=label,
            max_retries=max_retries,
            backoff_s=backoff_s,
            on_retry=on_retry,
            slots=slots,
        )
        try:
            return _parse_reply(reply.text, schema)
        except ValueError as error:
            if repairs == max_repairs:
                raise StructuredOutputError(
                    f"{label}: the model's answer is still not a valid {schema.__name__} after "
                    f"{max_repairs} repair attempts. Last error: {error}"
                ) from error
            repairs += 1
            conversation = [*conversation, reply, HumanMessage(_repair_request(schema, error))]


def _with_json_instruction(
    messages: Sequence[BaseMessage], schema: type[BaseModel]
) -> list[BaseMessage]:
    """Merge the JSON-only instruction into the system turn, or add one carrying it."""
    instruction = (
        "Answer with exactly one JSON object that validates against this JSON schema, and "
        "nothing else: no prose, no Markdown.\n\n"
        + json.dumps(schema.model_json_schema(), indent=2)
    )
    if messages and isinstance(messages[0], SystemMessage) and isinstance(messages[0].content, str):
        return [SystemMessage(f"{messages[0].content}\n\n{instruction}"), *messages[1:]]
    return [SystemMessage(instruction), *messages]


def _parse_reply(text: str, schema: type[T]) -> T:
    """Validate the outermost ``{...}`` of ``text``, tolerating fences and surrounding prose.

    Raises ``ValueError`` (``pydantic.ValidationError`` included) when there is nothing valid.
    """
    start, end = text.find("{"), text.rfind("}")
    if start == -1 or end < start:
        raise ValueError("the answer contains no JSON object")
    return schema.model_validate_json(text[start : end + 1])


def _repair_request(schema: type[BaseModel], error: ValueError) -> str:
    return (
        f"That answer is not a valid {schema.__name__}:\n\n{error}\n\n"
        "Reply with the corrected JSON object only, following the schema."
    )


async def _invoke_with_retries(
    model: BaseChatModel,
    messages: list[BaseMessage],
    *,
    label: str,
    max_retries: int,
    backoff_s: float,
    on_retry: Callable[[str], Awaitable[None] | None] | None,
    slots: asyncio.Semaphore | None,
) -> AIMessage:
    attempt = 0
    while True:
        try:
            async with slots or contextlib.nullcontext():
                reply = await model.ainvoke(messages, config={"run_name": label})
        except openai.APIError as error:
            if not _is_transient(error):
                raise LLMUnavailableError(
                    f"{label}: {_endpoint(model)} rejected the request: {error}. "
                    "Check OPENAI_API_KEY, OPENAI_BASE_URL and the configured model."
                ) from error
            if attempt == max_retries:
                raise LLMUnavailableError(
                    f"{label}: {_endpoint(model)} is unavailable after {max_retries} retries. "
                    f"Last error: {error}"
                ) from error
        else:
            _record_usage(model, reply)
            return reply
        attempt += 1
        if on_retry is not None:
            await _notify(on_retry, f"retrying {label} ({attempt}/{max_retries})")
        await asyncio.sleep(backoff_s * 2 ** (attempt - 1))


def _record_usage(model: BaseChatModel, reply: AIMessage) -> None:
    """Count the call in the cost ledger, under the model name the price table uses."""
    usage = reply.usage_metadata or {}
    ledger.record_tokens(
        model=getattr(model, "model_name", None) or model.get_name(),
        input_tokens=usage.get("input_tokens", 0),
        output_tokens=usage.get("output_tokens", 0),
    )


def _is_transient(error: openai.APIError) -> bool:
    if isinstance(error, openai.APIConnectionError):  # includes APITimeoutError
        return True
    if isinstance(error, openai.APIStatusError):
        return error.status_code >= 500 or error.status_code in _TRANSIENT_STATUSES
    return False


def _endpoint(model: BaseChatModel) -> str:
    """Which model at which endpoint, for error messages; duck-typed over ``ChatOpenAI``."""
    name = getattr(model, "model_name", None) or model.get_name()
    base_url = getattr(model, "openai_api_base", None) or _DEFAULT_BASE_URL
    return f"{name} at {base_url}"


async def _notify(on_retry: Callable[[str], Awaitable[None] | None], message: str) -> None:
    result = on_retry(message)
    if inspect.isawaitable(result):
        await result
