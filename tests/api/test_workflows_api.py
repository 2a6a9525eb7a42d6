"""The workflow library over HTTP: list, search by intent, run on the ComfyUI test server.

One server for the module, configured as production would be: ComfyUI (the test server)
for generation, an S3-compatible store (moto) for files, the local embedding model.
"""

from __future__ import annotations

import base64
import io
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.api.conftest import api_settings, serve
from tests.doubles.comfy_server import ComfyServer, run_comfy_server
from tests.doubles.s3_server import CREDENTIALS, client, run_s3_server
from tools.workflows import COMFY_WORKFLOWS

ALICE = {"Authorization": "Bearer alice-key"}
BOB = {"Authorization": "Bearer bob-key"}
LIBRARY = sorted(path.stem for path in COMFY_WORKFLOWS.glob("*.yaml"))


@pytest.fixture(scope="module")
def comfy() -> Iterator[ComfyServer]:
    with run_comfy_server() as server:
        yield server


@pytest.fixture(scope="module")
def s3() -> Iterator[tuple[str, str]]:
    """(endpoint URL, bucket)."""
    with run_s3_server() as url:
        bucket = f"media-{uuid.uuid4().hex[:12]}"
        client(url).create_bucket(Bucket=bucket)
        yield url, bucket


@pytest.fixture(scope="module")
def url(database_url: str, comfy: ComfyServer, s3: tuple[str, str]) -> Iterator[str]:
    endpoint, bucket = s3
    settings = api_settings(
        database_url,
        comfyui_urls=[comfy.url],
        comfyui_attempts=3,  # the failure test exhausts them; no real waits between tries
        comfyui_backoff_s=0,
        s3_bucket=bucket,
        s3_endpoint_url=endpoint,
        s3_region="us-east-1",
        s3_access_key_id=CREDENTIALS["access_key_id"],
        s3_secret_access_key=CREDENTIALS["secret_access_key"],
    )
    with serve(settings, execute=False) as base_url:
        yield base_url


@pytest.fixture
def http(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, headers=ALICE, timeout=120) as session:
        yield session


def _png(size: tuple[int, int], colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def _upload(http: httpx.Client, data: bytes, headers: dict[str, str] = ALICE) -> str:
    data_url = "data:image/png;base64," + base64.b64encode(data).decode()
    response = http.post("/files", json={"data_url": data_url}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()["key"]


def test_the_library_is_listed_with_inputs_and_versions(http: httpx.Client) -> None:
    workflows = http.get("/workflows").json()

    assert [w["name"] for w in workflows] == LIBRARY
    upscale = next(w for w in workflows if w["name"] == "upscale_image")
    assert upscale["inputs"]["image"]["type"] == "image"
    assert upscale["inputs"]["image"]["required"] is True
    assert len(upscale["version"]) == 64
    assert "graph" not in upscale
    detail = http.get("/workflows/upscale_image").json()
    assert detail["graph"][upscale["inputs"]["image"]["node"]]["class_type"] == "LoadImage"


@pytest.mark.parametrize(
    ("intent", "expected"),
    [
        ("turnaround sheet of a character on white background", "asset_sheet"),
        ("animate between two frames", "first_last_frame_to_video"),
        ("fix her hand, repaint the masked region", "inpaint_region"),
        ("make it 4k", "upscale_image"),
    ],
)
def test_search_ranks_the_fitting_workflow_first(
    http: httpx.Client, intent: str, expected: str
) -> None:
    response = http.get("/workflows/search", params={"q": intent, "k": 3})

    assert response.status_code == 200, response.text
    matches = response.json()
    assert len(matches) == 3
    assert matches[0]["workflow"]["name"] == expected
    scores = [match["score"] for match in matches]
    assert scores == sorted(scores, reverse=True)
    assert all(-1 <= score <= 1 for score in scores)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "q"),
        ({"q": ""}, "q"),
        ({"q": "   "}, "blank"),
        ({"q": "upscale", "k": 0}, "k"),
        ({"q": "upscale", "k": 51}, "k"),
        ({"q": "upscale", "k": "many"}, "k"),
    ],
)
def test_bad_searches_get_422(http: httpx.Client, params: dict[str, Any], message: str) -> None:
    response = http.get("/workflows/search", params=params)

    assert response.status_code == 422
    assert message in response.json()["detail"]


