"""A project's artifacts and branches: what is approved now, every version, reopening a stage.

Reopening an approved stage forks its thread with LangGraph's own fork: ``update_state`` on
the checkpoint before the stage's agent started makes a new checkpoint beside the old ones,
and a run created with its ``checkpoint_id`` drafts the stage again and shows its gate. The
new branch starts from the project's current versions; the earlier versions stay.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import Field

from agents.base import ProductionAgent
from api.artifacts import ProjectArtifacts
from api.body import StrictJsonRoute
from api.context import ApiContext, Ctx, User
from api.db import ThreadBusyError
from api.routes.projects import get as get_project
from api.schemas import _Body
from api.wire import assistant_id_of, run_json

router = APIRouter(prefix="/projects", tags=["projects"], route_class=StrictJsonRoute)


class Reopen(_Body):
    """``POST /projects/{id}/branches``: reopen ``stage`` of one of the project's threads."""

    thread_id: str = Field(min_length=1, max_length=200)
    stage: str = Field(min_length=1, max_length=200)


@router.get("/{project_id}/artifacts")
async def artifacts(
    project_id: str,
    ctx: Ctx,
    user: User,
    history: Annotated[bool, Query(description="Every version, not only the current.")] = False,
    branch: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    """The current approved version of each artifact (on the current or a given branch).

    Each says whether it is ``stale`` (made from an artifact that has changed since) and
    ``stale_because`` which; with ``history`` every version is listed too, newest last.
    """
    await get_project(project_id, ctx, user)
    return await ProjectArtifacts(ctx.db).listing(project_id, history=history, branch=branch)


@router.get("/{project_id}/branches")
async def branches(project_id: str, ctx: Ctx, user: User) -> list[dict[str, Any]]:
    """The project's branches, ``main`` first; one of them is ``current``."""
    await get_project(project_id, ctx, user)
    return await ProjectArtifacts(ctx.db).branches(project_id)


@router.post("/{project_id}/branches", status_code=201)
async def reopen(project_id: str, body: Reopen, ctx: Ctx, user: User) -> dict[str, Any]:
    """Reopen an approved stage: a new current branch, and a run that shows its gate again.

    Raises:
        HTTPException: 404 no such project or thread of it, 409 the thread is running or
            never waited at that stage's gate, 422 the stage is no agent's.
    """
    await get_project(project_id, ctx, user)
    thread = await ctx.db.fetch_one(
        "SELECT thread_id, workflow, branch FROM auteur_threads"
        " WHERE thread_id = %s AND owner = %s AND project_id = %s",
        (body.thread_id, user, project_id),
    )
    if thread is None or thread["workflow"] is None:
        raise HTTPException(404, f"project '{project_id}' has no thread '{body.thread_id}'")
    workflow = ctx.services.workflows[thread["workflow"]]
    if body.stage not in workflow.stages():
        raise HTTPException(
            422, f"{thread['workflow']} has no stage '{body.stage}' (it has {workflow.stages()})"
        )
    if await ctx.db.active_runs(body.thread_id):
        raise HTTPException(409, "the thread is running: wait for it, or cancel it, first")
    checkpoint_id = await _fork_before(ctx, body.thread_id, thread["workflow"], body.stage)
    if checkpoint_id is None:
        raise HTTPException(409, f"the thread never got to the {body.stage} stage")
    store = ProjectArtifacts(ctx.db)
    parent = await store.branch_of(project_id, thread["branch"])
    branch = await store.fork(
        project_id,
        thread_id=body.thread_id,
        parent=parent,
        stage=body.stage,
        checkpoint_id=checkpoint_id,
    )
    try:
        run = await ctx.db.create_run(
            run_id=str(uuid.uuid4()),
            thread_id=body.thread_id,
            assistant_id=assistant_id_of(thread["workflow"]),
            owner=user,
            kwargs={
                "input": None,
                "command": None,
                "config": {"configurable": {"checkpoint_id": checkpoint_id}},
                "context": {},
                "stream_mode": ["values", "updates", "custom"],
                "stream_subgraphs": False,
            },
            metadata={"graph_id": thread["workflow"], "branch": branch},
            multitask_strategy="reject",
            answers=None,
        )
    except ThreadBusyError:
        raise HTTPException(
            409, "the thread is running: wait for it, or cancel it, first"
        ) from None
    return {
        "branch": branch,
        "parent": parent,
        "checkpoint_id": checkpoint_id,
        "run": run_json(run),
    }


@router.post("/{project_id}/branches/{branch}/switch")
async def switch(project_id: str, branch: str, ctx: Ctx, user: User) -> dict[str, Any]:
    """Make ``branch`` current: its versions become the project's current artifacts again."""
    await get_project(project_id, ctx, user)
    if not await ProjectArtifacts(ctx.db).switch(project_id, branch):
        raise HTTPException(404, f"project '{project_id}' has no branch '{branch}'")
    return {"project_id": project_id, "current_branch": branch}


async def _fork_before(ctx: ApiContext, thread_id: str, workflow: str, stage: str) -> str | None:
    """Fork the thread to just before ``stage`` was drafted; the new checkpoint's id.

    An agent runs as one task of the workflow graph, so the checkpoint to fork is the one
    before its agent started, given what the agent's earlier steps approved (so that the
    agent starts again at ``stage``, as a screenplay given as input skips the writing).
    None when the thread never got to that agent.
    """
    graph = ctx.services.graph(workflow)
    owner = next(a for a in ctx.services.workflows[workflow].agents() if stage in _stages(a))
    predecessors = [src for src, dst in graph.builder.edges if dst == owner.name]
    config = {"configurable": {"thread_id": thread_id}}
    before = None
    async for snapshot in graph.aget_state_history(config):
        if snapshot.next == (owner.name,):
            before = snapshot  # keep going: the oldest one of this stretch is the agent's start
        elif before is not None:
            break
    if before is None or len(predecessors) != 1:
        return None
    current = (await graph.aget_state(config)).values
    earlier = _stages(owner)[: _stages(owner).index(stage)]
    forked = await graph.aupdate_state(
        before.config, {key: current[key] for key in earlier}, as_node=predecessors[0]
    )
    return forked["configurable"]["checkpoint_id"]


def _stages(agent: ProductionAgent) -> list[str]:
    return [step.stage for step in agent.steps()]
