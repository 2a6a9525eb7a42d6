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

``/embeddings`` answers every input with a deterministic bag-of-words vector (texts that
share words are close), and records the request bodies in ``embedding_requests``.
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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeAlias

from pydantic import BaseModel

__all__ = [
    "ErrorReply",
    "OpenAIServer",
    "Override",
    "Reply",
    "replay_recordings",
    "run_openai_server",
]

_PATHS = frozenset({"/v1/chat/completions", "/chat/completions"})
_EMBEDDING_PATHS = frozenset({"/v1/embeddings", "/embeddings"})
_EMBEDDING_DIMS = 64
_SCENE = re.compile(r"\bscene (\d+)\b", re.IGNORECASE)
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

    def body(self, authorization: str | None = None) -> dict[str, Any]:
        """The ``{"error": {...}}`` body the real API sends with this status."""
        error_type, code = _ERROR_KINDS.get(self.status, ("server_error", None))
        message = self.message or f"scripted {self.status} {HTTPStatus(self.status).phrase}"
        if self.echo_authorization:
            message = f"Incorrect API key provided: {authorization}"
        return {"error": {"message": message, "type": error_type, "param": None, "code": code}}


Reply: TypeAlias = ErrorReply | str | BaseModel | dict[str, Any] | list[Any]
"""A scripted reply: an error, text content as-is, or an object sent as JSON content."""


class OpenAIServer:
    """The scripted server: append to ``replies``, read ``requests`` (JSON bodies, in order)."""

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.responder: Callable[[dict[str, Any]], Reply] | None = None
        self.on_request: Callable[[dict[str, Any]], None] | None = None
        self.delay_s = 0.0
        self.peak_in_flight = 0
        self.requests: list[dict[str, Any]] = []
        self.embedding_requests: list[dict[str, Any]] = []
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
            if self.replies:
                return self.replies.pop(0)
            if self.responder is not None:
                return self.responder(body)
            return ErrorReply(
                400, f"openai test double: no reply scripted for request {len(self.requests)}"
            )

    def completion(self, body: dict[str, Any], content: str) -> dict[str, Any]:
        """A ``chat.completion`` object answering ``body`` with ``content``."""
        prompt_tokens = len(json.dumps(body.get("messages", [])).split())
        completion_tokens = len(content.split())
        return {
            "id": f"chatcmpl-double{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "unknown"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
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
        user = next((m["content"] for m in messages if m["role"] == "user"), "")
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
        else:
            self._send_json(200, self.server.double.completion(body, _content(reply)))

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
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
