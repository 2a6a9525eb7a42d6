"""Running a library workflow as a tool from an agent, once per input hash.

The frame and video generators search the catalogue for the workflow that fits each task
(:func:`find_workflow`) and call it as a LangChain tool through :func:`run_workflow`. The
call is keyed by (workflow and version, inputs, references, seed) and memoised by
:meth:`agents.base.Step.generate_media`, so a resumed, retried or replayed node finds the
stored result and submits nothing. :func:`fan_out` runs a stage's independent jobs at once,
as many as the backend can run.
"""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from langgraph.runtime import Runtime
from PIL import Image

from agents.artifacts import input_hash
from agents.base import Context, Step, Turn, progress
from tools.comfy_tools import MediaBackend, as_media_backend, pick_workflow, workflow_tool
from tools.sound import to_wav
from tools.storage import MediaFile
from tools.workflows import WorkflowSpec

__all__ = [
    "Inpainted",
    "backend_of",
    "fan_out",
    "find_workflow",
    "image_data_url",
    "inpaint",
    "run_workflow",
]

T = TypeVar("T")

# How each kind of output is kept: audio (ComfyUI saves FLAC) as the WAV the mix and the web
# player read, like every spoken line.
_STORED = {
    "image": ("png", "image/png"),
    "video": ("mp4", "video/mp4"),
    "audio": ("wav", "audio/wav"),
}


def backend_of(runtime: Runtime[Context]) -> MediaBackend:
    """The run's media backend (ComfyUI, or the draft stand-in)."""
    return as_media_backend(runtime.context.backend)


async def find_workflow(
    runtime: Runtime[Context], intent: str, category: str, arguments: dict[str, Any]
) -> WorkflowSpec:
    """The catalogue's workflow that best fits ``intent`` and can take ``arguments``.

    Searched by meaning through the run's discovery (see :func:`~tools.comfy_tools.pick_workflow`).
    """
    return await pick_workflow(intent, category, arguments, runtime.context.discovery)


async def run_workflow(
    step: Step,
    runtime: Runtime[Context],
    spec: WorkflowSpec,
    arguments: dict[str, Any],
    *,
    label: str,
    output: int = 0,
) -> MediaFile:
    """Call ``spec`` as a tool with ``arguments`` (images as store keys); return one output.

    An image is kept as PNG, a video as MP4, audio as a 16-bit mono WAV.

    Progress and retries of the job stream as progress events of the step's stage.
    """
    backend = backend_of(runtime)
    files = runtime.context.files

    async def say(message: str) -> None:
        progress(runtime, step.stage, message)

    tool = workflow_tool(spec, backend, files, label=label, on_progress=say)
    # Images and masks are content-addressed store keys: the arguments name their content.
    key = input_hash(backend.name, spec.name, spec.version, arguments, output)
    kind = spec.outputs[output].kind
    extension, media_type = _STORED[kind]

    async def make() -> bytes:
        result = await tool.ainvoke(arguments)
        data = await asyncio.to_thread(files.read, result["outputs"][output]["key"])
        return await asyncio.to_thread(to_wav, data) if kind == "audio" else data

    return await step.generate_media(runtime, key, make, extension=extension, media_type=media_type)


def image_data_url(data: bytes, *, longest_side: int = 512) -> str:
    """An image as a model is shown it: a JPEG ``data:`` URL, at most ``longest_side`` a side.

    Blocking (Pillow): call it in a thread.
    """
    with Image.open(io.BytesIO(data)) as image:
        small = image.convert("RGB")
    small.thumbnail((longest_side, longest_side))
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


@dataclass(frozen=True)
class Inpainted:
    """An image with one region repainted: what was painted on, how, and the new file."""

    source: str
    prompt: str
    workflow: str
    seed: int
    file: MediaFile

    def candidate(self) -> dict[str, Any]:
        """The fields every candidate of a gate has, for the new one this makes."""
        return {
            "prompt": self.prompt,
            "seed": self.seed,
            "workflow": self.workflow,
            "file": self.file,
            "note": f"inpainted: {self.prompt}",
        }


async def inpaint(
    step: Step, runtime: Runtime[Context], turn: Turn, *, chosen: str, label: str
) -> Inpainted:
    """Repaint what a reject's ``inpaint`` asks: the region its mask paints white.

    The image painted on is the request's ``source``, else ``chosen`` (the key of the
    image's chosen candidate); the prompt is the reject's message. A keyframe or a reference
    sheet is repainted alike, by the inpainting workflow discovery finds; the seed follows
    from the image, the mask and the prompt.

    Raises:
        ValueError: The mask is not in the file store (a client must post it first).
    """
    request, prompt = turn["inpaint"], turn["content"]
    source, mask = request.get("source") or chosen, request["mask"]
    if not await asyncio.to_thread(runtime.context.files.exists, mask):
        raise ValueError(f"the mask {mask} is not in the file store")
    seed = int(input_hash(source, mask, prompt)[:8], 16)
    arguments = {"image": source, "mask": mask, "prompt": prompt, "seed": seed}
    spec = await find_workflow(
        runtime, "repaint the masked region of an image from a prompt", "inpaint", arguments
    )
    file = await run_workflow(step, runtime, spec, arguments, label=label)
    return Inpainted(source=source, prompt=prompt, workflow=spec.name, seed=seed, file=file)


class _NotStarted(Exception):
    """A job skipped because another one of its fan-out failed."""


async def fan_out(
    runtime: Runtime[Context],
    jobs: Sequence[Callable[[], Awaitable[T]]],
    *,
    sizes: Sequence[float] | None = None,
) -> list[T]:
    """Run ``jobs`` concurrently, at most the backend's ``capacity`` at once; results in order.

    With ``sizes`` (how long each job is expected to run, e.g. a clip's length), the longest
    start first: jobs of unequal length then end close together across the servers, where
    a long one started last would run on alone.

    After a failure no further job starts; those running finish (each is memoised by its
    input hash, so a resumed run reuses them) before the first failure is raised. Cancelling
    the caller cancels every job.

    Example:
        ```python
        sheets = await fan_out(runtime, [partial(draw_sheet, entity) for entity in cast])
        ```
    """
    slots = asyncio.Semaphore(backend_of(runtime).capacity)
    failure: Exception | None = None

    async def one(job: Callable[[], Awaitable[T]]) -> T:
        nonlocal failure
        async with slots:
            if failure is not None:
                raise _NotStarted
            try:
                return await job()
            except Exception as error:
                failure = failure or error
                raise

    # the slots are taken in the order the jobs are started (asyncio's semaphore is fair)
    starts = sorted(range(len(jobs)), key=lambda i: -sizes[i]) if sizes else range(len(jobs))
    started = await asyncio.gather(*(one(jobs[i]) for i in starts), return_exceptions=True)
    by_job = dict(zip(starts, started, strict=True))
    results = [by_job[i] for i in range(len(jobs))]
    if failure is not None:
        raise failure
    for result in results:
        if isinstance(result, BaseException):  # e.g. a job cancelled from inside
            raise result
    return results  # type: ignore[return-value]  # no job failed
