"""The ComfyUI workflow library: list it, search it by intent, run a workflow.

The library is the ``comfy_workflows/`` folder as it is at each request: a file dropped in
is listed and found with no restart. Runs wait for their outputs (the ComfyUI deadline
applies) and answer the stored files with their ``/files`` URLs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from api.body import StrictJsonRoute
from api.context import Ctx, User
from tools.comfy import ComfyError, ComfyJobFailed
from tools.comfy_tools import workflow_tool
from tools.embeddings import EmbeddingsUnavailable
from tools.workflows import WorkflowError, WorkflowInput, WorkflowOutput, WorkflowSpec

router = APIRouter(prefix="/workflows", tags=["workflows"], route_class=StrictJsonRoute)

WorkflowName = Annotated[str, Path(pattern=r"^[a-z0-9_]{1,100}$")]


class WorkflowSummary(BaseModel):
    """What a workflow does and what it takes; its version changes with either file."""

    name: str
    description: str
    category: str
    tags: list[str]
    version: str
    inputs: dict[str, WorkflowInput]
    outputs: list[WorkflowOutput]

    @classmethod
    def of(cls, spec: WorkflowSpec) -> WorkflowSummary:
        """The summary of a loaded workflow."""
        return cls(
            name=spec.name,
            description=spec.description,
            category=spec.category,
            tags=spec.tags,
            version=spec.version,
            inputs=spec.inputs,
            outputs=spec.outputs,
        )


class WorkflowDetail(WorkflowSummary):
    """A workflow with its API-format graph."""

    graph: dict[str, Any]


class WorkflowMatch(BaseModel):
    """A search result: the workflow and its cosine similarity to the intent."""

    workflow: WorkflowSummary
    score: float


class WorkflowRunRequest(BaseModel):
    """The inputs of a run; images and masks are keys of the caller's files."""

    model_config = ConfigDict(extra="forbid")

    inputs: dict[str, Any] = Field(default_factory=dict)


@asynccontextmanager
async def _library_errors() -> AsyncIterator[None]:
    """The library's failures as HTTP errors a client can read."""
    try:
        yield
    except WorkflowError as error:
        raise HTTPException(503, f"the workflow library has a broken file: {error}") from None
    except EmbeddingsUnavailable as error:
        raise HTTPException(503, f"workflow search is unavailable: {error}") from None
    except KeyError as error:
        raise HTTPException(404, error.args[0]) from None


@router.get("")
async def list_workflows(ctx: Ctx, user: User) -> list[WorkflowSummary]:
    """Every workflow in the library, by name."""
    async with _library_errors():
        specs = await ctx.services.discovery.workflows()
    return [WorkflowSummary.of(specs[name]) for name in sorted(specs)]


@router.get("/search")
async def search(
    ctx: Ctx,
    user: User,
    q: Annotated[str, Query(min_length=1, max_length=2000, description="The intent.")],
    k: Annotated[int, Query(ge=1, le=50, description="How many results.")] = 5,
) -> list[WorkflowMatch]:
    """The workflows that best fit an intent, best first, with cosine scores."""
    if not q.strip():
        raise HTTPException(422, "q is blank: say what the workflow should do")
    async with _library_errors():
        ranked = await ctx.services.discovery.search(q, k=k)
    return [WorkflowMatch(workflow=WorkflowSummary.of(spec), score=score) for spec, score in ranked]


@router.get("/{name}")
async def get(name: WorkflowName, ctx: Ctx, user: User) -> WorkflowDetail:
    """One workflow, with its API-format graph."""
    async with _library_errors():
        spec = await ctx.services.discovery.get(name)
    return WorkflowDetail(**WorkflowSummary.of(spec).model_dump(), graph=spec.graph)


@router.post("/{name}/runs", status_code=201)
async def run(name: WorkflowName, body: WorkflowRunRequest, ctx: Ctx, user: User) -> dict[str, Any]:
    """Run a workflow and wait for its outputs; they become the caller's files.

    Answers ``{"workflow", "version", "outputs": [file + node, kind, url], "gpu_seconds",
    "server"}``. A bad input is a 422, a ComfyUI failure after its retries a 502.
    """
    async with _library_errors():
        spec = await ctx.services.discovery.get(name)
    if unknown := sorted(body.inputs.keys() - spec.inputs.keys()):
        raise HTTPException(
            422, f"workflow {name} has no inputs {unknown} (inputs: {sorted(spec.inputs)})"
        )
    for key, item in spec.inputs.items():
        value = body.inputs.get(key)
        if item.type in ("image", "mask") and value is not None:
            await _check_owned(ctx, user, key, value)
    files = ctx.services.context.files
    tool = workflow_tool(
        spec,
        ctx.services.context.backend,
        files,
        max_output_pixels=ctx.settings.max_output_pixels,
    )
    try:
        result = await tool.ainvoke(body.inputs)
    except ValueError as error:  # pydantic's ValidationError too: a value out of its limits
        raise HTTPException(422, f"invalid inputs for {name}: {error}") from None
    except (ComfyError, ComfyJobFailed) as error:
        raise HTTPException(502, f"ComfyUI could not run {name}: {error}") from None
    await ctx.db.own_files(user, result["outputs"])
    outputs = [{**output, "url": f"/files/{output['key']}"} for output in result["outputs"]]
    return {**result, "outputs": outputs}


async def _check_owned(ctx: Ctx, user: str, key: str, value: Any) -> None:
    row = (
        await ctx.db.fetch_one(
            "SELECT 1 FROM auteur_files WHERE key = %s AND owner = %s", (value, user)
        )
        if isinstance(value, str)
        else None
    )
    if row is None:
        raise HTTPException(
            422, f"input '{key}' must be the key of one of your files (POST /files), got {value!r}"
        )
