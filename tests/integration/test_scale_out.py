"""Scale-out on one machine: a separate Postgres, two API processes, three ``auteur worker``s.

Runs are driven through both APIs with the official SDK; each run is claimed once (its
``attempt`` stays 1) unless its worker is ``kill -9``-ed, and then exactly once more, by a
survivor; any run's events replay the same from either API; and the ComfyUI double executed
each job once: what the killed worker had in flight is submitted again and served from
ComfyUI's cache, nothing it had finished is submitted again.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import psycopg
import pytest
from langgraph_sdk import get_client
from psycopg.rows import dict_row

from tests.cluster import Cluster, paid_once, scale_cluster
from tests.servers import APPROVE, BEFORE_FRAMES, SAMPLE, SCENE_FRAMES

pytestmark = pytest.mark.slow

THREADS = 4  # productions taken to scene 1's dialogue, each run alternating APIs
FRAMES = 2  # of them, drawing scene 1's frames (ComfyUI jobs) while a worker is killed
LEASE_S = 5


def take(n: int) -> dict[str, Any]:
    """The sample input, with a visual style of its own: its media jobs are its own."""
    config = {**SAMPLE["config"], "visual_style": f"{SAMPLE['config']['visual_style']} Take {n}."}
    return {**SAMPLE, "config": config}


@pytest.mark.long
async def test_runs_spread_over_workers_survive_a_kill_and_are_paid_once() -> None:
    env = {"AUTEUR_RUN_LEASE_S": str(LEASE_S)}
    with scale_cluster(apis=2, workers=3, comfy_servers=1, job_delay_s=0.1, env=env) as cluster:
        clients = [get_client(url=url) for url in cluster.apis]
        threads = await asyncio.gather(*(to_frames(clients, n) for n in range(THREADS)))
        frames = [
            await clients[n % 2].runs.create(
                threads[n], "full_video", command={"resume": APPROVE}, stream_mode=["custom"]
            )
            for n in range(FRAMES)
        ]
        killed, held = await kill_a_worker_mid_job(cluster, clients[0], frames[0])
        for n, run in enumerate(frames):  # finished by the survivors, joined on the other API
            result = await clients[(n + 1) % 2].runs.join(run["thread_id"], run["run_id"])
            gate = result["__interrupt__"][0]["value"]
            assert (gate["stage"], gate["scene"]) == ("frames", 1)
            assert len(gate["action_requests"][0]["args"]["frames"]) == SCENE_FRAMES

        runs = _runs(cluster)
        assert len(runs) == THREADS * len(BEFORE_FRAMES) + FRAMES
        assert {run["status"] for run in runs.values()} == {"success"}  # each stopped at a gate
        assert frames[0]["run_id"] in held
        for run_id, run in runs.items():  # claimed once; twice only when its worker died
            assert run["attempt"] == (2 if run_id in held else 1), run
            assert not run["worker"].endswith(killed) if run_id in held else True
        for run in runs.values():
            await _same_events_from_either_api(clients, run)
        paid_once(cluster, at_least=FRAMES * SCENE_FRAMES)


async def to_frames(clients: list[Any], n: int) -> str:
    """A new production at the gate before scene 1's frames, each run through the other API."""
    thread_id = (await clients[n % 2].threads.create())["thread_id"]
    result = await clients[(n + 1) % 2].runs.wait(thread_id, "full_video", input=take(n))
    turn = n
    while result["__interrupt__"][0]["value"]["stage"] != BEFORE_FRAMES[-1]:
        result = await clients[turn % 2].runs.wait(
            thread_id, "full_video", command={"resume": APPROVE}
        )
        turn += 1
    return thread_id


async def kill_a_worker_mid_job(
    cluster: Cluster, client: Any, run: dict[str, Any]
) -> tuple[str, set[str]]:
    """SIGKILL the worker drawing ``run``'s frames while its jobs are on the ComfyUI double.

    Returns the worker's pid (as its id ends) and the runs it held; a job of it was queued or
    running on the double at that moment.
    """
    async for part in client.runs.join_stream(run["thread_id"], run["run_id"], last_event_id="-1"):
        if part.event == "custom" and part.data.get("message", "").startswith(
            f"frame 2/{SCENE_FRAMES}"
        ):
            break
    worker_id = _runs(cluster)[run["run_id"]]["worker"]
    pid = int(worker_id.split(":")[1])
    (worker,) = [w for w in cluster.workers if w.pid == pid]  # a worker, not an API, runs it
    queue = httpx.get(f"{cluster.comfy[0]}/queue").json()
    worker.kill()
    worker.wait(timeout=30)
    held = {
        run_id
        for run_id, row in _runs(cluster).items()
        if row["worker"] == worker_id and row["status"] == "running"
    }
    in_flight = {
        json.dumps(job[2], sort_keys=True)
        for job in queue["queue_running"] + queue["queue_pending"]
    }
    assert in_flight, "the killed worker had no job on the ComfyUI double"
    return f":{pid}:{worker_id.split(':')[2]}", held


def _runs(cluster: Cluster) -> dict[str, dict[str, Any]]:
    with psycopg.connect(cluster.database_url, row_factory=dict_row) as conn:
        rows = conn.execute(
            "SELECT run_id::text, thread_id::text, status, attempt, worker FROM auteur_runs"
        ).fetchall()
    return {row["run_id"]: row for row in rows}


async def _same_events_from_either_api(clients: list[Any], run: dict[str, Any]) -> None:
    """The whole log from each API, and from the middle (``Last-Event-ID``) from the other."""
    thread_id, run_id = run["thread_id"], run["run_id"]
    logs = []
    for client in clients:
        parts = [p async for p in client.runs.join_stream(thread_id, run_id, last_event_id="-1")]
        logs.append([(p.id, p.event, p.data) for p in parts])
    assert logs[0] == logs[1]
    ids = [int(event_id) for event_id, _, _ in logs[0]]
    assert ids == sorted(set(ids))
    middle = logs[0][len(logs[0]) // 2][0]
    for n, client in enumerate(clients):
        stream = client.runs.join_stream(thread_id, run_id, last_event_id=middle)
        rest = [(p.id, p.event, p.data) async for p in stream]
        assert rest == logs[1 - n][len(logs[0]) // 2 + 1 :]
