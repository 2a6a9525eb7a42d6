"""Reopening an approved stage of a project: a branch from the current versions whose run
shows that stage's gate again (even inside an agent of several steps), feedback there, and a
switch back to the earlier versions."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from api.settings import SAMPLE_INPUT

SAMPLE = json.loads(SAMPLE_INPUT.read_text())


async def _settled(http: httpx.AsyncClient, thread_id: str) -> None:
    """Wait until no run of the thread is pending or running."""
    for _ in range(600):
        runs = (await http.get(f"/threads/{thread_id}/runs")).json()
        if runs and all(run["status"] not in ("pending", "running") for run in runs):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"thread {thread_id} still running: {runs}")


async def _gate(http: httpx.AsyncClient, project_id: str, thread_id: str) -> dict[str, Any]:
    await _settled(http, thread_id)
    items = (await http.get(f"/approvals?project_id={project_id}")).json()["items"]
    assert len(items) == 1, items
    return items[0]


async def _current(http: httpx.AsyncClient, project_id: str) -> dict[str, int]:
    listing = (await http.get(f"/projects/{project_id}/artifacts")).json()
    return {row["kind"]: row["version"] for row in listing["current"]}


async def test_reopening_a_later_step_of_an_agent_shows_its_gate_on_a_new_branch(
    http: httpx.AsyncClient,
) -> None:
    project = (
        await http.post(
            "/projects",
            json={"name": "Reopen", "brief": SAMPLE["brief"], "config": SAMPLE["config"]},
        )
    ).json()
    project_id = project["project_id"]
    thread = (await http.post("/threads", json={"metadata": {"project_id": project_id}})).json()
    thread_id = thread["thread_id"]
    started = await http.post(
        f"/threads/{thread_id}/runs",
        json={"assistant_id": "script_only", "input": {"brief": SAMPLE["brief"]}},
    )
    assert started.status_code == 200, started.text
    for stage in ("treatment", "script", "master_script"):
        gate = await _gate(http, project_id, thread_id)
        assert gate["stage"] == stage
        await http.post(
            f"/approvals/{gate['approval_id']}", json={"decisions": [{"type": "approve"}]}
        )
    await _settled(http, thread_id)
    assert await _current(http, project_id) == {"treatment": 1, "script": 1, "master_script": 1}

    reopened = await http.post(
        f"/projects/{project_id}/branches", json={"thread_id": thread_id, "stage": "master_script"}
    )

    assert reopened.status_code == 201, reopened.text
    answer = reopened.json()
    assert answer["parent"] == "main"
    assert answer["run"]["thread_id"] == thread_id
    gate = await _gate(http, project_id, thread_id)
    assert gate["stage"] == "master_script"
    # the branch starts from the current versions; the reopened stage's approval replaces one
    assert await _current(http, project_id) == {"treatment": 1, "script": 1, "master_script": 1}
    branches = (await http.get(f"/projects/{project_id}/branches")).json()
    assert [(b["branch"], b["current"]) for b in branches] == [
        ("main", False),
        (answer["branch"], True),
    ]

    # feedback redrafts the master script (not the treatment), approving it makes v2
    await http.post(
        f"/approvals/{gate['approval_id']}",
        json={"decisions": [{"type": "reject", "message": "Make it windier."}]},
    )
    gate = await _gate(http, project_id, thread_id)
    assert gate["stage"] == "master_script"
    await http.post(f"/approvals/{gate['approval_id']}", json={"decisions": [{"type": "approve"}]})
    await _settled(http, thread_id)
    assert await _current(http, project_id) == {"treatment": 1, "script": 1, "master_script": 2}

    switched = await http.post(f"/projects/{project_id}/branches/main/switch")

    assert switched.status_code == 200
    assert await _current(http, project_id) == {"treatment": 1, "script": 1, "master_script": 1}


async def test_a_run_from_an_earlier_checkpoint_forks_the_project_onto_a_new_branch(
    http: httpx.AsyncClient,
) -> None:
    project = (
        await http.post(
            "/projects", json={"name": "Fork", "brief": SAMPLE["brief"], "config": SAMPLE["config"]}
        )
    ).json()
    project_id = project["project_id"]
    thread_id = (await http.post("/threads", json={"metadata": {"project_id": project_id}})).json()[
        "thread_id"
    ]
    started = await http.post(
        f"/threads/{thread_id}/runs",
        json={"assistant_id": "full_video", "input": {"brief": SAMPLE["brief"]}},
    )
    assert started.status_code == 200, started.text
    for stage in ("treatment", "script", "master_script", "assets"):
        gate = await _gate(http, project_id, thread_id)
        assert gate["stage"] == stage
        await http.post(
            f"/approvals/{gate['approval_id']}", json={"decisions": [{"type": "approve"}]}
        )
    assert (await _gate(http, project_id, thread_id))["stage"] == "references"
    history = (await http.get(f"/threads/{thread_id}/history", params={"limit": 100})).json()
    at_assets = next(
        state["checkpoint_id"]
        for state in history
        if [i["value"]["stage"] for t in state["tasks"] for i in t["interrupts"]] == ["assets"]
    )

    # another workflow's run from it is refused before anything forks
    other = await http.post(
        f"/threads/{thread_id}/runs",
        json={"assistant_id": "script_only", "checkpoint": {"checkpoint_id": at_assets}},
    )
    assert other.status_code == 409, other.text
    branches = (await http.get(f"/projects/{project_id}/branches")).json()
    assert [b["branch"] for b in branches] == ["main"]

    # what agent-chat-ui's regenerate sends: no input, the earlier checkpoint
    forked = await http.post(
        f"/threads/{thread_id}/runs",
        json={"assistant_id": "full_video", "checkpoint": {"checkpoint_id": at_assets}},
    )

    assert forked.status_code == 200, forked.text
    assert (await _gate(http, project_id, thread_id))["stage"] == "assets"
    branches = (await http.get(f"/projects/{project_id}/branches")).json()
    current = next(b for b in branches if b["current"])
    assert current["branch"].startswith("assets-") and current["parent"] == "main"
    assert forked.json()["metadata"]["branch"] == current["branch"]
