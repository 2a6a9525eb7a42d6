"""What agent-chat-ui and Agent Inbox send, sent by the official SDK as they send it.

agent-chat-ui resumes with ``"input": {}`` beside its command, names the thread's latest
checkpoint and asks to cancel on disconnect, reads the thread's ``messages`` and sends what
the person types as a chat message (feedback at a gate); Agent Inbox answers with the older
``[{"type": "accept" | "response" | "edit" | "ignore", "args": ...}]`` shapes. A run may also
be sent without a thread. Runs that stop at a gate succeed; their thread is interrupted. A
client that asked to cancel on disconnect and goes away cancels its run.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from api.settings import SAMPLE_INPUT
from graphs.base import load_workflow_types
from tests.servers import BEFORE_FRAMES

SAMPLE = json.loads(SAMPLE_INPUT.read_text())
APPROVE = {"decisions": [{"type": "approve"}]}
# agent-chat-ui's stream modes for a resume (the messages come from the run's state)
CHAT_UI_MODES = ["messages-tuple", "values", "custom"]


async def _gate(client: Any, thread_id: str) -> dict[str, Any]:
    state = await client.threads.get_state(thread_id)
    [interrupt] = state["interrupts"]
    return {"stage": interrupt["value"]["stage"], "state": state, "value": interrupt["value"]}


async def _chat_ui_resume(client: Any, thread_id: str, decision: Any) -> list[Any]:
    """A resume as agent-chat-ui sends it, streamed to its end."""
    latest = (await client.threads.get_state(thread_id))["checkpoint"]
    return [
        part
        async for part in client.runs.stream(
            thread_id,
            "full_video",
            input={},
            command={"resume": decision},
            stream_mode=CHAT_UI_MODES,
            checkpoint={"checkpoint_id": latest["checkpoint_id"], "checkpoint_ns": ""},
            on_disconnect="cancel",
        )
    ]


def _messages(parts: list[Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The (message, metadata) pairs of a stream's ``messages`` events."""
    return [tuple(part.data) for part in parts if part.event == "messages"]


async def _refused(call: Any) -> httpx.Response:
    with pytest.raises(httpx.HTTPStatusError) as refused:
        await call
    return refused.value.response


