"""Chat models for the agents, and one robust way to get a validated artifact out of them.

``ModelProvider`` is the single factory every agent asks for a model: a ``ChatOpenAI`` for any
OpenAI-compatible endpoint when a key is configured, otherwise an ``OfflineChatModel`` that
replays recorded responses for the bundled sample brief so the demo runs with no LLM at all.

``generate_structured`` asks a model for one JSON object the strongest way its endpoint
offers (the schema as ``response_format``, JSON mode, or the prompt; per model in settings),
reads it leniently, validates it against a Pydantic schema, repairs invalid answers with
small repair turns, shortens a request the model's context cannot hold, and retries transient
transport errors with backoff, reporting each retry so the person sees it (DESIGN §4). Calls
are never streamed.

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
import re
import sys
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, TypeGuard, TypeVar

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from pydantic import BaseModel, SecretStr, ValidationError

from tools import ledger
from tools.errors import ExpectedFailure
from tools.llm_options import OFFLINE_LLM_TYPE, AgentLLM, RetryPolicy, StructuredOutput

if TYPE_CHECKING:
    # The OpenAI SDK and its LangChain client load with the first endpoint model (a second
    # of imports): a process on the offline sample model never needs them.
    import openai
    from langchain_openai import ChatOpenAI

__all__ = [
    "OFFLINE_LLM_TYPE",
    "AgentLLM",
    "Call",
    "LLMError",
    "LLMUnavailableError",
    "ModelProvider",
    "NoModelConfiguredError",
    "OfflineChatModel",
    "RetryPolicy",
    "StructuredOutput",
    "StructuredOutputError",
    "estimated_usage",
    "generate_structured",
    "lenient_json",
    "response_schema",
]

T = TypeVar("T", bound=BaseModel)

# A structured answer is no chat message: LangGraph's "messages" stream (agent-chat-ui's
# messages-tuple) leaves out calls tagged "nostream"; the stages' own messages show instead.
_CALL_CONFIG: dict[str, Any] = {"tags": ["nostream"]}
_DEFAULT_BASE_URL = "https://api.openai.com/v1"
_NO_AGENT_MODELS: Mapping[str, str] = MappingProxyType({})
_NO_MODES: Mapping[str, StructuredOutput] = MappingProxyType({})
_HOW_TO_CONFIGURE = (
    "To use your own brief, configure an LLM: set OPENAI_API_KEY (and OPENAI_BASE_URL for any "
    "OpenAI-compatible endpoint); choose models with AUTEUR_DEFAULT_MODEL or the per-agent "
    "model settings (README: Make your own film)."
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


_NO_AGENT_LLM: Mapping[str, Any] = MappingProxyType({})


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
        conversation: Path | None = None,
        timeout_s: float = 120,
        concurrency: int = 8,
        structured_output: StructuredOutput = "json_schema",
        model_structured_output: Mapping[str, StructuredOutput] = _NO_MODES,
        max_tokens: int | None = 4096,
        temperature: float | None = None,
        agent_llm: Mapping[str, AgentLLM] = _NO_AGENT_LLM,
        retry: RetryPolicy = RetryPolicy(),
    ) -> None:
        self._api_key = SecretStr(api_key) if api_key else None
        self._base_url = base_url
        self._default_model = default_model
        self._agent_models = dict(agent_models)
        self._recordings = recordings
        self._conversation = conversation
        self._timeout_s = timeout_s
        self._concurrency = concurrency
        self._structured_output = structured_output
        self._model_structured_output = dict(model_structured_output)
        self._defaults = AgentLLM(max_tokens=max_tokens, temperature=temperature)
        self._agent_llm = dict(agent_llm)
        self.retry = retry
        """The retry policy every call of these models follows."""
        self._chat_models: dict[str, ChatOpenAI] = {}

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

    def structured_output(self, agent: str) -> StructuredOutput:
        """How ``agent``'s model is asked for artifacts: its model's setting, or the default.

        The offline sample model is asked by prompt (it replays recordings).
        """
        if self.offline:
            return "prompt"
        return self._model_structured_output.get(self.model_name(agent), self._structured_output)

    def request_settings(self, agent: str) -> AgentLLM:
        """``agent``'s max tokens and temperature: its own, else the defaults."""
        own = self._agent_llm.get(agent)
        if own is None:
            return self._defaults
        return self._defaults.model_copy(update=own.model_dump(exclude_none=True))

    def slots(self) -> asyncio.Semaphore:
        """The endpoint's request slots in this process: one is held per request in flight.

        Shared by every provider of the process that names the same endpoint and limit, so
        concurrent runs and scenes together stay within ``concurrency`` requests.
        """
        endpoint = "offline" if self.offline else self._base_url or _DEFAULT_BASE_URL
        return _endpoint_slots(endpoint, self._concurrency)

    def chat_model(self, *, agent: str, task: str, scene: int | None = None) -> BaseChatModel:
        """The chat model ``agent`` uses for ``task`` (scene ``scene`` of it, if given).

        The task (and scene) pick the offline recording; an endpoint's model ignores them.
        """
        if self._api_key is None:
            return OfflineChatModel(task=task, scene=scene, recordings=self._recordings)
        if (model := self._chat_models.get(agent)) is None:
            model = self._chat_models[agent] = self._endpoint_model(agent)
        return model

    def chat_agent(self, *, agent: str) -> BaseChatModel:
        """The model a chat agent talks and calls tools with (the director).

        Offline, the sample conversation's script plays it.

        Raises:
            NoModelConfiguredError: Offline, with no sample conversation given.
        """
        if self._api_key is not None:
            return self.chat_model(agent=agent, task="chat")
        if self._conversation is None:
            raise NoModelConfiguredError(
                f"{agent} needs a chat model, and none is configured. " + _HOW_TO_CONFIGURE
            )
        from tools.offline_chat import ScriptedChatModel  # it imports this module

        return ScriptedChatModel(script=self._conversation)

    def _endpoint_model(self, agent: str) -> ChatOpenAI:
        """A new client of the endpoint's model for ``agent``: built once, then reused."""
        from langchain_openai import ChatOpenAI

        settings = self.request_settings(agent)
        # Our own retry loop in `generate_structured` retries, so that retries are visible.
        return ChatOpenAI(
            model=self.model_name(agent),
            api_key=self._api_key,
            base_url=self._base_url,
            max_retries=0,
            timeout=self._timeout_s,
            streaming=False,
            disable_streaming=True,
            max_tokens=settings.max_tokens,
            temperature=settings.temperature,
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
            usage_metadata=estimated_usage(messages, content),
            response_metadata={"model_name": self.model_name},
        )
        return ChatResult(generations=[ChatGeneration(message=reply)])


