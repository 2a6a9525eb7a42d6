"""LangGraph's Postgres saver (de)serializes on the event loop instead of in a thread.

``AsyncPostgresSaver`` hands every checkpoint's blobs, every task's writes and a loaded
checkpoint's pending writes to ``asyncio.to_thread``: about 13 thread hops per run that
parks at its first gate. A hop costs far more than the work it moves: msgpack for a state
of a few KB (a state holds the keys of files, never their bytes) takes microseconds, while
a hop on the 2-core development machine costs about 170 µs of the process's CPU (waking a
thread, handing the GIL over and back, waking the loop). Measured side by side
(``benchmarks/gate_capacity.py``, alternating turns): the API process spent 17% less CPU a
parked run with every hop removed, most of it the saver's. LangGraph's own in-memory saver
serializes on the loop too.

The saver's module calls ``asyncio.to_thread`` by name, so :func:`serialize_on_the_loop`
gives that one module an ``asyncio`` whose ``to_thread`` calls the function in place. That
is only safe while the module moves nothing but (de)serialization to threads;
:data:`SERDE_METHODS` names what it may move, and a test reads the module's source and fails
if a new release moves anything else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import ModuleType
from typing import Any, ParamSpec, TypeVar

__all__ = ["SERDE_METHODS", "serialize_on_the_loop"]

# What AsyncPostgresSaver may hand to asyncio.to_thread for this module to run it in place.
SERDE_METHODS = frozenset({"_dump_blobs", "_dump_writes", "_load_writes", "_load_blobs"})

P = ParamSpec("P")
R = TypeVar("R")


class _AsyncioInPlace(ModuleType):
    """``asyncio`` as the saver's module sees it, but ``to_thread`` runs in place."""

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    @staticmethod
    async def to_thread(func: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call ``func`` on the event loop: the saver's (de)serialization of one step."""
        return func(*args, **kwargs)


def serialize_on_the_loop() -> None:
    """Make LangGraph's async Postgres saver (de)serialize in place (idempotent)."""
    from langgraph.checkpoint.postgres import aio

    if not isinstance(aio.asyncio, _AsyncioInPlace):
        aio.asyncio = _AsyncioInPlace("asyncio")  # type: ignore[attr-defined]
