"""Schema set-up is safe when many processes start at once on an empty database.

``docker compose up --scale worker=N`` starts the API and every worker together against a
fresh Postgres; each runs the idempotent set-up (LangGraph's saver and store migrations,
then the service tables). Two concurrent ``CREATE TABLE IF NOT EXISTS`` of one table can
fail on ``pg_type``'s unique index, and two saver migrations can both insert the same
migration row, so :func:`graphs.persistence.open_persistence` runs the whole set-up under
one advisory lock. Waiting for that lock must not block the holder: LangGraph's migrations
build indexes ``CONCURRENTLY``, which waits for every open snapshot in the database,
including a waiter's blocked ``pg_advisory_lock`` (a hang found by this test). Each set-up
here has its own pool, so they are separate sessions, as separate processes would be.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import psycopg
import pytest
from psycopg import sql

from api.db import SCHEMA
from graphs.persistence import open_persistence

SETUPS = 8
HANG_S = 120  # far beyond what eight set-ups take on a loaded 2-core machine


def _with_database(url: str, name: str) -> str:
    params = psycopg.conninfo.conninfo_to_dict(url)
    params["dbname"] = name
    return psycopg.conninfo.make_conninfo(**params)


@pytest.fixture
async def fresh_database_url(database_url: str) -> AsyncIterator[str]:
    """An empty database in the test server, dropped afterwards."""
    name = f"auteur_setup_{uuid.uuid4().hex[:12]}"
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _with_database(database_url, name)
    finally:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            await conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


async def _set_up(url: str, start: asyncio.Event) -> list[str]:
    """One process's start: open persistence (running the set-up), list the tables made."""
    await start.wait()
    async with (
        open_persistence(url, extra_schema=SCHEMA) as persistence,
        persistence.pool.connection() as conn,
    ):
        cursor = await conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
        )
        return [row["tablename"] for row in await cursor.fetchall()]


async def test_concurrent_setups_on_an_empty_database_all_succeed(fresh_database_url: str) -> None:
    start = asyncio.Event()
    setups = [asyncio.create_task(_set_up(fresh_database_url, start)) for _ in range(SETUPS)]
    await asyncio.sleep(0.2)  # every task is waiting at the start line
    start.set()
    async with asyncio.timeout(HANG_S):  # a deadlock fails the test instead of hanging it
        results = await asyncio.gather(*setups, return_exceptions=True)

    failures = [r for r in results if isinstance(r, BaseException)]
    assert failures == []
    tables = results[0]
    assert {"checkpoints", "store", "auteur_threads", "auteur_runs"} <= set(tables)
    assert all(result == tables for result in results)

    async with await psycopg.AsyncConnection.connect(fresh_database_url) as conn:
        cursor = await conn.execute("SELECT v, count(*) FROM checkpoint_migrations GROUP BY v")
        assert all(count == 1 for _, count in await cursor.fetchall())