def estimated_usage(messages: Sequence[BaseMessage], reply: str) -> UsageMetadata:
    """Token usage as a real model reports it, estimated at four characters a token."""
    input_tokens = sum(math.ceil(len(message.text) / 4) for message in messages)
    output_tokens = math.ceil(len(reply) / 4)
    return UsageMetadata(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=input_tokens + output_tokens,
    )


# --- structured generation -----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Call:
    """What one request to the model came to, for the run's generation records.

    ``outcome`` is ``valid`` (the answer is the artifact), ``invalid`` (an answer that does not
    validate: a repair follows) or ``error`` (no answer: a transport error, a timeout, a
    context overflow); ``error`` says what went wrong.
    """

    outcome: Literal["valid", "invalid", "error"]
    mode: StructuredOutput
    input_tokens: int = 0
    output_tokens: int = 0
    error: str | None = None


async def generate_structured(
    model: BaseChatModel,
    schema: type[T],
    messages: Sequence[BaseMessage],
    *,
    label: str = "LLM call",
    mode: StructuredOutput = "json_schema",
    max_repairs: int = 2,
    max_retries: int = 3,
    timeout_retries: int = 1,
    backoff_s: float = 1.0,
    on_retry: Callable[[str], Awaitable[None] | None] | None = None,
    on_call: Callable[[Call], None] | None = None,
    slots: asyncio.Semaphore | None = None,
) -> T:
    """Ask ``model`` for one JSON object and return it validated as ``schema``.

    ``mode`` is how the artifact is asked for: ``json_schema`` sends the schema as the
    request's ``response_format`` (constrained output: OpenAI structured outputs, vLLM,
    llama.cpp's server, Ollama), ``json_mode`` asks for any JSON object
    (``{"type": "json_object"}``) with the schema in the prompt, ``prompt`` only puts the
    schema in the prompt. A model that is not an OpenAI-compatible endpoint's (the offline
    sample model) is always asked by prompt. Answers are read leniently (Markdown fences,
    prose around the object, trailing commas) before they are validated.

    An invalid answer gets a repair turn, at most ``max_repairs`` times, then
    ``StructuredOutputError``. A repair is the original request plus what the model needs to
    fix it — the validation errors, and its answer only when that answer was JSON — so the
    prompt never grows with each failure. A request the model's context cannot hold is
    shortened (the repair without the answer, fewer completion tokens, earlier drafts left
    out) and, when nothing more can be left out, ends in ``StructuredOutputError`` too: the
    stage's no-valid-draft gate, never a dead run.

    Transient transport errors are retried ``max_retries`` times with exponential backoff and
    a timeout ``timeout_retries`` times, calling ``on_retry(message)`` before each retry;
    then ``LLMUnavailableError`` (a timeout's names ``AUTEUR_LLM_TIMEOUT_S``). A rejected
    request (401, 404, ...) raises it at once.

    Every request is counted in the run's cost ledger (:mod:`tools.ledger`), failed or not,
    and reported to ``on_call`` as a :class:`Call`. Each call is named ``label`` (the
    generation's name in traces). With ``slots``, each request holds one slot while it is in
    flight (not while it waits to be retried).
    """
    effective = mode if _is_endpoint_model(model) else "prompt"
    base = _with_json_instruction(messages, schema, effective)
    conversation = base
    shortened: set[str] = set()
    repairs = 0
    while True:
        try:
            reply = await _invoke_with_retries(
                _structured(model, schema, effective),
                conversation,
                model=model,
                label=label,
                mode=effective,
                max_retries=max_retries,
                timeout_retries=timeout_retries,
                backoff_s=backoff_s,
                on_retry=on_retry,
                on_call=on_call,
                slots=slots,
            )
        except _ContextOverflowError as overflow:
            shorter = _shorten(conversation, base, model, overflow, shortened)
            if shorter is None:
                raise StructuredOutputError(_overflow_message(label, model, overflow)) from overflow
            conversation, base, model, how = shorter
            if on_retry is not None:
                await _notify(on_retry, f"{label}: too long for the model's context; {how}")
            continue
        usage = reply.usage_metadata or {}
        tokens = {
            "input_tokens": usage.get("input_tokens", 0),
            "output_tokens": usage.get("output_tokens", 0),
        }
        try:
            result = _parse_reply(reply.text, schema)
        except ValueError as error:
            problem = _describe(error)
            _report(on_call, Call(outcome="invalid", mode=effective, error=problem, **tokens))
            if repairs == max_repairs:
                raise StructuredOutputError(
                    f"{label}: the model's answer is still not a valid {schema.__name__} after "
                    f"{max_repairs} repair attempts. Last error: {problem}"
                ) from error
            repairs += 1
            conversation = [*base, *_repair_turn(schema, error)]
            continue
        _report(on_call, Call(outcome="valid", mode=effective, **tokens))
        return result


