"""What the web client needs beyond the Agent Server: project configuration, uploads
(inpainting masks), the sample, run progress per run, and mid-stage subgraph state."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from PIL import Image

from api.settings import SAMPLE_INPUT

SAMPLE = json.loads(SAMPLE_INPUT.read_text())
ALICE = {"Authorization": "Bearer alice-key"}
BOB = {"Authorization": "Bearer bob-key"}


def _png_data_url() -> str:
    buffer = io.BytesIO()
    Image.new("L", (8, 8), 255).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


async def test_saving_configuration_merges_one_level_deep(http: httpx.AsyncClient) -> None:
    created = await http.post(
        "/projects", json={"name": "Eggs", "brief": "eggs", "config": SAMPLE["config"]}
    )
    project_id = created.json()["project_id"]

    saved = await http.patch(
        f"/projects/{project_id}", json={"config": {"format": {"fps": 24}, "title": "Flight"}}
    )

    assert saved.status_code == 200
    config = saved.json()["config"]
    assert config["format"] == {**SAMPLE["config"]["format"], "fps": 24}
    assert config["title"] == "Flight"
    assert config["story_rules"] == SAMPLE["config"]["story_rules"]
    assert (await http.get(f"/projects/{project_id}")).json()["config"] == config


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"config": {"format": {"fps": 0}}}, "fps"),
        ({"config": {"colour": "red"}}, "colour"),
        ({"name": ""}, "name"),
    ],
)
async def test_invalid_configuration_is_refused_and_nothing_changes(
    http: httpx.AsyncClient, body: dict[str, Any], problem: str
) -> None:
    project = (await http.post("/projects", json={"name": "Eggs", "brief": "eggs"})).json()

    answer = await http.patch(f"/projects/{project['project_id']}", json=body)

    assert answer.status_code == 422 and problem in answer.json()["detail"]
    assert (await http.get(f"/projects/{project['project_id']}")).json() == project


async def test_a_new_project_with_an_invalid_configuration_gets_422(
    http: httpx.AsyncClient,
) -> None:
    answer = await http.post(
        "/projects", json={"name": "Eggs", "config": {"format": {"aspect_ratio": "5:1"}}}
    )
    assert answer.status_code == 422 and "aspect_ratio" in answer.json()["detail"]


async def test_another_users_project_cannot_be_changed(http: httpx.AsyncClient) -> None:
    project = (await http.post("/projects", json={"name": "Eggs"})).json()
    answer = await http.patch(
        f"/projects/{project['project_id']}", json={"name": "Mine"}, headers=BOB
    )
    assert answer.status_code == 404


async def test_an_uploaded_mask_is_stored_by_content_and_private(http: httpx.AsyncClient) -> None:
    answer = await http.post("/files", json={"data_url": _png_data_url()})

    assert answer.status_code == 201
    file = answer.json()
    assert file["key"] == f"{file['sha256']}.png" and file["url"] == f"/files/{file['key']}"
    assert (await http.get(file["url"])).content.startswith(b"\x89PNG")
    assert (await http.get(file["url"], headers=BOB)).status_code == 404


@pytest.mark.parametrize(
    "data_url",
    [
        "data:image/jpeg;base64,AAAA",
        "data:image/png;base64,not base64!",
        "data:image/png;base64," + base64.b64encode(b"GIF89a not a png").decode(),
        "data:image/png;base64,AAA",
    ],
)
async def test_an_upload_that_is_not_a_png_gets_422(http: httpx.AsyncClient, data_url: str) -> None:
    answer = await http.post("/files", json={"data_url": data_url})
    assert answer.status_code == 422, answer.text


async def test_the_sample_and_the_drafting_model_are_published(http: httpx.AsyncClient) -> None:
    assert (await http.get("/sample")).json() == SAMPLE
    assert "offline sample model" in (await http.get("/info")).json()["auteur"]["models"]


async def test_each_run_shows_its_own_latest_progress(
    api_url: str, http: httpx.AsyncClient
) -> None:
    project = (await http.post("/projects", json={"name": "Eggs", "brief": "eggs"})).json()
    client = get_client(url=api_url, api_key="alice-key")
    thread = await client.threads.create(metadata={"project_id": project["project_id"]})
    await client.runs.wait(thread["thread_id"], "full_video", input=SAMPLE)
    await client.runs.wait(
        thread["thread_id"], "full_video", command={"resume": {"decisions": [{"type": "approve"}]}}
    )

    second, first = (await http.get(f"/projects/{project['project_id']}/runs")).json()

    assert (first["stage"], first["message"]) == ("treatment", "drafting treatment")
    assert (second["stage"], second["message"]) == ("script", "drafting script")
    [listed] = [
        p for p in (await http.get("/projects")).json() if p["project_id"] == project["project_id"]
    ]
    assert listed["latest_progress"]["stage"] == "script"
    state = await client.threads.get_state(thread["thread_id"], subgraphs=True)
    assert state["tasks"][0]["state"]["values"]["drafts"]["script"]


async def test_the_progress_log_is_read_back_from_the_run_events(
    api_url: str, http: httpx.AsyncClient
) -> None:
    project = (await http.post("/projects", json={"name": "Eggs", "brief": "eggs"})).json()
    path = f"/projects/{project['project_id']}/progress"
    client = get_client(url=api_url, api_key="alice-key")
    thread = await client.threads.create(metadata={"project_id": project["project_id"]})
    await client.runs.wait(thread["thread_id"], "full_video", input=SAMPLE)
    await client.runs.wait(
        thread["thread_id"], "full_video", command={"resume": {"decisions": [{"type": "approve"}]}}
    )
    first, second = (await http.get(f"/projects/{project['project_id']}/runs")).json()[::-1]

    log = (await http.get(path)).json()

    assert [(p["stage"], p["message"]) for p in log if p["run_id"] == first["run_id"]][-1] == (
        "treatment",
        "drafting treatment",
    )
    assert (log[-1]["run_id"], log[-1]["message"]) == (second["run_id"], "drafting script")
    assert [p["id"] for p in log] == sorted(p["id"] for p in log)
    assert (await http.get(path, params={"limit": 1})).json() == log[-1:]
    foreign = await http.get(path, headers=BOB)
    assert foreign.status_code == 404
