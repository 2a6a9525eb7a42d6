"""Workflows as LangChain tools, run by a media backend: ComfyUI, or the CPU ``draft`` stand-in.

Every workflow of the library becomes a :class:`~langchain_core.tools.StructuredTool` whose
argument schema comes from its metadata (types, defaults, limits; images and masks are keys
of files in the store). Calling the tool runs the workflow on the context's backend and puts
the outputs in the file store:

- :class:`ComfyBackend` fills the API-format JSON, uploads the images and runs it on a
  :class:`~tools.comfy.pool.ComfyPool` (retries, progress, shortest queue);
- :class:`DraftMedia` (the default when no ComfyUI URL is configured) gives each workflow
  *category* a CPU rendering with the draft renderer — storyboard cards, animatics — so the
  same agents and tools run with no GPU.

Example:
    ```python
    backend = media_backend([])              # no URLs: the draft backend
    tool = workflow_tool(load_workflows()["upscale_image"], backend, files)
    result = await tool.ainvoke({"image": frame.key, "scale_by": 0.5})
    result["outputs"][0]["key"]              # the upscaled PNG in the store
    ```
"""

from __future__ import annotations

import asyncio
import copy
import io
import logging
import os
import re
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from functools import cache, partial
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

from langchain_core.tools import StructuredTool
from PIL import Image, ImageDraw
from pydantic import BaseModel, Field, create_model

from tools import draft_renderer, tracing
from tools.comfy import ComfyClient, ComfyPool, ImageInput
from tools.discovery import WorkflowDiscovery
from tools.embeddings import EmbeddingsUnavailable
from tools.ledger import record_gpu_seconds
from tools.storage import FileStore, MediaFile
from tools.workflows import (
    WatchedCatalogue,
    WorkflowError,
    WorkflowInput,
    WorkflowSpec,
    validate_against_object_info,
)

__all__ = [
    "ComfyBackend",
    "DraftMedia",
    "GeneratedFile",
    "MediaBackend",
    "OnProgress",
    "WorkflowRun",
    "as_media_backend",
    "blank_png",
    "media_backend",
    "pick_workflow",
    "stitch",
    "workflow_tool",
]

OnProgress = Callable[[str], Awaitable[None]]

_LIBRARY = WatchedCatalogue()
"""The bundled catalogue, for picking workflows by name where there is no discovery."""

_MEDIA_TYPES = {
    "png": "image/png",
    "mp4": "video/mp4",
    "webp": "image/webp",
    "gif": "image/gif",
    "flac": "audio/flac",
    "wav": "audio/wav",
}
_ARG_TYPES: dict[str, type] = {
    "string": str,
    "int": int,
    "float": float,
    "bool": bool,
    "image": str,
    "mask": str,
}

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GeneratedFile:
    """One output of a workflow run."""

    data: bytes
    extension: str
    node: str
    kind: str

    @property
    def media_type(self) -> str:
        """MIME type from the extension."""
        return _MEDIA_TYPES.get(self.extension, "application/octet-stream")


@dataclass
class WorkflowRun:
    """What a backend made: the outputs in metadata order, GPU time and where it ran."""

    outputs: list[GeneratedFile]
    gpu_seconds: float = 0.0
    server: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class MediaBackend(Protocol):
    """What generates media for the agents: runs workflows, sizes frames, assembles clips.

    ``capacity`` is how many jobs it takes at once: agents fan their independent generations
    out that wide, so a production fills the pool (a ComfyUI pool takes one job per server
    more than it runs, queued to start the moment the one before ends).
    """

    name: str
    capacity: int

    def frame_size(self, aspect_ratio: str) -> tuple[int, int]:
        """Keyframe size for a project aspect ratio."""
        ...

    async def run_workflow(
        self,
        spec: WorkflowSpec,
        values: dict[str, Any],
        *,
        label: str,
        on_progress: OnProgress | None = None,
    ) -> WorkflowRun:
        """Run ``spec`` with ``values`` (image and mask inputs as PNG bytes)."""
        ...

    async def assemble(self, clips: list[bytes], *, fps: int) -> bytes:
        """Join clips into one video."""
        ...


def blank_png(size: tuple[int, int] = (64, 64)) -> bytes:
    """A plain white PNG: the reference board when nothing is in frame."""
    buffer = io.BytesIO()
    Image.new("RGB", size, (255, 255, 255)).save(buffer, format="PNG")
    return buffer.getvalue()


