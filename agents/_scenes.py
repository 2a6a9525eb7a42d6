"""Scene by scene: which scene a piece of feedback names, and drafting scenes concurrently.

The master script and the shot list are drafted one model call per scene, all at once, so
a stage takes about as long as its longest scene rather than the sum of them. Each call
sees the whole approved context and is asked for one scene; the endpoint's slots
(:meth:`tools.llm.ModelProvider.slots`) bound how many are in flight.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from langchain_core.messages import BaseMessage, HumanMessage
from langgraph.runtime import Runtime

from agents.base import Context, ProductionState, conversation_messages, progress

__all__ = ["draft_scenes", "named_scene", "only_scene"]

T = TypeVar("T")

_NUMBER_WORDS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_SCENE_REFERENCE = re.compile(
    r"\bscenes?\s+(\d+|" + "|".join(_NUMBER_WORDS) + r")\b", re.IGNORECASE
)


def named_scene(feedback: str, scene_count: int) -> int | None:
    """The one scene a piece of feedback is about, or None if it names none or several.

    Example:
        ``named_scene("scene 2: make the landing funnier", 3)`` is 2;
        ``named_scene("swap scenes 1 and 3", 3)`` is None (the whole script changes).
    """
    if re.search(r"\bscenes\b", feedback, re.IGNORECASE):
        return None
    numbers = {
        int(ref) if ref.isdigit() else _NUMBER_WORDS.index(ref.lower()) + 1
        for ref in _SCENE_REFERENCE.findall(feedback)
    }
    if len(numbers) != 1:
        return None
    (number,) = numbers
    return number if 1 <= number <= scene_count else None


def only_scene(state: ProductionState, stage: str, number: int) -> list[BaseMessage]:
    """After the conversation at ``stage`` (whole drafts and feedback), ask for one scene.

    Earlier drafts are whole documents and the feedback asks for a whole revised answer; a
    per-scene call must still answer with its one scene. Nothing to add on a first draft.
    """
    if not conversation_messages(state, stage):
        return []
    return [HumanMessage(f"Answer for scene {number} only, with the JSON object asked for.")]


async def draft_scenes(
    runtime: Runtime[Context],
    stage: str,
    document: str,
    numbers: Sequence[int],
    draft: Callable[[int], Awaitable[T]],
    *,
    total: int,
) -> list[T]:
    """Run ``draft(number)`` for every scene in ``numbers`` concurrently; results in order.

    Each finished scene streams a progress message ("master script: scene 2 of 5 done").
    When one scene fails, the others are cancelled and its error is raised.

    Args:
        runtime: The node's runtime (its stream writer carries the progress).
        stage: The stage the progress belongs to.
        document: What is drafted, as the person reads it ("master script").
        numbers: The scenes to draft.
        draft: Drafts one scene.
        total: How many scenes the document has (the "of 5").
    """

    async def one(number: int) -> T:
        result = await draft(number)
        progress(runtime, stage, f"{document}: scene {number} of {total} done")
        return result

    tasks = [asyncio.ensure_future(one(number)) for number in numbers]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()
