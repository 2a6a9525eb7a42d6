"""The run executor: claims queued runs, streams them into the event log, records the outcome.

Every API process runs one executor in the background; ``auteur worker`` runs one alone, and
the CLI's driver (:mod:`api.driver`) executes its own runs with one, run by run.
A claimed run holds a lease it renews while it runs; if its process dies, the lease
expires and any executor claims the run again and continues from the last checkpoint
(``started`` runs resume with no input, or with their decision bound to the interrupt id of
the gate it answers, so nothing is applied twice and no other gate can take it). If the
database goes away under a run, the run stops where it is and this executor claims it again
as soon as the database is back.

A run's events are written in batches (:func:`api.batches.batched`): the chunks ready
together, in practice one graph step's, go to the log in one transaction with one NOTIFY,
and only the latest progress message of a batch updates the thread row. The graph streams
in a task of its own meanwhile, so a crash can lose the batch being written, as it could
lose the one event being written before.

Expected failures (a service down: ComfyUI, the LLM, the database) are logged as one line;
anything else with its traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from dataclasses import replace
from typing import Any

import psutil
from langgraph.types import Command, Interrupt, StateSnapshot

from agents.base import Context
from api.artifacts import ProjectArtifacts
from api.batches import batched
from api.db import TERMINAL_RUN_STATUSES, Database, plain
from api.events import EventHub, wait_for
from api.runs import Services
from api.studio import DbStudio
from api.wire import delivered_name, graph_stream_mode, latest_state
from tools import ledger, storage, tracing
from tools.errors import database_unreachable, failure_line
from tools.ledger import Ledger

__all__ = ["Executor", "interrupts_of", "thread_status_of", "worker_gone"]

log = logging.getLogger(__name__)

# Events written per transaction at most: a step's chunks, or a backlog caught up in a few.
_BATCH_LIMIT = 256
_APPROVAL_NAMESPACE = uuid.UUID("0b6c7f4e-6a59-4d33-9a43-2f1f6a3c1d10")


def interrupts_of(snapshot: StateSnapshot) -> dict[str, list[dict[str, Any]]]:
    """The pending interrupts of a checkpoint, keyed by task id (the Agent Server shape)."""
    return {
        task.id: [{"value": i.value, "id": i.id} for i in task.interrupts]
        for task in snapshot.tasks
        if task.interrupts
    }


def thread_status_of(snapshot: StateSnapshot) -> str:
    """``interrupted`` while the checkpoint waits (at a gate or cut off), else ``idle``."""
    return "interrupted" if snapshot.next else "idle"


def _approval_id(thread_id: str, branch: str | None, interrupt_id: str) -> str:
    """One approval per gate; a gate shown again on a new branch (a fork) is a new one."""
    gate = (
        f"{thread_id}:{interrupt_id}" if branch is None else f"{thread_id}:{branch}:{interrupt_id}"
    )
    return str(uuid.uuid5(_APPROVAL_NAMESPACE, gate))


def _approval(thread: dict[str, Any], interrupt: Interrupt) -> dict[str, Any]:
    """The approval row that queues ``interrupt``, a gate of ``thread``, for review."""
    value = interrupt.value if isinstance(interrupt.value, dict) else {}
    return {
        "approval_id": _approval_id(thread["thread_id"], thread["branch"], interrupt.id),
        "owner": thread["owner"],
        "workflow": thread["workflow"],
        "project_id": thread["project_id"],
        "stage": value.get("stage", "review"),
        "interrupt_id": interrupt.id,
        "payload": interrupt.value,
    }


def worker_gone(worker: str | None) -> bool:
    """Whether ``worker`` (an executor's id) was a process on this machine that has died.

    Its runs need not wait for their leases to lapse: ``auteur resume`` after ``kill -9``
    continues at once, and ``auteur runs`` shows them as stopped.
    """
    host, _, rest = (worker or "").partition(":")
    pid = rest.partition(":")[0]
    return host == socket.gethostname() and pid.isdigit() and not psutil.pid_exists(int(pid))


def _run_name(started: bool, gate: str, resume: Any) -> str:
    """The name of a run's root span: what the run does."""
    if started:
        return "continue"
    return "start" if resume is None else f"resume at {gate}"


def _deliverable(batch: list[tuple[Any, str, Any]], subgraphs: bool) -> list[tuple[str, Any]]:
    """A batch of stream chunks as log events, but those no stream of the run can deliver.

    A run that does not stream its subgraphs never shows their ``values`` or ``updates``:
    serializing and storing them (a subgraph's whole state, every step) was most of the
    bytes of a run's log.
    """
    events = (("|".join([mode, *namespace]), chunk) for namespace, mode, chunk in batch)
    return [(name, chunk) for name, chunk in events if delivered_name(name, None, subgraphs)]


def _present(**values: str | None) -> dict[str, str]:
    """The given values that are set."""
    return {key: value for key, value in values.items() if value is not None}


class Executor:
    """Claims and executes runs, at most ``concurrency`` at a time in this process.

    Each run is traced in Langfuse when it is configured (the trace URL is stored on the
    run) and its cost ledger is stored with it.
    """

    def __init__(
        self,
        services: Services,
        db: Database,
        hub: EventHub,
        *,
        concurrency: int = 32,
        lease_s: float = 30.0,
        poll_s: float = 2.0,
        origin: str = "api",
    ) -> None:
        self.services = services
        self.origin = origin
        self.db = db
        self.hub = hub
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.concurrency = concurrency
        self.lease_s = lease_s
        self.poll_s = poll_s
        self._tasks: dict[str, asyncio.Task[None]] = {}
        hub.on_cancel(self._cancel_local)
        tracing.configure(services.settings.langfuse)

    async def run_forever(self) -> None:
        """Claim runs as they are queued (woken by NOTIFY; polling for expired leases)."""
        while True:
            news = self.hub.queue_news()
            try:
                # as many as it has room for, in one statement: fewer than that means no more
                if (free := self.concurrency - len(self._tasks)) > 0:
                    for run in await self.db.claim_runs(
                        self.worker_id, self.lease_s, limit=free, executing=list(self._tasks)
                    ):
                        task = asyncio.create_task(self._execute(run), name=f"run-{run['run_id']}")
                        self._tasks[run["run_id"]] = task
                        task.add_done_callback(
                            lambda _, rid=run["run_id"]: self._tasks.pop(rid, None)
                        )
            except Exception as error:
                if not database_unreachable(error):
                    log.exception("claiming runs failed")
                # else the database watch has said it is down, once: try again shortly
            await wait_for(news, self.poll_s)

    async def execute(self, run_id: str) -> dict[str, Any] | None:
        """Execute one run in this process; return it once it is terminal (None: deleted).

        While another executor holds the run, this one waits for it to end, and takes it
        over if that executor's lease lapses or its process here has died.
        """
        while True:
            news = self.hub.queue_news()  # a run finished (or was queued) somewhere
            try:
                run = await self.db.run(run_id)
                if run is None or run["status"] in TERMINAL_RUN_STATUSES:
                    return run
                if run["worker"] != self.worker_id and worker_gone(run["worker"]):
                    await self.db.expire_lease(run_id, run["worker"])
                claimed = await self.db.claim_runs(self.worker_id, self.lease_s, run_id=run_id)
            except Exception as error:
                if not database_unreachable(error):
                    raise
                claimed = []  # the database watch has said it is down: try again shortly
            if not claimed:
                await wait_for(news, self.poll_s)
                continue
            task = asyncio.create_task(self._execute(claimed[0]), name=f"run-{run_id}")
            self._tasks[run_id] = task
            try:
                await task
            finally:
                self._tasks.pop(run_id, None)

    async def shutdown(self) -> None:
        """Stop every run of this process; their leases lapse and another worker resumes them."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _cancel_local(self, run_id: str) -> None:
        if task := self._tasks.get(run_id):
            task.cancel()

    async def _execute(self, run: dict[str, Any]) -> None:
        try:
            await self._execute_traced(run)
        except Exception as error:
            if not database_unreachable(error):
                raise
            log.warning("run %s paused, it continues when the database is back", run["run_id"])

    async def _execute_traced(self, run: dict[str, Any]) -> None:
        run_id, thread_id, thread = run["run_id"], run["thread_id"], run["thread"]
        if thread is None:  # deleted while queued
            await self.db.finish_run(
                run_id, "error", error={"error": "ValueError", "message": "thread deleted"}
            )
            return
        command = None if run["started"] else run["kwargs"].get("command")
        resume = (command or {}).get("resume")
        gate = thread["stage"] or "gate"
        # the state is the client's to write: a scene that is not a number is not said
        scene = thread["scene"] if type(thread["scene"]) is int else None
        with (
            ledger.collect(self.services.settings.prices) as spent,
            storage.recording(),
            tracing.trace_run(
                thread_id=thread_id,
                workflow=thread["workflow"],
                user=thread["owner"],
                name=_run_name(run["started"], tracing.gate_words(gate, scene), resume),
                tags=(self.origin,),
                metadata={"run_id": run_id, **_present(project_id=thread["project_id"])},
            ) as trace,
        ):
            if trace.url is not None:
                await self.db.set_run_trace(run_id, trace.url)
            if resume is not None:
                trace.gate_decision(gate, resume, scene)
            await self._stream(run, thread, spent)

    async def _stream(self, run: dict[str, Any], thread: dict[str, Any], spent: Ledger) -> None:
        """Stream the run into its event log and record how it ended and what it spent."""
        run_id, thread_id = run["run_id"], run["thread_id"]
        kwargs = run["kwargs"]
        graph = self.services.graph(thread["workflow"])
        configurable = {
            **(kwargs.get("config") or {}).get("configurable", {}),
            "thread_id": thread_id,
            "project_id": thread["project_id"],
        }
        config = {"configurable": configurable, "metadata": {"run_id": run_id}}
        command = kwargs.get("command")
        payload: Any = None
        if not run["started"]:
            payload = Command(**command) if command else kwargs.get("input")
        elif command and command.get("resume") is not None:
            # Cut off before its gate took the decision, the run must still deliver it; bound
            # to that gate's interrupt id, it is ignored once the gate has taken it.
            payload = Command(resume=command["resume"])
        if run["started"]:  # a fork happened when it first started: continue, do not fork again
            configurable.pop("checkpoint_id", None)
        context = replace(
            self.services.context,
            studio=DbStudio(self.db, self.hub, self.services.workflows, thread["owner"], thread_id),
        )
        if thread["project_id"] is not None:
            payload, context = await self._on_project(thread, payload, context)
        modes = sorted({*map(graph_stream_mode, kwargs.get("stream_mode", ["values"])), "custom"})
        subgraphs = bool(kwargs.get("stream_subgraphs"))
        renewal = asyncio.create_task(self._renew(run_id))
        stage = None
        try:
            started = run["started"]
            chunks = graph.astream(
                payload,
                config,
                context=context,
                stream_mode=modes,
                subgraphs=True,
                durability="sync",
                interrupt_before=kwargs.get("interrupt_before"),
                interrupt_after=kwargs.get("interrupt_after"),
            )
            async for batch in batched(chunks, limit=_BATCH_LIMIT):
                events = _deliverable(batch, subgraphs)
                progress = None
                for _, mode, chunk in batch:
                    if mode == "custom" and isinstance(chunk, dict) and "message" in chunk:
                        stage = chunk.get("stage", stage)
                        progress = (stage, str(chunk["message"]))
                if not events and started and progress is None:
                    continue  # nothing to log: only chunks no stream of this run delivers
                await self.db.log_events(
                    run_id, thread_id, events, started=not started, progress=progress
                )
                started = True
            await self._settle(run, thread, graph, config, spent.summary())
        except asyncio.CancelledError:
            await asyncio.shield(self._cancelled(run, graph, config, spent.summary()))
            raise
        except Exception as error:
            if database_unreachable(error):
                raise  # nothing can be recorded now: the run is claimed again when it is back
            if (line := failure_line(error)) is not None:
                log.warning("run %s failed: %s", run_id, line)
            else:
                log.exception("run %s failed", run_id)
            details = {"error": type(error).__name__, "message": str(error)}
            await self._grant_produced(run)
            snapshot = await graph.aget_state(config, subgraphs=True)
            await self._record_artifacts(run, thread, snapshot)
            await self.db.log_events(run_id, thread_id, [("error", details)])
            await self.db.set_thread_state(
                thread_id, status="error", stage=stage, message=str(error), error=details
            )
            await self.db.finish_run(run_id, "error", error=details, cost=spent.summary())
        finally:
            renewal.cancel()

    async def _settle(
        self,
        run: dict[str, Any],
        thread: dict[str, Any],
        graph: Any,
        config: dict[str, Any],
        cost: dict[str, Any],
    ) -> None:
        """Record the thread's state, its approvals and the run's terminal status."""
        snapshot = await latest_state(graph, config)
        interrupts = interrupts_of(snapshot)
        status = thread_status_of(snapshot)
        gate = snapshot.interrupts[0].value if snapshot.interrupts else None
        stage = gate.get("stage") if isinstance(gate, dict) else None
        await self._grant_produced(run)
        await self._record_artifacts(run, thread, snapshot)
        await self.db.settle_run(
            run["run_id"],
            run["thread_id"],
            status=status,
            values=snapshot.values,
            interrupts=interrupts,
            stage=stage,
            message="awaiting approval"
            if interrupts
            else ("finished" if status == "idle" else None),
            approvals=[_approval(thread, interrupt) for interrupt in snapshot.interrupts],
            cost=cost,
        )

    async def _cancelled(
        self, run: dict[str, Any], graph: Any, config: dict[str, Any], cost: dict[str, Any]
    ) -> None:
        current = await self.db.run(run["run_id"])
        action = current["cancel_action"] if current else None
        if action is None:  # this process is shutting down: the lease lapses, another resumes
            return
        if action == "rollback":
            await self.db.roll_back(run["run_id"], run["thread_id"])
        else:
            await self._grant_produced(run)
            await self.db.finish_run(run["run_id"], "interrupted", cost=cost)
        snapshot = await latest_state(graph, config)
        await self.db.set_thread_state(
            run["thread_id"],
            status=thread_status_of(snapshot),
            values=snapshot.values,
            interrupts=interrupts_of(snapshot),
            message="cancelled",
        )

    async def _on_project(
        self, thread: dict[str, Any], payload: Any, context: Context
    ) -> tuple[Any, Context]:
        """A run on a project: its input and its context's view of the project's artifacts.

        A new run's input defaults to the project's brief and configuration and starts with
        the current artifacts its workflow takes; every run's gates see the current versions
        (what a proposal would make stale).
        """
        store = ProjectArtifacts(self.db)
        branch = await store.branch_of(thread["project_id"], thread["branch"])
        if isinstance(payload, dict):
            project = await self.db.fetch_one(
                "SELECT brief, config FROM auteur_projects WHERE project_id = %s",
                (thread["project_id"],),
            )
            workflow = self.services.workflows[thread["workflow"]]
            given = await store.start_values(thread["project_id"], branch, workflow)
            if project is not None:
                config = {**project["config"], **(payload.get("config") or {})}
                payload = {"brief": project["brief"], **payload, "config": config}
            payload = {**given, **payload}
        lineage = await store.lineage(thread["project_id"], branch)
        return payload, replace(context, project_artifacts=lineage)

    async def _record_artifacts(
        self, run: dict[str, Any], thread: dict[str, Any], snapshot: StateSnapshot
    ) -> None:
        """Keep what the run approved as the project's new artifact versions.

        ``snapshot`` is the thread's state with its subgraphs'. An agent of several steps is
        one task of the workflow graph: what its earlier steps approved is in its subgraph's
        state until it finishes, so that is read too (the treatment is the project's as soon
        as it is approved, not after the master script).
        """
        if thread["project_id"] is None:
            return
        values = dict(snapshot.values)
        for task in snapshot.tasks:
            if isinstance(task.state, StateSnapshot):
                values |= task.state.values
        await ProjectArtifacts(self.db).record(thread=thread, run_id=run["run_id"], values=values)

    async def _grant_produced(self, run: dict[str, Any]) -> None:
        """Let the run's owner read the files this run stored or reused, and only those.

        Never the files its state names: a client can write any content key into its own
        thread's state, and a key is only the hash of someone's file.
        """
        await self.db.own_files(run["owner"], plain(storage.produced()))

    async def _renew(self, run_id: str) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)
            with contextlib.suppress(Exception):
                if not await self.db.renew_lease(run_id, self.worker_id, self.lease_s):
                    return
