"""Service tables the API queries fast: threads, projects, runs, run events, approvals, files.

A thread row keeps its owner, project, latest values and pending interrupts, so listing
threads or the approval queue never reads a checkpoint. Every query filters by owner:
another user's rows simply do not exist.

Runs are a queue claimed with ``FOR UPDATE SKIP LOCKED`` and a lease. A partial unique index
allows one running run per thread (one writer per thread), and a run is claimable only when
no older run of its thread is pending, so a thread's runs execute in order.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from tools.redaction import in_json, redact, redact_json

__all__ = [
    "SCHEMA",
    "Database",
    "GateAnswer",
    "GateNotPendingError",
    "ThreadBusyError",
    "dumps",
    "plain",
]

EVENTS_CHANNEL = "auteur_events"
RUNS_CHANNEL = "auteur_runs"
CANCEL_CHANNEL = "auteur_cancel"
APPROVALS_CHANNEL = "auteur_approvals"

SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS auteur_threads (
    thread_id   text PRIMARY KEY,
    workflow    text,
    status      text NOT NULL DEFAULT 'idle',
    stage       text,
    message     text,
    metadata    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
)""",
    "CREATE INDEX IF NOT EXISTS auteur_threads_updated ON auteur_threads (updated_at DESC)",
    # The columns beside the first ones, for a database made before they were added.
    "ALTER TABLE auteur_threads ADD COLUMN IF NOT EXISTS owner text NOT NULL DEFAULT 'local'",
    "ALTER TABLE auteur_threads ADD COLUMN IF NOT EXISTS project_id text",
    "ALTER TABLE auteur_threads ADD COLUMN IF NOT EXISTS thread_values jsonb",
    "ALTER TABLE auteur_threads ADD COLUMN IF NOT EXISTS interrupts jsonb NOT NULL"
    " DEFAULT '{}'::jsonb",
    "ALTER TABLE auteur_threads ADD COLUMN IF NOT EXISTS error jsonb",
    "ALTER TABLE auteur_threads ALTER COLUMN workflow DROP NOT NULL",
    "CREATE INDEX IF NOT EXISTS auteur_threads_owner ON auteur_threads (owner, updated_at DESC)",
    """
CREATE TABLE IF NOT EXISTS auteur_projects (
    project_id  text PRIMARY KEY,
    owner       text NOT NULL,
    name        text NOT NULL,
    brief       text NOT NULL DEFAULT '',
    config      jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
)""",
    """
CREATE TABLE IF NOT EXISTS auteur_runs (
    run_id              text PRIMARY KEY,
    thread_id           text NOT NULL REFERENCES auteur_threads ON DELETE CASCADE,
    assistant_id        text NOT NULL,
    owner               text NOT NULL,
    status              text NOT NULL DEFAULT 'pending',
    kwargs              jsonb NOT NULL,
    metadata            jsonb NOT NULL DEFAULT '{}'::jsonb,
    multitask_strategy  text NOT NULL DEFAULT 'enqueue',
    worker              text,
    lease_until         timestamptz,
    attempt             integer NOT NULL DEFAULT 0,
    started             boolean NOT NULL DEFAULT false,
    cancel_action       text,
    error               jsonb,
    created_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at          timestamptz NOT NULL DEFAULT clock_timestamp()
)""",
    "ALTER TABLE auteur_runs ADD COLUMN IF NOT EXISTS trace_url text",
    "ALTER TABLE auteur_runs ADD COLUMN IF NOT EXISTS cost jsonb",
    "CREATE UNIQUE INDEX IF NOT EXISTS auteur_runs_one_writer ON auteur_runs (thread_id)"
    " WHERE status = 'running'",
    "CREATE INDEX IF NOT EXISTS auteur_runs_thread ON auteur_runs (thread_id, created_at DESC)",
    "CREATE INDEX IF NOT EXISTS auteur_runs_queue ON auteur_runs (created_at)"
    " WHERE status IN ('pending', 'running')",
    """
CREATE TABLE IF NOT EXISTS auteur_run_events (
    id          bigserial PRIMARY KEY,
    run_id      text NOT NULL,
    thread_id   text NOT NULL,
    event       text NOT NULL,
    data        jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
)""",
    "CREATE INDEX IF NOT EXISTS auteur_run_events_run ON auteur_run_events (run_id, id)",
    # An event up to a page is stored as it is, not compressed nor moved out of line: pglz
    # was Postgres's largest cost of logging a run and saved 14% of a state's jsonb. A
    # larger event still is both.
    "ALTER TABLE auteur_run_events SET (toast_tuple_target = 8160)",
    """
CREATE TABLE IF NOT EXISTS auteur_approvals (
    approval_id      text PRIMARY KEY,
    thread_id        text NOT NULL REFERENCES auteur_threads ON DELETE CASCADE,
    run_id           text,
    owner            text NOT NULL,
    workflow         text,
    project_id       text,
    stage            text NOT NULL,
    interrupt_id     text NOT NULL,
    payload          jsonb NOT NULL,
    status           text NOT NULL DEFAULT 'pending',
    decision         jsonb,
    diff             jsonb,
    feedback         text,
    decided_by       text,
    idempotency_key  text,
    resume_run_id    text,
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    decided_at       timestamptz
)""",
    "CREATE INDEX IF NOT EXISTS auteur_approvals_queue ON auteur_approvals"
    " (owner, status, created_at DESC)",
    "ALTER TABLE auteur_projects ADD COLUMN IF NOT EXISTS current_branch text NOT NULL"
    " DEFAULT 'main'",
    "ALTER TABLE auteur_threads ADD COLUMN IF NOT EXISTS branch text",
    """
CREATE TABLE IF NOT EXISTS auteur_artifacts (
    project_id      text NOT NULL REFERENCES auteur_projects ON DELETE CASCADE,
    kind            text NOT NULL,
    version         integer NOT NULL,
    branch          text NOT NULL,
    data            jsonb NOT NULL,
    bookkeeping     jsonb NOT NULL DEFAULT '{}'::jsonb,
    content_hash    text NOT NULL,
    input_hash      text NOT NULL,
    upstream        jsonb NOT NULL,
    parent_version  integer,
    thread_id       text,
    run_id          text,
    approval_id     text,
    stage           text,
    approved_by     text NOT NULL,
    approved_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (project_id, kind, version)
)""",
    """
CREATE TABLE IF NOT EXISTS auteur_branches (
    project_id     text NOT NULL REFERENCES auteur_projects ON DELETE CASCADE,
    branch         text NOT NULL,
    parent         text,
    thread_id      text,
    stage          text,
    checkpoint_id  text,
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (project_id, branch)
)""",
    """
CREATE TABLE IF NOT EXISTS auteur_artifact_heads (
    project_id  text NOT NULL REFERENCES auteur_projects ON DELETE CASCADE,
    branch      text NOT NULL,
    kind        text NOT NULL,
    version     integer NOT NULL,
    PRIMARY KEY (project_id, branch, kind)
)""",
    """
CREATE TABLE IF NOT EXISTS auteur_files (
    key         text NOT NULL,
    owner       text NOT NULL,
    media_type  text NOT NULL,
    PRIMARY KEY (key, owner)
)""",
)

