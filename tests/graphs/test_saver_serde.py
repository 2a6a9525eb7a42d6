"""LangGraph's Postgres saver (de)serializes on the event loop, and moves nothing else there.

:mod:`graphs._saver_serde` gives the saver's module an ``asyncio`` whose ``to_thread`` runs
in place. These tests hold it to that: a graph step through the real saver on the real
Postgres hands no work to a thread, its checkpoint and pending writes read back whole, and
the saver's module hands nothing but (de)serialization to ``to_thread`` (if a new release
moved a query or a file read there, running it in place would block the loop).
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import operator
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.checkpoint.postgres import aio
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from graphs._saver_serde import SERDE_METHODS
from graphs.persistence import Persistence


class _State(TypedDict):
    notes: Annotated[list[str], operator.add]
    answer: str


def _ask(state: _State) -> dict[str, Any]:
    return {"answer": interrupt({"question": "go on?", "notes": state["notes"]})}


async def _note(state: _State) -> dict[str, Any]:
    return {"notes": ["noted"]}


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The names of the functions handed to the loop's thread pool meanwhile."""
    handed: list[str] = []
    submit = ThreadPoolExecutor.submit

    def counted(self: ThreadPoolExecutor, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        target = args[0] if getattr(fn, "__name__", "") == "run" and args else fn
        handed.append(getattr(target, "__qualname__", repr(target)))
        return submit(self, fn, *args, **kwargs)

    monkeypatch.setattr(ThreadPoolExecutor, "submit", counted)
    yield handed


async def test_a_step_through_the_postgres_saver_hands_no_work_to_a_thread(
    persistence: Persistence, hops: list[str]
) -> None:
    builder = StateGraph(_State)
    builder.add_node("note", _note)
    builder.add_node("ask", _ask)
    builder.add_edge(START, "note")
    builder.add_edge("note", "ask")
    builder.add_edge("ask", END)
    graph = builder.compile(checkpointer=persistence.checkpointer)
    config = {"configurable": {"thread_id": str(uuid.uuid4())}}

    parked = await graph.ainvoke({"notes": ["brief"]}, config, durability="sync")
    state = await graph.aget_state(config)
    assert [i.value for i in parked["__interrupt__"]] == [
        {"question": "go on?", "notes": ["brief", "noted"]}
    ]
    # the interrupt is a pending write of the checkpoint: written and read back in place
    assert [i.value["notes"] for i in state.interrupts] == [["brief", "noted"]]
    assert state.values == {"notes": ["brief", "noted"]}
    assert state.next == ("ask",)

    done = await graph.ainvoke(Command(resume="yes"), config, durability="sync")
    assert done == {"notes": ["brief", "noted"], "answer": "yes"}
    # only the sync node went to a thread, as LangGraph runs every sync node
    assert all("_ask" in hop or "run_in_executor" in hop for hop in hops), hops
    assert not [hop for hop in hops if "Saver" in hop]


def _to_thread_targets(module: Any) -> list[str]:
    """What each ``asyncio.to_thread(...)`` call in ``module``'s source hands over."""
    targets = []
    for node in ast.walk(ast.parse(inspect.getsource(module))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "to_thread"
        ):
            first = node.args[0] if node.args else None
            targets.append(
                first.attr
                if isinstance(first, ast.Attribute)
                and isinstance(first.value, ast.Name)
                and first.value.id == "self"
                else ast.unparse(first or node)
            )
    return targets


def test_the_saver_hands_only_serialization_to_to_thread(persistence: Persistence) -> None:
    targets = _to_thread_targets(aio)
    assert targets, "the saver no longer uses to_thread: graphs/_saver_serde.py can go"
    assert set(targets) <= SERDE_METHODS, targets
    assert aio.asyncio.to_thread is not asyncio.to_thread  # the module's own asyncio is used
