"""LangGraph's Postgres saver on a pool runs its statements side by side, not one at a time.

``AsyncPostgresSaver`` takes an instance-wide ``asyncio.Lock`` around every statement it
runs (``_cursor``), which a single shared connection needs but a pool does not: the pool
hands each caller a connection of its own. With the lock, every run of the process waits for
every other run's checkpoint reads and writes, each a round trip to Postgres, so the process
idles while it has runs to step (langgraph#7259; the fix, langgraph#7269, keeps the lock
for a single connection only). Measured side by side (``benchmarks/gate_capacity.py``,
alternating turns of 200 runs): +10% park rate at the same CPU a run.

Dropping it is as safe as the second process Auteur already runs beside the API (``auteur
worker``): the lock never held across processes, each statement group is its own
transaction or pipeline, and the pool bounds how many run at once. Within a run, the order
that matters is LangGraph's own: each checkpoint is written after the one before it, a step
(``durability="sync"``) waits for its checkpoint, and a run ends only once its tasks' writes
(an interrupt among them) are saved; a step's writes may now land after the next checkpoint,
which already holds what they wrote.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from psycopg_pool import AsyncConnectionPool

if TYPE_CHECKING:
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

__all__ = ["unlock_pooled"]


def unlock_pooled(saver: AsyncPostgresSaver) -> None:
    """Let ``saver`` run statements concurrently when it draws connections from a pool."""
    if isinstance(saver.conn, AsyncConnectionPool):
        saver.lock = contextlib.nullcontext()  # type: ignore[assignment]
