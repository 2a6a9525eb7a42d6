"""The director: the sample conversation, chatted as agent-chat-ui sends it, with the SDK.

The offline sample director plays its side of the conversation from its script; the
productions it starts are real threads of ``full_video`` on the real server. Each gate of
the production shows in the chat as the director thread's interrupt, and is decided once —
in the chat, or anywhere else.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

APPROVE = {"decisions": [{"type": "approve"}]}
CHAT_UI_MODES = ["messages-tuple", "values", "custom"]


def _said(text: str) -> dict[str, Any]:
    """A chat turn as agent-chat-ui sends it."""
    return {"messages": [{"type": "human", "content": [{"type": "text", "text": text}]}]}


async def _chat(client: Any, thread_id: str, text: str) -> list[Any]:
    return [
        part
        async for part in client.runs.stream(
            thread_id, "director", input=_said(text), stream_mode=CHAT_UI_MODES
        )
    ]


async def _resume(client: Any, thread_id: str, decision: Any) -> list[Any]:
    """A resume as agent-chat-ui sends it (an empty input, the latest checkpoint)."""
    latest = (await client.threads.get_state(thread_id))["checkpoint"]
    return [
        part
        async for part in client.runs.stream(
            thread_id,
            "director",
            input={},
            command={"resume": decision},
            stream_mode=CHAT_UI_MODES,
            checkpoint={"checkpoint_id": latest["checkpoint_id"], "checkpoint_ns": ""},
            on_disconnect="cancel",
        )
    ]


async def _shown(client: Any, thread_id: str) -> dict[str, Any]:
    """What the director's thread waits at: its one interrupt's value."""
    [interrupt] = (await client.threads.get_state(thread_id))["interrupts"]
    return interrupt["value"]


async def _last_words(client: Any, thread_id: str) -> str:
    messages = (await client.threads.get_state(thread_id))["values"]["messages"]
    return next(m["content"] for m in reversed(messages) if m["type"] == "ai" and m["content"])


async def _decisions(http: httpx.AsyncClient, thread_id: str) -> list[tuple[str, str, Any]]:
    """The production's decided gates, oldest first: stage, decision type, feedback."""
    page = (await http.get("/approvals", params={"status": "decided", "limit": 100})).json()
    return [
        (a["stage"], a["decision"]["decisions"][0]["type"], a["feedback"])
        for a in sorted(page["items"], key=lambda a: a["decided_at"])
        if a["thread_id"] == thread_id
    ]


@pytest.mark.long
async def test_the_sample_conversation_runs_a_production_gate_by_gate(
    alice: Any, http: httpx.AsyncClient
) -> None:
    thread_id = (await alice.threads.create())["thread_id"]

    # "start the sample film": a project and a full_video production; its first gate shows
    parts = await _chat(alice, thread_id, "Start the sample film")
    assert not [p for p in parts if p.event == "error"], parts
    gate = await _shown(alice, thread_id)
    assert gate["stage"] == "treatment" and gate["review_configs"][0]["allowed_decisions"]
    production = gate["production"]["thread_id"]
    assert (await alice.threads.get(production))["metadata"]["project_id"]
    chat = [(m["type"], m["content"]) for m, _ in (p.data for p in parts if p.event == "messages")]
    assert any(kind == "ai" and "[offline sample director]" in text for kind, text in chat)
    progress = [p.data for p in parts if p.event == "custom"]
    assert any(e["production"] == production and e["stage"] == "treatment" for e in progress)
    first = gate["action_requests"][0]["args"]

    # "make it funnier" said at the gate is feedback: the treatment is drafted again
    await _chat(alice, thread_id, "Make it funnier")
    gate = await _shown(alice, thread_id)
    assert gate["stage"] == "treatment" and gate["action_requests"][0]["args"] != first
    assert await _decisions(http, production) == [("treatment", "reject", "Make it funnier")]
    pending = (await http.get("/approvals", params={"limit": 100})).json()["items"]
    shown = [a for a in pending if a["thread_id"] == thread_id]
    assert len(shown) == 1  # the gate shown before the new turn is no longer pending

    # "approve" asks to confirm before it approves; refusing approves nothing
    await _chat(alice, thread_id, "Approve it")
    asked = await _shown(alice, thread_id)
    assert asked["confirm"] and asked["action_requests"][0]["name"] == "approve_gate"
    assert asked["action_requests"][0]["description"] == "Approve the treatment?"
    await _resume(alice, thread_id, {"decisions": [{"type": "reject", "message": "not yet"}]})
    assert "sample conversation" in await _last_words(alice, thread_id)
    assert (await alice.threads.get(production))["status"] == "interrupted"
    assert len(await _decisions(http, production)) == 1

    # confirmed, it approves: the script is shown next
    await _chat(alice, thread_id, "Approve it")
    parts = await _resume(alice, thread_id, APPROVE)
    assert not [p for p in parts if p.event == "error"], parts
    assert (await _shown(alice, thread_id))["stage"] == "script"

    # the shown gate's own buttons decide the production's gate, as agent-chat-ui sends them
    await _resume(alice, thread_id, APPROVE)
    assert (await _shown(alice, thread_id))["stage"] == "master_script"
    assert [d[:2] for d in await _decisions(http, production)] == [
        ("treatment", "reject"),
        ("treatment", "approve"),
        ("script", "approve"),
    ]

    # decided elsewhere (Agent Inbox, on the production's thread): the chat's answer is not
    # sent again, the director says so and shows the next gate
    await alice.runs.wait(production, "full_video", command={"resume": [{"type": "accept"}]})
    await _resume(alice, thread_id, {"decisions": [{"type": "reject", "message": "darker"}]})
    assert "already decided elsewhere" in str(
        (await alice.threads.get_state(thread_id))["values"]["messages"]
    )
    assert (await _shown(alice, thread_id))["stage"] == "assets"
    assert [d[:2] for d in await _decisions(http, production)][-1] == ("master_script", "approve")

    # "what is pending?" answers from the studio: the production's assets gate
    await _chat(alice, thread_id, "What is pending?")
    assert "the assets of full_video" in await _last_words(alice, thread_id)
    assert (await alice.threads.get(thread_id))["status"] == "idle"

    # "show the gate" brings it back into the chat; approved there, gate by gate, to the film
    await _chat(alice, thread_id, "Show the gate")
    while (await alice.threads.get_state(thread_id))["interrupts"]:
        assert (await _shown(alice, thread_id))["production"]["thread_id"] == production
        await _resume(alice, thread_id, APPROVE)
    words = await _last_words(alice, thread_id)
    assert words.startswith("The production finished") and "/files/" in words
    assert "video" in (await alice.threads.get_state(production))["values"]


