"""Driving runs in this process the way the API runs them: the CLI's and the evals' driver.

A thread is a row of ``auteur_threads``, a run a row of ``auteur_runs`` queued by
:func:`api.launch.queue_run`, and the run is executed here by the API's own
:class:`api.executor.Executor`, which logs its events, records the thread's state and opens
an approval for every gate it reaches. A gate reached from the terminal is therefore in
``/approvals`` of any ``auteur serve`` on the same database, and a decision made here takes
the path ``POST /approvals/{id}`` takes (:func:`api.launch.answer_gate`).

Example::

    async with open_driver(settings) as driver:
        run = await driver.start("full_video", {"brief": "Two eggs fly a kite."})
        stop = await driver.wait(run, on_progress=print)
        while stop.gate is not None:
            stop = await driver.wait(await driver.decide(stop.gate, APPROVE))
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from api.context import LOCAL_USER
from api.db import Database
from api.events import EventHub
from api.executor import Executor, worker_gone
from api.launch import (
    NotFoundError,
    answer_gate,
    follow_run,
    queue_run,
    resolve_workflow,
    validate_input,
)
from api.runs import Services, open_services
from api.schemas import RunCreate
from api.settings import Settings
from tools.errors import ExpectedFailure

__all__ = ["APPROVE", "Driver", "RunFailed", "Stop", "open_driver"]

APPROVE = {"decisions": [{"type": "approve"}]}

ProgressCallback = Callable[[dict[str, Any]], None]
"""Called with every progress event of a run (``stage``, ``message``)."""

# What a driven run streams into its event log: all an API client following it could ask for.
_STREAM_MODES = ["values", "updates", "custom"]


class RunFailed(ExpectedFailure):
    """A run ended in an error; the message is the error's (its traceback was logged)."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("message") or error.get("error") or "the run failed")
        self.kind = str(error.get("error", "Exception"))


@dataclass(frozen=True)
class Stop:
    """Where a thread stands: at a pending gate (an approval row), or finished."""

    thread_id: str
    gate: dict[str, Any] | None
    values: dict[str, Any]
    trace_url: str | None = None
    """The trace of the run that stopped there (in Langfuse, when configured)."""