TERMINAL_RUN_STATUSES = frozenset({"success", "error", "interrupted", "timeout"})

# A run queued: its row, the thread busy (and tied to the run's workflow if it was to none),
# its stream's first event (``metadata``), and the notifications: its stream, and the workers
# (with no run id, which would tell those waiting for the run to end to look again).
_QUEUE_RUN = """
WITH run AS (
    INSERT INTO auteur_runs (run_id, thread_id, assistant_id, owner, kwargs, metadata,
        multitask_strategy)
    VALUES (%(run_id)s, %(thread_id)s, %(assistant_id)s, %(owner)s, %(kwargs)s, %(metadata)s,
        %(multitask_strategy)s)
    RETURNING *
), busy AS (
    UPDATE auteur_threads SET status = 'busy', updated_at = now(),
        workflow = COALESCE(workflow, %(workflow)s),
        metadata = CASE WHEN workflow IS NULL AND %(workflow)s IS NOT NULL
            THEN metadata || %(binding)s ELSE metadata END
    WHERE thread_id = %(thread_id)s
), logged AS (
    INSERT INTO auteur_run_events (run_id, thread_id, event, data)
    VALUES (%(run_id)s, %(thread_id)s, 'metadata', %(first_event)s)
)
SELECT run.* FROM run
CROSS JOIN (SELECT pg_notify(%(events)s, %(run_id)s), pg_notify(%(runs)s, '')) AS told
"""
# A run's successful end in one statement (see Database.settle_run).
_SETTLE_RUN = """
WITH thread AS (
    UPDATE auteur_threads SET status = %(status)s, thread_values = %(values)s,
        interrupts = %(interrupts)s, stage = %(stage)s, message = %(message)s, error = NULL,
        updated_at = now()
    WHERE thread_id = %(thread_id)s
), stale AS (
    UPDATE auteur_approvals SET status = 'stale'
    WHERE %(opening)s AND thread_id = %(thread_id)s AND status = 'pending'
        AND approval_id <> ALL(%(approval_ids)b::text[])
), opened AS (
    INSERT INTO auteur_approvals (approval_id, thread_id, run_id, owner, workflow, project_id,
        stage, interrupt_id, payload)
    SELECT gate.approval_id, %(thread_id)s, %(run_id)s, gate.owner, gate.workflow,
        gate.project_id, gate.stage, gate.interrupt_id, gate.payload::jsonb
    FROM unnest(%(approval_ids)b::text[], %(owners)b::text[], %(workflows)b::text[],
        %(project_ids)b::text[], %(stages)b::text[], %(interrupt_ids)b::text[],
        %(payloads)b::text[])
        AS gate(approval_id, owner, workflow, project_id, stage, interrupt_id, payload)
    ON CONFLICT (approval_id) DO NOTHING
), finished AS (
    UPDATE auteur_runs SET status = 'success', cost = COALESCE(%(cost)s, cost), lease_until = NULL,
        updated_at = clock_timestamp()
    WHERE run_id = %(run_id)s
)
SELECT pg_notify(%(events)s, %(run_id)s), pg_notify(%(runs)s, %(run_id)s),
    CASE WHEN %(opening)s THEN pg_notify(%(approvals)s, %(approval_owner)s) END
"""
# A batch of a run's events in one statement: the rows in the order given (ids follow the
# ordinality), the run marked started, the thread's progress, and one notification.
# Arrays go in binary (``%(...)b``): the JSON texts in them then need no quoting.
_LOG_EVENTS = """
WITH logged AS (
    INSERT INTO auteur_run_events (run_id, thread_id, event, data)
    SELECT %(run_id)s, %(thread_id)s, batch.event, batch.data::jsonb
    FROM unnest(%(events)b::text[], %(data)b::text[]) WITH ORDINALITY AS batch(event, data, n)
    ORDER BY batch.n
), started AS (
    UPDATE auteur_runs SET started = true WHERE run_id = %(run_id)s AND %(started)s
), progress AS (
    UPDATE auteur_threads SET status = 'busy', stage = %(stage)s, message = %(message)s,
        updated_at = now()
    WHERE thread_id = %(thread_id)s AND %(progress)s
)
SELECT pg_notify(%(channel)s, %(run_id)s)
"""
_TAKE_BACK_DECISION = (
    "UPDATE auteur_approvals SET status = 'pending', decision = NULL, diff = NULL,"
    " feedback = NULL, decided_by = NULL, idempotency_key = NULL, resume_run_id = NULL,"
    " decided_at = NULL WHERE resume_run_id = %s"
)