def response_schema(schema: type[BaseModel]) -> tuple[dict[str, Any], bool]:
    """The JSON schema sent to a model for ``schema``, and whether it is strict-mode ready.

    References (``$defs``) are inlined, so a model never sees (nor echoes) them. For strict
    mode (OpenAI structured outputs) every object lists all its properties as required and
    allows no others, and no ``default`` is given; a schema with a free-form object (a
    ``dict`` field) cannot be strict and is sent with ``strict: false``, which vLLM,
    llama.cpp and Ollama constrain to all the same.
    """
    raw = schema.model_json_schema()
    inlined = _inline_refs(raw, raw.get("$defs", {}), ())
    if inlined is _RECURSIVE:  # keep the references
        return raw, False
    strict = _make_strict(inlined)
    return (inlined, False) if strict is _NOT_STRICT else (strict, True)


_RECURSIVE: Any = object()
_NOT_STRICT: Any = object()


def _inline_refs(node: Any, defs: Mapping[str, Any], seen: tuple[str, ...]) -> Any:
    """``node`` with its ``#/$defs/`` references replaced by their targets.

    _RECURSIVE when a reference is recursive (it cannot be inlined).
    """
    if isinstance(node, list):
        items = [_inline_refs(item, defs, seen) for item in node]
        return _RECURSIVE if any(item is _RECURSIVE for item in items) else items
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        name = ref.removeprefix("#/$defs/")
        if name in seen:
            return _RECURSIVE
        target = _inline_refs(defs[name], defs, (*seen, name))
        if target is _RECURSIVE:
            return _RECURSIVE
        out.update(target)
    for key, value in node.items():
        if key in ("$ref", "$defs"):
            continue
        converted = _inline_refs(value, defs, seen)
        if converted is _RECURSIVE:
            return _RECURSIVE
        out[key] = converted
    return out