@dataclass(frozen=True)
class Driver:
    """Starts, executes and answers the runs of one owner's threads, in this process."""

    services: Services
    db: Database
    executor: Executor
    owner: str

    async def start(
        self,
        workflow: str,
        payload: dict[str, Any],
        *,
        project_id: str | None = None,
        thread_id: str | None = None,
        new_project: bool = False,
    ) -> dict[str, Any]:
        """Check the input, create a thread (on ``project_id``) and queue its first run.

        With ``new_project`` (and no ``project_id``) the thread gets a project of its own,
        named after the input's title or brief, so what it approves is kept as the project's
        (not for a workflow that starts from a project's artifacts: a new one has none).

        Raises:
            NotFoundError: No such workflow type, or no such project of the owner's.
            InvalidRunError: The input is not valid for the workflow.
        """
        name = resolve_workflow(self.services.workflows, workflow)
        validate_input(self.services.workflows[name], payload)  # before a thread exists
        if project_id is not None and not await self.db.fetch_one(
            "SELECT 1 FROM auteur_projects WHERE project_id = %s AND owner = %s",
            (project_id, self.owner),
        ):
            raise NotFoundError(f"no project '{project_id}'")
        if project_id is None and new_project and not self.services.workflows[name].takes:
            project_id = await self._new_project(payload)
        thread_id = thread_id or str(uuid.uuid4())
        metadata = {"project_id": project_id} if project_id else {}
        await self.db.create_thread(thread_id, self.owner, metadata, if_exists="raise")
        return await queue_run(
            self.db,
            self.services.workflows,
            self.owner,
            thread_id,
            RunCreate(assistant_id=name, input=payload, stream_mode=_STREAM_MODES),
        )

    async def _new_project(self, payload: dict[str, Any]) -> str:
        """A project for a run started without one, named after its title or brief."""
        config = payload.get("config") or {}
        brief = str(payload.get("brief") or "")
        name = config.get("title") or " ".join(brief.split()[:8]) or "Untitled"
        return (await self.db.create_project(self.owner, name, brief, config))["project_id"]

    async def continue_thread(self, thread_id: str) -> dict[str, Any] | None:
        """The run that continues a thread cut off mid-stage, or None where none is needed.

        A run still active (its process died, or it waits in the queue) is the one to
        execute; a thread whose last run failed gets a new run from its last checkpoint.

        Raises:
            NotFoundError: No such thread of the owner's.
        """
        thread = await self.thread(thread_id)
        active = await self.db.active_runs(thread_id)
        if active:
            return active[0]
        if thread["status"] != "error":
            return None
        return await queue_run(
            self.db,
            self.services.workflows,
            self.owner,
            thread_id,
            RunCreate(assistant_id=thread["workflow"], stream_mode=_STREAM_MODES),
        )

    async def decide(self, gate: dict[str, Any], decision: dict[str, Any]) -> dict[str, Any]:
        """Record ``decision`` on a pending gate and queue the run that resumes the thread.

        Raises:
            ConflictError: The gate was decided meanwhile (say, through the API).
            InvalidRunError: The decision does not fit the gate.
        """
        return await answer_gate(self.db, self.services.workflows, self.owner, gate, decision)

    async def wait(self, run: dict[str, Any], on_progress: ProgressCallback | None = None) -> Stop:
        """Execute ``run`` here (or wait for whoever holds it) until it ends; where it stopped.

        Raises:
            RunFailed: The run ended in an error.
        """
        run_id = run["run_id"]
        follower = asyncio.create_task(self._report(run_id, on_progress)) if on_progress else None
        try:
            ended = await self.executor.execute(run_id)
        except BaseException:
            if follower is not None:
                follower.cancel()
            raise
        if follower is not None:
            await follower  # the run is over: the rest of its events, then the follower ends
        if ended is None:
            raise NotFoundError(f"run '{run_id}' was deleted")
        if ended["status"] == "error":
            raise RunFailed(ended["error"] or {})
        return await self.position(run["thread_id"], trace_url=ended["trace_url"])

    async def position(self, thread_id: str, *, trace_url: str | None = None) -> Stop:
        """Where a thread stands now: its pending gate, if any, and its values."""
        thread = await self.thread(thread_id)
        gate = await self.db.pending_gate(thread_id, self.owner)
        return Stop(thread_id, gate, thread["thread_values"] or {}, trace_url)

    async def thread(self, thread_id: str) -> dict[str, Any]:
        """One of the owner's threads.

        Raises:
            NotFoundError: No such thread of the owner's.
        """
        thread = await self.db.thread(thread_id, self.owner)
        if thread is None:
            raise NotFoundError(f"no thread '{thread_id}'")
        return thread

    async def threads(self, limit: int) -> list[dict[str, Any]]:
        """The owner's threads, most recently updated first.

        Each has ``stopped``: whether its run was cut off with its process (on this
        machine), so that ``auteur resume`` continues it.
        """
        return await self.db.fetch(
            "SELECT t.*, EXISTS (SELECT 1 FROM auteur_runs r WHERE r.thread_id = t.thread_id"
            " AND r.status = 'running' AND r.worker = ANY(%s)) AS stopped"
            " FROM auteur_threads t WHERE t.owner = %s ORDER BY t.updated_at DESC LIMIT %s",
            (await self._gone_workers(), self.owner, limit),
        )

    async def _gone_workers(self) -> list[str]:
        rows = await self.db.fetch(
            "SELECT DISTINCT worker FROM auteur_runs WHERE status = 'running' AND owner = %s",
            (self.owner,),
        )
        return [row["worker"] for row in rows if worker_gone(row["worker"])]

    async def _report(self, run_id: str, on_progress: ProgressCallback) -> None:
        """Hand every progress event of the run to ``on_progress`` as it is logged."""
        events = follow_run(self.db, self.executor.hub, run_id)
        async with aclosing(events):
            async for row in events:
                data = row["data"]
                if row["event"].startswith("custom") and isinstance(data, dict):
                    on_progress(data)


@asynccontextmanager
async def open_driver(
    settings: Settings, *, owner: str = LOCAL_USER, origin: str = "cli", cache: bool = True
) -> AsyncIterator[Driver]:
    """Open the services and an executor for this process's runs (traced with tag ``origin``).

    The executor's failure log lines are left to the caller, which says what failed itself.
    """
    async with open_services(settings, cache=cache) as services:
        hub = EventHub(services.database_url)
        await hub.start()
        db = Database(services.persistence.pool)
        executor = Executor(services, db, hub, lease_s=settings.run_lease_s, origin=origin)
        executor_log = logging.getLogger("api.executor")
        level = executor_log.level
        executor_log.setLevel(logging.ERROR)  # a failed run is RunFailed; bugs still log
        try:
            yield Driver(services, db, executor, owner)
        finally:
            executor_log.setLevel(level)
            await executor.shutdown()
            await hub.stop()
