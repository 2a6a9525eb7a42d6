"""A ComfyUI test server: ComfyUI 0.33's HTTP + WebSocket protocol over a real socket.

It stands in for a GPU server. Submitted prompts are validated like ComfyUI does (unknown
node classes, missing inputs, numbers out of range, images never uploaded: HTTP 400 with
``node_errors``), queued, and executed one at a time by a small interpreter that gives each
node class of the workflow library a simple Pillow meaning (a sampler paints the prompt on a
colour derived from prompt and seed, with the references as thumbnails; the first-last-frame
video node cross-fades; ``SaveVideo`` writes an H.264 MP4 with imageio-ffmpeg; speech is a
tone pitched by the voice and as long as the text, an audio sampler brown noise seeded by
prompt and seed, and ``SaveAudio`` writes FLAC listed under ``audio`` as ComfyUI does). The socket
sees the event sequence of the recordings in ``shared/comfyui`` beside the checkout (copied
here, gzipped):
``status``, ``execution_start``, ``execution_cached``, ``executing`` / ``progress`` /
``executed`` per node, ``execution_success`` or ``execution_error`` /
``execution_interrupted``, then ``executing`` with ``node: null`` after history is written.
Execution events go only to the ``clientId`` that queued the prompt. Submitting the very same
prompt again (same uploaded bytes) is a fully cached run: no new file, the old file names.
Its ``/object_info`` is the recorded one with model files "installed": by default those the
workflow library loads, ``models={}`` for none (as recorded); a model not listed is refused
at submit like any value not in a choice list (``value_not_in_list``).

Queue control is ComfyUI's: ``GET /queue``, ``POST /queue`` with ``{"delete": [prompt ids]}``
or ``{"clear": true}`` (pending prompts only), and ``POST /interrupt``, which stops the running
prompt — only if it is the one named by an optional ``{"prompt_id": ...}`` — at its next node
or inside a node's delay: ``execution_interrupted`` on the socket, ``status_str: error`` in the
history. An interrupt while nothing runs is forgotten (ComfyUI clears the flag when a prompt
starts).

Tests count ``jobs`` (accepted prompts), see what was ``cancelled``, script failures and
delays, and restart the server::

    with run_comfy_server() as server:
        server.fail_next(2)            # the next two executions raise an execution_error
        server.delay_next(30)          # the next execution takes 30 s (unless interrupted)
        server.restart(down_s=0.5)     # down now (queue and history lost), up again later
        ...
        assert server.jobs == 3
        assert server.cancelled == [("interrupted", prompt_id)]

Run alone, it is one ComfyUI server process, so that a benchmark's servers do not share its
interpreter: ``python -m tests.doubles.comfy_server --port 8188 --job-delay 1``. Each job's
run is then read back as ComfyUI reports it, from ``/history`` (its ``create_time`` and the
``timestamp`` of ``execution_start`` and ``execution_success``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email.parser
import email.policy
import functools
import gzip
import hashlib
import io
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest
import uvicorn
from PIL import Image, ImageDraw, ImageFont, ImageOps
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from tools.draft_renderer import encode_mp4
from tools.sound import run_ffmpeg
from tools.workflows import COMFY_WORKFLOWS

__all__ = [
    "ComfyServer",
    "comfy_server",
    "library_models",
    "object_info_with_models",
    "recorded_object_info",
    "recorded_transcripts",
    "run_comfy_server",
]

_HERE = Path(__file__).parent
_MODEL_FILE_FIELDS = ("_name", "_name1", "_name2")
_SAMPLER_EVENTS = 4  # progress messages per sampler


@functools.cache
def _object_info_text() -> str:
    return gzip.decompress((_HERE / "comfyui_0.33.0_object_info.json.gz").read_bytes()).decode()


def recorded_object_info() -> dict[str, Any]:
    """The ``/object_info`` answer recorded from a real ComfyUI 0.33.0 (a fresh copy)."""
    return json.loads(_object_info_text())


def library_models(folder: Path = COMFY_WORKFLOWS) -> dict[str, set[str]]:
    """The model files the workflow library's graphs load, per ``"Class.input"``.

    What the stand-in GPU server has installed unless a test says otherwise, so that a
    workflow dropped into the library runs on it without editing this file.
    """
    info = recorded_object_info()
    models: dict[str, set[str]] = {}
    for path in sorted(folder.glob("*.json")):
        for node in json.loads(path.read_text()).values():
            declared = info.get(node["class_type"], {}).get("input", {})
            fields = {**declared.get("required", {}), **declared.get("optional", {})}
            for name, value in node["inputs"].items():
                if name in fields and name.endswith(_MODEL_FILE_FIELDS) and isinstance(value, str):
                    models.setdefault(f"{node['class_type']}.{name}", set()).add(value)
    return models


def object_info_with_models(models: Mapping[str, Iterable[str]] | None = None) -> dict[str, Any]:
    """The recorded ``/object_info`` as a server with these model files installed answers it.

    The recording comes from a server without weights, so its loaders list no files:
    ``ckpt_name: [[], {...}]``, ``model_name: ["COMBO", {"options": []}]``. A real server
    lists the files in its model folders there; ``models`` maps ``"Class.input"`` to those
    files (None: :func:`library_models`; ``{}``: none, as recorded).
    """
    info = recorded_object_info()
    for key, files in (library_models() if models is None else models).items():
        class_type, name = key.split(".", 1)
        inputs = info[class_type]["input"]
        section = "required" if name in inputs.get("required", {}) else "optional"
        declaration = inputs[section][name]
        if isinstance(declaration[0], list):
            declaration[0] = [*declaration[0], *sorted(set(files) - set(declaration[0]))]
        else:
            listed = declaration[1]["options"]
            declaration[1]["options"] = [*listed, *sorted(set(files) - set(listed))]
    return info


def recorded_transcripts() -> dict[str, Any]:
    """The recorded HTTP/WebSocket transcripts of a real ComfyUI 0.33.0."""
    return json.loads(gzip.decompress((_HERE / "comfyui_0.33.0_transcripts.json.gz").read_bytes()))


class NodeFailure(Exception):
    """A node raised while executing (becomes ``execution_error``)."""


@dataclass
class _Job:
    number: int
    prompt_id: str
    prompt: dict[str, Any]
    client_id: str | None
    outputs: list[str]
    created: int = field(default_factory=lambda: _now_ms())


class ComfyServer:
    """The server's state: uploads, outputs, history, queue, counters and scripted failures."""

    def __init__(
        self,
        *,
        node_delay_s: float = 0.0,
        job_delay_s: float = 0.0,
        models: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        self.object_info = object_info_with_models(models)
        self.node_delay_s = node_delay_s
        self.job_delay_s = job_delay_s
        self.executions: list[tuple[float, float]] = []  # (start, end), monotonic seconds
        self.peak_queue = 0
        self.uploads: dict[str, bytes] = {}
        self.files: dict[tuple[str, str, str], bytes] = {}
        self.history: dict[str, dict[str, Any]] = {}
        self.submitted: list[dict[str, Any]] = []
        self.prompt_ids: list[str] = []
        self.cancelled: list[tuple[Literal["deleted", "interrupted"], str]] = []
        self.jobs = 0
        self.port = 0
        self._failures: list[Literal["error", "interrupt"]] = []
        self._delays: list[float] = []
        self._cache: dict[str, dict[str, dict[str, Any]]] = {}
        self._counters: dict[str, int] = {}
        self._sockets: dict[str, WebSocket] = {}
        self._pending: list[_Job] = []
        self._running: _Job | None = None
        self._wake: asyncio.Event | None = None
        self._interrupted: asyncio.Event | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._restarting: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8188``."""
        return f"http://127.0.0.1:{self.port}"

    def fail_next(self, times: int, kind: Literal["error", "interrupt"] = "error") -> None:
        """Make the next ``times`` executions fail (an execution error, or an interrupt)."""
        self._failures.extend([kind] * times)

    def delay_next(self, *seconds: float) -> None:
        """Make the next executions take this long each (not ``job_delay_s``), beyond their nodes.

        The delay is spent in the first node and ends early on an interrupt.
        """
        self._delays.extend(seconds)

    @property
    def queue_remaining(self) -> int:
        """Prompts waiting or running."""
        return len(self._pending) + (self._running is not None)

    # --- HTTP ------------------------------------------------------------------------------

    def app(self) -> Starlette:
        """The ASGI app."""
        return Starlette(
            routes=[
                Route("/object_info", self._object_info),
                Route("/object_info/{node_class}", self._object_info),
                Route("/system_stats", self._system_stats),
                Route("/prompt", self._get_prompt, methods=["GET"]),
                Route("/prompt", self._post_prompt, methods=["POST"]),
                Route("/queue", self._get_queue, methods=["GET"]),
                Route("/queue", self._post_queue, methods=["POST"]),
                Route("/history", self._get_history),
                Route("/history/{prompt_id}", self._get_history),
                Route("/upload/image", self._upload, methods=["POST"]),
                Route("/view", self._view),
                Route("/interrupt", self._post_interrupt, methods=["POST"]),
                WebSocketRoute("/ws", self._ws),
            ],
            lifespan=self._lifespan,
        )

    async def _object_info(self, request: Request) -> Response:
        node_class = request.path_params.get("node_class")
        if node_class is None:
            return JSONResponse(self.object_info)
        info = self.object_info.get(node_class)
        return JSONResponse({node_class: info} if info else {})

    async def _system_stats(self, request: Request) -> Response:
        return JSONResponse(recorded_transcripts()["system_stats"])

    async def _get_prompt(self, request: Request) -> Response:
        return JSONResponse({"exec_info": {"queue_remaining": self.queue_remaining}})

    async def _get_queue(self, request: Request) -> Response:
        def row(job: _Job) -> list[Any]:
            extra = {"client_id": job.client_id, "create_time": job.created}
            return [job.number, job.prompt_id, job.prompt, extra, job.outputs]

        running = [row(self._running)] if self._running else []
        return JSONResponse(
            {"queue_running": running, "queue_pending": [row(j) for j in self._pending]}
        )

    async def _post_queue(self, request: Request) -> Response:
        body = await request.json()
        doomed = [
            job
            for job in self._pending
            if body.get("clear") or job.prompt_id in body.get("delete", [])
        ]
        for job in doomed:
            self._pending.remove(job)
            self.cancelled.append(("deleted", job.prompt_id))
        if doomed:
            await self._broadcast_status()
        return Response(status_code=200)

    async def _get_history(self, request: Request) -> Response:
        prompt_id = request.path_params.get("prompt_id")
        if prompt_id is None:
            return JSONResponse(self.history)
        entry = self.history.get(prompt_id)
        return JSONResponse({prompt_id: entry} if entry else {})

    async def _upload(self, request: Request) -> Response:
        fields = _multipart(await request.body(), request.headers.get("content-type", ""))
        if "image" not in fields:
            return Response(status_code=400)
        filename, data = fields["image"]
        subfolder = fields.get("subfolder", ("", b""))[1].decode()
        name = filename or "image.png"
        overwrite = fields.get("overwrite", ("", b"false"))[1].decode().lower() == "true"
        key = f"{subfolder}/{name}" if subfolder else name
        if key in self.uploads and self.uploads[key] != data and not overwrite:
            stem, dot, ext = name.rpartition(".")
            name = f"{stem} (1){dot}{ext}"
            key = f"{subfolder}/{name}" if subfolder else name
        self.uploads[key] = data
        return JSONResponse({"name": name, "subfolder": subfolder, "type": "input"})

    async def _view(self, request: Request) -> Response:
        query = request.query_params
        key = (query.get("type", "output"), query.get("subfolder", ""), query.get("filename", ""))
        if key[0] == "input":
            name = f"{key[1]}/{key[2]}" if key[1] else key[2]
            data = self.uploads.get(name)
        else:
            data = self.files.get(key)
        if data is None:
            return Response(status_code=404)
        media = "video/mp4" if key[2].endswith(".mp4") else "image/png"
        return Response(data, media_type=media)

    async def _post_interrupt(self, request: Request) -> Response:
        try:
            body = await request.json()
        except json.JSONDecodeError:
            body = {}
        wanted = body.get("prompt_id") if isinstance(body, dict) else None
        running = self._running
        if running is not None and wanted in (None, running.prompt_id):
            assert self._interrupted is not None
            self._interrupted.set()
            self.cancelled.append(("interrupted", running.prompt_id))
        return Response(status_code=200)

    async def _post_prompt(self, request: Request) -> Response:
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return JSONResponse({"error": "invalid json"}, status_code=400)
        prompt = body.get("prompt")
        if not isinstance(prompt, dict):
            return _error(400, "invalid_prompt", "Cannot execute because the prompt is invalid")
        self.submitted.append(body)
        for node_id, node in prompt.items():
            class_type = node.get("class_type") if isinstance(node, dict) else None
            if class_type not in self.object_info:
                return _error(
                    400,
                    "missing_node_type",
                    f"Node '{class_type}' not found. The custom node may not be installed.",
                    details=f"Node ID '#{node_id}'",
                    extra={"node_id": node_id, "class_type": class_type, "node_title": class_type},
                )
        outputs = [
            n for n, node in prompt.items() if self.object_info[node["class_type"]]["output_node"]
        ]
        if not outputs:
            return _error(400, "prompt_no_outputs", "Prompt has no outputs")
        node_errors = self._validate(prompt)
        if node_errors:
            body_out = _error_body(
                "prompt_outputs_failed_validation", "Prompt outputs failed validation"
            )
            for errors in node_errors.values():
                errors["dependent_outputs"] = outputs
            return JSONResponse({**body_out, "node_errors": node_errors}, status_code=400)
        job = _Job(
            number=self.jobs,
            prompt_id=str(uuid.uuid4()),
            prompt=prompt,
            client_id=body.get("client_id"),
            outputs=outputs,
        )
        self.jobs += 1
        self.prompt_ids.append(job.prompt_id)
        self._pending.append(job)
        self.peak_queue = max(self.peak_queue, self.queue_remaining)
        assert self._wake is not None
        self._wake.set()
        await self._broadcast_status()
        return JSONResponse({"prompt_id": job.prompt_id, "number": job.number, "node_errors": {}})

    def _validate(self, prompt: dict[str, Any]) -> dict[str, dict[str, Any]]:
        problems: dict[str, dict[str, Any]] = {}
        for node_id, node in prompt.items():
            class_type = node["class_type"]
            inputs = node.get("inputs", {})
            spec = self.object_info[class_type]["input"]
            declared = {**spec.get("required", {}), **spec.get("optional", {})}
            errors = []
            for name in spec.get("required", {}):
                if name not in inputs and not any(k.startswith(f"{name}.") for k in inputs):
                    errors.append(
                        _node_error("required_input_missing", "Required input is missing", name)
                    )
            for name, value in inputs.items():
                declaration = declared.get(name.split(".", 1)[0])
                if declaration is None or "." in name:
                    continue
                if isinstance(value, list) and len(value) == 2 and isinstance(value[1], int):
                    if value[0] not in prompt:
                        errors.append(_node_error("bad_linked_input", "Bad linked input", name))
                    continue
                if error := self._check_value(class_type, name, declaration, value):
                    errors.append(error)
            if errors:
                problems[node_id] = {"errors": errors, "class_type": class_type}
        return problems

    def _check_value(
        self, class_type: str, name: str, declaration: list[Any], value: Any
    ) -> dict[str, Any] | None:
        kind = declaration[0]
        options = (
            declaration[1] if len(declaration) > 1 and isinstance(declaration[1], dict) else {}
        )
        if kind in ("INT", "FLOAT") and isinstance(value, int | float):
            if "min" in options and value < options["min"]:
                return _node_error(
                    "value_smaller_than_min",
                    f"Value {value} smaller than min of {options['min']}",
                    name,
                    declaration,
                    value,
                )
            if "max" in options and value > options["max"]:
                return _node_error(
                    "value_bigger_than_max",
                    f"Value {value} bigger than max of {options['max']}",
                    name,
                    declaration,
                    value,
                )
        if isinstance(kind, list):
            choices = kind
        elif kind == "COMBO":
            choices = options.get("options")
        elif kind == "COMFY_DYNAMICCOMBO_V3":
            choices = [option["key"] for option in options["options"]]
        else:
            return None
        if choices is None:
            return None  # listed remotely (LoadImageOutput)
        if options.get("image_upload") or (
            class_type in ("LoadImage", "LoadImageMask") and name == "image"
        ):
            choices = [*choices, *self.uploads]
        if value not in choices:
            return _node_error(
                "value_not_in_list",
                f"Value not in list: {name}: '{value}' not in {choices[:8]}",
                name,
                declaration,
                value,
            )
        return None

    # --- WebSocket -------------------------------------------------------------------------

    async def _ws(self, websocket: WebSocket) -> None:
        await websocket.accept()
        client_id = websocket.query_params.get("clientId") or uuid.uuid4().hex
        self._sockets[client_id] = websocket
        await websocket.send_json(
            {
                "type": "status",
                "data": {
                    "status": {"exec_info": {"queue_remaining": self.queue_remaining}},
                    "sid": client_id,
                },
            }
        )
        try:
            while True:
                await websocket.receive_text()
        except WebSocketDisconnect:
            pass
        finally:
            if self._sockets.get(client_id) is websocket:
                del self._sockets[client_id]

    async def _send(self, client_id: str | None, message: dict[str, Any]) -> None:
        socket = self._sockets.get(client_id or "")
        if socket is not None:
            with contextlib.suppress(Exception):
                await socket.send_json(message)

    async def _broadcast_status(self) -> None:
        message = {
            "type": "status",
            "data": {"status": {"exec_info": {"queue_remaining": self.queue_remaining}}},
        }
        for socket in list(self._sockets.values()):
            with contextlib.suppress(Exception):
                await socket.send_json(message)

    # --- execution -------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self._wake, self._interrupted = asyncio.Event(), asyncio.Event()
        worker = asyncio.create_task(self._work())
        yield
        worker.cancel()

    async def _work(self) -> None:
        assert self._wake is not None and self._interrupted is not None
        while True:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
                continue
            job = self._pending.pop(0)
            self._running = job
            self._interrupted.clear()  # ComfyUI forgets an interrupt sent while nothing ran
            started = time.monotonic()
            try:
                await self._execute(job)
            finally:
                self._running = None
                self.executions.append((started, time.monotonic()))
            await self._broadcast_status()
            await self._send(job.client_id, _event("executing", job, node=None))

    async def _busy(self, seconds: float) -> None:
        """Compute for ``seconds``, or until interrupted."""
        assert self._interrupted is not None
        if seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._interrupted.wait(), seconds)

    async def _execute(self, job: _Job) -> None:
        messages: list[list[Any]] = []

        async def emit(kind: str, **data: Any) -> None:
            message = _event(kind, job, **data)
            if kind.startswith("execution_"):
                messages.append([kind, message["data"]])
            await self._send(job.client_id, message)

        await emit("execution_start", timestamp=_now_ms())
        key = self._cache_key(job.prompt)
        cached = self._cache.get(key)
        order = _execution_order(job.prompt, job.outputs)
        await emit("execution_cached", nodes=order if cached else [], timestamp=_now_ms())
        outputs: dict[str, dict[str, Any]] = {}
        status = "success"
        if cached is not None:
            outputs = cached
            for node_id, output in outputs.items():
                await emit("executed", node=node_id, display_node=node_id, output=output)
        else:
            failure = self._failures.pop(0) if self._failures else None
            delay = self._delays.pop(0) if self._delays else self.job_delay_s
            assert self._interrupted is not None
            if failure == "interrupt":
                self._interrupted.set()
            values: dict[str, tuple[Any, ...]] = {}
            executed: list[str] = []
            for node_id in order:
                node = job.prompt[node_id]
                await emit("executing", node=node_id, display_node=node_id)
                await self._busy(delay + self.node_delay_s)
                delay = 0.0
                if self._interrupted.is_set():
                    await emit(
                        "execution_interrupted",
                        node_id=node_id,
                        node_type=node["class_type"],
                        executed=executed,
                        timestamp=_now_ms(),
                    )
                    status = "error"
                    break
                try:
                    if failure == "error" and node_id == order[-1]:
                        raise NodeFailure(
                            "CUDA out of memory. Tried to allocate 2.00 GiB (scripted failure)"
                        )
                    values[node_id], ui = await self._run_node(job, node_id, node, values, emit)
                except Exception as error:  # the node failed: report it as ComfyUI does
                    await emit(
                        "execution_error",
                        node_id=node_id,
                        node_type=node["class_type"],
                        executed=executed,
                        exception_message=f"{error}\n",
                        exception_type=type(error).__name__,
                        traceback=[f'  File "comfy_server.py", in {node["class_type"]}\n'],
                        current_inputs={},
                        current_outputs=order,
                        timestamp=_now_ms(),
                    )
                    status = "error"
                    break
                executed.append(node_id)
                if ui is not None:
                    outputs[node_id] = ui
                    await emit("executed", node=node_id, display_node=node_id, output=ui)
            if status == "success":
                self._cache[key] = outputs
        if status == "success":
            await emit("execution_success", timestamp=_now_ms())
        self.history[job.prompt_id] = {
            "prompt": [
                job.number,
                job.prompt_id,
                job.prompt,
                {"client_id": job.client_id, "create_time": job.created},
                job.outputs,
            ],
            "outputs": outputs,
            "status": {
                "status_str": status,
                "completed": status == "success",
                "messages": messages,
            },
            "meta": {
                n: {"node_id": n, "display_node": n, "parent_node": None, "real_node_id": n}
                for n in outputs
            },
        }

    def _cache_key(self, prompt: dict[str, Any]) -> str:
        loaded = sorted(
            hashlib.sha256(self.uploads.get(node["inputs"].get("image", ""), b"")).hexdigest()
            for node in prompt.values()
            if node["class_type"] in ("LoadImage", "LoadImageMask")
        )
        return hashlib.sha256(json.dumps([prompt, loaded], sort_keys=True).encode()).hexdigest()

    async def _run_node(
        self,
        job: _Job,
        node_id: str,
        node: dict[str, Any],
        values: dict[str, tuple[Any, ...]],
        emit: Callable[..., Any],
    ) -> tuple[tuple[Any, ...], dict[str, Any] | None]:
        inputs = {
            name: values[value[0]][value[1]] if _is_link(value) else value
            for name, value in node["inputs"].items()
        }
        class_type = node["class_type"]
        if class_type == "KSampler":
            steps = int(inputs["steps"])
            for i in range(1, _SAMPLER_EVENTS + 1):
                await emit(
                    "progress", value=round(steps * i / _SAMPLER_EVENTS), max=steps, node=node_id
                )
        runner = _RUNNERS.get(class_type)
        if runner is None:
            raise NotImplementedError(f"the ComfyUI test server cannot run {class_type}")
        result = await asyncio.to_thread(runner, self, inputs)
        if class_type in _SAVERS:
            return (), self._save(class_type, inputs, result)
        return result, None

    def _save(
        self, class_type: str, inputs: dict[str, Any], data: list[tuple[bytes, str]]
    ) -> dict[str, Any]:
        prefix = str(inputs.get("filename_prefix", "ComfyUI"))
        subfolder, _, base = prefix.rpartition("/")
        kind = "temp" if class_type == "PreviewImage" else "output"
        saved = []
        for payload, extension in data:
            count = self._counters.get(prefix, 0) + 1
            self._counters[prefix] = count
            filename = f"{base}_{count:05}_.{extension}"
            self.files[(kind, subfolder, filename)] = payload
            saved.append({"filename": filename, "subfolder": subfolder, "type": kind})
        if class_type == "SaveVideo":
            return {"images": saved, "animated": [True]}
        if class_type == "SaveAudio":
            return {"audio": saved}
        return {"images": saved}

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Serve (on a free port the first time) in a background thread; return once it accepts
        connections."""
        config = uvicorn.Config(
            self.app(),
            host="127.0.0.1",
            port=self.port,
            log_level="error",
            ws="websockets-sansio",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        thread = threading.Thread(target=self._server.run, name="comfy-test-server", daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not (self._server.started and self._server.servers):
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the ComfyUI test server did not start")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        self._thread = thread

    def stop(self) -> None:
        """Shut the server down (after a restart under way has come back)."""
        if self._restarting is not None and self._restarting is not threading.current_thread():
            self._restarting.join(timeout=30)
        self._shut_down()

    def _shut_down(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)

    def restart(self, *, down_s: float) -> None:
        """Restart like ComfyUI does: refuse connections for ``down_s``, then serve again.

        Returns at once. The queue, the running prompt, the history and the node cache are
        lost, as they live in the server's memory; uploads and outputs are files and stay.
        """

        def cycle() -> None:
            self._shut_down()
            self._pending, self._running, self.history = [], None, {}
            self._cache, self._sockets = {}, {}
            time.sleep(down_s)  # the server process is down (this thread is the double's)
            self.start()

        self._restarting = threading.Thread(target=cycle, name="comfy-test-restart", daemon=True)
        self._restarting.start()


@contextlib.contextmanager
def run_comfy_server(**options: Any) -> Iterator[ComfyServer]:
    """A running :class:`ComfyServer` for the ``with`` block."""
    server = ComfyServer(**options)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def main(argv: Sequence[str] | None = None) -> None:
    """Serve one ComfyUI test server in this process until interrupted."""
    parser = argparse.ArgumentParser(description="A ComfyUI 0.33 test double on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=8188)
    parser.add_argument("--job-delay", type=float, default=0.0, help="seconds added to each job")
    parser.add_argument("--node-delay", type=float, default=0.0, help="seconds added per node")
    args = parser.parse_args(argv)
    server = ComfyServer(job_delay_s=args.job_delay, node_delay_s=args.node_delay)
    uvicorn.run(
        server.app(),
        host="127.0.0.1",
        port=args.port,
        log_level="error",
        ws="websockets-sansio",
        timeout_graceful_shutdown=1,
    )


@pytest.fixture
def comfy_server() -> Iterator[ComfyServer]:
    """A ComfyUI test server on 127.0.0.1, one per test."""
    with run_comfy_server() as server:
        yield server


# --- wire helpers ------------------------------------------------------------------------------


def _now_ms() -> int:
    return int(time.time() * 1000)


def _event(kind: str, job: _Job, **data: Any) -> dict[str, Any]:
    if kind in ("executing", "executed", "progress"):
        return {"type": kind, "data": {**data, "prompt_id": job.prompt_id}}
    return {"type": kind, "data": {"prompt_id": job.prompt_id, **data}}


def _error_body(
    kind: str, message: str, details: str = "", extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "error": {"type": kind, "message": message, "details": details, "extra_info": extra or {}}
    }


def _error(
    status: int, kind: str, message: str, *, details: str = "", extra: dict[str, Any] | None = None
) -> JSONResponse:
    return JSONResponse(
        {**_error_body(kind, message, details, extra), "node_errors": {}}, status_code=status
    )


def _node_error(
    kind: str, message: str, name: str, declaration: list[Any] | None = None, value: Any = None
) -> dict[str, Any]:
    extra: dict[str, Any] = {"input_name": name}
    if declaration is not None:
        extra |= {"input_config": declaration, "received_value": value}
    return {"type": kind, "message": message, "details": name, "extra_info": extra}


def _is_link(value: object) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[1], int)


def _execution_order(prompt: dict[str, Any], outputs: list[str]) -> list[str]:
    """The nodes the outputs need, dependencies first (ComfyUI skips the rest)."""
    order: list[str] = []

    def visit(node_id: str) -> None:
        if node_id in order:
            return
        for value in prompt[node_id]["inputs"].values():
            if _is_link(value):
                visit(value[0])
        order.append(node_id)

    for output in sorted(outputs, key=int if all(o.isdigit() for o in outputs) else str):
        visit(output)
    return order


def _multipart(body: bytes, content_type: str) -> dict[str, tuple[str, bytes]]:
    """Parse a multipart/form-data body into ``{field: (filename, bytes)}``."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    fields: dict[str, tuple[str, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            fields[str(name)] = (part.get_filename() or "", part.get_payload(decode=True) or b"")
    return fields


# --- node semantics: simple image operations ---------------------------------------------------


@dataclass
class _Cond:
    text: str
    refs: list[Image.Image] = field(default_factory=list)


@dataclass
class _Latent:
    size: tuple[int, int]
    images: list[Image.Image] | None = None
    mask: Image.Image | None = None
    video: tuple[int, Image.Image | None, Image.Image | None] | None = None


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _open(server: ComfyServer, name: str) -> Image.Image:
    data = server.uploads.get(name)
    if data is None:
        raise FileNotFoundError(f"Invalid image file: {name}")
    return Image.open(io.BytesIO(data))


def _load_image(server: ComfyServer, i: dict[str, Any]) -> tuple[Any, ...]:
    image = _open(server, i["image"])
    rgb = image.convert("RGB")
    if "A" in image.getbands():
        mask = ImageOps.invert(image.getchannel("A"))
    else:
        mask = Image.new("L", rgb.size, 0)
    return [rgb], mask


def _load_mask(server: ComfyServer, i: dict[str, Any]) -> tuple[Any, ...]:
    image = _open(server, i["image"])
    channel = {"alpha": "A", "red": "R", "green": "G", "blue": "B"}[i["channel"]]
    bands = image.convert("RGBA")
    return (bands.getchannel(channel),)


def _colour(*parts: object) -> tuple[int, int, int]:
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return 60 + digest[0] % 160, 60 + digest[1] % 160, 60 + digest[2] % 160


def _paint(size: tuple[int, int], cond: _Cond, seed: int) -> Image.Image:
    image = Image.new("RGB", size, _colour(cond.text, seed))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(10, size[1] // 24))
    words, line, y = cond.text.split(), "", 4
    for word in words:
        if font.getlength(f"{line} {word}") > size[0] - 8 and line:
            draw.text((4, y), line, fill=(255, 255, 255), font=font)
            y += font.size + 2
            line = word
        else:
            line = f"{line} {word}".strip()
    draw.text((4, y), line, fill=(255, 255, 255), font=font)
    side = max(8, size[1] // 4)
    for n, ref in enumerate(cond.refs):
        thumb = ref.convert("RGB").resize((side, side))
        image.paste(thumb, (size[0] - (n + 1) * (side + 4), size[1] - side - 4))
    return image


def _sample(server: ComfyServer, i: dict[str, Any]) -> tuple[Any, ...]:
    latent: _Latent | _AudioLatent = i["latent_image"]
    cond: _Cond = i["positive"]
    seed = int(i["seed"])
    if isinstance(latent, _AudioLatent):
        return (_AudioLatent(latent.seconds, cond.text, seed),)
    if latent.video is not None:
        length, start, end = latent.video
        first = (start or _paint(latent.size, cond, seed)).convert("RGB").resize(latent.size)
        last = (end or first).convert("RGB").resize(latent.size)
        frames = [Image.blend(first, last, n / max(1, length - 1)) for n in range(length)]
        return (_Latent(latent.size, images=frames),)
    painted = _paint(latent.size, cond, seed)
    if latent.images and latent.mask is not None:
        base = latent.images[0].convert("RGB")
        painted = _paint(base.size, cond, seed)
        painted = Image.composite(painted, base, latent.mask.convert("L").resize(base.size))
    return (_Latent(painted.size, images=[painted]),)


def _decode(server: ComfyServer, i: dict[str, Any]) -> tuple[Any, ...]:
    latent: _Latent = i["samples"]
    if latent.images is None:
        raise ValueError("VAEDecode: the latent was never sampled")
    return (latent.images,)


def _wan_first_last(server: ComfyServer, i: dict[str, Any]) -> tuple[Any, ...]:
    start = i.get("start_image")
    end = i.get("end_image")
    size = (int(i["width"]), int(i["height"]))
    latent = _Latent(
        size, video=(int(i["length"]), start[0] if start else None, end[0] if end else None)
    )
    return i["positive"], i["negative"], latent


def _composite(server: ComfyServer, i: dict[str, Any]) -> tuple[Any, ...]:
    destination = i["destination"][0].copy()
    source = i["source"][0].convert("RGB")
    mask = i.get("mask")
    destination.paste(
        source, (int(i["x"]), int(i["y"])), mask.convert("L").resize(source.size) if mask else None
    )
    return ([destination],)


def _scale(images: list[Image.Image], factor: float) -> list[Image.Image]:
    return [
        image.resize((max(1, round(image.width * factor)), max(1, round(image.height * factor))))
        for image in images
    ]


def _encode_video(frames: list[Image.Image], fps: float) -> bytes:
    width, height = frames[0].size
    size = (width - width % 2, height - height % 2)
    rgb = (frame.convert("RGB").resize(size).tobytes() for frame in frames)
    return encode_mp4(rgb, size=size, fps=max(1, round(fps)))


# --- node semantics: audio -----------------------------------------------------------------
# Sound is an ffmpeg source (lavfi) until SaveAudio encodes it as FLAC, like ComfyUI's node.
_AUDIO_RATE = 44_100


@dataclass
class _AudioLatent:
    seconds: float
    text: str = ""
    seed: int = 0


@dataclass(frozen=True)
class _Sound:
    source: str  # an ffmpeg lavfi source


def _speak(server: ComfyServer, i: dict[str, Any]) -> tuple[Any, ...]:
    """A tone for the line: its pitch from the voice, its length from the text."""
    voice = str(i.get("model.voice") or "default")
    pitch = 110 + int(hashlib.sha256(voice.encode()).hexdigest(), 16) % 220
    seconds = min(8.0, 0.3 + 0.04 * len(str(i["text"])))
    return (_Sound(f"sine=frequency={pitch}:sample_rate={_AUDIO_RATE}:duration={seconds:.3f}"),)


def _decode_audio(server: ComfyServer, i: dict[str, Any]) -> tuple[Any, ...]:
    """Brown noise, seeded by the prompt and seed the sampler was given."""
    latent: _AudioLatent = i["samples"]
    seed = int(hashlib.sha256(f"{latent.text}|{latent.seed}".encode()).hexdigest(), 16) % 2**31
    return (
        _Sound(
            f"anoisesrc=color=brown:seed={seed}:amplitude=0.5:sample_rate={_AUDIO_RATE}"
            f":duration={latent.seconds:.3f}"
        ),
    )


def _flac(sound: _Sound) -> bytes:
    done = run_ffmpeg(
        *("-f", "lavfi", "-i", sound.source, "-c:a", "flac", "-fflags", "+bitexact"),
        *("-f", "flac", "pipe:1"),
        what="encode the test server's audio",
    )
    return done.stdout


def _ref_latent(server: ComfyServer, i: dict[str, Any]) -> tuple[Any, ...]:
    cond: _Cond = i["conditioning"]
    latent: _Latent | None = i.get("latent")
    refs = list(latent.images or []) if latent else []
    return (_Cond(cond.text, [*cond.refs, *refs]),)


_RUNNERS: dict[str, Callable[[ComfyServer, dict[str, Any]], Any]] = {
    "CheckpointLoaderSimple": lambda s, i: ("model", "clip", "vae"),
    "UNETLoader": lambda s, i: ("model",),
    "DualCLIPLoader": lambda s, i: ("clip",),
    "CLIPLoader": lambda s, i: ("clip",),
    "VAELoader": lambda s, i: ("vae",),
    "CLIPVisionLoader": lambda s, i: ("clip_vision",),
    "UpscaleModelLoader": lambda s, i: ("upscale_model",),
    "CLIPVisionEncode": lambda s, i: ("clip_vision_output",),
    "StringConcatenate": lambda s, i: (f"{i['string_a']}{i['delimiter']}{i['string_b']}",),
    "CLIPTextEncode": lambda s, i: (_Cond(str(i["text"])),),
    "ReferenceLatent": _ref_latent,
    "FluxGuidance": lambda s, i: (i["conditioning"],),
    "ConditioningZeroOut": lambda s, i: (_Cond(""),),
    "LoadImage": _load_image,
    "LoadImageMask": _load_mask,
    "FluxKontextImageScale": lambda s, i: (i["image"],),
    "VAEEncode": lambda s, i: (_Latent(i["pixels"][0].size, images=i["pixels"]),),
    "EmptyLatentImage": lambda s, i: (_Latent((int(i["width"]), int(i["height"]))),),
    "EmptySD3LatentImage": lambda s, i: (_Latent((int(i["width"]), int(i["height"]))),),
    "InpaintModelConditioning": lambda s, i: (
        i["positive"],
        i["negative"],
        _Latent(i["pixels"][0].size, images=i["pixels"], mask=i["mask"]),
    ),
    "SetLatentNoiseMask": lambda s, i: (
        _Latent(i["samples"].size, images=i["samples"].images, mask=i["mask"]),
    ),
    "WanFirstLastFrameToVideo": _wan_first_last,
    "KSampler": _sample,
    "VAEDecode": _decode,
    "ImageCompositeMasked": _composite,
    "ImageUpscaleWithModel": lambda s, i: (_scale(i["image"], 4),),
    "ImageScaleBy": lambda s, i: (_scale(i["image"], float(i["scale_by"])),),
    "ImageScale": lambda s, i: (
        [im.resize((int(i["width"]), int(i["height"]))) for im in i["image"]],
    ),
    "EmptyImage": lambda s, i: (
        [
            Image.new(
                "RGB",
                (int(i["width"]), int(i["height"])),
                tuple(int(i["color"]).to_bytes(3, "big")),
            )
            for _ in range(int(i["batch_size"]))
        ],
    ),
    "ImageInvert": lambda s, i: ([ImageOps.invert(im.convert("RGB")) for im in i["image"]],),
    "ImageBlur": lambda s, i: (i["image"],),
    "CreateVideo": lambda s, i: ((i["images"], float(i["fps"])),),
    "SaveImage": lambda s, i: [(_png(im), "png") for im in i["images"]],
    "PreviewImage": lambda s, i: [(_png(im), "png") for im in i["images"]],
    "SaveVideo": lambda s, i: [(_encode_video(*i["video"]), "mp4")],
    "EmptyLatentAudio": lambda s, i: (_AudioLatent(float(i["seconds"])),),
    "ConditioningStableAudio": lambda s, i: (i["positive"], i["negative"]),
    "VAEDecodeAudio": _decode_audio,
    "FishAudioVoiceSelector": lambda s, i: (str(i["voice"]),),
    "FishAudioTextToSpeech": _speak,
    "SaveAudio": lambda s, i: [(_flac(i["audio"]), "flac")],
}
_SAVERS = frozenset({"SaveImage", "PreviewImage", "SaveVideo", "SaveAudio"})


if __name__ == "__main__":
    main()
