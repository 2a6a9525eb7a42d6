"""The official ``langgraph-sdk`` client against Auteur over a real socket."""

from __future__ import annotations

import itertools
import json
from typing import Any

import httpx
import psycopg
import pytest

from api.settings import SAMPLE_INPUT
from graphs.base import load_workflow_types

SAMPLE = json.loads(SAMPLE_INPUT.read_text())
APPROVE = {"decisions": [{"type": "approve"}]}


async def _to_gate(client: Any, thread_id: str, payload: dict[str, Any]) -> list[Any]:
    parts = []
    async for part in client.runs.stream(
        thread_id, "full_video", stream_mode=["updates", "custom"], **payload
    ):
        parts.append(part)
    return parts


async def test_stream_to_the_first_gate_and_approve(alice: Any) -> None:
    thread = await alice.threads.create()
    parts = await _to_gate(alice, thread["thread_id"], {"input": SAMPLE})

    assert parts[0].event == "metadata"
    assert any(p.event == "custom" and p.data["stage"] == "treatment" for p in parts)
    interrupts = [p for p in parts if p.event == "updates" and "__interrupt__" in p.data]
    assert interrupts
    gate = interrupts[-1].data["__interrupt__"][0]["value"]
    assert gate["stage"] == "treatment"
    state = await alice.threads.get(thread["thread_id"])
    assert state["status"] == "interrupted"

    parts = await _to_gate(alice, thread["thread_id"], {"command": {"resume": APPROVE}})

    gate = [p for p in parts if p.event == "updates" and "__interrupt__" in p.data][-1]
    assert gate.data["__interrupt__"][0]["value"]["stage"] == "script"
    runs = await alice.runs.list(thread["thread_id"])
    # as on the official server, a run that stops at a gate succeeded; the thread is interrupted
    assert [r["status"] for r in runs] == ["success", "success"]


async def test_other_users_get_404(alice: Any, bob: Any) -> None:
    thread = await alice.threads.create()
    with pytest.raises(httpx.HTTPStatusError) as refused:
        await bob.threads.get(thread["thread_id"])
    assert refused.value.response.status_code == 404


async def _gate_of(parts: list[Any]) -> dict[str, Any]:
    updates = [p for p in parts if p.event == "updates" and "__interrupt__" in p.data]
    return updates[-1].data["__interrupt__"][0]["value"]


async def _thread_at_first_gate(client: Any) -> tuple[str, dict[str, Any]]:
    thread = await client.threads.create()
    parts = await _to_gate(client, thread["thread_id"], {"input": SAMPLE})
    return thread["thread_id"], await _gate_of(parts)


async def test_feedback_and_edit_resume_the_gate(alice: Any) -> None:
    thread_id, gate = await _thread_at_first_gate(alice)
    feedback = {"decisions": [{"type": "reject", "message": "make them funnier"}]}

    again = await _gate_of(await _to_gate(alice, thread_id, {"command": {"resume": feedback}}))

    assert again["stage"] == "treatment"
    assert again["action_requests"][0]["args"] != gate["action_requests"][0]["args"]
    edited = {**again["action_requests"][0]["args"], "chosen": 2}
    edit = {"decisions": [{"type": "edit", "edited_action": {"name": "treatment", "args": edited}}]}
    script = await _gate_of(await _to_gate(alice, thread_id, {"command": {"resume": edit}}))
    assert script["stage"] == "script"
    state = await alice.threads.get_state(thread_id, subgraphs=True)
    [task] = state["tasks"]
    assert task["state"]["values"]["treatment"]["chosen"] == 2


@pytest.mark.parametrize(
    ("decision", "complaint"),
    [
        ({"decisions": [{"type": "maybe"}]}, "a decision must look like"),
        ({"decisions": [{"type": "reject", "message": ""}]}, "message"),
        (
            {"decisions": [{"type": "edit", "edited_action": {"name": "treatment", "args": {}}}]},
            "options",
        ),
        ("approve", "a decision must look like"),
    ],
)
async def test_invalid_decisions_get_422_and_leave_the_gate_open(
    alice: Any, decision: Any, complaint: str
) -> None:
    thread_id, _ = await _thread_at_first_gate(alice)
    with pytest.raises(httpx.HTTPStatusError) as refused:
        await alice.runs.create(thread_id, "full_video", command={"resume": decision})
    assert refused.value.response.status_code == 422
    assert complaint in refused.value.response.json()["detail"]
    assert (await alice.threads.get(thread_id))["status"] == "interrupted"


