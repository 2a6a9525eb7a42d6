"""Group an async stream's items into batches of whatever arrived while the consumer was busy.

The executor writes a run's streamed events to Postgres one transaction per batch. A graph
step emits its chunks (``updates``, ``values``, progress) together, then waits on its
checkpoint write, so the chunks that are ready when the writer comes back form one step's
batch. Nothing waits for a batch to fill: an item that arrives while the writer is idle is
handed over at once, so events reach their readers as promptly as with one write each.

Example:
    >>> async def count():
    ...     for i in range(3):
    ...         yield i
    >>> async def main():
    ...     return [batch async for batch in batched(count(), limit=10)]
    >>> asyncio.run(main())
    [[0, 1, 2]]

"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, TypeVar

__all__ = ["batched"]

T = TypeVar("T")

_END = object()


class _Failed:
    """The stream's exception, queued after its last item (an item may itself be one)."""

    def __init__(self, error: Exception) -> None:
        self.error = error


async def batched(items: AsyncIterator[T], *, limit: int) -> AsyncIterator[list[T]]:
    """Yield ``items`` in order, in lists of at most ``limit`` of those ready at once.

    ``items`` is iterated in a task of its own, so it keeps running while the consumer
    handles a batch (at most ``4 * limit`` items ahead of it). Its exception is raised after
    the items it yielded before it; closing or cancelling the consumer cancels it.
    """
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=4 * limit)

    async def pump() -> None:
        try:
            async for item in items:
                await queue.put(item)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            await queue.put(_Failed(error))
        else:
            await queue.put(_END)

    pumping = asyncio.create_task(pump(), name="auteur-batched")
    try:
        while True:
            batch: list[T] = []
            item = await queue.get()
            while True:
                if item is _END:
                    if batch:
                        yield batch
                    return
                if isinstance(item, _Failed):
                    if batch:
                        yield batch
                    raise item.error
                batch.append(item)
                if len(batch) >= limit or queue.empty():
                    break
                item = queue.get_nowait()
            yield batch
    finally:
        pumping.cancel()
        await asyncio.gather(pumping, return_exceptions=True)
