"""The approval queue over HTTP: listing, idempotent decisions, 409s, the audit trail, the feed."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client

from api.settings import SAMPLE_INPUT
from graphs.base import load_workflow_types

SAMPLE = json.loads(SAMPLE_INPUT.read_text())
APPROVE = {"decisions": [{"type": "approve"}]}


async def _pending(http: httpx.AsyncClient, thread_id: str) -> dict[str, Any]:
    """The thread's pending approval, once its run has stopped at the gate."""
    for _ in range(600):
        page = (await http.get("/approvals", params={"limit": 200})).json()
        mine = [a for a in page["items"] if a["thread_id"] == thread_id]
        if mine:
            return mine[0]
        await asyncio.sleep(0.05)
    raise AssertionError("no pending approval appeared")


async def _run_to_gate(api_url: str) -> str:
    client = get_client(url=api_url, api_key="alice-key")
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "full_video", input=SAMPLE)
    return thread["thread_id"]


async def test_pending_gates_are_listed_with_filters(api_url: str, http: httpx.AsyncClient) -> None:
    thread_id = await _run_to_gate(api_url)
    approval = await _pending(http, thread_id)

    assert approval["stage"] == "treatment"
    assert approval["workflow"] == "full_video"
    assert approval["payload"]["action_requests"][0]["name"] == "treatment"
    by_stage = (await http.get("/approvals", params={"stage": "shots"})).json()
    assert thread_id not in [a["thread_id"] for a in by_stage["items"]]
    page = (await http.get("/approvals", params={"limit": 1})).json()
    assert len(page["items"]) == 1 and page["total"] >= 1
    bob = await http.get("/approvals", headers={"Authorization": "Bearer bob-key"})
    assert thread_id not in [a["thread_id"] for a in bob.json()["items"]]


async def test_a_decision_is_idempotent_and_a_second_one_is_refused(
    api_url: str, http: httpx.AsyncClient
) -> None:
    approval = await _pending(http, await _run_to_gate(api_url))
    url = f"/approvals/{approval['approval_id']}"
    key = {"Idempotency-Key": str(uuid.uuid4())}

    first = await http.post(url, json=APPROVE, headers=key)
    retried = await http.post(url, json=APPROVE, headers=key)
    second = await http.post(url, json=APPROVE, headers={"Idempotency-Key": "another"})
    unkeyed = await http.post(url, json=APPROVE)

    assert first.status_code == 202
    assert retried.status_code == 200
    assert retried.json()["run"]["run_id"] == first.json()["run"]["run_id"]
    assert second.status_code == 409 and "already decided" in second.json()["detail"]
    assert unkeyed.status_code == 409
    next_gate = await _pending(http, approval["thread_id"])
    assert next_gate["stage"] == "script"
    stale = await http.post(url, json=APPROVE)
    assert stale.status_code == 409


async def test_edit_and_feedback_are_kept_as_an_audit_trail(
    api_url: str, http: httpx.AsyncClient
) -> None:
    approval = await _pending(http, await _run_to_gate(api_url))
    args = approval["payload"]["action_requests"][0]["args"]
    edit = {
        "decisions": [
            {"type": "edit", "edited_action": {"name": "treatment", "args": {**args, "chosen": 3}}}
        ]
    }
    decided = await http.post(f"/approvals/{approval['approval_id']}", json=edit)
    assert decided.status_code == 202

    trail = (await http.get(f"/approvals/{approval['approval_id']}")).json()
    assert trail["status"] == "decided"
    assert trail["diff"] == [{"path": "chosen", "before": args["chosen"], "after": 3}]
    assert trail["decided_by"] == "alice"

    script_gate = await _pending(http, approval["thread_id"])
    feedback = {"decisions": [{"type": "reject", "message": "shorter dialogue"}]}
    await http.post(f"/approvals/{script_gate['approval_id']}", json=feedback)
    assert (await http.get(f"/approvals/{script_gate['approval_id']}")).json()[
        "feedback"
    ] == "shorter dialogue"


