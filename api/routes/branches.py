"""A project's artifacts and branches: what is approved now, every version, reopening a stage.

Reopening an approved stage forks its thread from the checkpoint where that stage's gate
waited (LangGraph's fork: a run created with that ``checkpoint_id``): the gate is shown
again, the new branch keeps what was approved before it, and the earlier versions stay.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import Field

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
    fork = await _gate_checkpoint(ctx, body.thread_id, thread["workflow"], body.stage)
    if fork is None:
        raise HTTPException(409, f"the thread never waited at the {body.stage} gate")
    checkpoint_id, kept = fork
    store = ProjectArtifacts(ctx.db)
    parent = await store.branch_of(project_id, thread["branch"])
    if await ctx.db.active_runs(body.thread_id):
        raise HTTPException(409, "the thread is running: wait for it, or cancel it, first")
    checkpoint_id, restored = await _restore_earlier_steps(
        ctx,
        store,
        project_id,
        parent,
        body.thread_id,
        thread["workflow"],
        body.stage,
        checkpoint_id,
        kept,
    )
    kept |= restored
    branch = await store.fork(
        project_id,
        thread_id=body.thread_id,
        parent=parent,
        stage=body.stage,
        checkpoint_id=checkpoint_id,
        kept=kept,
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


async def _restore_earlier_steps(
    ctx: ApiContext,
    store: ProjectArtifacts,
    project_id: str,
    branch: str,
    thread_id: str,
    workflow: str,
    stage: str,
    checkpoint_id: str,
    kept: set[str],
) -> tuple[str, set[str]]:
    """A fork point whose state holds what the stage's own agent approved before it.

    An agent with several steps (treatment → script → master script) is one task of the
    parent graph: its checkpoint is the one before the agent began, and the forked run
    starts the agent's subgraph afresh. The subgraph starts after the last step whose
    artifact the state holds, so the approved versions of the agent's earlier steps are
    written onto the fork point (a new checkpoint) and the gate of ``stage`` comes next.
    """
    agent = next(
        a
        for a in ctx.services.workflows[workflow].agents()
        if stage in [step.stage for step in a.steps()]
    )
    stages = [step.stage for step in agent.steps()]
    earlier = stages[: stages.index(stage)]
    heads = await store.heads(project_id, branch)
    restore: dict[str, object] = {}
    for kind in earlier:
        if kind in heads and kind not in kept:
            restore |= {kind: heads[kind]["data"], **heads[kind]["bookkeeping"]}
    if not restore:
        return checkpoint_id, set()
    graph = ctx.services.graph(workflow)
    config = {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": "",
            "checkpoint_id": checkpoint_id,
        }
    }
    forked = await graph.aupdate_state(config, restore)
    return forked["configurable"]["checkpoint_id"], {k for k in earlier if k in heads}


async def _gate_checkpoint(
    ctx: ApiContext, thread_id: str, workflow: str, stage: str
) -> tuple[str, set[str]] | None:
    """The latest checkpoint where ``stage``'s gate waited, and the artifacts it held."""
    graph = ctx.services.graph(workflow)
    config = {"configurable": {"thread_id": thread_id}}
    async for snapshot in graph.aget_state_history(config):
        if any(
            isinstance(i.value, dict) and i.value.get("stage") == stage for i in snapshot.interrupts
        ):
            kept = set(snapshot.values) - {stage}
            return snapshot.config["configurable"]["checkpoint_id"], kept
    return None