def _make_strict(node: Any) -> Any:
    """A copy acceptable to strict mode, or _NOT_STRICT when ``node`` has a free-form object."""
    if isinstance(node, list):
        items = [_make_strict(item) for item in node]
        return _NOT_STRICT if any(item is _NOT_STRICT for item in items) else items
    if not isinstance(node, dict):
        return node
    if node.get("type") == "object" and "properties" not in node:
        return _NOT_STRICT
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "default" or (
            key in ("required", "additionalProperties") and "properties" in node
        ):
            continue
        if key == "properties":
            converted = {k: _make_strict(v) for k, v in value.items()}
            if any(v is _NOT_STRICT for v in converted.values()):
                return _NOT_STRICT
            out[key] = converted
            out["required"] = list(value)
            out["additionalProperties"] = False
            continue
        converted = _make_strict(value)
        if converted is _NOT_STRICT:
            return _NOT_STRICT
        out[key] = converted
    return out


def _structured(model: BaseChatModel, schema: type[BaseModel], mode: StructuredOutput) -> Runnable:
    """The model asking for the artifact by ``mode``: LangChain's structured output, raw kept.

    The raw answer is what is validated (leniently, as the schema); LangChain's own parse of
    it is not used.
    """
    if mode == "prompt" or not _is_endpoint_model(model):
        return model
    if mode == "json_mode":
        return model.with_structured_output(method="json_mode", include_raw=True)
    json_schema, strict = response_schema(schema)
    return model.with_structured_output(
        {"name": _schema_name(schema), "schema": json_schema, "strict": strict},
        method="json_schema",
        include_raw=True,
    )


def _schema_name(schema: type[BaseModel]) -> str:
    return re.sub(r"[^a-zA-Z0-9_-]", "_", schema.__name__)[:64]


def _with_json_instruction(
    messages: Sequence[BaseMessage], schema: type[BaseModel], mode: StructuredOutput
) -> list[BaseMessage]:
    """Merge the JSON-only instruction into the system turn, or add one carrying it.

    With constrained output the schema travels in the request's response format, so the
    prompt only names it; otherwise the schema (references inlined, compact) is in the prompt.
    """
    if mode == "json_schema":
        instruction = (
            f"Answer with exactly one {schema.__name__} JSON object, as the response format's "
            "JSON schema describes, and nothing else: no prose, no Markdown."
        )
    else:
        instruction = (
            "Answer with exactly one JSON object that validates against this JSON schema, and "
            "nothing else: no prose, no Markdown, never the schema itself.\n\n"
            + json.dumps(response_schema(schema)[0], separators=(",", ":"))
        )
    if messages and isinstance(messages[0], SystemMessage) and isinstance(messages[0].content, str):
        return [SystemMessage(f"{messages[0].content}\n\n{instruction}"), *messages[1:]]
    return [SystemMessage(instruction), *messages]


class _NotJSONError(ValueError):
    """The answer holds no JSON object, even read leniently."""


class _InvalidAnswerError(ValueError):
    """The answer is JSON but not a valid artifact; ``answer`` is the JSON read."""

    def __init__(self, answer: Any, error: ValidationError) -> None:
        super().__init__(str(error))
        self.answer = answer
        self.validation = error


def _parse_reply(text: str, schema: type[T]) -> T:
    """Validate the JSON object in ``text``, read leniently.

    Markdown fences, prose around the outermost ``{...}`` and trailing commas are tolerated.
    Raises ``_NotJSONError`` or ``_InvalidAnswerError`` (both ``ValueError``).
    """
    answer = lenient_json(text)
    try:
        return schema.model_validate(answer)
    except ValidationError as error:
        raise _InvalidAnswerError(answer, error) from error


