"""A Langfuse server for tests: the real SDK's OTLP export, scores and prompt management.

It speaks the wire protocol the Langfuse SDK uses, on 127.0.0.1: spans arrive as
OTLP/HTTP protobuf (gzip or not) at ``/api/public/otel/v1/traces`` and are decoded with the
OpenTelemetry protobuf classes; scores at ``/api/public/scores``; prompts are created and
read under ``/api/public/v2/prompts``. Every request is recorded::

    with run_langfuse_server() as server:
        configure(server.config)
        ...
        flush()
        assert server.spans_named("draft_script")
"""

from __future__ import annotations

import gzip
import json
import threading
import urllib.parse
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tools.tracing import LangfuseConfig

__all__ = ["ExportedSpan", "LangfuseServer", "Request", "run_langfuse_server"]

_OTEL_PATH = "/api/public/otel/v1/traces"
_PROMPTS_PATH = "/api/public/v2/prompts"


@dataclass(frozen=True)
class ExportedSpan:
    """One span as the SDK exported it."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str | None
    attributes: dict[str, Any]
    status_message: str | None = None

    def attribute_json(self, key: str) -> Any:
        """An attribute the SDK serialised as JSON (usage, input, output, ...)."""
        return json.loads(self.attributes[key])


@dataclass(frozen=True)
class Request:
    """One request the server received."""

    method: str
    path: str
    query: dict[str, str]
    body: Any


@dataclass
class LangfuseServer:
    """The server's state; ``unavailable`` makes every prompt request answer 503."""

    public_key: str = field(default_factory=lambda: f"pk-lf-test-{uuid.uuid4().hex[:8]}")
    secret_key: str = "sk-lf-test"
    requests: list[Request] = field(default_factory=list)
    spans: list[ExportedSpan] = field(default_factory=list)
    scores: list[dict[str, Any]] = field(default_factory=list)
    prompts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    unavailable: bool = False
    base_url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def config(self) -> LangfuseConfig:
        """Tracing configuration pointing at this server."""
        return LangfuseConfig(
            public_key=self.public_key, secret_key=self.secret_key, base_url=self.base_url
        )

    def env(self) -> dict[str, str]:
        """The environment variables a process needs to trace to this server."""
        return {
            "LANGFUSE_PUBLIC_KEY": self.public_key,
            "LANGFUSE_SECRET_KEY": self.secret_key,
            "LANGFUSE_BASE_URL": self.base_url,
        }

    def spans_named(self, name: str) -> list[ExportedSpan]:
        """The exported spans called ``name``."""
        return [span for span in self.spans if span.name == name]

    def prompt_writes(self) -> list[Request]:
        """The requests that created a prompt version."""
        return [r for r in self.requests if r.method == "POST" and r.path == _PROMPTS_PATH]

    def add_prompt(self, name: str, text: str, *, labels: list[str]) -> dict[str, Any]:
        """Store a new version of a text prompt; a label moves to the newest version."""
        with self._lock:
            versions = self.prompts.setdefault(name, [])
            for version in versions:
                version["labels"] = [label for label in version["labels"] if label not in labels]
            prompt = {
                "name": name,
                "version": len(versions) + 1,
                "type": "text",
                "prompt": text,
                "config": {},
                "labels": [*labels, "latest"],
                "tags": [],
            }
            for version in versions:
                version["labels"] = [label for label in version["labels"] if label != "latest"]
            versions.append(prompt)
            return prompt

    def prompt(self, name: str, label: str) -> dict[str, Any] | None:
        """The version of prompt ``name`` carrying ``label``."""
        with self._lock:
            versions = self.prompts.get(name, [])
            return next((v for v in versions if label in v["labels"]), None)

    def record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def receive_spans(self, payload: bytes) -> None:
        export = ExportTraceServiceRequest()
        export.ParseFromString(payload)
        spans = [
            ExportedSpan(
                name=span.name,
                trace_id=span.trace_id.hex(),
                span_id=span.span_id.hex(),
                parent_span_id=span.parent_span_id.hex() or None,
                attributes={a.key: _value(a.value) for a in span.attributes},
                status_message=span.status.message or None,
            )
            for resource in export.resource_spans
            for scope in resource.scope_spans
            for span in scope.spans
        ]
        with self._lock:
            self.spans.extend(spans)


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    return getattr(value, kind) if kind else None


@contextmanager
def run_langfuse_server() -> Iterator[LangfuseServer]:
    """Serve a Langfuse double on 127.0.0.1 for the duration of the block."""
    state = LangfuseServer()
    http = _HTTPServer(state)
    host, port = http.server_address[:2]
    state.base_url = f"http://{host}:{port}"
    thread = threading.Thread(
        target=http.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    try:
        yield state
    finally:
        http.shutdown()
        http.server_close()
        thread.join()


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: LangfuseServer) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def do_GET(self) -> None:
        path, query = self._request(None)
        state = self.server.state
        if path == "/api/public/projects":
            self._send(200, {"data": [{"id": "test-project", "name": "test", "metadata": {}}]})
        elif path.startswith(f"{_PROMPTS_PATH}/"):
            if state.unavailable:
                self._send(503, {"message": "unavailable"})
                return
            name = urllib.parse.unquote(path.removeprefix(f"{_PROMPTS_PATH}/"))
            prompt = state.prompt(name, query.get("label", "production"))
            if prompt is None:
                self._send(404, {"message": f"Prompt not found: {name}"})
            else:
                self._send(200, prompt)
        else:
            self._send(404, {"message": f"no route {path}"})

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.headers.get("Content-Encoding") == "gzip":
            raw = gzip.decompress(raw)
        state = self.server.state
        if self.path.split("?", 1)[0] == _OTEL_PATH:
            self._request(None)
            state.receive_spans(raw)
            self._send(200, {})
            return
        body = json.loads(raw or b"null")
        path, _ = self._request(body)
        if path == "/api/public/scores":
            scores = body if isinstance(body, list) else [body]
            state.scores.extend(scores)
            self._send(202, {"message": "Accepted"})
        elif path == _PROMPTS_PATH:
            if state.unavailable:
                self._send(503, {"message": "unavailable"})
                return
            self._send(200, state.add_prompt(body["name"], body["prompt"], labels=body["labels"]))
        else:
            self._send(404, {"message": f"no route {path}"})

    def _request(self, body: Any) -> tuple[str, dict[str, str]]:
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        self.server.state.record(Request(self.command, url.path, query, body))
        return url.path, query

    def _send(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""
