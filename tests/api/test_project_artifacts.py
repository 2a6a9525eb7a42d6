"""The project owns its artifacts: versions recorded by every run, workflows that start from
them, what goes stale, and branches made by reopening a stage — over HTTP and the SDK."""

from __future__ import annotations

import asyncio
import copy
import json
from functools import cache
from typing import Any

import httpx
import opentimelineio as otio
import pytest
from langgraph_sdk import get_client

from api.settings import SAMPLE_INPUT
from tests.servers import GATE_SCENES, GATES, SCENE_REMADE_GATES

SAMPLE = json.loads(SAMPLE_INPUT.read_text())
APPROVE = {"decisions": [{"type": "approve"}]}


@cache
def _alice(url: str) -> Any:
    """The official SDK's client of ``url``, as alice; one per server.

    Each new client loads the system's certificates into an SSL context, a fifth of a second.
    """
    return get_client(url=url, api_key="alice-key")


async def _new_project(http: httpx.AsyncClient) -> str:
    body = {"name": "Eggs", "brief": SAMPLE["brief"], "config": SAMPLE.get("config", {})}
    created = await http.post("/projects", json=body)
    assert created.status_code == 201
    return created.json()["project_id"]


async def _decide(
    http: httpx.AsyncClient, thread_id: str, stage: str, decision: dict[str, Any] = APPROVE
) -> dict[str, Any]:
    """Decide the thread's pending gate (which must be ``stage``'s) and wait for its run."""
    for _ in range(600):
        page = (await http.get("/approvals", params={"limit": 200})).json()
        mine = [a for a in page["items"] if a["thread_id"] == thread_id]
        if mine:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError(f"no pending approval at {stage}")
    (approval,) = mine
    assert approval["stage"] == stage
    answer = await http.post(f"/approvals/{approval['approval_id']}", json=decision)
    assert answer.status_code == 202, answer.text
    client = _alice(str(http.base_url))
    await client.runs.join(thread_id, answer.json()["run"]["run_id"])
    return approval


async def _artifacts(http: httpx.AsyncClient, project_id: str) -> dict[str, Any]:
    listing = await http.get(f"/projects/{project_id}/artifacts", params={"history": "true"})
    assert listing.status_code == 200
    return listing.json()


async def test_runs_record_versions_and_a_workflow_starts_from_the_projects_artifacts(
    api_url: str, http: httpx.AsyncClient
) -> None:
    client = _alice(api_url)
    project_id = await _new_project(http)
    writing = await client.threads.create(metadata={"project_id": project_id})
    await client.runs.wait(writing["thread_id"], "script_only", input={"brief": SAMPLE["brief"]})
    approvals = {}
    for stage in ("treatment", "script", "master_script"):
        approvals[stage] = await _decide(http, writing["thread_id"], stage)
        # each approval is the project's as soon as it is made, inside the agent too
        recorded = {a["kind"] for a in (await _artifacts(http, project_id))["current"]}
        assert stage in recorded

    written = await _artifacts(http, project_id)
    current = {a["kind"]: a for a in written["current"]}
    assert set(current) == {"treatment", "script", "master_script"}
    for stage, approval in approvals.items():
        assert current[stage]["version"] == 1
        assert current[stage]["approval_id"] == approval["approval_id"]
        assert current[stage]["approved_by"] == "alice"
        assert current[stage]["thread_id"] == writing["thread_id"]
        assert current[stage]["stale"] is False
    assert set(current["master_script"]["upstream"]) == {"script"}

    extracting = await client.threads.create(metadata={"project_id": project_id})
    stop = await client.runs.wait(extracting["thread_id"], "extract_assets", input={})
    gate = stop["__interrupt__"][0]["value"]
    assert gate["stage"] == "assets" and gate["artifact_type"] == "AssetRegistry"
    assert gate["stale"] == []  # there were no assets to make stale
    await _decide(http, extracting["thread_id"], "assets")

    current = {a["kind"]: a for a in (await _artifacts(http, project_id))["current"]}
    assert current["assets"]["version"] == 1
    assert current["assets"]["upstream"] == {
        "master_script": current["master_script"]["content_hash"]
    }


