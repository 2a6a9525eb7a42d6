"""An OpenAI-compatible chat-completions server for tests, speaking the real wire protocol.

The test scripts the replies and inspects the requests; the code under test talks to it with
the official client over a real socket on 127.0.0.1::

    with run_openai_server() as server:
        server.replies += ['{"title": "Rain"}', ErrorReply(500)]
        model = ChatOpenAI(api_key="test-key", base_url=server.base_url, max_retries=0)
        ...
        assert server.requests[0]["messages"][-1]["content"] == "..."

Instead of a script, ``responder`` can answer every request (``replay_recordings`` answers as
the offline sample model does), and ``on_request`` sees each request as it arrives — while
the client waits for its answer. ``delay_s`` answers each request that much later, as a
model that takes its time would; ``peak_in_flight`` is the most requests it was answering at
once, which shows whether a client's requests overlapped without timing anything.

Structured output is answered as real servers do. A request's ``response_format`` json_schema
constrains the answer: a reply is completed as constrained decoding would (a missing nullable
field is null, a missing list empty) and must then validate against the schema, else the
double answers 400 naming the mismatch (a test's script is wrong, a real server could not
have said it); a ``strict`` schema that breaks OpenAI's strict-mode rules is refused with
OpenAI's 400. ``unconstrained`` is what the model says to any request *not* constrained by a
schema — prose, a schema echo, as a small local model does — so output validates only when
the schema is sent; ``ignores_response_format`` answers as a server (or a proxy) that drops
it does, unconstrained. ``context_tokens`` is the model's context: a request whose messages
(estimated at four characters a token) plus its completion budget exceed it is answered
400 as ``overflow_style`` names: ``"openai"``, ``"vllm"`` or ``"llama.cpp"``. A message's
content may be a list of parts (text and ``image_url``, as a vision model reads them); an
image counts 85 tokens, as OpenAI counts one at low detail, and ``reads_images = False`` is a
text-only model: a request with an image is answered OpenAI's 400.

Tool calls are answered as the real API answers them: a :class:`ToolCallReply` becomes
``message.tool_calls`` with ``finish_reason: "tool_calls"``. The model can call only the
tools the request offers, so a call of any other tool is the script's bug, answered 400
naming it; the arguments of a ``strict`` tool must validate against its parameters, as
strict decoding guarantees. ``play_conversation`` answers the director's requests as the
offline sample director does, from the same script, with tool calls over the wire::

    server.responder = play_conversation(SAMPLE_CONVERSATION, otherwise=replay_recordings(...))

``/embeddings`` answers every input with a deterministic bag-of-words vector (texts that
share words are close), and records the request bodies in ``embedding_requests``.

``/audio/speech`` speaks as OpenAI's text-to-speech does: the request is checked as the real
API checks it (a voice of ``speech_voices``, input of 1 to 4096 characters, speed 0.25 to 4,
a known format; else 400), and answered with a WAV (or raw ``pcm``) at 24 kHz, 16-bit mono,
streamed as OpenAI streams it: the header's sizes are placeholders (0xFFFFFFFF). The audio
is a deterministic voiced signal, a harmonic tone at a pitch of the voice's own
(150-250 Hz) under a syllable-rate envelope, lasting 1/14 s per character divided by the
speed, so loudness and speech-energy measurements work on it. Bodies are recorded in
``speech_requests`` (``on_speech`` sees each as it arrives); ``speech_errors`` scripts
errors, answered first, in order::

    server.speech_errors.append(ErrorReply(401, echo_authorization=True))
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import math
import re
import struct
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal, TypeAlias

import jsonschema
import numpy as np
from pydantic import BaseModel

__all__ = [
    "SPEECH_VOICES",
    "ErrorReply",
    "OpenAIServer",
    "Override",
    "Reply",
    "ToolCallReply",
    "estimated_tokens",
    "play_conversation",
    "replay_recordings",
    "run_openai_server",
]

_PATHS = frozenset({"/v1/chat/completions", "/chat/completions"})
_EMBEDDING_PATHS = frozenset({"/v1/embeddings", "/embeddings"})
_EMBEDDING_DIMS = 64
_SPEECH_PATHS = frozenset({"/v1/audio/speech", "/audio/speech"})
SPEECH_VOICES = frozenset(
    {"alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer",
     "verse", "marin", "cedar"}
)  # fmt: skip
_SPEECH_FORMATS = frozenset({"mp3", "opus", "aac", "flac", "wav", "pcm"})
_SPEECH_RATE = 24_000
_SPEECH_CHARACTERS_PER_S = 14.0
_SPEECH_MAX_INPUT = 4096
_DIRECTOR_PROMPT = Path(__file__).parents[2] / "prompts" / "director" / "chat.md"
_SCENE = re.compile(r"\bscene (\d+)\b", re.IGNORECASE)
_IMAGE_TOKENS = 85  # what OpenAI counts for one image sent at low detail
# OpenAI's error `type` and `code` for the statuses tests script most.
_ERROR_KINDS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


@dataclass(frozen=True)
class ErrorReply:
    """A scripted HTTP error, answered with an OpenAI-style error body.

    With ``echo_authorization`` the message quotes the request's ``Authorization`` header
    whole, as some OpenAI-compatible proxies do (OpenAI itself masks most of the key)::

        server.replies.append(ErrorReply(401, echo_authorization=True))
        # {"error": {"message": "Incorrect API key provided: Bearer sk-...", ...}}
    """

    status: int
    message: str | None = None
    echo_authorization: bool = False
    payload: Mapping[str, Any] | None = None
    """The whole body, for servers whose errors are not shaped like OpenAI's."""

    def body(self, authorization: str | None = None) -> dict[str, Any]:
        """The ``{"error": {...}}`` body the real API sends with this status."""
        if self.payload is not None:
            return dict(self.payload)
        error_type, code = _ERROR_KINDS.get(self.status, ("server_error", None))
        message = self.message or f"scripted {self.status} {HTTPStatus(self.status).phrase}"
        if self.echo_authorization:
            message = f"Incorrect API key provided: {authorization}"
        return {"error": {"message": message, "type": error_type, "param": None, "code": code}}


