"""One ComfyUI server over its real protocol: upload, queue, follow on the socket, confirm, fetch.

The order matters: the WebSocket ``/ws?clientId=…`` is open *before* ``POST /prompt``
(ComfyUI sends execution events only to the client that queued the prompt, and only while it
is connected). Completion is confirmed through ``/history/{prompt_id}`` — an event can be
missed, the history cannot — and every output key of every node is scanned for files (a
video comes back under ``images`` with ``animated``). Every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets

from tools.errors import ExpectedFailure

__all__ = [
    "ComfyClient",
    "ComfyError",
    "ComfyExecutionError",
    "ComfyRejectedError",
    "ComfyTimeoutError",
    "ComfyUnavailableError",
    "JobEvent",
    "JobResult",
    "OutputFile",
]

_HISTORY_POLL_S = 0.25


class ComfyError(ExpectedFailure):
    """A ComfyUI job did not produce its outputs."""

    retryable: bool = True


class ComfyRejectedError(ComfyError):
    """The server refused the prompt (HTTP 400: validation); retrying cannot help."""

    retryable = False


class ComfyExecutionError(ComfyError):
    """A node failed while running, or the run was interrupted."""


class ComfyTimeoutError(ComfyError):
    """The job did not finish before its deadline."""


class ComfyUnavailableError(ComfyError):
    """The server could not be reached or answered with a server error."""


@dataclass(frozen=True)
class JobEvent:
    """A progress event of a running job, as the socket reported it.

    ``kind`` is ``queued``, ``started``, ``cached``, ``executing``, ``progress`` (with
    ``value``/``maximum``), ``executed`` or ``done``.
    """

    kind: str
    node: str | None = None
    value: int = 0
    maximum: int = 0
    server: str = ""


@dataclass(frozen=True)
class OutputFile:
    """A file a node saved: where it is on the server and its bytes."""

    node: str
    key: str
    filename: str
    subfolder: str
    type: str
    data: bytes

    @property
    def extension(self) -> str:
        """File extension, lower case, without the dot."""
        return self.filename.rpartition(".")[2].lower()


@dataclass
class JobResult:
    """A finished job: its files, the GPU time it took and whether ComfyUI had it cached."""

    prompt_id: str
    server: str
    files: list[OutputFile] = field(default_factory=list)
    gpu_seconds: float = 0.0
    cached_nodes: list[str] = field(default_factory=list)


OnEvent = Callable[[JobEvent], Awaitable[None]]


class ComfyClient:
    """A client for one ComfyUI server (``http://host:port``)."""

    def __init__(
        self, base_url: str, *, timeout_s: float = 600.0, request_timeout_s: float = 30.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=request_timeout_s)

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise ComfyUnavailableError(f"{self.base_url}{path}: {error!r}") from error
        if response.status_code >= 500:
            raise ComfyUnavailableError(
                f"{self.base_url}{path} answered {response.status_code}: {response.text[:300]}"
            )
        return response

    async def queue_remaining(self) -> int:
        """Prompts waiting or running on the server (``GET /prompt``)."""
        response = await self._request("GET", "/prompt")
        return int(response.json()["exec_info"]["queue_remaining"])

    async def object_info(self) -> dict[str, Any]:
        """Every node class the server has (``GET /object_info``)."""
        return (await self._request("GET", "/object_info")).json()

    async def upload_image(self, data: bytes, name: str) -> str:
        """Upload an input image (``POST /upload/image``); returns the value a loader takes."""
        response = await self._request(
            "POST",
            "/upload/image",
            files={"image": (name, data, "image/png")},
            data={"overwrite": "true", "type": "input"},
        )
        if response.status_code != 200:
            raise ComfyRejectedError(
                f"{self.base_url} refused the upload of {name}: {response.text}"
            )
        body = response.json()
        return f"{body['subfolder']}/{body['name']}" if body.get("subfolder") else body["name"]

    async def run(self, prompt: dict[str, Any], *, on_event: OnEvent | None = None) -> JobResult:
        """Queue an API-format prompt, follow it to the end and fetch its output files.

        Raises:
            ComfyRejectedError: The prompt failed validation (HTTP 400).
            ComfyExecutionError: A node failed or the run was interrupted.
            ComfyTimeoutError: It did not finish within ``timeout_s``.
            ComfyUnavailableError: The server could not be reached.
        """
        client_id = uuid.uuid4().hex
        ws_url = self.base_url.replace("http", "ws", 1) + f"/ws?clientId={client_id}"
        try:
            async with asyncio.timeout(self.timeout_s):
                try:
                    socket = await websockets.connect(ws_url, max_size=None, open_timeout=30)
                except (OSError, websockets.WebSocketException) as error:
                    raise ComfyUnavailableError(f"{ws_url}: {error!r}") from error
                async with socket:
                    prompt_id = await self._queue(prompt, client_id)
                    await self._emit(on_event, JobEvent("queued"))
                    timing = await self._follow(socket, prompt_id, on_event)
                entry = await self._history(prompt_id)
                result = JobResult(prompt_id=prompt_id, server=self.base_url, **timing)
                result.files = await self._outputs(entry)
        except TimeoutError:
            raise ComfyTimeoutError(
                f"{self.base_url}: no result within {self.timeout_s:g} s"
            ) from None
        await self._emit(on_event, JobEvent("done"))
        return result

    async def _queue(self, prompt: dict[str, Any], client_id: str) -> str:
        response = await self._request(
            "POST", "/prompt", json={"prompt": prompt, "client_id": client_id}
        )
        body = response.json()
        if response.status_code != 200:
            raise ComfyRejectedError(f"{self.base_url} refused the prompt: {_rejection(body)}")
        return body["prompt_id"]

    async def _follow(
        self, socket: websockets.ClientConnection, prompt_id: str, on_event: OnEvent | None
    ) -> dict[str, Any]:
        """Read the socket until our prompt ends; measure execution time from its events.

        A lost socket is not fatal: the history (polled next) is the confirmation.
        """
        started = time.monotonic()
        timing: dict[str, Any] = {"gpu_seconds": 0.0, "cached_nodes": []}
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in socket:
                if not isinstance(raw, str):
                    continue  # binary previews
                message = json.loads(raw)
                kind, data = message.get("type"), message.get("data") or {}
                if data.get("prompt_id") != prompt_id:
                    continue
                if kind == "execution_start":
                    started = time.monotonic()
                    await self._emit(on_event, JobEvent("started"))
                elif kind == "execution_cached":
                    timing["cached_nodes"] = list(data.get("nodes") or [])
                    await self._emit(on_event, JobEvent("cached"))
                elif kind == "executing" and data.get("node") is not None:
                    await self._emit(on_event, JobEvent("executing", node=str(data["node"])))
                elif kind == "progress":
                    event = JobEvent(
                        "progress",
                        node=str(data.get("node")),
                        value=int(data.get("value", 0)),
                        maximum=int(data.get("max", 0)),
                    )
                    await self._emit(on_event, event)
                elif kind == "executed":
                    await self._emit(on_event, JobEvent("executed", node=str(data.get("node"))))
                elif kind == "execution_success":
                    timing["gpu_seconds"] = time.monotonic() - started
                elif kind == "execution_error":
                    raise ComfyExecutionError(
                        f"{self.base_url}: node {data.get('node_id')} ({data.get('node_type')}) "
                        f"failed: {data.get('exception_type')}: "
                        f"{str(data.get('exception_message', '')).strip()}"
                    )
                elif kind == "execution_interrupted":
                    raise ComfyExecutionError(
                        f"{self.base_url}: the run was interrupted at node {data.get('node_id')}"
                    )
                elif kind == "executing" and data.get("node") is None:
                    break
        return timing

    async def _history(self, prompt_id: str) -> dict[str, Any]:
        """Wait (until the deadline around it) for the prompt's history entry."""
        while True:
            response = await self._request("GET", f"/history/{prompt_id}")
            entry = response.json().get(prompt_id)
            if entry:
                status = entry.get("status") or {}
                if status.get("status_str") == "error":
                    raise ComfyExecutionError(_history_error(self.base_url, status))
                if status.get("completed", True):
                    return entry
            await asyncio.sleep(_HISTORY_POLL_S)

    async def _outputs(self, entry: dict[str, Any]) -> list[OutputFile]:
        """Fetch every file any node reported, under any output key (images, gifs, video…)."""
        files: list[OutputFile] = []
        for node, output in (entry.get("outputs") or {}).items():
            for key, items in output.items():
                for item in items if isinstance(items, list) else []:
                    if not (isinstance(item, dict) and "filename" in item):
                        continue
                    params = {
                        "filename": item["filename"],
                        "subfolder": item.get("subfolder", ""),
                        "type": item.get("type", "output"),
                    }
                    response = await self._request("GET", "/view", params=params)
                    if response.status_code != 200:
                        raise ComfyExecutionError(
                            f"{self.base_url}: output {item['filename']} of node {node} is "
                            f"not downloadable ({response.status_code})"
                        )
                    files.append(
                        OutputFile(
                            node=str(node),
                            key=key,
                            filename=params["filename"],
                            subfolder=params["subfolder"],
                            type=params["type"],
                            data=response.content,
                        )
                    )
        return files

    async def _emit(self, on_event: OnEvent | None, event: JobEvent) -> None:
        if on_event is not None:
            await on_event(JobEvent(**{**event.__dict__, "server": self.base_url}))


def _rejection(body: dict[str, Any]) -> str:
    error = body.get("error")
    text = error.get("message", "") if isinstance(error, dict) else str(error)
    details = [
        f"node {node} ({info.get('class_type')}): "
        + "; ".join(f"{e.get('message')} [{e.get('details')}]" for e in info.get("errors", []))
        for node, info in (body.get("node_errors") or {}).items()
    ]
    if isinstance(error, dict) and error.get("details"):
        details.insert(0, str(error["details"]))
    return text + (f" — {'; '.join(details)}" if details else "")


def _history_error(base_url: str, status: dict[str, Any]) -> str:
    for kind, data in status.get("messages") or []:
        if kind == "execution_error":
            return (
                f"{base_url}: node {data.get('node_id')} ({data.get('node_type')}) failed: "
                f"{str(data.get('exception_message', '')).strip()}"
            )
        if kind == "execution_interrupted":
            return f"{base_url}: the run was interrupted"
    return f"{base_url}: the run ended with an error"