async def test_reopening_a_stage_makes_a_branch_and_switching_back_restores_it(
    api_url: str, http: httpx.AsyncClient
) -> None:
    client = _alice(api_url)
    project_id = await _new_project(http)
    writing = await client.threads.create(metadata={"project_id": project_id})
    await client.runs.wait(writing["thread_id"], "script_only", input={"brief": SAMPLE["brief"]})
    for stage in ("treatment", "script", "master_script"):
        await _decide(http, writing["thread_id"], stage)
    extracting = await client.threads.create(metadata={"project_id": project_id})
    await client.runs.wait(extracting["thread_id"], "extract_assets", input={})
    await _decide(http, extracting["thread_id"], "assets")
    before = {a["kind"]: a for a in (await _artifacts(http, project_id))["current"]}

    reopened = await http.post(
        f"/projects/{project_id}/branches",
        json={"thread_id": writing["thread_id"], "stage": "master_script"},
    )
    assert reopened.status_code == 201, reopened.text
    branch = reopened.json()["branch"]
    await client.runs.join(writing["thread_id"], reopened.json()["run"]["run_id"])
    master = copy.deepcopy(before["master_script"]["data"])
    master["scenes"][0]["prose"] += " A gull lands on the fence and watches."
    edit = {
        "decisions": [{"type": "edit", "edited_action": {"name": "master_script", "args": master}}]
    }
    await _decide(http, writing["thread_id"], "master_script", edit)

    after = await _artifacts(http, project_id)
    current = {a["kind"]: a for a in after["current"]}
    assert after["branch"] == branch
    assert current["master_script"]["version"] == 2
    assert current["master_script"]["parent_version"] == 1
    assert current["master_script"]["data"] == master
    assert current["assets"]["version"] == 1
    assert current["assets"]["stale"] is True
    assert current["assets"]["stale_because"] == ["master_script"]
    versions = [(v["kind"], v["version"]) for v in after["versions"]]
    assert ("master_script", 1) in versions and ("master_script", 2) in versions
    branches = (await http.get(f"/projects/{project_id}/branches")).json()
    assert [b["branch"] for b in branches] == ["main", branch]
    assert [b["current"] for b in branches] == [False, True]

    # the assets extracted again on the branch, kept as they were and approved: a new
    # version (the same content, made from the new master script), not stale
    again = await client.threads.create(metadata={"project_id": project_id})
    await client.runs.wait(again["thread_id"], "extract_assets", input={})
    kept = {"name": "assets", "args": before["assets"]["data"]}
    await _decide(
        http, again["thread_id"], "assets", {"decisions": [{"type": "edit", "edited_action": kept}]}
    )
    current = {a["kind"]: a for a in (await _artifacts(http, project_id))["current"]}
    assert current["assets"]["version"] == 2
    assert current["assets"]["data"] == before["assets"]["data"]
    assert current["assets"]["stale"] is False
    assert current["assets"]["upstream"] == {
        "master_script": current["master_script"]["content_hash"]
    }

    switched = await http.post(f"/projects/{project_id}/branches/main/switch")
    assert switched.status_code == 200
    restored = {a["kind"]: a for a in (await _artifacts(http, project_id))["current"]}
    assert restored["master_script"]["version"] == 1
    assert restored["master_script"]["data"] == before["master_script"]["data"]
    assert restored["assets"]["stale"] is False


async def test_a_workflow_that_needs_project_artifacts_is_refused_clearly(
    api_url: str, http: httpx.AsyncClient
) -> None:
    client = _alice(api_url)
    loose = await client.threads.create()
    no_project = await http.post(
        f"/threads/{loose['thread_id']}/runs", json={"assistant_id": "extract_assets", "input": {}}
    )
    empty = await client.threads.create(metadata={"project_id": await _new_project(http)})
    nothing_yet = await http.post(
        f"/threads/{empty['thread_id']}/runs", json={"assistant_id": "extract_assets", "input": {}}
    )
    typo = await http.post(
        f"/threads/{loose['thread_id']}/runs",
        json={"assistant_id": "full_video", "input": {"brief": "x", "master_scirpt": "y"}},
    )

    assert no_project.status_code == 422 and "project" in no_project.json()["detail"]
    assert nothing_yet.status_code == 409
    assert "master_script" in nothing_yet.json()["detail"]
    assert typo.status_code == 422 and "master_scirpt" in typo.json()["detail"]
    schemas = (await http.get("/assistants/extract_assets/schemas")).json()
    assert schemas["input_schema"]["title"] == "ProjectInput"
    assert schemas["input_schema"]["additionalProperties"] is False


async def test_a_branch_or_project_of_someone_else_is_404(
    api_url: str, http: httpx.AsyncClient
) -> None:
    project_id = await _new_project(http)
    bob = {"Authorization": "Bearer bob-key"}

    assert (await http.get(f"/projects/{project_id}/artifacts", headers=bob)).status_code == 404
    assert (await http.post(f"/projects/{project_id}/branches/x/switch")).status_code == 404
    unknown = await http.post(
        f"/projects/{project_id}/branches", json={"thread_id": "nope", "stage": "script"}
    )
    assert unknown.status_code == 404


REMADE = ("master_script", "assets", "instances", "shots", "dialogue", "frames", "clips", "video")
"""What it makes anew: the assets come back the same but from a new master script; the
cast, from the same script and the same assets, stays as it was."""


