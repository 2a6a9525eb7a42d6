"""Running a library workflow as a tool from an agent, once per input hash.

The frame and video generators search the catalogue for the workflow that fits each task
(:func:`find_workflow`) and call it as a LangChain tool through :func:`run_workflow`. The
call is keyed by (workflow and version, inputs, references, seed) and memoised by
:meth:`agents.base.Step.generate_media`, so a resumed, retried or replayed node finds the
stored result and submits nothing.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from agents.artifacts import input_hash
from agents.base import Context, Step, progress
from tools.comfy_tools import MediaBackend, as_media_backend, pick_workflow, workflow_tool
from tools.storage import MediaFile
from tools.workflows import WorkflowSpec

__all__ = ["backend_of", "find_workflow", "run_workflow"]


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

    Progress and retries of the job stream as progress events of the step's stage.
    """
    backend = backend_of(runtime)
    files = runtime.context.files

    async def say(message: str) -> None:
        progress(runtime, step.stage, message)

    tool = workflow_tool(spec, backend, files, label=label, on_progress=say)
    # Images and masks are content-addressed store keys: the arguments name their content.
    key = input_hash(backend.name, spec.name, spec.version, arguments, output)
    extension = "mp4" if spec.outputs[output].kind == "video" else "png"
    media_type = "video/mp4" if extension == "mp4" else "image/png"

    async def make() -> bytes:
        result = await tool.ainvoke(arguments)
        return files.read(result["outputs"][output]["key"])

    return await step.generate_media(runtime, key, make, extension=extension, media_type=media_type)