def _resolved(spec: WorkflowSpec, values: dict[str, Any]) -> dict[str, Any]:
    """Values with defaults filled in; an optional image left out is a plain white one.

    Raises:
        ValueError: An unknown input, or a required one missing.
    """
    unknown = sorted(values.keys() - spec.inputs.keys())
    if unknown:
        raise ValueError(f"workflow {spec.name} has no inputs {unknown}")
    resolved: dict[str, Any] = {}
    for name, item in spec.inputs.items():
        value = values.get(name, item.default)
        if value is None and item.type in ("image", "mask") and not item.required:
            value = blank_png()
        if value is None:
            if item.required:
                raise ValueError(f"workflow {spec.name} needs input '{name}'")
            continue
        resolved[name] = value
    return resolved


# --- ComfyUI -----------------------------------------------------------------------------------


class ComfyBackend:
    """Runs workflows on a pool of ComfyUI servers; assembly stays local (ffmpeg)."""

    name: ClassVar[str] = "comfyui"

    def __init__(self, pool: ComfyPool, *, scale: int = 2) -> None:
        self.pool = pool
        self.capacity = pool.capacity
        self.scale = scale
        self._checked: set[str] = set()
        self._checking: dict[str, asyncio.Lock] = {}
        self._object_info: dict[str, dict[str, Any]] = {}  # by server URL

    async def check(self, spec: WorkflowSpec) -> None:
        """Validate a workflow against every server's ``/object_info`` (once per version).

        Each server's answer (megabytes of JSON) is fetched once and kept; a workflow it
        refuses is checked again against a fresh one, so a model installed since is found.

        Raises:
            WorkflowError: A node class, input, type, limit, choice or model file a server
                lacks, naming the workflow's file, the node and the server; nothing is
                uploaded and no job is submitted.
        """
        # A stage's jobs start at once: one of them checks while the others wait for it.
        async with self._checking.setdefault(spec.version, asyncio.Lock()):
            if spec.version in self._checked:
                return
            kept = all(client.base_url in self._object_info for client in self.pool.clients)
            try:
                await self._validate(spec, fresh=False)
            except WorkflowError:
                if not kept:
                    raise
                await self._validate(spec, fresh=True)
            self._checked.add(spec.version)

    async def _validate(self, spec: WorkflowSpec, *, fresh: bool) -> None:
        async def info(client: ComfyClient) -> dict[str, Any]:
            if fresh or client.base_url not in self._object_info:
                self._object_info[client.base_url] = await client.object_info()
            return self._object_info[client.base_url]

        clients = self.pool.clients
        for client, answer in zip(
            clients, await asyncio.gather(*(info(c) for c in clients)), strict=True
        ):
            server = client.base_url
            await asyncio.to_thread(validate_against_object_info, spec, answer, server=server)

    def frame_size(self, aspect_ratio: str) -> tuple[int, int]:
        """The draft size times ``scale`` (1280x720 for 16:9 by default)."""
        width, height = draft_renderer.frame_size(aspect_ratio)
        return width * self.scale, height * self.scale

    async def run_workflow(
        self,
        spec: WorkflowSpec,
        values: dict[str, Any],
        *,
        label: str,
        on_progress: OnProgress | None = None,
    ) -> WorkflowRun:
        """Fill the JSON, upload the images, run it on the least busy server.

        The GPU seconds (``execution_start`` → ``execution_success``) go to the run's cost
        ledger and into the result.
        """
        prompt = copy.deepcopy(spec.graph)
        images: list[ImageInput] = []
        for name, value in _resolved(spec, values).items():
            item = spec.inputs[name]
            if item.type in ("image", "mask"):
                images.append(ImageInput(node=item.node, field=item.field, data=value))
            else:
                prompt[item.node]["inputs"][item.field] = value
        await self.check(spec)
        servers = ", ".join(client.base_url for client in self.pool.clients)
        with tracing.comfy_span(spec.name, servers):
            job = await self.pool.run(prompt, images, label=label, on_progress=on_progress)
            record_gpu_seconds(spec.name, job.gpu_seconds, job.server)
        outputs = [
            GeneratedFile(data=file.data, extension=file.extension, node=file.node, kind=out.kind)
            for out in spec.outputs
            for file in job.files
            if file.node == out.node
        ]
        if len(outputs) < len(spec.outputs):
            raise RuntimeError(
                f"workflow {spec.name} on {job.server} returned {len(outputs)} of its "
                f"{len(spec.outputs)} outputs"
            )
        return WorkflowRun(outputs=outputs, gpu_seconds=job.gpu_seconds, server=job.server)

    async def assemble(self, clips: list[bytes], *, fps: int) -> bytes:
        """Concatenate clips locally."""
        return await asyncio.to_thread(draft_renderer.assemble, clips, fps=fps)