@pytest.mark.parametrize(
    "decision",
    [
        {"decisions": [{"type": "maybe"}]},
        {"decisions": []},
        {"decisions": [{"type": "edit", "edited_action": {"name": "shots", "args": {}}}]},
        {"nope": 1},
    ],
)
async def test_invalid_decisions_get_422(
    api_url: str, http: httpx.AsyncClient, decision: dict[str, Any]
) -> None:
    approval = await _pending(http, await _run_to_gate(api_url))
    refused = await http.post(f"/approvals/{approval['approval_id']}", json=decision)
    assert refused.status_code == 422, refused.text
    assert isinstance(refused.json()["detail"], str)
    assert (await http.get(f"/approvals/{approval['approval_id']}")).json()["status"] == "pending"


async def test_another_users_approval_is_404(api_url: str, http: httpx.AsyncClient) -> None:
    approval = await _pending(http, await _run_to_gate(api_url))
    response = await http.post(
        f"/approvals/{approval['approval_id']}",
        json=APPROVE,
        headers={"Authorization": "Bearer bob-key"},
    )
    assert response.status_code == 404


async def test_the_feed_announces_a_new_gate(api_url: str, http: httpx.AsyncClient) -> None:
    seen: list[dict[str, Any]] = []

    async def listen() -> None:
        async with http.stream("GET", "/approvals/stream") as response:
            event = None
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and event == "queue":
                    seen.append(json.loads(line.split(":", 1)[1]))
                    if len(seen) == 2:
                        return

    listener = asyncio.create_task(listen())
    await asyncio.sleep(0.3)
    thread_id = await _run_to_gate(api_url)
    await asyncio.wait_for(listener, 60)
    assert thread_id in [a["thread_id"] for a in seen[-1]["items"]]


async def test_projects_list_their_runs_and_files_are_private_and_cacheable(
    api_url: str, http: httpx.AsyncClient
) -> None:
    project = (await http.post("/projects", json={"name": "Eggs", "brief": "eggs"})).json()
    client = get_client(url=api_url, api_key="alice-key")
    thread = await client.threads.create(metadata={"project_id": project["project_id"]})
    result = await client.runs.wait(thread["thread_id"], "full_video", input=SAMPLE)
    while result["__interrupt__"][0]["value"]["stage"] != "frames":
        result = await client.runs.wait(
            thread["thread_id"], "full_video", command={"resume": APPROVE}
        )

    runs = (await http.get(f"/projects/{project['project_id']}/runs")).json()
    gates = load_workflow_types().get("full_video")().gates(scenes=2)
    assert len(runs) == gates.index("frames") + 1  # a run to each gate up to scene 1's frames
    assert {r["thread_id"] for r in runs} == {thread["thread_id"]}
    assert runs[0]["stage"] == "frames"
    [listed] = [
        p for p in (await http.get("/projects")).json() if p["project_id"] == project["project_id"]
    ]
    assert listed["latest_stage"] == "frames"
    frame = result["__interrupt__"][0]["value"]["action_requests"][0]["args"]["frames"][0]
    url = f"/files/{frame['file']['key']}"
    mine = await http.get(url)
    assert mine.status_code == 200
    assert mine.headers["content-type"] == frame["file"]["media_type"]
    assert "immutable" in mine.headers["cache-control"]
    assert (await http.get(url, headers={"Authorization": "Bearer bob-key"})).status_code == 404
    bob_project = await http.get(
        f"/projects/{project['project_id']}", headers={"Authorization": "Bearer bob-key"}
    )
    assert bob_project.status_code == 404


async def test_a_resume_through_the_runs_api_is_audited_on_its_gate(
    api_url: str, http: httpx.AsyncClient
) -> None:
    thread_id = await _run_to_gate(api_url)
    approval = await _pending(http, thread_id)
    client = get_client(url=api_url, api_key="alice-key")
    feedback = {"decisions": [{"type": "reject", "message": "darker"}]}

    run = await client.runs.create(thread_id, "full_video", command={"resume": feedback})

    trail = (await http.get(f"/approvals/{approval['approval_id']}")).json()
    assert trail["status"] == "decided"
    assert trail["feedback"] == "darker"
    assert trail["resume_run_id"] == run["run_id"]
