"""LangGraph's Postgres saver on the pool runs one run's statements while another's wait.

:mod:`graphs._saver_lock` drops the saver's instance-wide lock when it draws connections
from a pool. The test makes one checkpoint write wait in Postgres (another transaction holds
the row it writes) and checks that a read of another thread's checkpoint still completes: with
the lock it would queue behind the write, which waits until after the read.
"""

from __future__ import annotations

import asyncio
import uuid

from langgraph.checkpoint.base import empty_checkpoint
from psycopg.types.json import Jsonb

from graphs.persistence import Persistence

_BLOCKED_BY = (
    "SELECT count(*) AS blocked FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))"
)


async def _until_blocked_by(persistence: Persistence, holder_pid: int) -> None:
    """Return once a backend waits for a lock that ``holder_pid``'s transaction holds."""
    async with persistence.pool.connection() as conn:
        while (await (await conn.execute(_BLOCKED_BY, (holder_pid,))).fetchone())["blocked"] == 0:
            await asyncio.sleep(0.02)


async def test_a_read_goes_on_while_another_threads_write_waits(
    persistence: Persistence,
) -> None:
    saver = persistence.checkpointer
    checkpoint = empty_checkpoint()
    blocked = {"thread_id": str(uuid.uuid4()), "checkpoint_ns": ""}
    other = {"configurable": {"thread_id": str(uuid.uuid4()), "checkpoint_ns": ""}}
    await saver.aput(other, empty_checkpoint(), {"source": "input", "step": -1}, {})

    async with persistence.pool.connection() as holder, holder.transaction(force_rollback=True):
        await holder.execute(
            "INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, checkpoint,"
            " metadata) VALUES (%s, '', %s, %s, '{}')",
            (blocked["thread_id"], checkpoint["id"], Jsonb({})),
        )
        write = asyncio.create_task(
            saver.aput({"configurable": blocked}, checkpoint, {"source": "loop", "step": 0}, {})
        )
        holder_pid = holder.info.backend_pid
        await asyncio.wait_for(_until_blocked_by(persistence, holder_pid), timeout=60)
        assert not write.done()
        # Bounded so that the lock's return fails the test instead of hanging it.
        read = await asyncio.wait_for(saver.aget_tuple(other), timeout=60)
        assert read is not None
        assert read.config["configurable"]["thread_id"] == other["configurable"]["thread_id"]
        assert not write.done()
    await write  # the holder rolled back: the write goes through
    written = await saver.aget_tuple({"configurable": blocked})
    assert written is not None
    assert written.checkpoint["id"] == checkpoint["id"]