@dataclass(frozen=True)
class ToolCallReply:
    """A scripted call of one of the request's tools, with the words said alongside (if any).

    Answered as ``choices[0].message.tool_calls`` (the arguments as a JSON string, the call
    id ``call_…``), ``finish_reason: "tool_calls"``, and ``content`` null when empty::

        server.replies.append(ToolCallReply("pending_gates", {}))
    """

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    content: str = ""


Reply: TypeAlias = ErrorReply | ToolCallReply | str | BaseModel | dict[str, Any] | list[Any]
"""A scripted reply: an error, a tool call, text content as-is, or an object sent as JSON."""


class OpenAIServer:
    """The scripted server: append to ``replies``, read ``requests`` (JSON bodies, in order)."""

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.responder: Callable[[dict[str, Any]], Reply] | None = None
        self.on_request: Callable[[dict[str, Any]], None] | None = None
        self.on_speech: Callable[[dict[str, Any]], None] | None = None
        self.delay_s = 0.0
        self.unconstrained: Reply | None = None
        self.ignores_response_format = False
        self.context_tokens: int | None = None
        self.reads_images = True
        self.overflow_style: Literal["openai", "vllm", "llama.cpp"] = "openai"
        self.peak_in_flight = 0
        self.requests: list[dict[str, Any]] = []
        self.embedding_requests: list[dict[str, Any]] = []
        self.speech_requests: list[dict[str, Any]] = []
        self.speech_errors: list[ErrorReply] = []
        self.speech_voices: frozenset[str] = SPEECH_VOICES
        self._lock = threading.Lock()
        self._in_flight = 0
        self._ids = itertools.count(1)
        self._http = _HTTPServer(self)

    @property
    def base_url(self) -> str:
        """The ``/v1`` base URL to give the client, on 127.0.0.1 and a free port."""
        host, port = self._http.server_address[:2]
        return f"http://{host}:{port}/v1"

    def take(self, body: dict[str, Any]) -> Reply:
        """Record one request and pop its scripted reply; a 400 says so when none is left.

        The request counts as in flight until its reply is chosen and ``delay_s`` has passed.
        """
        with self._lock:
            self._in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
        try:
            reply = self._reply(body)
            time.sleep(self.delay_s)
            return reply
        finally:
            with self._lock:
                self._in_flight -= 1

    def _reply(self, body: dict[str, Any]) -> Reply:
        if self.on_request is not None:
            self.on_request(body)
        with self._lock:
            self.requests.append(body)
            if (refused := self._refusal(body)) is not None:
                return refused
            if self.replies:
                reply = self.replies.pop(0)
            elif self.responder is not None:
                reply = self.responder(body)
            else:
                return ErrorReply(
                    400, f"openai test double: no reply scripted for request {len(self.requests)}"
                )
        reply = self._constrained(body, reply)
        if isinstance(reply, ToolCallReply):
            return _tool_call_problem(body, reply) or reply
        return reply

    def _refusal(self, body: dict[str, Any]) -> ErrorReply | None:
        """What a real server answers before generating: a bad strict schema, an overflow."""
        if not self.reads_images and (where := _image_part(body.get("messages", []))):
            return ErrorReply(
                400,
                payload={
                    "error": {
                        "message": "Invalid content type. image_url is only supported by "
                        "certain models.",
                        "type": "invalid_request_error",
                        "param": where,
                        "code": None,
                    }
                },
            )
        response_format = body.get("response_format") or {}
        if response_format.get("type") == "json_schema" and not self.ignores_response_format:
            spec = response_format.get("json_schema", {})
            if spec.get("strict") and (problem := _strict_problem(spec.get("schema", {}), ())):
                message = f"Invalid schema for response_format '{spec.get('name')}': {problem}"
                return ErrorReply(
                    400,
                    payload={
                        "error": {
                            "message": message,
                            "type": "invalid_request_error",
                            "param": "response_format",
                            "code": None,
                        }
                    },
                )
        if self.context_tokens is None:
            return None
        prompt = estimated_tokens(body.get("messages", []))
        completion = body.get("max_completion_tokens") or body.get("max_tokens") or 0
        if prompt + completion <= self.context_tokens:
            return None
        return _overflow(self.overflow_style, self.context_tokens, prompt, completion)

    def _constrained(self, body: dict[str, Any], reply: Reply) -> Reply:
        """The reply as the request's response format lets the model say it."""
        response_format = body.get("response_format") or {}
        if self.ignores_response_format or response_format.get("type") != "json_schema":
            return reply if self.unconstrained is None else self.unconstrained
        if isinstance(reply, ErrorReply | ToolCallReply):  # a tool call is not the answer
            return reply
        schema = response_format.get("json_schema", {}).get("schema", {})
        try:
            answer = json.loads(_content(reply))
        except json.JSONDecodeError:
            return ErrorReply(400, "openai test double: a constrained reply must be JSON")
        answer = _complete(answer, schema)
        try:
            jsonschema.validate(answer, schema)
        except jsonschema.ValidationError as error:
            return ErrorReply(
                400,
                "openai test double: the scripted reply breaks the request's json_schema at "
                f"{'/'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}",
            )
        return answer

    def completion(
        self, body: dict[str, Any], content: str, *, tool_call: ToolCallReply | None = None
    ) -> dict[str, Any]:
        """A ``chat.completion`` object answering ``body`` with ``content`` (or a tool call)."""
        prompt_tokens = len(json.dumps(body.get("messages", [])).split())
        completion_tokens = len(content.split())
        message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
        finish_reason = "stop"
        if tool_call is not None:
            arguments = json.dumps(tool_call.arguments)
            completion_tokens += len(arguments.split())
            message["content"] = content or None
            message["tool_calls"] = [
                {
                    "id": f"call_{uuid.uuid4().hex[:24]}",
                    "type": "function",
                    "function": {"name": tool_call.name, "arguments": arguments},
                }
            ]
            finish_reason = "tool_calls"
        return {
            "id": f"chatcmpl-double{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "unknown"),
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    def embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        """Record an ``/embeddings`` request and answer it as the real API does."""
        with self._lock:
            self.embedding_requests.append(body)
        texts = [body["input"]] if isinstance(body["input"], str) else body["input"]
        vectors = [_bag_of_words(text) for text in texts]
        data = [
            {
                "object": "embedding",
                "index": index,
                "embedding": (
                    base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
                    if body.get("encoding_format") == "base64"
                    else vector
                ),
            }
            for index, vector in enumerate(vectors)
        ]
        tokens = sum(len(text.split()) for text in texts)
        return {
            "object": "list",
            "data": data,
            "model": body.get("model", "unknown"),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    def speech(self, body: dict[str, Any]) -> ErrorReply | tuple[bytes, str]:
        """Record an ``/audio/speech`` request; its audio and content type, or its error."""
        if self.on_speech is not None:
            self.on_speech(body)
        with self._lock:
            self.speech_requests.append(body)
            if self.speech_errors:
                return self.speech_errors.pop(0)
        if (refused := self._speech_refusal(body)) is not None:
            return refused
        speed = float(body.get("speed", 1.0))
        pcm = _voiced(body["input"], body["voice"], speed)
        if body.get("response_format", "mp3") == "pcm":
            return pcm, "audio/pcm"
        return _streamed_wav(pcm), "audio/wav"

    def _speech_refusal(self, body: dict[str, Any]) -> ErrorReply | None:
        """The 400 OpenAI answers to a speech request it will not speak, or None."""
        text, voice = body.get("input"), body.get("voice")
        response_format, speed = body.get("response_format", "mp3"), body.get("speed", 1.0)
        problem: tuple[str, str, str] | None = None
        if not isinstance(text, str) or not text:
            problem = ("input", "empty_string", "Invalid 'input': empty string.")
        elif len(text) > _SPEECH_MAX_INPUT:
            problem = (
                "input",
                "string_above_max_length",
                f"Invalid 'input': string too long. Expected a string with maximum length "
                f"{_SPEECH_MAX_INPUT}, but got a string with length {len(text)} instead.",
            )
        elif voice not in self.speech_voices:
            supported = ", ".join(f"'{v}'" for v in sorted(self.speech_voices))
            problem = (
                "voice",
                "invalid_value",
                f"Invalid value: '{voice}'. Supported values are: {supported}.",
            )
        elif not isinstance(speed, int | float) or not 0.25 <= speed <= 4.0:
            problem = ("speed", "invalid_value", f"Invalid 'speed': {speed}; expected 0.25 to 4.")
        elif response_format not in _SPEECH_FORMATS:
            problem = ("response_format", "invalid_value", f"Invalid value: '{response_format}'.")
        elif response_format not in ("wav", "pcm"):
            return ErrorReply(400, f"openai test double: speaks wav and pcm, not {response_format}")
        if problem is None:
            return None
        param, code, message = problem
        error = {"message": message, "type": "invalid_request_error", "param": param, "code": code}
        return ErrorReply(400, payload={"error": error})

    def serve(self) -> threading.Thread:
        """Serve in a daemon thread until ``close``."""
        # A short poll interval keeps `close` (which waits for the next poll) fast.
        thread = threading.Thread(
            target=self._http.serve_forever,
            kwargs={"poll_interval": 0.01},
            name="openai-double",
            daemon=True,
        )
        thread.start()
        return thread

    def close(self) -> None:
        """Stop serving and release the port."""
        self._http.shutdown()
        self._http.server_close()


@contextmanager
def run_openai_server() -> Iterator[OpenAIServer]:
    """Run a scripted OpenAI-compatible server on 127.0.0.1 for the duration of the block."""
    server = OpenAIServer()
    thread = server.serve()
    try:
        yield server
    finally:
        server.close()
        thread.join()


Override: TypeAlias = Callable[[str, int | None, int], Reply | None]
"""Answers (task, scene, revision) itself, or returns None to replay the recording."""


def replay_recordings(
    recordings: Path, prompts: Path, *, override: Override | None = None
) -> Callable[[dict[str, Any]], Reply]:
    """A responder that answers as the offline sample model does, over the wire.

    The task is the prompt file (``prompts/<agent>/<task>.md``) whose first line opens the
    request's system message; the revision is the number of earlier assistant turns. A task
    recorded scene by scene (each revision ``{"<scene number>": <answer>}``) answers the
    scene its user message asks for last ("... scene 2 of the master script."). ``override``
    sees every request's (task, scene, revision) first and may answer it instead, e.g. with
    a broken answer for one scene.
    """
    responses = json.loads(recordings.read_text(encoding="utf-8"))["responses"]
    openings = {
        path.read_text(encoding="utf-8").splitlines()[0]: path.stem
        for path in prompts.glob("*/*.md")
    }

    def respond(body: dict[str, Any]) -> Reply:
        messages = body.get("messages", [])
        system = next((m["content"] for m in messages if m["role"] == "system"), "")
        task = next((t for opening, t in openings.items() if system.startswith(opening)), None)
        if task is None:
            return ErrorReply(400, "openai test double: no prompt file opens this request")
        user = next((message_text(m) for m in messages if m["role"] == "user"), "")
        scenes = _SCENE.findall(user)
        scene = int(scenes[-1]) if scenes else None
        revision = sum(m["role"] == "assistant" for m in messages)
        if override is not None and (reply := override(task, scene, revision)) is not None:
            return reply
        if task not in responses:
            return ErrorReply(400, f"openai test double: no recording for task {task}")
        answer = responses[task][min(revision, len(responses[task]) - 1)]
        if not _by_scene(answer):
            return answer
        if str(scene) not in answer:
            return ErrorReply(400, f"openai test double: no recording of {task} scene {scene}")
        return answer[str(scene)]

    return respond


def play_conversation(
    script: Path,
    *,
    otherwise: Callable[[dict[str, Any]], Reply] | None = None,
    prompt: Path = _DIRECTOR_PROMPT,
) -> Callable[[dict[str, Any]], Reply]:
    """A responder that plays the director as the offline sample director does, over the wire.

    A request whose system message opens with ``prompt``'s first line is the director's: the
    script (``evals/datasets/sample_conversation.json``) answers it through
    :class:`tools.offline_chat.ScriptedChatModel` itself — a tool's result is passed on, the
    person's last message matching a rule calls the rule's tool (a :class:`ToolCallReply`),
    anything else gets the script's ``otherwise`` words. Every other request goes to
    ``otherwise`` (``replay_recordings`` for the productions the director starts); with none,
    it is answered 400. The tools the script calls must be among the request's, else 400.
    """
    from langchain_core.messages import AIMessage  # the double itself needs no LangChain

    from tools.offline_chat import ScriptedChatModel

    director = ScriptedChatModel(script=script)
    opening = prompt.read_text(encoding="utf-8").splitlines()[0]

    def respond(body: dict[str, Any]) -> Reply:
        messages = body.get("messages", [])
        system = next((m["content"] for m in messages if m["role"] == "system"), "")
        if not (isinstance(system, str) and system.startswith(opening)):
            if otherwise is None:
                return ErrorReply(400, "openai test double: not the director's request")
            return otherwise(body)
        said = director.invoke([_langchain_message(m) for m in messages])
        assert isinstance(said, AIMessage)
        if not said.tool_calls:
            return said.text
        [call] = said.tool_calls  # the script calls one tool at a time
        return ToolCallReply(call["name"], call["args"], said.text)

    return respond


def _langchain_message(message: dict[str, Any]) -> Any:
    """A wire message as the LangChain message the scripted director reads."""
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

    content = message_text(message)
    role = message["role"]
    if role == "tool":
        return ToolMessage(content, tool_call_id=message.get("tool_call_id", ""))
    if role == "user":
        return HumanMessage(content)
    if role in ("system", "developer"):
        return SystemMessage(content)
    return AIMessage(content)


def _tool_call_problem(body: dict[str, Any], call: ToolCallReply) -> ErrorReply | None:
    """The 400 for a scripted tool call the request's model could not have made, or None."""
    offered = {
        tool["function"]["name"]: tool["function"]
        for tool in body.get("tools") or []
        if tool.get("type") == "function"
    }
    if call.name not in offered:
        names = ", ".join(sorted(offered)) or "none"
        return ErrorReply(
            400,
            f"openai test double: the scripted reply calls the tool '{call.name}', which the "
            f"request does not offer (its tools: {names})",
        )
    function = offered[call.name]
    if not function.get("strict"):
        return None
    try:
        jsonschema.validate(call.arguments, function.get("parameters", {}))
    except jsonschema.ValidationError as error:
        return ErrorReply(
            400,
            f"openai test double: the scripted call of the strict tool '{call.name}' breaks "
            f"its parameters at {'/'.join(str(p) for p in error.absolute_path) or '(root)'}: "
            f"{error.message}",
        )
    return None


def estimated_tokens(messages: list[dict[str, Any]]) -> int:
    """The tokens of ``messages`` as the double counts them: four characters a token.

    An image part counts as OpenAI counts one at low detail, 85 tokens, not by its URL.
    """
    texts = [{**m, "content": message_text(m)} for m in messages]
    images = sum(len(_images(m)) for m in messages)
    return math.ceil(len(json.dumps(texts)) / 4) + _IMAGE_TOKENS * images


def message_text(message: dict[str, Any]) -> str:
    """A wire message's text: its content, or the text parts of a list of content parts."""
    content = message.get("content") or ""
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if part.get("type") == "text")


def _images(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    if not isinstance(content, list):
        return []
    return [part for part in content if part.get("type") == "image_url"]


def _image_part(messages: list[dict[str, Any]]) -> str | None:
    """Where the first image part of ``messages`` is, as OpenAI names it in an error."""
    for i, message in enumerate(messages):
        content = message.get("content")
        if isinstance(content, list):
            for j, part in enumerate(content):
                if part.get("type") == "image_url":
                    return f"messages.[{i}].content.[{j}].type"
    return None


def _overflow(style: str, context: int, prompt: int, completion: int) -> ErrorReply:
    """The 400 a real server sends when a request does not fit its context."""
    if style == "llama.cpp":
        return ErrorReply(
            400,
            payload={
                "error": {
                    "code": 400,
                    "message": "the request exceeds the available context size, try increasing it",
                    "type": "exceed_context_size_error",
                    "n_prompt_tokens": prompt,
                    "n_ctx": context,
                }
            },
        )
    if style == "vllm":
        message = (
            f"This model's maximum context length is {context} tokens. However, you requested "
            f"{prompt + completion} tokens ({prompt} in the messages, {completion} in the "
            "completion). Please reduce the length of the messages or completion."
        )
        return ErrorReply(
            400,
            payload={
                "error": {"message": message, "type": "BadRequestError", "param": None, "code": 400}
            },
        )
    message = (
        f"This model's maximum context length is {context} tokens. However, your messages "
        f"resulted in {prompt} tokens. Please reduce the length of the messages."
    )
    return ErrorReply(
        400,
        payload={
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": "messages",
                "code": "context_length_exceeded",
            }
        },
    )


def _strict_problem(schema: Any, context: tuple[str, ...]) -> str | None:
    """What breaks OpenAI's strict-mode rules in ``schema``, worded as OpenAI words it."""
    if not isinstance(schema, dict):
        return None
    where = f"In context=({', '.join(repr(c) for c in context)}), "
    properties = schema.get("properties")
    if schema.get("type") == "object" or properties is not None:
        if schema.get("additionalProperties") is not False:
            return where + "'additionalProperties' is required to be supplied and to be false."
        missing = [key for key in properties or {} if key not in schema.get("required", [])]
        if missing:
            return (
                where + "'required' is required to be supplied and to be an array including "
                f"every key in properties. Missing '{missing[0]}'."
            )
    children: list[tuple[tuple[str, ...], Any]] = [
        ((*context, "properties", key), value) for key, value in (properties or {}).items()
    ]
    children += [((*context, key), schema[key]) for key in ("items",) if key in schema]
    for key in ("anyOf", "allOf"):
        children += [((*context, key, str(i)), s) for i, s in enumerate(schema.get(key, []))]
    children += [((*context, "$defs", k), s) for k, s in schema.get("$defs", {}).items()]
    for where_child, child in children:
        if problem := _strict_problem(child, where_child):
            return problem
    return None


def _complete(answer: Any, schema: Any) -> Any:
    """``answer`` with what constrained decoding makes a model write: every required key.

    A missing property the schema lets be null is null, a missing list is empty; nested
    objects and lists are completed too. ``$ref`` is not followed (schemas are inlined).
    """
    if not isinstance(schema, dict):
        return answer
    if isinstance(answer, list) and isinstance(schema.get("items"), dict):
        return [_complete(item, schema["items"]) for item in answer]
    if not isinstance(answer, dict):
        for option in schema.get("anyOf", []):
            if isinstance(option, dict) and option.get("type") == "array":
                return _complete(answer, option)
        return answer
    options = [schema, *(o for o in schema.get("anyOf", []) if isinstance(o, dict))]
    shape = next((o for o in options if "properties" in o), None)
    if shape is None:
        return answer
    completed = dict(answer)
    for key, spec in shape["properties"].items():
        if key in completed:
            completed[key] = _complete(completed[key], spec)
        elif key in shape.get("required", []):
            kinds = [spec, *spec.get("anyOf", [])] if isinstance(spec, dict) else []
            types = {k.get("type") for k in kinds if isinstance(k, dict)}
            if "null" in types:
                completed[key] = None
            elif "array" in types:
                completed[key] = []
    return completed


def _by_scene(answer: object) -> bool:
    """Whether a recorded revision holds one answer per scene (``{"1": ..., "2": ...}``)."""
    return isinstance(answer, dict) and all(key.isdigit() for key in answer)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, double: OpenAIServer) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.double = double

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client killed mid-request (as tests do) is no error of the double's."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] in _SPEECH_PATHS:
            self._speech()
            return
        if self.path.split("?", 1)[0] in _EMBEDDING_PATHS:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            self._send_json(200, self.server.double.embeddings(body))
            return
        if self.path.split("?", 1)[0] not in _PATHS:
            self._send_json(404, ErrorReply(404, f"no route {self.path}").body())
            return
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        if body.get("stream"):
            self._send_json(400, ErrorReply(400, "the test double does not stream").body())
            return
        reply = self.server.double.take(body)
        if isinstance(reply, ErrorReply):
            self._send_json(reply.status, reply.body(self.headers.get("Authorization")))
        elif isinstance(reply, ToolCallReply):
            completion = self.server.double.completion(body, reply.content, tool_call=reply)
            self._send_json(200, completion)
        else:
            self._send_json(200, self.server.double.completion(body, _content(reply)))

    def _speech(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        answer = self.server.double.speech(body)
        if isinstance(answer, ErrorReply):
            self._send_json(answer.status, answer.body(self.headers.get("Authorization")))
        else:
            self._send(200, *answer)

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _send(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""


def _content(reply: str | BaseModel | dict[str, Any] | list[Any]) -> str:
    if isinstance(reply, str):
        return reply
    if isinstance(reply, BaseModel):
        return reply.model_dump_json()
    return json.dumps(reply)


def _bag_of_words(text: str) -> list[float]:
    """A unit vector of hashed lowercase words: texts sharing words have a high cosine."""
    vector = [0.0] * _EMBEDDING_DIMS
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        digest = hashlib.sha256(word.encode()).digest()
        vector[digest[0] % _EMBEDDING_DIMS] += 1.0 if digest[1] % 2 else -1.0
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


def _voiced(text: str, voice: str, speed: float) -> bytes:
    """16-bit PCM of a voiced signal as long as ``text`` takes to say at ``speed``.

    Four harmonics of a pitch the voice's name picks (150-250 Hz), under an envelope that
    opens and closes four times a second, as syllables do; peaks near -6 dBFS.
    """
    seconds = max(0.3, len(text) / _SPEECH_CHARACTERS_PER_S / speed)
    t = np.arange(round(seconds * _SPEECH_RATE)) / _SPEECH_RATE
    pitch = 150 + hashlib.sha256(voice.encode()).digest()[0] % 101
    tone = sum(np.sin(2 * np.pi * pitch * k * t) / k for k in range(1, 5))
    envelope = np.sin(np.pi * 4 * t) ** 2
    signal = 0.5 * tone * envelope / np.max(np.abs(tone))
    return (signal * 32767).astype("<i2").tobytes()


def _streamed_wav(pcm: bytes) -> bytes:
    """A 24 kHz mono 16-bit WAV whose RIFF and data sizes are 0xFFFFFFFF, as OpenAI sends."""
    unknown = 0xFFFFFFFF
    fmt = struct.pack("<HHIIHH", 1, 1, _SPEECH_RATE, _SPEECH_RATE * 2, 2, 16)
    return (
        struct.pack("<4sI4s", b"RIFF", unknown, b"WAVE")
        + struct.pack("<4sI", b"fmt ", len(fmt))
        + fmt
        + struct.pack("<4sI", b"data", unknown)
        + pcm
    )