@pytest.mark.long
async def test_a_production_without_a_thread_decided_as_the_official_clients_send(
    alice: Any, api_url: str
) -> None:
    # a run without a thread gets a thread of the caller's, kept for its gates
    run = await alice.runs.create(None, "full_video", input=SAMPLE)
    thread_id = run["thread_id"]
    await alice.runs.join(thread_id, run["run_id"])
    assert (await alice.runs.get(thread_id, run["run_id"]))["status"] == "success"
    assert (await alice.threads.get(thread_id))["status"] == "interrupted"
    assert (await _gate(alice, thread_id))["stage"] == "treatment"
    # agent-chat-ui shows a gate under the thread's last AI message, read from the state
    # and from the newest history entry: the stage's draft, though its agent has not ended
    newest = (await alice.threads.get_history(thread_id, limit=1))[0]
    for values in ((await _gate(alice, thread_id))["state"]["values"], newest["values"]):
        last = values["messages"][-1]
        assert (last["type"], last["name"]) == ("ai", "treatment")
    resumed = await _refused(alice.runs.create(None, "full_video", command={"resume": APPROVE}))
    assert resumed.status_code == 422 and "nothing to resume" in resumed.json()["detail"]

    # agent-chat-ui's approve: an empty input, the command, its latest checkpoint
    parts = await _chat_ui_resume(alice, thread_id, APPROVE)
    assert not [p for p in parts if p.event == "error"], parts
    assert (await _gate(alice, thread_id))["stage"] == "script"
    # its messages-tuple stream: the decision, then what the next stage drafted
    said = [(m["type"], m.get("name"), m["content"]) for m, _ in _messages(parts)]
    assert said[0] == ("human", None, "Approved the treatment.")
    assert [name for kind, name, _ in said[1:] if kind == "ai"] == ["script"]

    # an earlier checkpoint would fork the production behind the project's back
    history = await alice.threads.get_history(thread_id, limit=100)
    earlier = history[-1]["checkpoint"]["checkpoint_id"]
    forked = await _refused(
        alice.runs.create(
            thread_id, "full_video", command={"resume": APPROVE}, checkpoint_id=earlier
        )
    )
    assert forked.status_code == 422 and "not the thread's latest" in forked.json()["detail"]
    static = await _refused(
        alice.runs.create(thread_id, "full_video", input=None, interrupt_before=["script"])
    )
    assert static.status_code == 422 and "interrupt_before names no node" in static.text

    # Agent Inbox: respond is feedback (the stage is drafted again), ignore is refused
    before = (await _gate(alice, thread_id))["value"]["action_requests"][0]["args"]
    await _chat_ui_resume(alice, thread_id, [{"type": "response", "args": "make it funnier"}])
    gate = await _gate(alice, thread_id)
    assert gate["stage"] == "script"
    assert gate["value"]["action_requests"][0]["args"] != before
    ignored = await _refused(
        alice.runs.create(thread_id, "full_video", command={"resume": [{"type": "ignore"}]})
    )
    assert ignored.status_code == 422 and "cannot be ignored" in ignored.json()["detail"]

    # Agent Inbox's edit carries the action's name and the edited args; it reads the
    # proposal to edit from the action's `arguments`
    script = gate["value"]["action_requests"][0]["arguments"]
    assert script == gate["value"]["action_requests"][0]["args"]
    edited = {**script, "title": "Eggs Can Fly After All"}
    await _chat_ui_resume(
        alice, thread_id, [{"type": "edit", "args": {"action": "script", "args": edited}}]
    )
    # a chat message at a gate is feedback for it; accept approves what is shown
    before = (await _gate(alice, thread_id))["value"]["action_requests"][0]["args"]
    chat = {"messages": [{"type": "human", "content": [{"type": "text", "text": "Shorter."}]}]}
    await alice.runs.wait(thread_id, "full_video", input=chat)
    accepted = (await _gate(alice, thread_id))["value"]["action_requests"][0]["args"]
    assert accepted != before
    await _chat_ui_resume(alice, thread_id, [{"type": "accept", "args": accepted}])
    said = [
        (m["type"], m.get("name"), m["content"])
        for m in (await alice.threads.get_state(thread_id))["values"]["messages"]
    ]
    assert [(kind, content) for kind, _, content in said if kind == "human"] == [
        ("human", "Approved the treatment."),
        ("human", "make it funnier"),
        ("human", "Edited and approved the script."),
        ("human", "Shorter."),
        ("human", "Approved the master script."),
    ]
    drafted = [name for kind, name, _ in said if kind == "ai"]
    assert drafted[:4] == ["treatment", "script", "script", "master_script"]

    values = (await alice.threads.get_state(thread_id))["values"]
    assert values["approved"] == ["treatment", "script", "master_script"]
    assert values["script"]["title"] == "Eggs Can Fly After All"
    async with httpx.AsyncClient(
        base_url=api_url, headers={"Authorization": "Bearer alice-key"}
    ) as http:
        page = (await http.get("/approvals", params={"status": "decided", "limit": 50})).json()
    script = sorted(
        (a["decided_at"], a["decision"]["decisions"][0]["type"], a["feedback"])
        for a in page["items"]
        if a["thread_id"] == thread_id and a["stage"] == "script"
    )
    assert [decision[1:] for decision in script] == [("reject", "make it funnier"), ("edit", None)]

    # a client that goes away from a run it asked to cancel on disconnect cancels it
    while (await _gate(alice, thread_id))["stage"] != BEFORE_FRAMES[-1]:
        await alice.runs.wait(thread_id, "full_video", command={"resume": APPROVE})
    stream = alice.runs.stream(
        thread_id,
        "full_video",
        command={"resume": APPROVE},
        stream_mode=["custom"],
        on_disconnect="cancel",
    )
    async for part in stream:
        if part.event == "metadata":
            run_id = part.data["run_id"]
        if part.event == "custom" and part.data["stage"] == "frames":
            break  # the tab is closed while the frames are drawn
    await stream.aclose()
    await alice.runs.join(thread_id, run_id)
    assert (await alice.runs.get(thread_id, run_id))["status"] == "interrupted"
    # the cut-off production goes on from its checkpoints when asked to
    again = await alice.runs.wait(thread_id, "full_video", input=None)
    assert again["__interrupt__"][0]["value"]["stage"] == "frames"
    assert (await alice.threads.get_state(thread_id))["values"]["approved"] == BEFORE_FRAMES

    # agent-chat-ui's regenerate: no input, from an earlier checkpoint (the casting gate's):
    # LangGraph forks there, the casting is shown again, the frames gate is stale
    history = await alice.threads.get_history(thread_id, limit=1000)
    at_casting = next(
        state["checkpoint"]
        for state in history
        if [i["value"]["stage"] for t in state["tasks"] for i in t["interrupts"]] == ["casting"]
    )
    forked = await alice.runs.wait(thread_id, "full_video", input=None, checkpoint=at_casting)
    assert forked["__interrupt__"][0]["value"]["stage"] == "casting"
    assert "casting" not in (await alice.threads.get_state(thread_id))["values"]["approved"]
    async with httpx.AsyncClient(
        base_url=api_url, headers={"Authorization": "Bearer alice-key"}
    ) as http:
        pending = (await http.get("/approvals", params={"limit": 50})).json()["items"]
        stale = (await http.get("/approvals", params={"status": "stale", "limit": 50})).json()
    assert [a["stage"] for a in pending if a["thread_id"] == thread_id] == ["casting"]
    assert "frames" in [a["stage"] for a in stale["items"] if a["thread_id"] == thread_id]