def lenient_json(text: str) -> Any:
    """The JSON object in a model's ``text``: fences, surrounding prose, trailing commas go.

    Raises ``ValueError`` when no JSON object can be read.

    Example::

        lenient_json('Sure! {"a": [1, 2,],}')  # {"a": [1, 2]}
    """
    start, end = text.find("{"), text.rfind("}")
    if start == -1 or end < start:
        raise _NotJSONError("the answer contains no JSON object")
    candidate = text[start : end + 1]
    try:
        return json.loads(candidate)
    except json.JSONDecodeError:
        pass
    try:
        return json.loads(_without_trailing_commas(candidate))
    except json.JSONDecodeError as error:
        raise _NotJSONError(f"the answer is not valid JSON: {error}") from error


def _without_trailing_commas(text: str) -> str:
    """``text`` without commas that close an object or array, outside strings."""
    out: list[str] = []
    in_string = escaped = False
    for i, char in enumerate(text):
        if in_string:
            escaped = char == "\\" and not escaped
            if char == '"' and not escaped:
                in_string = False
        elif char == '"':
            in_string = True
        elif char == ",":
            rest = text[i + 1 :].lstrip()
            if rest[:1] in ("}", "]"):
                continue
        out.append(char)
    return "".join(out)


_MAX_LISTED_ERRORS = 12


def _describe(error: ValueError) -> str:
    """The validation errors as short lines (where, what), not pydantic's full report."""
    if not isinstance(error, _InvalidAnswerError):
        return str(error)
    lines = [
        f"- {'.'.join(str(part) for part in e['loc']) or '(the object)'}: {e['msg']}"
        for e in error.validation.errors(include_url=False, include_input=False)
    ]
    more = len(lines) - _MAX_LISTED_ERRORS
    listed = lines[:_MAX_LISTED_ERRORS] + ([f"- ... and {more} more"] if more > 0 else [])
    return f"{len(lines)} validation error(s):\n" + "\n".join(listed)


def _repair_turn(schema: type[BaseModel], error: ValueError) -> list[BaseMessage]:
    """What a repair adds to the original request: the answer (when JSON) and its errors.

    An answer that is not JSON at all is of no use to its repair, so it is left out; a JSON
    answer is sent back compact, once (earlier bad answers are never repeated).
    """
    if isinstance(error, _InvalidAnswerError):
        return [
            AIMessage(json.dumps(error.answer, ensure_ascii=False, separators=(",", ":"))),
            HumanMessage(
                f"That answer is not a valid {schema.__name__}:\n{_describe(error)}\n\n"
                "Reply with the corrected JSON object only, following the schema."
            ),
        ]
    return [
        HumanMessage(
            f"Your answer could not be read: {error}. Reply with exactly one "
            f"{schema.__name__} JSON object and nothing else."
        )
    ]


# --- transport -----------------------------------------------------------------------------


class _ContextOverflowError(Exception):
    """The request does not fit the model's context; the sizes when the server gave them."""

    def __init__(self, error: openai.APIStatusError) -> None:
        super().__init__(str(error))
        text = f"{error.message} {json.dumps(error.body) if error.body is not None else ''}"
        self.context = _first_int(text, _CONTEXT_SIZE)
        self.prompt = _first_int(text, _PROMPT_SIZE)


_OVERFLOW_MARKERS = (
    "context_length_exceeded",  # OpenAI's code
    "maximum context length",  # OpenAI, vLLM
    "exceed_context_size",  # llama.cpp server's error type
    "exceeds the available context size",  # llama.cpp server
    "context window",
    "prompt is too long",
)
_CONTEXT_SIZE = (
    re.compile(r"maximum context length is (\d+)"),
    re.compile(r'"n_ctx":\s*(\d+)'),
)
_PROMPT_SIZE = (
    re.compile(r"(\d+) in the messages"),  # vLLM
    re.compile(r"messages resulted in (\d+)"),  # OpenAI
    re.compile(r"request has (\d+) input tokens"),  # newer vLLM
    re.compile(r'"n_prompt_tokens":\s*(\d+)'),  # llama.cpp
)
_MIN_COMPLETION_TOKENS = 256