# --- draft -------------------------------------------------------------------------------------


class DraftMedia:
    """The CPU stand-in: each workflow category rendered with the draft renderer."""

    name: ClassVar[str] = "draft"
    # Renders run in worker threads (Pillow, ffmpeg): one per core keeps every core busy.
    capacity: ClassVar[int] = os.cpu_count() or 1

    def frame_size(self, aspect_ratio: str) -> tuple[int, int]:
        """The draft renderer's small frame size."""
        return draft_renderer.frame_size(aspect_ratio)

    async def run_workflow(
        self,
        spec: WorkflowSpec,
        values: dict[str, Any],
        *,
        label: str,
        on_progress: OnProgress | None = None,
    ) -> WorkflowRun:
        """Render the category's stand-in of the workflow.

        Raises:
            ValueError: The category has no draft rendering (configure ComfyUI for it).
        """
        render = _DRAFTS.get(spec.category)
        if render is None:
            raise ValueError(
                f"the draft backend cannot run '{spec.name}' (category {spec.category}); "
                "configure a ComfyUI server (AUTEUR_COMFYUI_URLS)"
            )
        datas = await asyncio.to_thread(render, _resolved(spec, values))
        outputs = [
            GeneratedFile(data=data, extension=ext, node=out.node, kind=out.kind)
            for (data, ext), out in zip(datas, spec.outputs, strict=True)
        ]
        return WorkflowRun(outputs=outputs, server="draft")

    async def assemble(self, clips: list[bytes], *, fps: int) -> bytes:
        """Concatenate clips."""
        return await asyncio.to_thread(draft_renderer.assemble, clips, fps=fps)


def _card(prompt: str, seed: int, size: tuple[int, int], title: str = "") -> bytes:
    return draft_renderer.render_card(_storyboard(prompt, seed=seed, title=title), size=size)


_LABELLED = re.compile(r"^(?P<label>[^:.]{1,40}): (?P<value>.+)$")
_NOTE_LABEL = "Note from the director"


def _storyboard(prompt: str, *, seed: int = 0, title: str = "") -> draft_renderer.StoryboardCard:
    """The draft card of a generation prompt, laid out as the prompt is written.

    The first line is the title (unless ``title`` is given); a line ``Label: value`` (who is
    in frame and how they look, a rule) is a row of its own, ``Style:`` goes to the small
    print and the director's latest ``Note from the director:`` is highlighted; the other
    lines are the description.
    """
    lines = [line.strip() for line in prompt.strip().splitlines() if line.strip()]
    if not title:
        title, lines = (lines[0], lines[1:]) if lines else ("", [])
    description: list[str] = []
    details: list[tuple[str, str]] = []
    style = note = ""
    for line in lines:
        labelled = _LABELLED.match(line)
        if labelled is None:
            description.append(line)
        elif labelled["label"] == "Style":
            style = labelled["value"]
        elif labelled["label"] == _NOTE_LABEL:
            note = labelled["value"]
        else:
            details.append((labelled["label"], labelled["value"]))
    return draft_renderer.StoryboardCard(
        title=title,
        description=" ".join(description),
        details=tuple(details),
        style=style,
        note=note,
        seed=seed,
    )


def _open(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=draft_renderer.PNG_LEVEL)
    return buffer.getvalue()


def _draft_inpaint(v: dict[str, Any]) -> list[tuple[bytes, str]]:
    image = _open(v["image"])
    patch = _open(_card(v["prompt"], v.get("seed", 0), image.size, title="Inpainted"))
    with Image.open(io.BytesIO(v["mask"])) as mask:
        alpha = mask.convert("L").resize(image.size)
    return [(_png(Image.composite(patch, image, alpha)), "png")]


