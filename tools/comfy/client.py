"""One ComfyUI server over its real protocol: upload, queue, follow on the socket, confirm, fetch.

The order matters: the WebSocket ``/ws?clientId=…`` is open *before* ``POST /prompt``
(ComfyUI sends execution events only to the client that queued the prompt, and only while it
is connected). Completion is confirmed through ``/history/{prompt_id}`` — an event can be
missed, the history cannot — and every output key of every node is scanned for files (a
video comes back under ``images`` with ``animated``).

Every wait has a deadline, counted from the prompt's ``execution_start``: time spent queued
behind other prompts is bounded separately (``queue_timeout_s``, longer). A prompt the client
stops waiting for (deadline, lost connection, cancelled task) is cancelled on the server, so it
does not keep the GPU busy while a retry queues another: removed with ``POST /queue {"delete":
[id]}`` while queued, stopped with ``POST /interrupt {"prompt_id": id}`` once running (the id
makes the interrupt a no-op unless that very prompt is running, never a neighbour's).
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

    def __init__(self, message: str, *, server: str) -> None:
        super().__init__(message)
        self.server = server


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


@dataclass
class _Watch:
    """What the socket told about one prompt, and its deadline (queue wait until it starts)."""

    run_s: float
    deadline: asyncio.Timeout | None = None
    started: float | None = None
    gpu_seconds: float = 0.0
    cached_nodes: list[str] = field(default_factory=list)

    def start(self) -> None:
        """``execution_start``: from now the job has ``run_s``, however long it queued."""
        self.started = time.monotonic()
        if self.deadline is not None:
            self.deadline.reschedule(asyncio.get_running_loop().time() + self.run_s)


class ComfyClient:
    """A client for one ComfyUI server (``http://host:port``).

    Args:
        base_url: The server.
        timeout_s: Deadline of a job from its ``execution_start``.
        queue_timeout_s: How long a job may wait in the server's queue before it starts.
        request_timeout_s: Deadline of one HTTP request or socket opening.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 600.0,
        queue_timeout_s: float = 3600.0,
        request_timeout_s: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.queue_timeout_s = queue_timeout_s
        self.request_timeout_s = request_timeout_s
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=request_timeout_s)

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise ComfyUnavailableError(
                f"{self.base_url}{path}: {error!r}", server=self.base_url
            ) from error
        if response.status_code >= 500:
            raise ComfyUnavailableError(
                f"{self.base_url}{path} answered {response.status_code}: {response.text[:300]}",
                server=self.base_url,
            )
        return response

    async def queue_remaining(self) -> int:
        """Prompts waiting or running on the server (``GET /prompt``)."""
        response = await self._request("GET", "/prompt")
        return int(response.json()["exec_info"]["queue_remaining"])

    async def object_info(self) -> dict[str, Any]:
        """Every node class the server has (``GET /object_info``).

        Parsed in a worker thread: a real server's answer runs to megabytes of JSON.
        """
        response = await self._request("GET", "/object_info")
        return await asyncio.to_thread(response.json)

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
            ComfyTimeoutError: It waited longer than ``queue_timeout_s`` to start, or ran
                longer than ``timeout_s``; it was cancelled on the server.
            ComfyUnavailableError: The server could not be reached.
        """
        client_id = uuid.uuid4().hex
        ws_url = self.base_url.replace("http", "ws", 1) + f"/ws?clientId={client_id}"
        try:
            socket = await websockets.connect(
                ws_url, max_size=None, open_timeout=self.request_timeout_s
            )
        except (OSError, TimeoutError, websockets.WebSocketException) as error:
            raise ComfyUnavailableError(f"{ws_url}: {error!r}", server=self.base_url) from error
        async with socket:
            prompt_id = await self._queue(prompt, client_id)
            await self._emit(on_event, JobEvent("queued"))
            watch = _Watch(run_s=self.timeout_s)
            try:
                async with asyncio.timeout(self.queue_timeout_s) as watch.deadline:
                    await self._follow(socket, prompt_id, watch, on_event)
                    entry = await self._history(prompt_id)
                    files = await self._outputs(entry)
            except TimeoutError:
                await self._abandon(prompt_id, started=watch.started is not None)
                raise ComfyTimeoutError(self._late(prompt_id, watch)) from None
            except (ComfyUnavailableError, asyncio.CancelledError):
                await asyncio.shield(self._abandon(prompt_id, started=watch.started is not None))
                raise
        result = JobResult(
            prompt_id=prompt_id,
            server=self.base_url,
            files=files,
            gpu_seconds=watch.gpu_seconds,
            cached_nodes=watch.cached_nodes,
        )
        await self._emit(on_event, JobEvent("done"))
        return result

    async def _abandon(self, prompt_id: str, *, started: bool) -> None:
        """Cancel a prompt nobody waits for any more; best effort (the server may be gone).

        Not seen starting: delete it from the queue, then interrupt it only if ``GET
        /queue`` shows it running after all (it started while we looked away). An interrupt
        for a prompt that is still queued would stop a neighbour's on a server that
        ignores the id.
        """
        with contextlib.suppress(ComfyError):
            if not started:
                await self._request("POST", "/queue", json={"delete": [prompt_id]})
                running = (await self._request("GET", "/queue")).json().get("queue_running", [])
                if all(row[1] != prompt_id for row in running):
                    return
            await self._request("POST", "/interrupt", json={"prompt_id": prompt_id})

    def _late(self, prompt_id: str, watch: _Watch) -> str:
        if watch.started is None:
            return (
                f"{self.base_url}: prompt {prompt_id} did not start within "
                f"{self.queue_timeout_s:g} s in the queue; removed from the queue"
            )
        return (
            f"{self.base_url}: no result within {self.timeout_s:g} s of the start of prompt "
            f"{prompt_id}; interrupted"
        )

    async def _queue(self, prompt: dict[str, Any], client_id: str) -> str:
        response = await self._request(
            "POST", "/prompt", json={"prompt": prompt, "client_id": client_id}
        )
        body = response.json()
        if response.status_code != 200:
            raise ComfyRejectedError(f"{self.base_url} refused the prompt: {_rejection(body)}")
        return body["prompt_id"]

    async def _follow(
        self,
        socket: websockets.ClientConnection,
        prompt_id: str,
        watch: _Watch,
        on_event: OnEvent | None,
    ) -> None:
        """Read the socket until our prompt ends; its start moves the deadline.

        A lost socket is not fatal: the history (polled next) is the confirmation.
        """
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in socket:
                if not isinstance(raw, str):
                    continue  # binary previews
                message = json.loads(raw)
                kind, data = message.get("type"), message.get("data") or {}
                if data.get("prompt_id") != prompt_id:
                    continue
                if kind == "execution_start":
                    watch.start()
                    await self._emit(on_event, JobEvent("started"))
                elif kind == "execution_cached":
                    watch.cached_nodes = list(data.get("nodes") or [])
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
                    watch.gpu_seconds = time.monotonic() - (watch.started or time.monotonic())
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