def _first_int(text: str, patterns: Sequence[re.Pattern[str]]) -> int | None:
    for pattern in patterns:
        if match := pattern.search(text):
            return int(match.group(1))
    return None


def _is_context_overflow(error: openai.APIError) -> bool:
    import openai  # loaded: it raised ``error``

    if not isinstance(error, openai.APIStatusError) or error.status_code not in (400, 413):
        return False
    text = f"{error.message} {json.dumps(error.body) if error.body is not None else ''}".lower()
    return any(marker in text for marker in _OVERFLOW_MARKERS)


def _shorten(
    conversation: list[BaseMessage],
    base: list[BaseMessage],
    model: BaseChatModel,
    overflow: _ContextOverflowError,
    done: set[str],
) -> tuple[list[BaseMessage], list[BaseMessage], BaseChatModel, str] | None:
    """A shorter request after a context overflow, each way tried once; None when none is left.

    Returns the conversation, the base request repairs start from, the model and what was
    left out (for the progress message).
    """
    if conversation != base and "repair answer" not in done:
        done.add("repair answer")
        turn = conversation[len(base) :]
        without = [m for m in turn if not isinstance(m, AIMessage)]
        if without != turn:
            return [*base, *without], base, model, "repairing without the answer"
    max_tokens = getattr(model, "max_tokens", None)
    if (
        _is_endpoint_model(model)
        and "completion tokens" not in done
        and overflow.context is not None
        and overflow.prompt is not None
    ):
        done.add("completion tokens")
        room = overflow.context - overflow.prompt - 16
        if room >= _MIN_COMPLETION_TOKENS and (max_tokens is None or room < max_tokens):
            shorter = model.model_copy(update={"max_tokens": room})
            return conversation, base, shorter, f"asking for at most {room} tokens"
    if "earlier drafts" not in done:
        done.add("earlier drafts")
        drafts = [i for i, m in enumerate(base) if isinstance(m, AIMessage)][:-1]
        if drafts:
            omitted = "(an earlier draft, left out to fit the model's context)"
            shorter_base = [AIMessage(omitted) if i in drafts else m for i, m in enumerate(base)]
            rest = conversation[len(base) :]
            return [*shorter_base, *rest], shorter_base, model, "leaving out earlier drafts"
    return None


def _overflow_message(label: str, model: BaseChatModel, overflow: _ContextOverflowError) -> str:
    sizes = ""
    if overflow.context is not None:
        prompt = f" the prompt alone is {overflow.prompt} tokens;" if overflow.prompt else ""
        sizes = f" (its context is {overflow.context} tokens;{prompt.rstrip(';')})"
    return (
        f"{label}: the request does not fit the context of {_endpoint(model)}{sizes}, even "
        "shortened. Give the model a longer context (llama.cpp --ctx-size, vLLM "
        "--max-model-len, Ollama num_ctx) or choose a model with a longer one. Server said: "
        f"{overflow}"
    )


async def _invoke_with_retries(
    runnable: Runnable,
    messages: list[BaseMessage],
    *,
    model: BaseChatModel,
    label: str,
    mode: StructuredOutput,
    max_retries: int,
    timeout_retries: int,
    backoff_s: float,
    on_retry: Callable[[str], Awaitable[None] | None] | None,
    on_call: Callable[[Call], None] | None,
    slots: asyncio.Semaphore | None,
) -> AIMessage:
    retries = timeouts = 0
    while True:
        try:
            async with slots or contextlib.nullcontext():
                answer = await runnable.ainvoke(messages, config=_CALL_CONFIG | {"run_name": label})
        except _openai_errors() as error:
            import openai  # loaded: it raised

            _record_usage(model, None)
            _report(on_call, Call(outcome="error", mode=mode, error=_short(error)))
            if _is_context_overflow(error):
                assert isinstance(error, openai.APIStatusError)
                raise _ContextOverflowError(error) from error
            if isinstance(error, openai.APITimeoutError):
                timeout = getattr(model, "request_timeout", None)
                if timeouts == timeout_retries:
                    raise LLMUnavailableError(_timeout_message(label, model, timeout)) from error
                timeouts += 1
                message = (
                    f"{label}: no answer within {_seconds(timeout)} (AUTEUR_LLM_TIMEOUT_S); "
                    f"retrying ({timeouts}/{timeout_retries})"
                )
                if on_retry is not None:
                    await _notify(on_retry, message)
                continue
            if not _is_transient(error):
                raise LLMUnavailableError(_rejected_message(label, model, error)) from error
            if retries == max_retries:
                raise LLMUnavailableError(
                    f"{label}: {_endpoint(model)} is unavailable after {max_retries} retries. "
                    f"Last error: {error}"
                ) from error
        else:
            reply = answer["raw"] if isinstance(answer, dict) else answer
            _record_usage(model, reply)
            return reply
        retries += 1
        if on_retry is not None:
            await _notify(on_retry, f"retrying {label} ({retries}/{max_retries})")
        await asyncio.sleep(backoff_s * 2 ** (retries - 1))