async def test_an_unknown_assistant_is_named_as_the_official_server_names_it(
    alice: Any,
) -> None:
    thread_id = (await alice.threads.create())["thread_id"]
    answer = await _refused(alice.runs.create(thread_id, "agent", input={}))
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith("Invalid assistant: 'agent'.")
    assert "full_video" in answer.json()["detail"]


async def test_a_run_without_a_thread_waits_or_streams_on_a_thread_of_its_own(
    alice: Any, bob: Any
) -> None:
    waited = await alice.runs.wait(None, "full_video", input=SAMPLE)
    assert waited["__interrupt__"][0]["value"]["stage"] == "treatment"

    created: list[Any] = []
    parts = [
        part
        async for part in alice.runs.stream(
            None, "full_video", input=SAMPLE, stream_mode=["updates"], on_run_created=created.append
        )
    ]
    assert any("__interrupt__" in part.data for part in parts if part.event == "updates")
    thread_id = created[0]["thread_id"]
    assert (await alice.threads.get(thread_id))["status"] == "interrupted"
    with pytest.raises(httpx.HTTPStatusError) as hidden:
        await bob.threads.get(thread_id)
    assert hidden.value.response.status_code == 404


async def test_the_graph_opens_its_agents_and_their_subgraphs_are_listed(alice: Any) -> None:
    agents = [agent.name for agent in load_workflow_types().get("full_video")().agents()]
    flat = await alice.assistants.get_graph("full_video")
    opened = await alice.assistants.get_graph("full_video", xray=True)

    assert {node["id"] for node in flat["nodes"]} >= set(agents)
    inner = {node["id"] for node in opened["nodes"]} - {node["id"] for node in flat["nodes"]}
    assert "script_writer:draft_treatment" in inner
    assert set(await alice.assistants.get_subgraphs("full_video")) == set(agents)
    one = await alice.assistants.get_subgraphs("full_video", namespace="casting")
    assert list(one) == ["casting"] and "properties" in one["casting"]["state_schema"]


async def test_the_store_keeps_each_users_items_apart(alice: Any, bob: Any) -> None:
    await alice.store.put_item(["notes", "dora"], "voice", {"text": "drier"})
    await bob.store.put_item(["notes", "dora"], "voice", {"text": "warmer"})

    item = await alice.store.get_item(["notes", "dora"], "voice")
    assert item["value"] == {"text": "drier"} and item["namespace"] == ["notes", "dora"]
    found = await bob.store.search_items(["notes"], filter={"text": "warmer"})
    assert [i["value"] for i in found["items"]] == [{"text": "warmer"}]
    assert (await alice.store.list_namespaces(prefix=["notes"]))["namespaces"] == [
        ["notes", "dora"]
    ]
    # the runs' generation cache, in the same store, is no one's to list
    assert ["generations", "llm"] not in (await alice.store.list_namespaces())["namespaces"]
    await alice.store.delete_item(["notes", "dora"], "voice")
    assert await alice.store.get_item(["notes", "dora"], "voice") is None
    assert (await bob.store.get_item(["notes", "dora"], "voice"))["value"] == {"text": "warmer"}
    dotted = await _refused(alice.store.search_items(["no.dots"]))
    assert dotted.status_code == 422


async def test_a_breakpoint_pauses_between_agents_and_a_run_with_no_input_goes_on(
    alice: Any,
) -> None:
    thread_id = (await alice.threads.create())["thread_id"]
    paused = await alice.runs.wait(
        thread_id, "full_video", input=SAMPLE, interrupt_after=["set_up_project"]
    )
    state = await alice.threads.get_state(thread_id)
    assert "__interrupt__" not in paused and not state["interrupts"]
    assert state["next"] == ["script_writer"] and state["values"]["project"]
    assert (await alice.threads.get(thread_id))["status"] == "interrupted"
    # a breakpoint asks nothing: a run with no input goes on, here to the treatment gate
    # (and a breakpoint before the next agent holds it there first)
    await alice.runs.wait(thread_id, "full_video", input=None, interrupt_before=["asset_extractor"])
    assert (await _gate(alice, thread_id))["stage"] == "treatment"
    everywhere = await alice.runs.wait(thread_id, "full_video", input=None, interrupt_before="*")
    assert everywhere["__interrupt__"][0]["value"]["stage"] == "treatment"  # still the gate