async def test_the_director_says_what_it_cannot_do(alice: Any) -> None:
    thread_id = (await alice.threads.create())["thread_id"]
    await _chat(alice, thread_id, "Write me an opera")
    assert "only the sample conversation" in await _last_words(alice, thread_id)
    # feedback with no gate waiting is a tool error the director reads back, not a failure
    await _chat(alice, thread_id, "Make it funnier")
    assert "no gate of this conversation's project" in await _last_words(alice, thread_id)
    # agent-chat-ui's edit of the second message: the conversation forks before it
    history = await alice.threads.get_history(thread_id, limit=100)
    [after_first_turn] = [
        s["checkpoint"]
        for s in history
        if len(s["values"].get("messages", [])) == 2 and not s["next"]
    ]
    await alice.runs.wait(
        thread_id, "director", input=_said("Search for a keyframe"), checkpoint=after_first_turn
    )
    said = [m["content"] for m in (await alice.threads.get_state(thread_id))["values"]["messages"]]
    assert "opera" in str(said[0]) and "Make it funnier" not in str(said) and "keyframe" in said[-1]
    # the director's input is chat messages
    with pytest.raises(httpx.HTTPStatusError) as refused:
        await alice.runs.create(thread_id, "director", input={"brief": "eggs"})
    assert refused.value.response.status_code == 422


async def test_the_director_searches_the_library_and_runs_a_workflow_once_confirmed(
    alice: Any, http: httpx.AsyncClient
) -> None:
    thread_id = (await alice.threads.create())["thread_id"]
    await _chat(alice, thread_id, "Search for a character turnaround sheet")
    found = await _last_words(alice, thread_id)
    assert "- asset_sheet: Reference sheet" in found.splitlines()[0]  # the best match first

    # running one asks first: it spends GPU time
    await _chat(alice, thread_id, "Draw Dora in her yellow raincoat")
    asked = await _shown(alice, thread_id)
    assert asked["confirm"] and asked["action_requests"][0]["args"]["name"] == "asset_sheet"
    assert "spends GPU time" in asked["action_requests"][0]["description"]
    # the person edits the arguments before it runs
    arguments = {**asked["action_requests"][0]["args"]["arguments"], "seed": 7}
    edit = {"name": "run_workflow", "args": {"name": "asset_sheet", "arguments": arguments}}
    await _resume(alice, thread_id, {"decisions": [{"type": "edit", "edited_action": edit}]})
    ran = json.loads((await _last_words(alice, thread_id)).split(" ", 3)[-1])
    [output] = ran["outputs"]
    assert ran["workflow"] == "asset_sheet" and output["media_type"] == "image/png"
    drawn = await http.get(f"/files/{output['key']}")
    assert drawn.status_code == 200 and drawn.content.startswith(b"\x89PNG")