def test_unknown_and_malformed_names(http: httpx.Client) -> None:
    missing = http.get("/workflows/no_such_workflow")
    assert missing.status_code == 404
    assert "upscale_image" in missing.json()["detail"]  # lists the known ones
    assert http.get("/workflows/Not-A-Name").status_code == 422
    assert http.post("/workflows/no_such_workflow/runs", json={}).status_code == 404


def test_the_library_needs_an_api_key(url: str) -> None:
    assert httpx.get(f"{url}/workflows").status_code == 401
    assert httpx.get(f"{url}/workflows/search", params={"q": "x"}).status_code == 401


def test_a_run_goes_through_comfyui_and_its_outputs_are_served_from_s3(
    http: httpx.Client, comfy: ComfyServer, s3: tuple[str, str]
) -> None:
    image = _upload(http, _png((64, 48), (200, 40, 40)))
    jobs = comfy.jobs

    response = http.post(
        "/workflows/upscale_image/runs", json={"inputs": {"image": image, "scale_by": 0.5}}
    )

    assert response.status_code == 201, response.text
    result = response.json()
    assert result["workflow"] == "upscale_image"
    assert comfy.jobs == jobs + 1
    [output] = result["outputs"]
    assert output["kind"] == "image"
    assert output["url"] == f"/files/{output['key']}"
    served = http.get(output["url"])
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/png"
    assert "immutable" in served.headers["cache-control"]
    with Image.open(io.BytesIO(served.content)) as upscaled:
        assert upscaled.size == (128, 96)  # the 4x model, then 0.5
    endpoint, bucket = s3
    stored = client(endpoint).get_object(Bucket=bucket, Key=output["key"])["Body"].read()
    assert stored == served.content
    assert http.get(output["url"], headers=BOB).status_code == 404  # not Bob's file


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"scale_by": 0.5}, "image"),  # a required input missing
        ({"image": "IMAGE", "scale_by": 100}, "scale_by"),  # above its maximum
        ({"image": "IMAGE", "scale_by": 8}, "scale_by"),  # x32 overall: above it too
        ({"image": "IMAGE", "colour": "red"}, "colour"),  # not an input of the workflow
        ({"image": "0" * 64 + ".png"}, "your files"),  # nobody's file
        ({"image": ["not", "a", "key"]}, "your files"),
    ],
)
def test_bad_run_inputs_get_422_and_submit_nothing(
    http: httpx.Client, comfy: ComfyServer, inputs: dict[str, Any], message: str
) -> None:
    image = _upload(http, _png((32, 32), (10, 200, 10)))
    inputs = {k: image if v == "IMAGE" else v for k, v in inputs.items()}
    jobs = comfy.jobs

    response = http.post("/workflows/upscale_image/runs", json={"inputs": inputs})

    assert response.status_code == 422, response.text
    assert message in response.json()["detail"]
    assert comfy.jobs == jobs


def test_an_image_over_the_pixel_cap_is_a_422_and_submits_nothing(
    http: httpx.Client, comfy: ComfyServer
) -> None:
    image = _upload(http, _png((2560, 1440), (10, 10, 10)))
    jobs = comfy.jobs

    response = http.post(
        "/workflows/upscale_image/runs", json={"inputs": {"image": image, "scale_by": 1}}
    )

    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert "10240x5760" in detail and "AUTEUR_MAX_OUTPUT_PIXELS" in detail
    assert comfy.jobs == jobs


def test_another_users_file_cannot_be_an_input(http: httpx.Client, comfy: ComfyServer) -> None:
    bobs = _upload(http, _png((32, 32), (1, 2, 3)), headers=BOB)

    response = http.post("/workflows/upscale_image/runs", json={"inputs": {"image": bobs}})

    assert response.status_code == 422
    assert "your files" in response.json()["detail"]


def test_a_comfyui_failure_after_retries_is_a_502(http: httpx.Client, comfy: ComfyServer) -> None:
    image = _upload(http, _png((32, 32), (90, 90, 200)))
    comfy.fail_next(3)

    response = http.post("/workflows/upscale_image/runs", json={"inputs": {"image": image}})

    assert response.status_code == 502, response.text
    assert "upscale_image" in response.json()["detail"]
