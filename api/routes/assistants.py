"""Assistants: one per workflow type; ``assistant_id`` may be its name or its UUID."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from api.body import StrictJsonRoute
from api.context import ApiContext, Ctx, User
from api.launch import resolve_workflow
from api.schemas import AssistantSearch
from api.wire import assistant_json

router = APIRouter(prefix="/assistants", tags=["assistants"], route_class=StrictJsonRoute)
_STARTED = datetime.now(UTC).isoformat()


@router.post("/search")
async def search(body: AssistantSearch, ctx: Ctx, _: User, response: Response) -> list[dict]:
    """Assistants matching the graph id, a name substring and metadata."""
    found = [
        assistant_json(workflow, _STARTED)
        for name, workflow in sorted(ctx.services.workflows.items())
        if (body.graph_id in (None, name))
        and (body.name is None or body.name.lower() in name.lower())
        and all({"created_by": "system"}.get(k) == v for k, v in (body.metadata or {}).items())
    ]
    response.headers["X-Pagination-Total"] = str(len(found))
    return found[body.offset : body.offset + body.limit]


@router.post("/count")
async def count(body: AssistantSearch, ctx: Ctx, user: User, response: Response) -> int:
    """How many assistants match."""
    return len(
        await search(body.model_copy(update={"limit": 1000, "offset": 0}), ctx, user, response)
    )


@router.get("/{assistant_id}")
async def get(assistant_id: str, ctx: Ctx, _: User) -> dict[str, Any]:
    """One assistant."""
    workflow = ctx.services.workflows[resolve_workflow(ctx.services.workflows, assistant_id)]
    return assistant_json(workflow, _STARTED)


@router.get("/{assistant_id}/graph")
async def graph(
    assistant_id: str,
    ctx: Ctx,
    _: User,
    xray: Annotated[str, Query(pattern=r"^(true|false|[0-9]{1,2})$")] = "false",
) -> dict[str, Any]:
    """The workflow's graph (nodes and edges); ``xray`` opens its agents' subgraphs (to a depth)."""
    compiled = ctx.services.graph(resolve_workflow(ctx.services.workflows, assistant_id))
    depth: bool | int = int(xray) if xray.isdigit() else xray == "true"
    drawable = (await compiled.aget_graph(xray=depth)).to_json()
    for node in drawable["nodes"]:
        if isinstance(node.get("data"), dict):
            node["data"].pop("id", None)
    return drawable


@router.get("/{assistant_id}/subgraphs")
async def subgraphs(
    assistant_id: str, ctx: Ctx, _: User, recurse: bool = False
) -> dict[str, dict[str, Any]]:
    """Each agent's subgraph by namespace, with its schemas."""
    return await _subgraphs(ctx, assistant_id, None, recurse)


@router.get("/{assistant_id}/subgraphs/{namespace}")
async def subgraph(
    assistant_id: str, namespace: str, ctx: Ctx, _: User, recurse: bool = False
) -> dict[str, dict[str, Any]]:
    """The subgraph at ``namespace`` (an agent's name), with its schemas."""
    return await _subgraphs(ctx, assistant_id, namespace, recurse)


async def _subgraphs(
    ctx: ApiContext, assistant_id: str, namespace: str | None, recurse: bool
) -> dict[str, dict[str, Any]]:
    compiled = ctx.services.graph(resolve_workflow(ctx.services.workflows, assistant_id))
    return {
        name: {
            "input_schema": agent.get_input_jsonschema(),
            "output_schema": agent.get_output_jsonschema(),
            "state_schema": agent.get_output_jsonschema(),
            "config_schema": None,
            "context_schema": None,
        }
        async for name, agent in compiled.aget_subgraphs(namespace=namespace, recurse=recurse)
    }


@router.get("/{assistant_id}/schemas")
async def schemas(assistant_id: str, ctx: Ctx, _: User) -> dict[str, Any]:
    """Input, output and state JSON schemas."""
    name = resolve_workflow(ctx.services.workflows, assistant_id)
    compiled = ctx.services.graph(name)
    return {
        "graph_id": name,
        "input_schema": ctx.services.workflows[name].input_model.model_json_schema(),
        "output_schema": compiled.get_output_jsonschema(),
        "state_schema": compiled.get_output_jsonschema(),
        "config_schema": None,
        "context_schema": None,
    }