async def test_reject_strategy_answers_409_while_a_run_is_active(alice: Any) -> None:
    thread = await alice.threads.create()
    await alice.runs.create(thread["thread_id"], "full_video", input=SAMPLE)
    with pytest.raises(httpx.HTTPStatusError) as refused:
        await alice.runs.create(
            thread["thread_id"], "full_video", input=SAMPLE, multitask_strategy="reject"
        )
    assert refused.value.response.status_code == 409
    assert "already running" in refused.value.response.json()["detail"]


async def test_a_dropped_stream_rejoins_with_exactly_the_missing_events(alice: Any) -> None:
    thread = await alice.threads.create()
    received = []
    async for part in alice.runs.stream(
        thread["thread_id"], "full_video", input=SAMPLE, stream_mode=["updates", "custom"]
    ):
        received.append(part)
        if len(received) == 3:
            break  # the client goes away mid-run
    run_id = received[0].data["run_id"]

    rest = [
        part
        async for part in alice.runs.join_stream(
            thread["thread_id"], run_id, last_event_id=received[-1].id
        )
    ]
    everything = [
        part
        async for part in alice.runs.join_stream(thread["thread_id"], run_id, last_event_id="-1")
    ]

    assert [p.id for p in received + rest] == [p.id for p in everything]
    assert received + rest == everything
    ids = [int(p.id) for p in everything]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert (await alice.runs.get(thread["thread_id"], run_id))["status"] == "success"


async def test_a_steps_events_are_logged_in_one_transaction(alice: Any, database_url: str) -> None:
    thread = await alice.threads.create()
    run = await alice.runs.create(
        thread["thread_id"], "full_video", input=SAMPLE, stream_mode=["updates", "values"]
    )
    await alice.runs.join(thread["thread_id"], run["run_id"])

    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cursor = await conn.execute(
            "SELECT event, xmin::text FROM auteur_run_events WHERE run_id = %s ORDER BY id",
            (run["run_id"],),
        )
        rows = await cursor.fetchall()

    transactions = [xmin for _, xmin in rows]
    distinct = [xmin for i, xmin in enumerate(transactions) if xmin not in transactions[:i]]
    assert [x for x, _ in itertools.groupby(transactions)] == distinct  # never interleaved
    # the chunks a step emits together (a subgraph step's updates and values) share one
    assert len(distinct) < len(rows)


async def test_the_log_keeps_a_subgraphs_state_only_for_a_run_that_streams_subgraphs(
    alice: Any, database_url: str
) -> None:
    logged = {}
    for subgraphs in (False, True):
        thread = await alice.threads.create()
        run = await alice.runs.create(
            thread["thread_id"], "full_video", input=SAMPLE, stream_subgraphs=subgraphs
        )
        await alice.runs.join(thread["thread_id"], run["run_id"])
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            cursor = await conn.execute(
                "SELECT event FROM auteur_run_events WHERE run_id = %s ORDER BY id",
                (run["run_id"],),
            )
            logged[subgraphs] = [event.split(":")[0] for (event,) in await cursor.fetchall()]
        replayed = [
            part.event
            async for part in alice.runs.join_stream(
                thread["thread_id"], run["run_id"], last_event_id="-1"
            )
        ]
        assert len(replayed) == len(logged[subgraphs])  # nothing logged that no stream shows

    # the agent's progress shows either way; its own state only where it was asked for
    assert "custom|script_writer" in logged[False] and "custom|script_writer" in logged[True]
    assert "values|script_writer" not in logged[False]
    assert "values|script_writer" in logged[True]
    assert [e for e in logged[True] if e != "values|script_writer"] == logged[False]


async def test_wait_answers_the_values_with_the_gate(alice: Any) -> None:
    thread = await alice.threads.create()
    result = await alice.runs.wait(thread["thread_id"], "full_video", input=SAMPLE)
    assert result["__interrupt__"][0]["value"]["stage"] == "treatment"
    assert result["project"]["brief"] == SAMPLE["brief"]


