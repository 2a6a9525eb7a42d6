"""The studio the director works in: one person's productions, over the service's own tables.

Every action goes through the path the API's routes take (:func:`api.launch.queue_run`,
:func:`api.launch.answer_gate`), so a production the director starts is a thread like any
other, and a decision it passes on is recorded once, with its audit, on the gate's row.
Every action is idempotent by the key the director gives it (its tool call's id): a director
run that crashed and runs its step again starts and decides nothing twice.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from api.artifacts import ProjectArtifacts
from api.db import Database
from api.events import EventHub, wait_for
from api.launch import ConflictError, RunRefused, answer_gate, queue_run, validate_input
from api.schemas import RunCreate
from graphs.base import WorkflowType
from tools.studio import Gate, Outcome

__all__ = ["DbStudio"]

_POLL_S = 2.0
_HAS_RUNS = "SELECT 1 FROM auteur_runs WHERE thread_id = %s LIMIT 1"
_NAME_LENGTH = 60


@dataclass
class DbStudio:
    """:class:`tools.studio.Studio` for ``owner``, as the director thread ``thread_id`` sees it."""

    db: Database
    hub: EventHub
    workflows: Mapping[str, WorkflowType]
    owner: str
    thread_id: str

    async def start(
        self,
        workflow: str,
        *,
        brief: str | None,
        config: dict[str, Any] | None,
        project_id: str | None,
        key: str,
    ) -> tuple[str, str]:
        """See :meth:`tools.studio.Studio.start`."""
        productions = sorted(name for name, w in self.workflows.items() if not w.chat)
        if workflow not in productions:
            known = ", ".join(productions)
            raise ValueError(f"there is no workflow type '{workflow}' (known: {known})")
        given = {"brief": brief} if brief else {}
        body = RunCreate(
            assistant_id=workflow, input=given | ({"config": config} if config else {})
        )
        try:
            validate_input(self.workflows[workflow], body.input or {})
        except RunRefused as refused:
            raise ValueError(str(refused)) from None
        production = str(uuid.uuid5(uuid.NAMESPACE_URL, f"auteur:{self.thread_id}:{key}"))
        thread = await self.db.thread(production, self.owner)
        if thread is not None:  # an earlier try of this call made it: did it queue the run?
            if await self.db.fetch_one(_HAS_RUNS, (production,)):
                return thread["project_id"], production
            project_id = thread["project_id"]
        elif project_id is None:
            if not brief:
                raise ValueError("a new project needs a brief: say what the film is about")
            project_id = await self._new_project(brief, config or {}, key)
        elif await self._project_row(project_id) is None:
            raise ValueError(f"no project '{project_id}'")
        await self.db.create_thread(
            production,
            self.owner,
            {"project_id": project_id, "director_thread": self.thread_id},
            if_exists="do_nothing",
        )
        try:
            await queue_run(self.db, self.workflows, self.owner, production, body)
        except RunRefused as refused:
            await self.db.delete_thread(production, self.owner)
            raise ValueError(str(refused)) from None
        return project_id, production

    async def follow(
        self, thread_id: str, on_progress: Callable[[str, str], Awaitable[None] | None]
    ) -> Outcome:
        """See :meth:`tools.studio.Studio.follow`."""
        said = None
        while True:
            thread = await self.db.thread(thread_id, self.owner)
            if thread is None:
                return Outcome(thread_id, "failed", message="the production was deleted")
            active = await self.db.active_runs(thread_id)
            if not active:
                return await self._where(thread)
            run_id = active[0]["run_id"]
            news = self.hub.run_news(run_id)  # set on each event the run logs, and its end
            progress = (thread["stage"] or "", thread["message"] or "")
            if progress != said and progress[1]:
                said = progress
                if inspect.isawaitable(result := on_progress(*progress)):
                    await result
            await wait_for(news, _POLL_S)
            self.hub.forget_run(run_id)

    async def decide(self, approval_id: str, decision: dict[str, Any], *, key: str) -> bool:
        """See :meth:`tools.studio.Studio.decide`."""
        gate = await self.db.approval(approval_id, self.owner)
        if gate is None:
            raise ValueError(f"no gate '{approval_id}'")
        if gate["status"] == "pending":
            try:
                await answer_gate(
                    self.db, self.workflows, self.owner, gate, decision, idempotency_key=key
                )
            except ConflictError:  # decided in another place meanwhile
                gate = await self.db.approval(approval_id, self.owner)
                assert gate is not None
            except RunRefused as refused:
                raise ValueError(str(refused)) from None
            else:
                return True
        return gate["idempotency_key"] == key

    async def pending(self, project_id: str | None) -> list[Gate]:
        """See :meth:`tools.studio.Studio.pending`."""
        rows = await self.db.fetch(
            "SELECT * FROM auteur_approvals WHERE owner = %s AND status = 'pending'"
            " AND workflow = ANY(%s) AND (%s::text IS NULL OR project_id = %s)"
            " ORDER BY created_at",
            (
                self.owner,
                [n for n, w in self.workflows.items() if not w.chat],
                project_id,
                project_id,
            ),
        )
        return [_gate(row) for row in rows]

    async def project(self, project_id: str) -> dict[str, Any]:
        """See :meth:`tools.studio.Studio.project`."""
        row = await self._project_row(project_id)
        if row is None:
            raise ValueError(f"no project '{project_id}'")
        listing = await ProjectArtifacts(self.db).listing(project_id)
        productions = await self.db.fetch(
            "SELECT t.thread_id, t.workflow, t.status, t.stage, t.message,"
            " (SELECT coalesce(sum((r.cost->'totals'->>'cost_usd')::numeric), 0)"
            "  FROM auteur_runs r WHERE r.thread_id = t.thread_id) AS cost_usd,"
            " (SELECT coalesce(sum((r.cost->'totals'->>'gpu_seconds')::numeric), 0)"
            "  FROM auteur_runs r WHERE r.thread_id = t.thread_id) AS gpu_seconds"
            " FROM auteur_threads t WHERE t.project_id = %s AND t.owner = %s"
            " ORDER BY t.created_at",
            (project_id, self.owner),
        )
        return {
            "project_id": project_id,
            "name": row["name"],
            "brief": row["brief"],
            "artifacts": [
                {"kind": a["kind"], "version": a["version"], "stale": a["stale"]}
                for a in listing["current"]
            ],
            "productions": [
                {**p, "cost_usd": float(p["cost_usd"]), "gpu_seconds": float(p["gpu_seconds"])}
                for p in productions
            ],
            "pending_gates": [g.stage for g in await self.pending(project_id)],
        }

    async def _new_project(self, brief: str, config: dict[str, Any], key: str) -> str:
        """A project for ``brief``, the same one for every try of the call ``key``."""
        project_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"auteur:{self.thread_id}:{key}:project"))
        if await self._project_row(project_id) is None:
            name = config.get("title") or (
                brief if len(brief) <= _NAME_LENGTH else brief[: _NAME_LENGTH - 1] + "…"
            )
            await self.db.create_project(self.owner, name, brief, config, project_id=project_id)
        return project_id

    async def _project_row(self, project_id: str) -> dict[str, Any] | None:
        return await self.db.fetch_one(
            "SELECT name, brief FROM auteur_projects WHERE project_id = %s AND owner = %s",
            (project_id, self.owner),
        )

    async def _where(self, thread: dict[str, Any]) -> Outcome:
        """Where a production whose runs all stopped stands."""
        thread_id = thread["thread_id"]
        gate = await self.db.pending_gate(thread_id, self.owner)
        if gate is not None:
            return Outcome(thread_id, "gate", gate=_gate(gate))
        if thread["status"] != "idle":  # it failed, or a run of it was cancelled
            return Outcome(thread_id, "failed", message=thread["message"] or thread["status"])
        return Outcome(thread_id, "finished", values=thread["thread_values"] or {})


def _gate(row: dict[str, Any]) -> Gate:
    return Gate(
        approval_id=row["approval_id"],
        thread_id=row["thread_id"],
        workflow=row["workflow"],
        stage=row["stage"],
        payload=row["payload"],
    )
