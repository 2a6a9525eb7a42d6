"""Opening the service's resources and driving a workflow run to its next stop.

Shared by the CLI and (later) the HTTP API: a run goes until it finishes or stops at an
approval gate; every progress event is handed to a callback; the thread log records
where each thread stands.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, StateSnapshot

from agents.base import Context
from api.db import SCHEMA
from api.settings import Settings
from graphs.base import WorkflowType, load_workflow_types, stage_of_node
from graphs.persistence import (
    Persistence,
    ThreadRecord,
    embedded_database_url,
    open_persistence,
    restart_embedded_server,
)
from tools import redaction
from tools.discovery import WorkflowDiscovery

__all__ = ["RunStop", "Services", "open_services", "run_context"]

ProgressCallback = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class RunStop:
    """Where a run stopped: at a gate (with its payload), or finished (with final values).

    At a gate, :meth:`answer` makes the command that resumes it with the person's decision.
    """

    thread_id: str
    status: Literal["interrupted", "success"]
    gate: dict[str, Any] | None
    values: dict[str, Any]
    interrupt_id: str | None = None

    def answer(self, decision: dict[str, Any]) -> Command:
        """Resume with ``decision`` bound to this gate's interrupt id.

        A plain ``Command(resume=decision)`` is kept as a pending write that the next
        ``interrupt()`` of the running step takes: if the process dies between two gates
        of one agent, the restarted step would hand this decision to the next gate. Bound
        to the interrupt id, it can answer no other gate.
        """
        assert self.interrupt_id is not None, "the run did not stop at a gate"
        return Command(resume={self.interrupt_id: decision})


@dataclass
class Services:
    """Everything a process needs to run workflows."""

    settings: Settings
    persistence: Persistence
    context: Context
    workflows: dict[str, WorkflowType]
    database_url: str
    discovery: WorkflowDiscovery
    _compiled: dict[str, CompiledStateGraph] = field(default_factory=dict)

    def graph(self, workflow: str) -> CompiledStateGraph:
        """The compiled workflow type (once per process), with checkpointer and store."""
        if workflow not in self._compiled:
            if workflow not in self.workflows:
                known = ", ".join(sorted(self.workflows))
                raise KeyError(f"unknown workflow type '{workflow}' (known: {known})")
            self._compiled[workflow] = self.workflows[workflow].compile(
                checkpointer=self.persistence.checkpointer, store=self.persistence.store
            )
        return self._compiled[workflow]

    async def new_thread(self, workflow: str, payload: dict[str, Any]) -> str:
        """Create a thread for ``workflow``; :meth:`advance` with ``payload`` starts it."""
        self.graph(workflow)  # an unknown workflow type fails before a thread exists
        thread_id = str(uuid.uuid4())
        await self.persistence.threads.create(thread_id, workflow, {"brief": payload["brief"]})
        return thread_id

    async def advance(
        self,
        thread_id: str,
        payload: dict[str, Any] | Command | None,
        on_progress: ProgressCallback,
    ) -> RunStop:
        """Run a thread from its last checkpoint to its next gate or its end.

        Args:
            thread_id: The thread to run.
            payload: The workflow input (new thread), ``Command(resume=decision)`` at a
                gate, or None to continue a run that stopped mid-stage.
            on_progress: Called with every progress event (``stage``, ``message``).
        """
        record, graph, config = await self._thread(thread_id)
        threads = self.persistence.threads
        await threads.update(thread_id, status="busy", stage=record.stage)
        stage = record.stage
        try:
            async for _, mode, chunk in graph.astream(
                payload,
                config,
                context=self.context,
                stream_mode=["custom", "updates"],
                subgraphs=True,
                durability="sync",
            ):
                if mode == "custom":
                    stage = chunk.get("stage", stage)
                    await threads.update(
                        thread_id, status="busy", stage=stage, message=chunk.get("message")
                    )
                    on_progress(chunk)
        except Exception as error:
            await threads.update(thread_id, status="error", stage=stage, message=str(error))
            raise
        stop = _stop_at(thread_id, await graph.aget_state(config))
        if stop is None:  # LangGraph returns only at a gate or the end; this is defensive
            raise RuntimeError(f"thread '{thread_id}' stopped mid-stage without an error")
        if stop.gate is not None:
            await threads.update(
                thread_id,
                status="interrupted",
                stage=stop.gate["stage"],
                message="awaiting approval",
            )
        else:
            await threads.update(thread_id, status="idle", stage=None, message="finished")
        return stop

    async def position(self, thread_id: str) -> RunStop | None:
        """Where a thread stands now, without running it; None if it stopped mid-stage."""
        _, graph, config = await self._thread(thread_id)
        return _stop_at(thread_id, await graph.aget_state(config))

    async def pending_stage(self, thread_id: str) -> str | None:
        """The stage a thread that stopped mid-run will continue with."""
        record, graph, config = await self._thread(thread_id)
        snapshot = await graph.aget_state(config)
        stages = [stage_of_node(node) for node in snapshot.next]
        return next((s for s in stages if s), record.stage)

    async def _thread(
        self, thread_id: str
    ) -> tuple[ThreadRecord, CompiledStateGraph, dict[str, Any]]:
        record = await self.persistence.threads.get(thread_id)
        if record is None:
            raise KeyError(f"no thread '{thread_id}'")
        return record, self.graph(record.workflow), {"configurable": {"thread_id": thread_id}}


def _stop_at(thread_id: str, snapshot: StateSnapshot) -> RunStop | None:
    """The stop a checkpoint shows: a gate, the end, or None (cut off mid-stage)."""
    if snapshot.interrupts:
        first = snapshot.interrupts[0]
        return RunStop(thread_id, "interrupted", first.value, snapshot.values, first.id)
    if not snapshot.next and snapshot.values:
        return RunStop(thread_id, "success", None, snapshot.values)
    return None


@asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[Services]:
    """Load every plugin (failing loudly), open the database and yield the services.

    From here on the settings' secrets are redacted from stored rows, logs and answers.
    """
    redaction.register(*settings.secrets())
    redaction.install_log_redaction()
    workflows = {name: cls() for name, cls in _workflow_classes().items()}
    url = settings.database_url or embedded_database_url(settings.data_dir)
    restart = None if settings.database_url else partial(restart_embedded_server, settings.data_dir)
    async with open_persistence(url, extra_schema=SCHEMA, restart=restart) as persistence:
        discovery = WorkflowDiscovery(persistence.pool, settings.embedding_model)
        yield Services(
            settings=settings,
            persistence=persistence,
            context=run_context(settings, discovery),
            workflows=workflows,
            database_url=url,
            discovery=discovery,
        )


def run_context(settings: Settings, discovery: WorkflowDiscovery) -> Context:
    """The context every run gets (the CLI, the API and the eval runner alike).

    The configured models, media backend (ComfyUI, or the draft renderer without a URL),
    file store, and ``discovery`` over the workflow catalogue for the media agents.
    """
    return Context(
        models=settings.models,
        backend=settings.media_backend,
        files=settings.file_store,
        discovery=discovery,
    )


def _workflow_classes() -> dict[str, type[WorkflowType]]:
    registry = load_workflow_types()
    return {name: registry.get(name) for name in registry.names()}