async def test_assistants_and_thread_search(alice: Any) -> None:
    [assistant] = await alice.assistants.search(graph_id="full_video")
    assert assistant["graph_id"] == "full_video"
    assert (await alice.assistants.get(assistant["assistant_id"]))["name"] == "full_video"
    thread_id, _ = await _thread_at_first_gate(alice)
    found = await alice.threads.search(status="interrupted", metadata={"graph_id": "full_video"})
    assert thread_id in [t["thread_id"] for t in found]
    assert (await alice.threads.get(thread_id))["interrupts"]
    history = await alice.threads.get_history(thread_id, limit=3)
    assert len(history) == 3


async def test_rollback_cancels_the_running_run_and_removes_its_checkpoints(alice: Any) -> None:
    thread_id, slow = await _running_frames(alice)
    during = await alice.threads.get_history(thread_id, limit=1000)
    earlier = [s for s in during if s["metadata"].get("run_id") != slow["run_id"]]

    replacement = await alice.runs.create(
        thread_id, "full_video", command={"resume": APPROVE}, multitask_strategy="rollback"
    )
    result = await alice.runs.join(thread_id, replacement["run_id"])

    with pytest.raises(httpx.HTTPStatusError) as gone:
        await alice.runs.get(thread_id, slow["run_id"])
    assert gone.value.response.status_code == 404
    history = await alice.threads.get_history(thread_id, limit=1000)
    assert slow["run_id"] not in {state["metadata"].get("run_id") for state in history}
    assert {s["checkpoint_id"] for s in earlier} < {s["checkpoint_id"] for s in history}
    assert result["__interrupt__"][0]["value"]["stage"] == "frames"


async def _running_frames(client: Any) -> tuple[str, dict[str, Any]]:
    """A thread whose run is mid-way through drawing frames."""
    thread_id, _ = await _thread_at_first_gate(client)
    gates = load_workflow_types().get("full_video")().gates(scenes=2)
    for _ in range(gates.index("frames") - 1):  # every gate up to the one before the frames
        await client.runs.wait(thread_id, "full_video", command={"resume": APPROVE})
    run = await client.runs.create(
        thread_id, "full_video", command={"resume": APPROVE}, stream_mode=["custom"]
    )
    async for part in client.runs.join_stream(thread_id, run["run_id"], last_event_id="-1"):
        if part.event == "custom" and part.data["stage"] == "frames":
            break
    return thread_id, run


async def test_interrupt_strategy_stops_the_running_run_and_keeps_its_checkpoints(
    alice: Any,
) -> None:
    thread_id, slow = await _running_frames(alice)

    replacement = await alice.runs.create(
        thread_id, "full_video", input=None, multitask_strategy="interrupt"
    )
    await alice.runs.join(thread_id, replacement["run_id"])

    assert (await alice.runs.get(thread_id, slow["run_id"]))["status"] == "interrupted"
    history = await alice.threads.get_history(thread_id, limit=1000)
    assert slow["run_id"] in {state["metadata"].get("run_id") for state in history}


async def test_cancel_stops_a_run_and_a_second_cancel_is_409(alice: Any) -> None:
    thread_id, slow = await _running_frames(alice)

    await alice.runs.cancel(thread_id, slow["run_id"])
    await alice.runs.join(thread_id, slow["run_id"])

    assert (await alice.runs.get(thread_id, slow["run_id"]))["status"] == "interrupted"
    with pytest.raises(httpx.HTTPStatusError) as again:
        await alice.runs.cancel(thread_id, slow["run_id"])
    assert again.value.response.status_code == 409


async def test_thread_metadata_is_merged_and_a_deleted_thread_is_gone(alice: Any) -> None:
    thread = await alice.threads.create(metadata={"a": 1})
    patched = await alice.threads.update(thread["thread_id"], metadata={"b": 2})
    assert patched["metadata"] == {"a": 1, "b": 2}
    assert await alice.threads.count(metadata={"b": 2}) >= 1

    await alice.threads.delete(thread["thread_id"])

    with pytest.raises(httpx.HTTPStatusError) as gone:
        await alice.threads.get(thread["thread_id"])
    assert gone.value.response.status_code == 404