@dataclass(frozen=True)
class GateAnswer:
    """A person's decision on one pending gate (approval row), with its audit trail."""

    approval_id: str
    decision: Any
    diff: list[dict[str, Any]]
    feedback: str | None
    idempotency_key: str | None = None


class ThreadBusyError(Exception):
    """The thread already has a pending or running run (multitask strategy ``reject``)."""


class GateNotPendingError(Exception):
    """The gate a decision answers is no longer pending: decided meanwhile, or moved past."""


def dumps(value: Any) -> str:
    """JSON for anything a graph streams: Pydantic models, dataclasses (interrupts), messages."""
    return json.dumps(value, default=_jsonable, separators=(",", ":"))


def _jsonable(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if hasattr(value, "__dataclass_fields__"):
        return {name: getattr(value, name) for name in value.__dataclass_fields__}
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID | bytes):
        return str(value)
    return repr(value)


def _media_files(value: Any) -> list[dict[str, Any]]:
    """Every ``MediaFile``-shaped dict (sha256, key, media_type) inside a JSON value."""
    if isinstance(value, dict):
        if {"sha256", "key", "media_type"} <= value.keys() and isinstance(value["key"], str):
            return [value]
        return [file for item in value.values() for file in _media_files(item)]
    if isinstance(value, list):
        return [file for item in value for file in _media_files(item)]
    return []


def plain(value: Any) -> Any:
    """``value`` as plain JSON data (dicts, lists, strings, numbers), as :func:`dumps` sees it."""
    return json.loads(dumps(value))


def _json_text(value: Any) -> str:
    """``value`` as the text of a jsonb value: plain JSON, configured secrets redacted.

    Serialized once; walked to redact only when a secret shows in the text (events carry
    whole artifacts, and most hold none).
    """
    text = dumps(value)
    if in_json(text):
        text = dumps(redact_json(json.loads(text)))
    return text


def _json(value: Any) -> Jsonb:
    """``value`` for a jsonb column (see :func:`_json_text`)."""
    return Jsonb(_json_text(value), dumps=str)


async def _notify(conn: AsyncConnection, *notes: tuple[str, str]) -> None:
    """Send ``(channel, payload)`` notifications in one statement (delivered at commit)."""
    calls = ", ".join(["pg_notify(%s, %s)"] * len(notes))
    await conn.execute(f"SELECT {calls}", [part for note in notes for part in note])


