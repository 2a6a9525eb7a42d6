"""What one user must not learn or take from another.

Two users (alice and bob, by API key) against one server: a known content hash is not a
file, and a known thread id is not an answer.
"""

from __future__ import annotations

import base64
import io
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from api.settings import SAMPLE_INPUT

SAMPLE = json.loads(SAMPLE_INPUT.read_text())
WORKFLOW = "full_video"
APPROVE = {"decisions": [{"type": "approve"}]}
ALICE = {"Authorization": "Bearer alice-key"}
BOB = {"Authorization": "Bearer bob-key"}
# Carol makes the sample's frames again; other tests check bob cannot read alice's frames.
CAROL = {"Authorization": "Bearer carol-key"}


@pytest.fixture
async def alice(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_url, headers=ALICE, timeout=120) as client:
        yield client


@pytest.fixture
async def bob(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_url, headers=BOB, timeout=120) as client:
        yield client


@pytest.fixture
async def carol(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_url, headers=CAROL, timeout=120) as client:
        yield client


async def _upload_unique_png(client: httpx.AsyncClient) -> dict[str, Any]:
    """A PNG no one else has stored (a fresh text chunk), uploaded by ``client``."""
    info = PngInfo()
    info.add_text("nonce", uuid.uuid4().hex)
    buffer = io.BytesIO()
    Image.new("L", (8, 8), 128).save(buffer, format="PNG", pnginfo=info)
    data_url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    answer = await client.post("/files", json={"data_url": data_url})
    assert answer.status_code == 201, answer.text
    return answer.json()


def _media_file(file: dict[str, Any]) -> dict[str, Any]:
    return {name: file[name] for name in ("sha256", "key", "media_type", "size_bytes")}


def _answer(response: httpx.Response, thread_id: str) -> tuple[int, str]:
    """Status and detail, with the id asked about replaced: what the caller can compare."""
    return response.status_code, response.json()["detail"].replace(thread_id, "<id>")


# -- 8: files belong to whoever's run made or uploaded them --------------------------------


async def test_writing_a_known_hash_into_ones_state_does_not_give_one_the_file(
    alice: httpx.AsyncClient, bob: httpx.AsyncClient
) -> None:
    file = await _upload_unique_png(alice)
    assert (await bob.get(file["url"])).status_code == 404
    thread = (await bob.post("/threads", json={})).json()["thread_id"]
    runs = f"/threads/{thread}/runs/wait"
    await bob.post(runs, json={"assistant_id": WORKFLOW, "input": SAMPLE})

    await bob.post(
        f"/threads/{thread}/state", json={"values": {"drafts": {"stolen": _media_file(file)}}}
    )
    await bob.post(runs, json={"assistant_id": WORKFLOW})  # continues from the updated state

    assert (await bob.get(file["url"])).status_code == 404
    assert (await alice.get(file["url"])).status_code == 200


async def test_a_run_that_names_someone_elses_file_is_refused_as_for_a_file_never_stored(
    alice: httpx.AsyncClient, bob: httpx.AsyncClient
) -> None:
    theirs = _media_file(await _upload_unique_png(alice))
    never = {**theirs, "sha256": "0" * 64, "key": f"{'0' * 64}.png"}

    answers = []
    for file in (theirs, never):
        thread = (await bob.post("/threads", json={})).json()["thread_id"]
        await bob.post(
            f"/threads/{thread}/runs/wait", json={"assistant_id": WORKFLOW, "input": SAMPLE}
        )
        command = {"resume": APPROVE, "update": {"drafts": {"mask": file}}}
        response = await bob.post(
            f"/threads/{thread}/runs", json={"assistant_id": WORKFLOW, "command": command}
        )
        answers.append((response.status_code, response.json()["detail"].replace(file["key"], "")))

    assert answers[0] == answers[1] and answers[0][0] == 422


async def test_a_generation_another_user_already_made_is_readable_by_whoever_asks_for_it_again(
    alice: httpx.AsyncClient, carol: httpx.AsyncClient
) -> None:
    """The same inputs give the same files by the shared cache: a hit is the run's own file."""
    brief = {**SAMPLE, "brief": f"{SAMPLE['brief']} ({uuid.uuid4()})"}
    frames = []
    for client in (alice, carol):
        thread = (await client.post("/threads", json={})).json()["thread_id"]
        runs = f"/threads/{thread}/runs/wait"
        result = (await client.post(runs, json={"assistant_id": WORKFLOW, "input": brief})).json()
        while result["__interrupt__"][0]["value"]["stage"] != "frames":
            resume = {"assistant_id": WORKFLOW, "command": {"resume": APPROVE}}
            result = (await client.post(runs, json=resume)).json()
        frames.append(result["__interrupt__"][0]["value"]["action_requests"][0]["args"]["frames"])

    keys = [[frame["file"]["key"] for frame in made] for made in frames]
    assert keys[0] == keys[1]  # carol's run made nothing new: every frame was a cache hit
    for key in keys[1]:
        assert (await carol.get(f"/files/{key}")).status_code == 200


# -- 9: a thread id tells nothing about other users -----------------------------------------


async def test_another_users_thread_id_answers_exactly_as_a_free_one(
    alice: httpx.AsyncClient, bob: httpx.AsyncClient
) -> None:
    theirs = (await alice.post("/threads", json={})).json()["thread_id"]
    free = str(uuid.uuid4())

    for body in ({}, {"if_exists": "do_nothing"}):
        asked = [
            _answer(await bob.post("/threads", json={"thread_id": i, **body}), i)
            for i in (theirs, free)
        ]
        assert asked[0] == asked[1] and asked[0][0] == 422, body
    for route in ("runs", "runs/wait", "runs/stream"):
        run = {"assistant_id": WORKFLOW, "input": SAMPLE, "if_not_exists": "create"}
        asked = [
            _answer(await bob.post(f"/threads/{i}/{route}", json=run), i) for i in (theirs, free)
        ]
        assert asked[0] == asked[1] and asked[0][0] == 404, route
    assert (await bob.get(f"/threads/{free}")).status_code == 404


async def test_ones_own_thread_id_still_answers_409_already_exists(
    bob: httpx.AsyncClient,
) -> None:
    mine = (await bob.post("/threads", json={})).json()["thread_id"]

    again = await bob.post("/threads", json={"thread_id": mine})
    kept = await bob.post("/threads", json={"thread_id": mine, "if_exists": "do_nothing"})

    assert again.status_code == 409 and "already exists" in again.json()["detail"]
    assert kept.status_code == 200 and kept.json()["thread_id"] == mine
