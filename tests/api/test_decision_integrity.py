"""A decision applies to the gate it was meant for, exactly once, whichever route it takes.

Concurrent decisions race on one gate through the runs API and the approval queue; run
creations race on an idle thread under ``multitask_strategy="reject"``. Exactly one wins,
the others get 409, and no gate is decided on the person's behalf.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from api.settings import SAMPLE_INPUT

SAMPLE = json.loads(SAMPLE_INPUT.read_text())
APPROVE = {"decisions": [{"type": "approve"}]}
N = 20


async def _thread_at_first_gate(http: httpx.AsyncClient) -> str:
    thread_id = (await http.post("/threads", json={})).json()["thread_id"]
    done = await http.post(
        f"/threads/{thread_id}/runs/wait", json={"assistant_id": "full_video", "input": SAMPLE}
    )
    assert done.json()["__interrupt__"][0]["value"]["stage"] == "treatment"
    return thread_id


async def _settled(http: httpx.AsyncClient, thread_id: str) -> list[dict[str, Any]]:
    """Wait for every run of the thread to end; answer its approvals, oldest first."""
    for run in (await http.get(f"/threads/{thread_id}/runs")).json():
        await http.get(f"/threads/{thread_id}/runs/{run['run_id']}/join")
    approvals = []
    for status in ("pending", "decided", "stale"):
        page = await http.get("/approvals", params={"status": status, "limit": 200})
        approvals += [a for a in page.json()["items"] if a["thread_id"] == thread_id]
    return sorted(approvals, key=lambda a: a["created_at"])


def _resume_by_runs_api(http: httpx.AsyncClient, thread_id: str, resume: Any) -> Any:
    return http.post(
        f"/threads/{thread_id}/runs",
        json={"assistant_id": "full_video", "command": {"resume": resume}},
    )


async def _pending_id(http: httpx.AsyncClient, thread_id: str) -> str:
    page = (await http.get("/approvals", params={"limit": 200})).json()
    [approval] = [a for a in page["items"] if a["thread_id"] == thread_id]
    return approval["approval_id"]


async def _assert_only_the_first_gate_was_decided(
    http: httpx.AsyncClient, thread_id: str, winners: list[httpx.Response]
) -> None:
    [winner] = winners
    approvals = await _settled(http, thread_id)
    assert [(a["stage"], a["status"]) for a in approvals] == [
        ("treatment", "decided"),
        ("script", "pending"),
    ]
    assert approvals[0]["resume_run_id"] == (winner.json().get("run") or winner.json())["run_id"]
    state = (await http.get(f"/threads/{thread_id}/state")).json()
    assert [i["value"]["stage"] for i in state["interrupts"]] == ["script"]


async def test_concurrent_resumes_through_the_runs_api_decide_one_gate_once(
    http: httpx.AsyncClient,
) -> None:
    thread_id = await _thread_at_first_gate(http)
    answers = await asyncio.gather(
        *(_resume_by_runs_api(http, thread_id, APPROVE) for _ in range(N))
    )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] + [409] * (N - 1)
    await _assert_only_the_first_gate_was_decided(
        http, thread_id, [a for a in answers if a.status_code == 200]
    )


async def test_concurrent_decisions_through_both_routes_decide_one_gate_once(
    http: httpx.AsyncClient,
) -> None:
    thread_id = await _thread_at_first_gate(http)
    approval_id = await _pending_id(http, thread_id)
    answers = await asyncio.gather(
        *(_resume_by_runs_api(http, thread_id, APPROVE) for _ in range(N // 2)),
        *(http.post(f"/approvals/{approval_id}", json=APPROVE) for _ in range(N // 2)),
    )
    winners = [a for a in answers if a.status_code < 300]
    assert len(winners) == 1
    assert all(a.status_code == 409 for a in answers if a not in winners)
    await _assert_only_the_first_gate_was_decided(http, thread_id, winners)


async def test_a_resume_names_its_interrupt_and_a_consumed_one_is_refused(
    http: httpx.AsyncClient,
) -> None:
    thread_id = await _thread_at_first_gate(http)
    state = (await http.get(f"/threads/{thread_id}/state")).json()
    interrupt_id = state["interrupts"][0]["id"]
    named = await _resume_by_runs_api(http, thread_id, {interrupt_id: APPROVE})
    assert named.status_code == 200
    await _settled(http, thread_id)
    again = await _resume_by_runs_api(http, thread_id, {interrupt_id: APPROVE})
    assert again.status_code == 409
    assert interrupt_id in again.json()["detail"]
    await _assert_only_the_first_gate_was_decided(http, thread_id, [named])


async def test_reject_strategy_admits_one_of_concurrent_runs_on_an_idle_thread(
    http: httpx.AsyncClient,
) -> None:
    thread_id = (await http.post("/threads", json={})).json()["thread_id"]
    body = {"assistant_id": "full_video", "input": SAMPLE, "multitask_strategy": "reject"}
    answers = await asyncio.gather(
        *(http.post(f"/threads/{thread_id}/runs", json=body) for _ in range(10))
    )
    assert sorted(a.status_code for a in answers) == [200] + [409] * 9
    runs = (await http.get(f"/threads/{thread_id}/runs")).json()
    assert len(runs) == 1
    await _settled(http, thread_id)