class Database:
    """Data access for the service tables; every method is one short transaction."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def setup(self, conn: AsyncConnection) -> None:
        """Create or extend the service tables (idempotent; the caller holds the schema lock)."""
        for statement in SCHEMA:
            await conn.execute(statement)

    async def fetch(
        self, query: str, params: Sequence[Any] | Mapping[str, Any] = ()
    ) -> list[dict[str, Any]]:
        """All rows of a query."""
        async with self.pool.connection() as conn:
            cursor = await conn.execute(query, params)
            return await cursor.fetchall()

    async def fetch_one(
        self, query: str, params: Sequence[Any] | Mapping[str, Any] = ()
    ) -> dict[str, Any] | None:
        """The first row of a query, or None."""
        rows = await self.fetch(query, params)
        return rows[0] if rows else None

    async def set_thread_branch(self, thread_id: str, branch: str) -> None:
        """Move a thread (of no project) to a new branch: the gates it shows again are new."""
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE auteur_threads SET branch = %s WHERE thread_id = %s", (branch, thread_id)
            )

    # --- projects --------------------------------------------------------------------------

    async def create_project(
        self,
        owner: str,
        name: str,
        brief: str,
        config: dict[str, Any],
        *,
        project_id: str | None = None,
    ) -> dict[str, Any]:
        """A new project of ``owner``'s (with ``project_id``, when the caller picked one)."""
        row = await self.fetch_one(
            "INSERT INTO auteur_projects (project_id, owner, name, brief, config)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING project_id, name, brief, config,"
            " created_at, updated_at",
            (project_id or str(uuid.uuid4()), owner, name, brief, _json(config)),
        )
        assert row is not None
        return row

    # --- threads ---------------------------------------------------------------------------

    async def create_thread(
        self, thread_id: str, owner: str, metadata: dict[str, Any], *, if_exists: str
    ) -> dict[str, Any] | None:
        """Insert a thread; None if the id exists and ``if_exists`` is ``raise``."""
        row = await self.fetch_one(
            "INSERT INTO auteur_threads (thread_id, owner, status, metadata, project_id,"
            " workflow) VALUES (%s, %s, 'idle', %s, %s, %s)"
            " ON CONFLICT (thread_id) DO NOTHING RETURNING *",
            (
                thread_id,
                owner,
                _json(metadata),
                metadata.get("project_id"),
                metadata.get("graph_id"),
            ),
        )
        if row is None and if_exists == "do_nothing":
            return await self.thread(thread_id, owner)
        return row

    async def thread(self, thread_id: str, owner: str) -> dict[str, Any] | None:
        """One thread of ``owner``."""
        return await self.fetch_one(
            "SELECT * FROM auteur_threads WHERE thread_id = %s AND owner = %s", (thread_id, owner)
        )

    async def patch_thread(
        self, thread_id: str, owner: str, metadata: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Merge ``metadata`` into a thread's metadata."""
        return await self.fetch_one(
            "UPDATE auteur_threads SET metadata = metadata || %s,"
            " project_id = COALESCE(%s, project_id), updated_at = now()"
            " WHERE thread_id = %s AND owner = %s RETURNING *",
            (_json(metadata), metadata.get("project_id"), thread_id, owner),
        )

    async def delete_thread(self, thread_id: str, owner: str) -> bool:
        """Delete a thread, its runs, events and approvals (checkpoints: the caller)."""
        async with self.pool.connection() as conn:
            cursor = await conn.execute(
                "DELETE FROM auteur_threads WHERE thread_id = %s AND owner = %s",
                (thread_id, owner),
            )
            if cursor.rowcount:
                await conn.execute(
                    "DELETE FROM auteur_run_events WHERE thread_id = %s", (thread_id,)
                )
            return cursor.rowcount > 0

    async def search_threads(
        self,
        owner: str,
        *,
        metadata: dict[str, Any] | None,
        values: dict[str, Any] | None,
        status: str | None,
        ids: list[str] | None,
        limit: int,
        offset: int,
        sort_by: str,
        sort_order: str,
        count_only: bool = False,
    ) -> list[dict[str, Any]] | int:
        """Threads of ``owner`` matching every given filter (JSON containment for dicts)."""
        where = ["owner = %s"]
        params: list[Any] = [owner]
        if metadata:
            where.append("metadata @> %s")
            params.append(_json(metadata))
        if values:
            where.append("thread_values @> %s")
            params.append(_json(values))
        if status:
            where.append("status = %s")
            params.append(status)
        if ids is not None:
            where.append("thread_id = ANY(%s)")
            params.append(ids)
        clause = " AND ".join(where)
        if count_only:
            row = await self.fetch_one(
                f"SELECT count(*) AS n FROM auteur_threads WHERE {clause}", params
            )
            return int(row["n"]) if row else 0
        column = {"thread_id": "thread_id", "status": "status", "created_at": "created_at"}.get(
            sort_by, "updated_at"
        )
        order = "ASC" if sort_order == "asc" else "DESC"
        return await self.fetch(
            f"SELECT * FROM auteur_threads WHERE {clause} ORDER BY {column} {order}"
            " LIMIT %s OFFSET %s",
            [*params, limit, offset],
        )

    async def set_thread_state(
        self,
        thread_id: str,
        *,
        status: str,
        values: Any = None,
        interrupts: dict[str, Any] | None = None,
        stage: str | None = None,
        message: str | None = None,
        error: dict[str, Any] | None = None,
    ) -> None:
        """Record where a thread stands after a run (or a state update)."""
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE auteur_threads SET status = %s, thread_values = COALESCE(%s,"
                " thread_values), interrupts = COALESCE(%s, interrupts), stage = %s,"
                " message = %s, error = %s, updated_at = now() WHERE thread_id = %s",
                (
                    status,
                    _json(values) if values is not None else None,
                    _json(interrupts) if interrupts is not None else None,
                    stage,
                    redact(message) if message is not None else None,
                    _json(error) if error is not None else None,
                    thread_id,
                ),
            )

    # --- runs ------------------------------------------------------------------------------

    async def active_runs(self, thread_id: str) -> list[dict[str, Any]]:
        """The thread's pending and running runs, oldest first."""
        return await self.fetch(
            "SELECT * FROM auteur_runs WHERE thread_id = %s AND status IN ('pending', 'running')"
            " ORDER BY created_at",
            (thread_id,),
        )

    async def create_run(
        self,
        *,
        run_id: str,
        thread_id: str,
        assistant_id: str,
        owner: str,
        kwargs: dict[str, Any],
        metadata: dict[str, Any],
        multitask_strategy: str,
        answers: GateAnswer | None = None,
        binds: tuple[str, dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Queue a run, log its ``metadata`` event (the first of its stream) and wake workers.

        A ``reject`` run and one that ``answers`` a gate are queued in one transaction
        holding the thread's row lock: concurrent requests on a thread are serialised, so
        ``reject`` sees every run queued before it, and a run that ``answers`` a gate takes
        the decision only while the gate is still pending — of N concurrent decisions on one
        gate, exactly one queues a run. Any other run is one statement. ``binds`` (a
        workflow and metadata) ties a thread that has no workflow yet to that one, the
        metadata merged into its own, as the run is queued.

        Raises:
            ThreadBusyError: The strategy is ``reject`` and the thread has an active run.
            GateNotPendingError: The gate was decided meanwhile, or the thread moved on.
        """
        workflow, binding = binds or (None, {})
        queue = (
            _QUEUE_RUN,
            {
                "run_id": run_id,
                "thread_id": thread_id,
                "assistant_id": assistant_id,
                "owner": owner,
                "kwargs": _json(kwargs),
                "metadata": _json(metadata),
                "multitask_strategy": multitask_strategy,
                "workflow": workflow,
                "binding": _json(binding),
                "first_event": _json({"run_id": run_id, "attempt": 1}),
                "events": EVENTS_CHANNEL,
                "runs": RUNS_CHANNEL,
            },
        )
        if multitask_strategy != "reject" and answers is None:
            run = await self.fetch_one(*queue)
            assert run is not None
            return run
        async with self.pool.connection() as conn, conn.pipeline(), conn.transaction():
            await conn.execute(
                "SELECT 1 FROM auteur_threads WHERE thread_id = %s FOR UPDATE", (thread_id,)
            )
            if multitask_strategy == "reject":
                cursor = await conn.execute(
                    "SELECT 1 FROM auteur_runs WHERE thread_id = %s"
                    " AND status IN ('pending', 'running') LIMIT 1",
                    (thread_id,),
                )
                if await cursor.fetchone() is not None:
                    raise ThreadBusyError(thread_id)
            if answers is not None:
                await self._decide(conn, answers, owner, run_id)
            cursor = await conn.execute(*queue)
            run = await cursor.fetchone()
        assert run is not None
        return run

    async def _decide(
        self, conn: AsyncConnection, answer: GateAnswer, owner: str, run_id: str
    ) -> None:
        cursor = await conn.execute(
            "UPDATE auteur_approvals SET status = 'decided', decision = %s, diff = %s,"
            " feedback = %s, decided_by = %s, idempotency_key = %s, resume_run_id = %s,"
            " decided_at = clock_timestamp() WHERE approval_id = %s AND owner = %s"
            " AND status = 'pending' RETURNING approval_id",
            (
                _json(answer.decision),
                _json(answer.diff),
                answer.feedback,
                owner,
                answer.idempotency_key,
                run_id,
                answer.approval_id,
                owner,
            ),
        )
        if await cursor.fetchone() is None:
            raise GateNotPendingError(answer.approval_id)
        await _notify(conn, (APPROVALS_CHANNEL, owner))

    async def run(self, run_id: str, owner: str | None = None) -> dict[str, Any] | None:
        """One run (of ``owner``, when given)."""
        if owner is None:
            return await self.fetch_one("SELECT * FROM auteur_runs WHERE run_id = %s", (run_id,))
        return await self.fetch_one(
            "SELECT * FROM auteur_runs WHERE run_id = %s AND owner = %s", (run_id, owner)
        )

    async def run_outcome(self, run_id: str, thread_id: str) -> dict[str, Any]:
        """A run's ``status`` and ``error``, and once it has ended its thread's state.

        ``status`` is None when the run is gone; ``thread_values`` and ``interrupts`` are
        read (in the same snapshot) only when the run has ended or is gone.
        """
        row = await self.fetch_one(
            "SELECT r.status, r.error, t.thread_values, t.interrupts FROM (SELECT 1) AS one"
            " LEFT JOIN auteur_runs r ON r.run_id = %(run_id)s"
            " LEFT JOIN auteur_threads t ON t.thread_id = %(thread_id)s"
            " AND (r.status IS NULL OR r.status = ANY(%(ended)s))",
            {"run_id": run_id, "thread_id": thread_id, "ended": sorted(TERMINAL_RUN_STATUSES)},
        )
        assert row is not None  # the outer query has one row
        return row

    async def list_runs(
        self, thread_id: str, *, status: str | None, limit: int, offset: int
    ) -> list[dict[str, Any]]:
        """A thread's runs, newest first."""
        if status:
            return await self.fetch(
                "SELECT * FROM auteur_runs WHERE thread_id = %s AND status = %s"
                " ORDER BY created_at DESC LIMIT %s OFFSET %s",
                (thread_id, status, limit, offset),
            )
        return await self.fetch(
            "SELECT * FROM auteur_runs WHERE thread_id = %s ORDER BY created_at DESC"
            " LIMIT %s OFFSET %s",
            (thread_id, limit, offset),
        )

    async def claim_runs(
        self,
        worker: str,
        lease_s: float,
        *,
        limit: int = 1,
        executing: Sequence[str] = (),
        run_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """Claim the oldest runnable runs (or ``run_id``): pending, or running, lease expired.

        Each run comes with what the executor needs of its thread, under ``thread`` (None:
        the thread was deleted meanwhile). One statement, however many are claimed.

        A run leased to ``worker`` but not among those it is ``executing`` was dropped by
        it (the database went away under it) and is claimable again at once. A run is
        runnable only when no older run of its thread is pending or running, and the
        partial unique index refuses a second running run per thread.
        """
        return await self.fetch(
            """
            WITH claimed AS (
                UPDATE auteur_runs SET status = 'running', worker = %(worker)s,
                    attempt = attempt + 1,
                    lease_until = clock_timestamp() + make_interval(secs => %(lease_s)s),
                    updated_at = clock_timestamp()
                WHERE run_id = ANY(ARRAY(
                    SELECT r.run_id FROM auteur_runs r
                    WHERE (r.status = 'pending'
                           OR (r.status = 'running'
                               AND (r.lease_until < clock_timestamp()
                                    OR (r.worker = %(worker)s
                                        AND r.run_id <> ALL(%(executing)s)))))
                      AND (%(run_id)s::text IS NULL OR r.run_id = %(run_id)s)
                      AND NOT EXISTS (
                          SELECT 1 FROM auteur_runs o
                          WHERE o.thread_id = r.thread_id AND o.run_id <> r.run_id
                            AND (o.status = 'running'
                                 OR (o.status = 'pending' AND o.created_at < r.created_at)))
                    ORDER BY r.created_at
                    LIMIT %(limit)s
                    FOR UPDATE SKIP LOCKED))
                RETURNING *
            )
            SELECT claimed.*, (
                SELECT json_build_object('thread_id', t.thread_id, 'workflow', t.workflow,
                    'project_id', t.project_id, 'owner', t.owner, 'stage', t.stage,
                    'branch', t.branch, 'scene', t.thread_values->'scene')
                FROM auteur_threads t WHERE t.thread_id = claimed.thread_id
            ) AS thread
            FROM claimed ORDER BY claimed.created_at
            """,
            {
                "worker": worker,
                "lease_s": lease_s,
                "executing": list(executing),
                "run_id": run_id,
                "limit": limit,
            },
        )

    async def renew_lease(self, run_id: str, worker: str, lease_s: float) -> bool:
        """Extend a run's lease; False if the run is no longer this worker's."""
        async with self.pool.connection() as conn:
            cursor = await conn.execute(
                "UPDATE auteur_runs SET lease_until = clock_timestamp() +"
                " make_interval(secs => %s) WHERE run_id = %s AND worker = %s"
                " AND status = 'running'",
                (lease_s, run_id, worker),
            )
            return cursor.rowcount > 0

    async def expire_lease(self, run_id: str, worker: str) -> None:
        """End ``worker``'s lease on a run now (the worker is known dead): it is claimable."""
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE auteur_runs SET lease_until = clock_timestamp() WHERE run_id = %s"
                " AND worker = %s AND status = 'running'",
                (run_id, worker),
            )

    async def finish_run(
        self,
        run_id: str,
        status: str,
        *,
        error: dict[str, Any] | None = None,
        cost: dict[str, Any] | None = None,
    ) -> None:
        """Set a run's terminal status (and what it spent) and tell every stream waiting on it.

        ``cost`` is a :class:`tools.ledger.Ledger` summary.
        """
        async with self.pool.connection() as conn:
            await conn.execute(
                "WITH finished AS (UPDATE auteur_runs SET status = %s, error = %s,"
                " cost = COALESCE(%s, cost), lease_until = NULL, updated_at = clock_timestamp()"
                " WHERE run_id = %s) SELECT pg_notify(%s, %s), pg_notify(%s, %s)",
                (
                    status,
                    _json(error) if error else None,
                    _json(cost) if cost else None,
                    run_id,
                    EVENTS_CHANNEL,
                    run_id,
                    RUNS_CHANNEL,
                    run_id,
                ),
            )

    async def set_run_trace(self, run_id: str, trace_url: str) -> None:
        """Record where the run's trace is (Langfuse)."""
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE auteur_runs SET trace_url = %s WHERE run_id = %s", (trace_url, run_id)
            )

    async def request_cancel(self, run_id: str, action: str) -> str | None:
        """Ask a run to stop; a pending run stops at once. Returns its status after."""
        async with self.pool.connection() as conn, conn.pipeline(), conn.transaction():
            cursor = await conn.execute(
                "UPDATE auteur_runs SET cancel_action = %s, updated_at = clock_timestamp(),"
                " status = CASE WHEN status = 'pending' THEN 'interrupted' ELSE status END"
                " WHERE run_id = %s AND status IN ('pending', 'running') RETURNING status",
                (action, run_id),
            )
            row = await cursor.fetchone()
            if row is None:
                return None
            await _notify(conn, (CANCEL_CHANNEL, run_id), (EVENTS_CHANNEL, run_id))
            return row["status"]

    async def delete_run(self, run_id: str) -> None:
        """Remove a run and its events."""
        async with self.pool.connection() as conn:
            await conn.execute("DELETE FROM auteur_run_events WHERE run_id = %s", (run_id,))
            await conn.execute("DELETE FROM auteur_runs WHERE run_id = %s", (run_id,))
            await conn.execute(_TAKE_BACK_DECISION, (run_id,))  # its gate waits again

    async def roll_back(self, run_id: str, thread_id: str) -> None:
        """Remove a run, its events and every checkpoint it wrote (the thread is as before it).

        A decision the run carried is taken back: its gate is pending again.

        LangGraph copies the run's config metadata into each checkpoint's, so the run's
        checkpoints (subgraphs' included) are those whose metadata names its ``run_id``.
        """
        async with self.pool.connection() as conn, conn.transaction():
            for table in ("checkpoint_writes", "checkpoints"):
                await conn.execute(
                    f"DELETE FROM {table} WHERE thread_id = %s AND checkpoint_id IN (SELECT"
                    " checkpoint_id FROM checkpoints WHERE thread_id = %s"
                    " AND metadata->>'run_id' = %s)",
                    (thread_id, thread_id, run_id),
                )
            await conn.execute("DELETE FROM auteur_run_events WHERE run_id = %s", (run_id,))
            await conn.execute("DELETE FROM auteur_runs WHERE run_id = %s", (run_id,))
            await conn.execute(_TAKE_BACK_DECISION, (run_id,))  # its gate waits again

    async def take_back_decision(self, run_id: str) -> None:
        """The gate that ``run_id`` answered waits again (the run is being rolled back)."""
        async with self.pool.connection() as conn:
            await conn.execute(_TAKE_BACK_DECISION, (run_id,))

    # --- events ----------------------------------------------------------------------------

    async def log_events(
        self,
        run_id: str,
        thread_id: str,
        events: Sequence[tuple[str, Any]],
        *,
        started: bool = False,
        progress: tuple[str | None, str] | None = None,
    ) -> None:
        """Append ``(event, data)`` pairs to the run's durable log and notify its listeners once.

        One statement, so one transaction and one round trip: the events (in order), the run
        marked ``started`` (its input is checkpointed: a retry continues from the
        checkpoint), the thread's latest ``progress`` (stage, message) and the notification.
        """
        stage, message = progress or (None, None)
        async with self.pool.connection() as conn:
            await conn.execute(
                _LOG_EVENTS,
                {
                    "run_id": run_id,
                    "thread_id": thread_id,
                    "events": [event for event, _ in events],
                    "data": [_json_text(data) for _, data in events],
                    "started": started,
                    "progress": progress is not None,
                    "stage": stage,
                    "message": redact(message) if message is not None else None,
                    "channel": EVENTS_CHANNEL,
                },
            )

    async def events_after(self, run_id: str, after: int, limit: int = 500) -> list[dict[str, Any]]:
        """A run's events with id > ``after``, in order."""
        return await self.fetch(
            "SELECT id, event, data FROM auteur_run_events WHERE run_id = %s AND id > %s"
            " ORDER BY id LIMIT %s",
            (run_id, after, limit),
        )

    # --- approvals -------------------------------------------------------------------------

    async def settle_run(
        self,
        run_id: str,
        thread_id: str,
        *,
        status: str,
        values: Any,
        interrupts: dict[str, Any],
        stage: str | None,
        message: str | None,
        approvals: Sequence[dict[str, Any]],
        cost: dict[str, Any],
    ) -> None:
        """Record how a run ended well: the thread's state, its gates, the run's ``success``.

        One statement, so one transaction: the thread's state is never seen without its
        gates, nor the run finished before both. Each of ``approvals`` (a gate to review)
        is queued, and the thread's older pending gates become stale; the approval queue's
        owner, the run's streams and the workers waiting for a finished run are notified.
        """
        await self.fetch_one(
            _SETTLE_RUN,
            {
                "run_id": run_id,
                "thread_id": thread_id,
                "status": status,
                "values": _json(values),
                "interrupts": _json(interrupts),
                "stage": stage,
                "message": redact(message) if message is not None else None,
                "opening": bool(approvals),
                "approval_ids": [a["approval_id"] for a in approvals],
                "owners": [a["owner"] for a in approvals],
                "workflows": [a["workflow"] for a in approvals],
                "project_ids": [a["project_id"] for a in approvals],
                "stages": [a["stage"] for a in approvals],
                "interrupt_ids": [a["interrupt_id"] for a in approvals],
                "payloads": [_json_text(a["payload"]) for a in approvals],
                "approval_owner": approvals[0]["owner"] if approvals else "",
                "cost": _json(cost) if cost else None,
                "events": EVENTS_CHANNEL,
                "runs": RUNS_CHANNEL,
                "approvals": APPROVALS_CHANNEL,
            },
        )

    async def approvals(
        self,
        owner: str,
        *,
        status: str,
        limit: int,
        offset: int,
        project_id: str | None = None,
        stage: str | None = None,
        workflow: str | None = None,
        thread_id: str | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of ``owner``'s approvals (one query, no checkpoint reads) and the total."""
        where = ["owner = %s", "status = %s"]
        params: list[Any] = [owner, status]
        filters = {
            "project_id": project_id,
            "stage": stage,
            "workflow": workflow,
            "thread_id": thread_id,
        }
        for column, value in filters.items():
            if value is not None:
                where.append(f"{column} = %s")
                params.append(value)
        rows = await self.fetch(
            f"SELECT *, count(*) OVER () AS total FROM auteur_approvals WHERE {' AND '.join(where)}"
            " ORDER BY created_at DESC LIMIT %s OFFSET %s",
            [*params, limit, offset],
        )
        return rows, int(rows[0]["total"]) if rows else 0

    async def approval(self, approval_id: str, owner: str) -> dict[str, Any] | None:
        """One approval of ``owner``."""
        return await self.fetch_one(
            "SELECT * FROM auteur_approvals WHERE approval_id = %s AND owner = %s",
            (approval_id, owner),
        )

    async def pending_gate(
        self, thread_id: str, owner: str, interrupt_id: str | None = None
    ) -> dict[str, Any] | None:
        """The gate the thread waits at (the one with ``interrupt_id``, when given), if pending."""
        if interrupt_id is None:
            return await self.fetch_one(
                "SELECT * FROM auteur_approvals WHERE thread_id = %s AND owner = %s"
                " AND status = 'pending' ORDER BY created_at DESC LIMIT 1",
                (thread_id, owner),
            )
        return await self.fetch_one(
            "SELECT * FROM auteur_approvals WHERE thread_id = %s AND owner = %s"
            " AND interrupt_id = %s AND status = 'pending'",
            (thread_id, owner, interrupt_id),
        )

    async def own_files(self, owner: str, values: Any) -> None:
        """Record every generated file named in ``values`` as visible to ``owner``."""
        files = {(f["key"], f["media_type"]) for f in _media_files(values)}
        if not files:
            return
        async with self.pool.connection() as conn, conn.cursor() as cursor:
            await cursor.executemany(
                "INSERT INTO auteur_files (key, owner, media_type) VALUES (%s, %s, %s)"
                " ON CONFLICT DO NOTHING",
                [(key, owner, media_type) for key, media_type in sorted(files)],
            )

    async def unknown_files(self, owner: str, keys: set[str]) -> list[str]:
        """Those of ``keys`` that are not files of ``owner`` (stored or not), sorted."""
        if not keys:
            return []
        rows = await self.fetch(
            "SELECT key FROM auteur_files WHERE owner = %s AND key = ANY(%s)", (owner, list(keys))
        )
        return sorted(keys - {row["key"] for row in rows})

    async def close_pending_approvals(self, thread_id: str, owner: str) -> None:
        """The thread moved on outside the queue (a resume through the runs API)."""
        async with self.pool.connection() as conn:
            cursor = await conn.execute(
                "UPDATE auteur_approvals SET status = 'stale' WHERE thread_id = %s"
                " AND status = 'pending'",
                (thread_id,),
            )
            if cursor.rowcount:
                await _notify(conn, (APPROVALS_CHANNEL, owner))