@pytest.mark.long
async def test_one_scene_of_a_finished_production_is_made_again(
    api_url: str, http: httpx.AsyncClient
) -> None:
    client = _alice(api_url)
    project_id = await _new_project(http)
    production = await client.threads.create(metadata={"project_id": project_id})
    await client.runs.wait(production["thread_id"], "full_video", input={"brief": SAMPLE["brief"]})
    for stage, scene in zip(GATES, GATE_SCENES, strict=True):  # the sample's
        await _decide(http, production["thread_id"], stage)
        if scene == 2:  # scene 2's parts come in: scene 1's made from theirs stay current
            listed = (await _artifacts(http, project_id))["current"]
            assert not [(a["kind"], a["stale_because"]) for a in listed if a["stale"]], stage
    before = {a["kind"]: a for a in (await _artifacts(http, project_id))["current"]}
    for kind in ("instances", "shots", "dialogue", "frames", "clips"):
        assert before[kind]["version"] == 2, kind  # one version per scene's approval
    assert not [kind for kind, a in before.items() if a["stale"]]
    await _exports_the_cut(http, api_url, production["thread_id"], before)

    again = await client.threads.create(metadata={"project_id": project_id})
    no_such_scene = await http.post(
        f"/threads/{again['thread_id']}/runs",
        json={"assistant_id": "regenerate_scene", "input": {"scene": 9, "notes": "bouncier"}},
    )
    assert no_such_scene.status_code == 422
    assert "scene 9 does not exist" in no_such_scene.json()["detail"]
    stop = await client.runs.wait(
        again["thread_id"],
        "regenerate_scene",
        input={"scene": 2, "notes": "make the landing a bouncy, hat-over-eyes triumph"},
    )
    gate = stop["__interrupt__"][0]["value"]
    assert gate["stage"] == "master_script"
    stale = {*REMADE, "casting", "references"} - {"master_script"}  # what the assets lead to
    assert {s["kind"] for s in gate["stale"]} == stale
    for stage in SCENE_REMADE_GATES:
        await _decide(http, again["thread_id"], stage)

    after = {a["kind"]: a for a in (await _artifacts(http, project_id))["current"]}
    assert {k: after[k]["version"] for k in ("treatment", "script", "casting")} == {
        "treatment": 1,
        "script": 1,
        "casting": 1,
    }
    for kind in REMADE:
        assert after[kind]["version"] == before[kind]["version"] + 1, kind  # one new version
        assert after[kind]["thread_id"] == again["thread_id"]
        assert after[kind]["stale"] is False
    old_scenes = before["master_script"]["data"]["scenes"]
    new_scenes = after["master_script"]["data"]["scenes"]
    assert [s for s in new_scenes if s["number"] != 2] == [
        s for s in old_scenes if s["number"] != 2
    ]
    assert after["video"]["data"]["file"] != before["video"]["data"]["file"]


async def _exports_the_cut(
    http: httpx.AsyncClient, api_url: str, thread_id: str, made: dict[str, Any]
) -> None:
    """``GET /threads/{id}/export``: the cut as OTIO, FCPXML and EDL, media as file URLs."""
    shots = made["shots"]["data"]["shots"]
    for fmt, adapter in (("otio", "otio_json"), ("fcpxml", "fcpx_xml"), ("edl", "cmx_3600")):
        answer = await http.get(f"/threads/{thread_id}/export", params={"format": fmt})
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-disposition"].endswith(f'.{fmt}"')
        cut = otio.adapters.read_from_string(answer.text, adapter)
        clips = list(cut.video_tracks()[0].find_clips())
        assert len(clips) == len(shots)
    urls = [c.media_reference.target_url for c in clips]
    clip_keys = [c["file"]["key"] for c in made["clips"]["data"]["clips"]]
    assert urls == [f"{api_url}/files/{key}" for key in clip_keys]
    assert (await http.get(urls[0].removeprefix(api_url))).status_code == 200
    cut = otio.adapters.read_from_string(
        (await http.get(f"/threads/{thread_id}/export")).text, "otio_json"
    )
    lines = made["dialogue"]["data"]["lines"]
    spoken = [clip for track in cut.audio_tracks() for clip in track.find_clips()]
    assert sorted(c.metadata["auteur"]["text"] for c in spoken) == sorted(x["text"] for x in lines)
    assert {m.name for c in cut.video_tracks()[0].find_clips() for m in c.markers} == {
        "Scene 1",
        "Scene 2",
    }
    bad = await http.get(f"/threads/{thread_id}/export", params={"format": "mov"})
    assert bad.status_code == 422
    empty = (await http.post("/threads", json={})).json()["thread_id"]
    early = await http.get(f"/threads/{empty}/export")
    assert early.status_code == 409 and "not approved" in early.json()["detail"]
    assert (await http.get("/threads/nope/export")).status_code == 404
