"""How many of N concurrent decisions on one gate apply: the answer must be exactly one.

Run by hand from the repository root::

    python benchmarks/concurrent_decisions.py [--threads 10] [--decisions 20]

Starts ``auteur serve`` (embedded Postgres in a fresh temp folder, offline sample model),
brings ``--threads`` threads to their first gate, then for each thread sends
``--decisions`` approvals at once — half through ``POST /threads/{id}/runs`` with
``command.resume``, half through ``POST /approvals/{id}`` — once with resumes that name the
gate's interrupt id and once with plain ones; and, on ``--threads`` idle threads, as many
run creations at once under ``multitask_strategy="reject"``. It prints how many requests
were accepted, refused with 409 and answered 5xx, whether each thread still waits at its
second gate with only the first one decided, and how many rejected-strategy runs were
admitted while another run of the thread was active (must be 0).

A plain resume is bound to the gate the thread waited at when the server began handling
it: on a loaded single process, a request handled only after the winning run reached the
next gate is a decision on that gate. Name the interrupt id (as the approval queue does by
its approval id) for an exact binding.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
from collections import Counter
from typing import Any

import httpx
from _servers import SAMPLE, auteur_server

APPROVE = {"decisions": [{"type": "approve"}]}


async def _at_first_gate(client: httpx.AsyncClient) -> tuple[str, str]:
    thread_id = (await client.post("/threads", json={})).json()["thread_id"]
    await client.post(
        f"/threads/{thread_id}/runs/wait", json={"assistant_id": "full_video", "input": SAMPLE}
    )
    page = (await client.get("/approvals", params={"limit": 200})).json()
    [approval] = [a for a in page["items"] if a["thread_id"] == thread_id]
    return thread_id, approval["approval_id"]


async def _decision_race(
    client: httpx.AsyncClient, decisions: int, *, named: bool
) -> tuple[Counter[str], bool]:
    thread_id, approval_id = await _at_first_gate(client)
    state = (await client.get(f"/threads/{thread_id}/state")).json()
    value = {state["interrupts"][0]["id"]: APPROVE} if named else APPROVE
    resume = {"assistant_id": "full_video", "command": {"resume": value}}
    answers = await asyncio.gather(
        *(client.post(f"/threads/{thread_id}/runs", json=resume) for _ in range(decisions // 2)),
        *(
            client.post(f"/approvals/{approval_id}", json=APPROVE)
            for _ in range(decisions - decisions // 2)
        ),
    )
    for run in (await client.get(f"/threads/{thread_id}/runs")).json():
        await client.get(f"/threads/{thread_id}/runs/{run['run_id']}/join")
    state = (await client.get(f"/threads/{thread_id}/state")).json()
    decided = (await client.get("/approvals", params={"status": "decided", "limit": 200})).json()
    only_first = [i["value"]["stage"] for i in state["interrupts"]] == ["script"] and [
        a["stage"] for a in decided["items"] if a["thread_id"] == thread_id
    ] == ["treatment"]
    return _tally(answers), only_first


async def _reject_race(client: httpx.AsyncClient, creations: int) -> tuple[Counter[str], int]:
    """Concurrent creations on an idle thread; the tally and how many ran alongside another."""
    thread_id = (await client.post("/threads", json={})).json()["thread_id"]
    body = {"assistant_id": "full_video", "input": SAMPLE, "multitask_strategy": "reject"}
    answers = await asyncio.gather(
        *(client.post(f"/threads/{thread_id}/runs", json=body) for _ in range(creations))
    )
    for run in (await client.get(f"/threads/{thread_id}/runs")).json():
        await client.get(f"/threads/{thread_id}/runs/{run['run_id']}/join")
    runs = sorted((await client.get(f"/threads/{thread_id}/runs")).json(), key=_created)
    overlapping = sum(
        _created(later) < earlier["updated_at"] for earlier, later in itertools.pairwise(runs)
    )
    return _tally(answers), overlapping


def _created(run: dict[str, Any]) -> str:
    return run["created_at"]


def _tally(answers: list[httpx.Response]) -> Counter[str]:
    def kind(status: int) -> str:
        if status < 300:
            return "accepted"
        return "409" if status == 409 else f"{status // 100}xx"

    return Counter(kind(answer.status_code) for answer in answers)


async def _main(threads: int, decisions: int, url: str) -> int:
    async with httpx.AsyncClient(base_url=url, timeout=300) as client:
        named = [await _decision_race(client, decisions, named=True) for _ in range(threads)]
        plain = [await _decision_race(client, decisions, named=False) for _ in range(threads)]
        rejects = [await _reject_race(client, decisions) for _ in range(threads)]
    ok = True
    for label, races in (("naming the gate", named), ("plain resumes", plain)):
        totals: Counter[str] = sum((tally for tally, _ in races), Counter())
        exact = sum(tally["accepted"] == 1 for tally, _ in races)
        untouched = sum(only_first for _, only_first in races)
        print(f"{threads} gates x {decisions} concurrent decisions, {label}:")
        print(f"  exactly 1 applied on {exact}/{threads} gates; totals {dict(totals)}")
        print(f"  next gate left to the person on {untouched}/{threads} threads")
        ok = ok and not totals["5xx"] and (label != "naming the gate" or exact == threads)
    admitted: Counter[str] = sum((tally for tally, _ in rejects), Counter())
    overlapping = sum(overlaps for _, overlaps in rejects)
    print(f"{threads} idle threads x {decisions} concurrent runs, multitask_strategy=reject:")
    print(f"  totals {dict(admitted)}; runs admitted while another was active: {overlapping}")
    return 0 if ok and not admitted["5xx"] and overlapping == 0 else 1


def main() -> int:
    """Parse the arguments, start the server, run the races."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=10)
    parser.add_argument("--decisions", type=int, default=20)
    args = parser.parse_args()
    with auteur_server() as server:
        return asyncio.run(_main(args.threads, args.decisions, server.url))


if __name__ == "__main__":
    sys.exit(main())
