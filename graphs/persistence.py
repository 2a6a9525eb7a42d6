"""Postgres as the single source of truth: embedded server, checkpointer, store.

By default Auteur runs an embedded PostgreSQL with pgvector (the ``pgserver`` wheel) in its
data folder; ``DATABASE_URL`` points it at any other Postgres with pgvector instead. Every
process that opens the same data folder shares the one running server (pgserver keeps a
handle list under an inter-process lock), so a second process never starts a second
postmaster on the same files.

A lost database is ridden out (:mod:`graphs._watch`): while it is down every use of the
pool fails at once with ``DatabaseUnavailable``; the embedded server is started again, an
external one reconnected to, and work resumes by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import warnings
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import psutil
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from graphs._saver_lock import unlock_pooled
from graphs._saver_serde import serialize_on_the_loop
from graphs._watch import DatabaseWatch, WatchedPool

if TYPE_CHECKING:
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from langgraph.store.postgres.aio import AsyncPostgresStore

__all__ = [
    "Persistence",
    "embedded_database_url",
    "open_persistence",
    "open_pool",
    "restart_embedded_server",
    "stop_embedded_server",
]

_SCHEMA_LOCK = 0x61757465  # advisory-lock id ("aute") serialising schema set-up
_SCHEMA_LOCK_POLL_S = 0.1  # between tries of a process waiting for another's set-up


def embedded_database_url(data_dir: Path) -> str:
    """Start (or join) the embedded PostgreSQL server in ``data_dir/postgres``.

    The server keeps running while any process holds it and is stopped cleanly by the
    last one to exit. Handles left by processes that died without exiting (``kill -9``)
    are pruned first, so they cannot keep the server alive forever.
    """
    pgdata = (data_dir / "postgres").resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    _prune_dead_handles(pgdata)
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    return _pgserver().get_server(pgdata, cleanup_mode="stop").get_uri()


def stop_embedded_server(data_dir: Path) -> None:
    """Release this process's handle on the embedded server (stopping it if it was the last)."""
    _pgserver().get_server((data_dir / "postgres").resolve(), cleanup_mode="stop").cleanup()


def restart_embedded_server(data_dir: Path) -> None:
    """Start the embedded server again if it is not running (it crashed, or was killed).

    Under pgserver's inter-process lock: of the processes sharing the server, the first to
    notice starts it and the others find it running and learn its new pid, so whichever
    exits last still stops it. Its address (a socket in the data folder) does not change.
    """
    server = _pgserver().get_server((data_dir / "postgres").resolve(), cleanup_mode="stop")
    with server._lock:  # pgserver's own lock; it has no public way to restart a server
        server.ensure_postgres_running()


def _pgserver() -> ModuleType:
    """Import ``pgserver`` (only the embedded default needs it) without platformdirs' warning.

    pgserver resolves its runtime folder at import time, and platformdirs warns when
    ``XDG_RUNTIME_DIR`` is unset — harmless, and noise on every command.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
    return pgserver


def _prune_dead_handles(pgdata: Path) -> None:
    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return
    alive = [pid for pid in json.loads(handles.read_text() or "[]") if psutil.pid_exists(pid)]
    handles.write_text(json.dumps(alive))


@dataclass(frozen=True)
class Persistence:
    """Open handles on the database: pool, LangGraph checkpointer and store."""

    pool: AsyncConnectionPool
    checkpointer: AsyncPostgresSaver
    store: AsyncPostgresStore
    watch: DatabaseWatch


@asynccontextmanager
async def _schema_lock(conn: AsyncConnection) -> AsyncIterator[None]:
    """Hold the schema set-up lock on ``conn``: one process sets the schema up at a time.

    The wait is a loop of short ``pg_try_advisory_lock`` calls, not one blocking
    ``pg_advisory_lock``: a blocked statement keeps its snapshot open, and LangGraph's
    migrations build indexes ``CONCURRENTLY``, which waits for every open snapshot in the
    database. The holder's set-up would wait for the waiters, which wait for the holder: a
    cycle through the clients that Postgres cannot detect, so every process would hang.
    """
    while True:
        cursor = await conn.execute("SELECT pg_try_advisory_lock(%s) AS locked", (_SCHEMA_LOCK,))
        row = await cursor.fetchone()
        if row and row["locked"]:
            break
        await asyncio.sleep(_SCHEMA_LOCK_POLL_S)
    try:
        yield
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s)", (_SCHEMA_LOCK,))


@asynccontextmanager
async def open_pool(
    database_url: str, *, restart: Callable[[], None] | None = None
) -> AsyncIterator[WatchedPool]:
    """Connect a pool to the database and watch it while open; no schema set-up.

    :func:`open_persistence` builds on it; what needs the database but not LangGraph's
    checkpointer or store (the CLI's workflow search) opens this alone. If the database
    goes away, ``restart`` (the embedded server's) starts it again.
    """
    watch = DatabaseWatch(database_url, restart=restart)
    pool = WatchedPool(
        database_url,
        watch=watch,
        min_size=1,
        max_size=16,
        open=False,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
    )
    await pool.open(wait=True)
    watching = asyncio.create_task(watch.run(pool), name="auteur-database-watch")
    try:
        yield pool
    finally:
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
        await pool.close()


@asynccontextmanager
async def open_persistence(
    database_url: str,
    *,
    extra_schema: Sequence[str] = (),
    restart: Callable[[], None] | None = None,
) -> AsyncIterator[Persistence]:
    """Connect, set the schema up (idempotent, serialised across processes) and yield.

    ``extra_schema`` statements (the API's service tables) run after LangGraph's, under
    the same advisory lock. While open, the database is watched; if it goes away,
    ``restart`` (the embedded server's) starts it again.
    """
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from langgraph.store.postgres.aio import AsyncPostgresStore

    serialize_on_the_loop()
    async with open_pool(database_url, restart=restart) as pool:
        checkpointer = AsyncPostgresSaver(pool)  # type: ignore[arg-type]
        unlock_pooled(checkpointer)
        store = AsyncPostgresStore(pool)  # type: ignore[arg-type]
        async with pool.connection() as conn, _schema_lock(conn):
            await checkpointer.setup()
            await store.setup()
            for statement in extra_schema:
                await conn.execute(statement)
        yield Persistence(
            pool=pool,
            checkpointer=checkpointer,
            store=store,
            watch=pool.watch,
        )
