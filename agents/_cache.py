"""What a step's model and media calls leave behind: generation records and in-flight jobs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

from agents._state import Generation

__all__ = ["making", "record", "recording"]

_generations: ContextVar[list[Generation]] = ContextVar("auteur_generations")


@contextlib.contextmanager
def recording() -> Iterator[list[Generation]]:
    """Collect the :class:`Generation` records of the model calls made inside."""
    records: list[Generation] = []
    token = _generations.set(records)
    try:
        yield records
    finally:
        _generations.reset(token)


def record(generation: Generation) -> None:
    """Add ``generation`` to the records being collected, if any."""
    records = _generations.get(None)
    if records is not None:
        records.append(generation)


@dataclass
class _Making:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


_in_flight: dict[str, _Making] = {}


@contextlib.asynccontextmanager
async def making(key: str) -> AsyncIterator[None]:
    """Hold the media generation ``key`` while making it: its twins wait for the cache.

    Keyed by the input hash alone, across runs: a twin in another run only waits, then makes
    its own file when its store or file store lacks this one.
    """
    job = _in_flight.setdefault(key, _Making())
    job.users += 1
    try:
        async with job.lock:
            yield
    finally:
        job.users -= 1
        if not job.users:
            del _in_flight[key]