def _draft_sheet(v: dict[str, Any], *, title: str = "Reference sheet") -> list[tuple[bytes, str]]:
    """A sheet's card; one drawn from another image shows that image inset, bottom right.

    A sheet is drawn from its asset's default look's sheet, a scene instance from its
    reference (the sheet, or the asset's instance in an earlier scene). An empty ``title``
    takes the prompt's first line (a scene instance's asset, look and scene).
    """
    card = _card(v["prompt"], v["seed"], (v["width"], v["height"]), title=title)
    if "image" not in v:
        return [(card, "png")]
    sheet, source = _open(card), _open(v["image"])
    source.thumbnail((sheet.width // 4, sheet.height // 3))
    margin = max(4, sheet.height // 40)
    left, top = sheet.width - source.width - margin, sheet.height - source.height - margin
    frame = (left - 2, top - 2, left + source.width + 1, top + source.height + 1)
    ImageDraw.Draw(sheet).rectangle(frame, fill=draft_renderer.INSET_FRAME)
    sheet.paste(source, (left, top))
    return [(_png(sheet), "png")]


def _draft_upscale(v: dict[str, Any]) -> list[tuple[bytes, str]]:
    image = _open(v["image"])
    factor = 4 * float(v.get("scale_by", 0.5))
    size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
    return [(_png(image.resize(size, Image.Resampling.LANCZOS)), "png")]


def _draft_clip(v: dict[str, Any]) -> list[tuple[bytes, str]]:
    fps = max(1, round(float(v["fps"])))
    clip = draft_renderer.render_clip(
        v["start_image"], v["end_image"], duration_s=int(v["length"]) / fps, fps=fps
    )
    return [(clip, "mp4")]


_DRAFTS: dict[str, Callable[[dict[str, Any]], list[tuple[bytes, str]]]] = {
    "asset_sheet": _draft_sheet,
    "scene_instance": partial(_draft_sheet, title=""),  # titled by the prompt's first line
    "keyframe": lambda v: [(_card(v["prompt"], v["seed"], (v["width"], v["height"])), "png")],
    "keyframe_pair": lambda v: [
        (_card(v["start_prompt"], v["seed"], (v["width"], v["height"])), "png"),
        (_card(v["end_prompt"], v["end_seed"], (v["width"], v["height"])), "png"),
    ],
    "image_to_video": _draft_clip,
    "inpaint": _draft_inpaint,
    "upscale": _draft_upscale,
}


# --- selection ---------------------------------------------------------------------------------


def media_backend(comfyui_urls: Sequence[str], **pool_options: Any) -> MediaBackend:
    """ComfyUI when server URLs are configured, else the draft backend.

    ``pool_options`` are :class:`~tools.comfy.pool.ComfyPool`'s (deadlines, attempts, backoff,
    slots per server).
    """
    if not comfyui_urls:
        return DraftMedia()
    return ComfyBackend(ComfyPool(list(comfyui_urls), **pool_options))


def as_media_backend(backend: object) -> MediaBackend:
    """The context's backend as a :class:`MediaBackend` (a plain ``DraftBackend`` → draft)."""
    if isinstance(backend, MediaBackend):
        return backend
    if isinstance(backend, draft_renderer.DraftBackend):
        return DraftMedia()
    raise TypeError(f"{type(backend).__name__} is not a media backend")


# --- tools -------------------------------------------------------------------------------------


def _field(item: WorkflowInput) -> tuple[Any, Any]:
    kind: Any = Literal[tuple(item.choices)] if item.choices else _ARG_TYPES[item.type]
    described = item.description or item.type
    if item.type in ("image", "mask"):
        described = f"{described} (key of a file in the store)"
    limits = {"ge": item.minimum, "le": item.maximum} if item.type in ("int", "float") else {}
    limits = {k: v for k, v in limits.items() if v is not None}
    if item.required:
        return kind, Field(description=described, **limits)
    return kind | None, Field(item.default, description=described, **limits)


def args_schema(spec: WorkflowSpec) -> type[BaseModel]:
    """The tool's argument model, from the workflow's metadata."""
    fields = {name: _field(item) for name, item in spec.inputs.items()}
    model_name = "".join(part.title() for part in spec.name.split("_")) + "Args"
    return create_model(model_name, __doc__=spec.description, **fields)


def workflow_tool(
    spec: WorkflowSpec,
    backend: MediaBackend,
    files: FileStore,
    *,
    label: str | None = None,
    on_progress: OnProgress | None = None,
    max_output_pixels: int | None = None,
) -> StructuredTool:
    """A LangChain tool running ``spec`` on ``backend``; outputs land in ``files``.

    The tool answers ``{"workflow", "version", "outputs": [MediaFile + node, kind],
    "gpu_seconds", "server"}``. With ``max_output_pixels``, a call whose image would be
    larger (by the workflow's ``output_scale``) raises ValueError and sends no job: the
    caller, not the workflow, chose its arguments.
    """
    schema = args_schema(spec)

    async def run(**arguments: Any) -> dict[str, Any]:
        values = {k: v for k, v in arguments.items() if v is not None}
        for name, item in spec.inputs.items():
            if item.type in ("image", "mask") and name in values:
                values[name] = await asyncio.to_thread(files.read, values[name])
        if max_output_pixels is not None and spec.output_scale is not None:
            _check_output_size(spec, values, max_output_pixels)
        result = await backend.run_workflow(
            spec, values, label=label or spec.name, on_progress=on_progress
        )
        outputs = []
        for output in result.outputs:
            stored: MediaFile = await asyncio.to_thread(
                files.put, output.data, extension=output.extension, media_type=output.media_type
            )
            outputs.append(
                {**stored.model_dump(mode="json"), "node": output.node, "kind": output.kind}
            )
        return {
            "workflow": spec.name,
            "version": spec.version,
            "outputs": outputs,
            "gpu_seconds": result.gpu_seconds,
            "server": result.server,
        }

    return StructuredTool.from_function(
        coroutine=run, name=spec.name, description=spec.description, args_schema=schema
    )


def _check_output_size(spec: WorkflowSpec, values: dict[str, Any], limit: int) -> None:
    assert spec.output_scale is not None
    source = spec.output_scale.of
    try:
        with Image.open(io.BytesIO(values[source])) as image:
            size = image.size
    except OSError:
        raise ValueError(f"input '{source}' of {spec.name} is not an image") from None
    width, height = spec.output_size(size, values)
    if width * height > limit:
        raise ValueError(
            f"{spec.name} would make a {width}x{height} image ({width * height} pixels) from "
            f"the {size[0]}x{size[1]} '{source}'; at most {limit} pixels are allowed "
            "(AUTEUR_MAX_OUTPUT_PIXELS)"
        )


async def pick_workflow(
    intent: str,
    category: str,
    arguments: Collection[str],
    discovery: WorkflowDiscovery | None,
) -> WorkflowSpec:
    """The workflow that best fits a task: discovery's best match among those that can do it.

    Discovery ranks the whole catalogue by ``intent`` (what the task needs, in words); the
    first workflow of ``category`` that takes every one of ``arguments`` and needs no
    other input wins, so the ranking never hands a keyframe task an upscaler. Without
    discovery the catalogue's first fitting workflow by name is taken. The catalogue is
    re-read on every call, so a new or changed file is used without a restart.

    Raises:
        LookupError: No workflow of that category takes these arguments.
    """
    ranked = await _ranked(intent, discovery)
    given = set(arguments)
    for spec in ranked:
        needed = {name for name, item in spec.inputs.items() if item.required}
        if spec.category == category and needed <= given <= spec.inputs.keys():
            return spec
    raise LookupError(
        f"no ComfyUI workflow of category '{category}' taking {sorted(given)} for: {intent}"
    )


async def _ranked(intent: str, discovery: WorkflowDiscovery | None) -> list[WorkflowSpec]:
    """The catalogue ranked by ``intent``; by name without discovery or an embedding model.

    An install without the ``embeddings`` extra still runs (warned once): a bare
    ``pip install -e .`` must not stop at the first frame.
    """
    if discovery is not None:
        try:
            size = len(await discovery.workflows())
            return [spec for spec, _ in await discovery.search(intent, k=max(size, 1))]
        except EmbeddingsUnavailable as error:
            _warn_once(f"workflow discovery is off, workflows are taken by name: {error}")
    library = await asyncio.to_thread(_LIBRARY.current)  # one directory scan when unchanged
    return [library[name] for name in sorted(library)]


@cache
def _warn_once(message: str) -> None:
    logger.warning(message)


def stitch(images: Sequence[bytes], *, height: int = 512) -> bytes:
    """A reference board: the images side by side at one height (white when there are none).

    The height is ``height`` or the lowest image's, whichever is less: an image is scaled
    down to it, never up (a larger board tells a model nothing more, and costs a resize).
    """
    if not images:
        return blank_png()
    opened = [_open(data) for data in images]
    height = min(height, *(im.height for im in opened))
    scaled = [
        im
        if im.height == height
        else im.resize((max(1, round(im.width * height / im.height)), height), reducing_gap=2.0)
        for im in opened
    ]
    board = Image.new("RGB", (sum(im.width for im in scaled), height), (255, 255, 255))
    x = 0
    for im in scaled:
        board.paste(im, (x, 0))
        x += im.width
    return _png(board)
