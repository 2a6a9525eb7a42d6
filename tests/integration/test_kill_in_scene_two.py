"""``kill -9`` of the worker drawing scene 2's keyframes: scene 1 stays as approved.

One production on a separate Postgres, an API and two ``auteur worker``s, media on the
ComfyUI double: scene 1 is approved through the API, then the worker drawing scene 2's
frames is killed with jobs on the double. The survivor takes the run over: scene 2's frames
gate comes, with scene 2's keyframes alone; every part of scene 1 (its instances, shots,
lines, frames and clips) is what was approved; and the double executed every prompt once.
"""

from __future__ import annotations

import pytest
from langgraph_sdk import get_client

from agents.base import artifact_types
from tests.cluster import paid_once, scale_cluster
from tests.integration.test_scale_out import kill_a_worker_mid_job
from tests.servers import APPROVE, SAMPLE, SCENE_FRAMES

pytestmark = pytest.mark.slow

SCENE_PARTS = ("instances", "shots", "dialogue", "frames", "clips")


@pytest.mark.long
async def test_a_kill_in_scene_two_keeps_scene_one_and_pays_nothing_twice() -> None:
    with scale_cluster(
        apis=1, workers=2, comfy_servers=1, job_delay_s=0.1, env={"AUTEUR_RUN_LEASE_S": "2"}
    ) as cluster:
        client = get_client(url=cluster.apis[0])
        thread_id = (await client.threads.create())["thread_id"]
        result = await client.runs.wait(thread_id, "full_video", input=SAMPLE)
        gate = result["__interrupt__"][0]["value"]
        while (gate["stage"], gate["scene"]) != ("dialogue", 2):  # scene 1 approved
            result = await client.runs.wait(thread_id, "full_video", command={"resume": APPROVE})
            gate = result["__interrupt__"][0]["value"]
        before = (await client.threads.get_state(thread_id))["values"]
        run = await client.runs.create(
            thread_id, "full_video", command={"resume": APPROVE}, stream_mode=["custom"]
        )

        _, held = await kill_a_worker_mid_job(cluster, client, run)

        assert run["run_id"] in held
        result = await client.runs.join(thread_id, run["run_id"])  # the survivor's
        gate = result["__interrupt__"][0]["value"]
        assert (gate["stage"], gate["scene"]) == ("frames", 2)  # scene 2 goes on
        frames = gate["action_requests"][0]["args"]["frames"]
        assert len(frames) == SCENE_FRAMES
        assert {frame["shot"][0] for frame in frames} == {"2"}
        after = (await client.threads.get_state(thread_id))["values"]
        types = artifact_types()
        for kind in SCENE_PARTS:  # scene 1 as approved, to the byte
            made = [types[kind].model_validate(v[kind]).in_scene(1) for v in (before, after)]
            assert made[0] == made[1], kind
            assert made[0].has_scene(1), kind
        assert after["approved"] == before["approved"]  # nothing approved by the kill
        paid_once(cluster, at_least=2 * SCENE_FRAMES)
