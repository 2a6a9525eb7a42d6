import asyncio

import pytest

from api.batches import batched


async def _steps(steps: list[list[int]], fail: bool = False):
    """Each step's items at once, then a wait, as a graph's chunks come out of ``astream``."""
    for items in steps:
        for item in items:
            yield item
        await asyncio.sleep(0.01)
    if fail:
        raise RuntimeError("step failed")


async def test_items_ready_together_form_one_batch_in_order():
    batches = [b async for b in batched(_steps([[1, 2, 3], [4], [5, 6]]), limit=10)]

    assert batches == [[1, 2, 3], [4], [5, 6]]


async def test_a_batch_holds_at_most_limit_items():
    batches = [b async for b in batched(_steps([[1, 2, 3, 4, 5]]), limit=2)]

    assert batches == [[1, 2], [3, 4], [5]]


async def test_the_error_comes_after_the_items_before_it():
    seen = []
    with pytest.raises(RuntimeError, match="step failed"):
        async for batch in batched(_steps([[1, 2], [3]], fail=True), limit=10):
            seen.append(batch)

    assert seen == [[1, 2], [3]]


async def test_leaving_early_stops_the_stream():
    stopped = asyncio.Event()

    async def endless():
        try:
            while True:
                yield 1
                await asyncio.sleep(0.01)
        finally:
            stopped.set()

    stream = batched(endless(), limit=10)
    await anext(stream)
    await stream.aclose()

    assert stopped.is_set()