def _seconds(timeout: object) -> str:
    return f"{timeout:g} s" if isinstance(timeout, (int, float)) else "the timeout"


def _timeout_message(label: str, model: BaseChatModel, timeout: object) -> str:
    return (
        f"{label}: {_endpoint(model)} gave no answer within {_seconds(timeout)}. A slow model "
        "(a local one on a CPU, a long artifact) needs longer: raise AUTEUR_LLM_TIMEOUT_S "
        f"(now {_seconds(timeout)})."
    )


def _rejected_message(label: str, model: BaseChatModel, error: openai.APIError) -> str:
    text = str(error).lower()
    if "response_format" in text or "json_schema" in text or "json_object" in text:
        return (
            f"{label}: {_endpoint(model)} does not take the structured output asked for: "
            f"{error}. Set AUTEUR_STRUCTURED_OUTPUT (or AUTEUR_MODEL_STRUCTURED_OUTPUT for this "
            "model) to json_mode, or to prompt."
        )
    return (
        f"{label}: {_endpoint(model)} rejected the request: {error}. "
        "Check OPENAI_API_KEY, OPENAI_BASE_URL and the configured model."
    )


def _short(error: openai.APIError) -> str:
    return f"{type(error).__name__}: {error}"[:500]


def _report(on_call: Callable[[Call], None] | None, call: Call) -> None:
    if on_call is not None:
        on_call(call)


def _record_usage(model: BaseChatModel, reply: AIMessage | None) -> None:
    """Count the call in the cost ledger, under the model name the price table uses.

    A call that got no answer (an error) counts too, with no tokens.
    """
    usage = (reply.usage_metadata if reply is not None else None) or {}
    ledger.record_tokens(
        model=getattr(model, "model_name", None) or model.get_name(),
        input_tokens=usage.get("input_tokens", 0),
        output_tokens=usage.get("output_tokens", 0),
    )


def _is_transient(error: openai.APIError) -> bool:
    import openai  # loaded: it raised ``error``

    if isinstance(error, openai.APIConnectionError):  # timeouts are handled before
        return True
    if isinstance(error, openai.APIStatusError):
        return error.status_code >= 500 or error.status_code in _TRANSIENT_STATUSES
    return False


def _is_endpoint_model(model: object) -> TypeGuard[ChatOpenAI]:
    """Whether ``model`` is an endpoint's ``ChatOpenAI`` (none exists before its module loads)."""
    client = sys.modules.get("langchain_openai")
    return client is not None and isinstance(model, client.ChatOpenAI)


def _openai_errors() -> type[Exception] | tuple[()]:
    """The OpenAI SDK's errors, to catch; none before the SDK is loaded, as none can be raised."""
    sdk = sys.modules.get("openai")
    return sdk.APIError if sdk is not None else ()


def _endpoint(model: BaseChatModel) -> str:
    """Which model at which endpoint, for error messages; duck-typed over ``ChatOpenAI``."""
    name = getattr(model, "model_name", None) or model.get_name()
    base_url = getattr(model, "openai_api_base", None) or _DEFAULT_BASE_URL
    return f"{name} at {base_url}"


async def _notify(on_retry: Callable[[str], Awaitable[None] | None], message: str) -> None:
    result = on_retry(message)
    if inspect.isawaitable(result):
        await result
