"""The ComfyUI client and pool against the test server (real HTTP + WebSocket on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import io
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from tests.doubles.comfy_server import (
    ComfyServer,
    comfy_server,
    recorded_transcripts,
    run_comfy_server,
)
from tools.comfy import (
    ATTEMPTS,
    BACKOFF_S,
    ComfyClient,
    ComfyJobFailed,
    ComfyPool,
    ComfyRejectedError,
    ComfyTimeoutError,
    ImageInput,
    JobEvent,
)
from tools.comfy_tools import ComfyBackend
from tools.workflows import COMFY_WORKFLOWS, WorkflowError, load_workflows

__all__ = ["comfy_server"]

RECORDED = recorded_transcripts()


def _prompt(case: str) -> dict:
    return copy.deepcopy(RECORDED[case]["request"]["prompt"])


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (10, 200, 10)).save(buffer, format="PNG")
    return buffer.getvalue()


def _kinds(messages: list[dict]) -> list[str]:
    return [m["type"] for m in messages if m["type"] not in ("progress_state", "status")]


async def test_image_run_follows_the_recorded_event_sequence(comfy_server: ComfyServer) -> None:
    client = ComfyClient(comfy_server.url, timeout_s=30)
    events: list[JobEvent] = []

    async def on_event(event: JobEvent) -> None:
        events.append(event)

    result = await client.run(_prompt("image_ok"), on_event=on_event)
    await client.aclose()

    recorded = [e for e in _kinds(RECORDED["image_ok"]["ws"]) if e != "executing"]
    mine = {"started": "execution_start", "cached": "execution_cached", "executed": "executed"}
    seen = [mine[e.kind] for e in events if e.kind in mine]
    assert seen == [k for k in recorded if k in mine.values()]
    assert [e.node for e in events if e.kind == "executing"] == ["1", "2", "3", "4", "5"]
    [file] = result.files
    assert (file.node, file.key, file.subfolder, file.extension) == ("5", "images", "probe", "png")
    with Image.open(io.BytesIO(file.data)) as image:
        assert image.size == (128, 96)
    assert result.cached_nodes == []


async def test_a_repeated_prompt_is_cached_and_reports_the_old_file(
    comfy_server: ComfyServer,
) -> None:
    client = ComfyClient(comfy_server.url, timeout_s=30)
    first = await client.run(_prompt("image_ok"))
    again = await client.run(_prompt("image_ok"))
    await client.aclose()

    assert again.cached_nodes == ["1", "2", "3", "4", "5"]
    assert again.files[0].filename == first.files[0].filename
    assert len(comfy_server.files) == 1


async def test_video_reported_under_images_is_fetched(comfy_server: ComfyServer) -> None:
    client = ComfyClient(comfy_server.url, timeout_s=30)
    result = await client.run(_prompt("video_mp4"))
    await client.aclose()

    [file] = result.files
    assert (file.key, file.extension) == ("images", "mp4")
    assert comfy_server.history[result.prompt_id]["outputs"]["3"]["animated"] == [True]


@pytest.mark.parametrize("case", ["validation_error", "missing_node", "no_outputs"])
async def test_refusals_answer_as_recorded_and_are_not_retried(
    comfy_server: ComfyServer, case: str
) -> None:
    pool = ComfyPool([comfy_server.url], timeout_s=30, backoff_s=0)
    with pytest.raises(ComfyJobFailed, match="refused") as caught:
        await pool.run(_prompt(case), label="frame 1/2")
    await pool.aclose()

    assert isinstance(caught.value.__cause__, ComfyRejectedError)
    assert comfy_server.jobs == 0
    recorded = RECORDED[case]["response"]["body"]["error"]["message"]
    assert recorded.split(".")[0] in str(caught.value)


async def test_runtime_error_answers_200_then_fails_on_the_socket(
    comfy_server: ComfyServer,
) -> None:
    comfy_server.fail_next(1)
    client = ComfyClient(comfy_server.url, timeout_s=30)
    with pytest.raises(Exception, match="CUDA out of memory"):
        await client.run(_prompt("image_ok") | {})
    await client.aclose()


async def test_two_failures_then_success_with_visible_retries(comfy_server: ComfyServer) -> None:
    comfy_server.fail_next(2)
    pool = ComfyPool([comfy_server.url], timeout_s=30, attempts=3, backoff_s=0)
    messages: list[str] = []

    async def say(message: str) -> None:
        messages.append(message)

    result = await pool.run(_prompt("image_ok"), label="frame 4", on_progress=say)
    await pool.aclose()

    assert comfy_server.jobs == 3
    assert result.files
    retries = [m for m in messages if m.startswith("retrying")]
    assert [m.split(":")[0] for m in retries] == [
        "retrying frame 4 (2/3) in 0 s",
        "retrying frame 4 (3/3) in 0 s",
    ]


async def test_three_failures_give_a_clear_error(comfy_server: ComfyServer) -> None:
    comfy_server.fail_next(3)
    pool = ComfyPool([comfy_server.url], timeout_s=30, attempts=3, backoff_s=0)

    with pytest.raises(
        ComfyJobFailed, match=r"frame 4 failed 3 times on ComfyUI.*CUDA out of memory"
    ):
        await pool.run(_prompt("image_ok"), label="frame 4")
    await pool.aclose()

    assert comfy_server.jobs == 3


async def test_interrupted_run_is_retried(comfy_server: ComfyServer) -> None:
    comfy_server.fail_next(1, kind="interrupt")
    pool = ComfyPool([comfy_server.url], timeout_s=30, backoff_s=0)

    result = await pool.run(_prompt("image_ok"), label="frame 1")
    await pool.aclose()

    assert result.files
    assert comfy_server.jobs == 2


async def test_every_wait_has_a_deadline() -> None:
    with run_comfy_server(node_delay_s=1.0) as server:
        client = ComfyClient(server.url, timeout_s=0.5)
        with pytest.raises(ComfyTimeoutError, match=r"no result within 0\.5 s"):
            await client.run(_prompt("image_ok"))
        await client.aclose()


async def test_progress_lines_carry_the_label_and_percent(comfy_server: ComfyServer) -> None:
    pool = ComfyPool([comfy_server.url], timeout_s=30, backoff_s=0)
    messages: list[str] = []

    async def say(message: str) -> None:
        messages.append(message)

    prompt = {
        "1": {
            "class_type": "EmptyLatentImage",
            "inputs": {"width": 64, "height": 64, "batch_size": 1},
        },
        "2": {
            "class_type": "CheckpointLoaderSimple",
            "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"},
        },
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "a fox", "clip": ["2", 1]}},
        "4": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["2", 0],
                "seed": 1,
                "steps": 10,
                "cfg": 7.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "positive": ["3", 0],
                "negative": ["3", 0],
                "latent_image": ["1", 0],
                "denoise": 1.0,
            },
        },
        "5": {"class_type": "VAEDecode", "inputs": {"samples": ["4", 0], "vae": ["2", 2]}},
        "6": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "t"}},
    }
    await pool.run(prompt, label="frame 3/12", on_progress=say)
    await pool.aclose()

    assert "frame 3/12 — 40 %" in messages or "frame 3/12 — 50 %" in messages
    assert "frame 3/12 — 100 %" in messages


async def test_pool_sends_the_job_to_the_shortest_queue() -> None:
    with run_comfy_server(node_delay_s=0.3) as busy, run_comfy_server() as idle:
        blocker = ComfyClient(busy.url, timeout_s=30)
        running = asyncio.create_task(blocker.run(_prompt("image_ok")))
        while busy.queue_remaining == 0:
            await asyncio.sleep(0.01)
        pool = ComfyPool([busy.url, idle.url], timeout_s=30)
        result = await pool.run(_prompt("video_mp4"), label="clip 1/1")
        await running
        await pool.aclose()
        await blocker.aclose()

    assert result.server == idle.url
    assert (busy.jobs, idle.jobs) == (1, 1)


async def test_uploads_are_content_named_and_loaded(comfy_server: ComfyServer) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (10, 200, 10)).save(buffer, format="PNG")
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "placeholder.png"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "up"}},
    }
    pool = ComfyPool([comfy_server.url], timeout_s=30)
    result = await pool.run(prompt, [ImageInput("1", "image", buffer.getvalue())], label="upload")
    await pool.aclose()

    [name] = comfy_server.uploads
    assert name.startswith("auteur_")
    assert comfy_server.submitted[0]["prompt"]["1"]["inputs"]["image"] == name
    with Image.open(io.BytesIO(result.files[0].data)) as image:
        assert image.size == (40, 30)


async def test_a_workflow_the_servers_cannot_run_is_refused_before_any_job(
    comfy_server: ComfyServer, tmp_path: Path
) -> None:
    for suffix in (".json", ".yaml"):
        shutil.copy(COMFY_WORKFLOWS / f"upscale_image{suffix}", tmp_path / f"upscale_image{suffix}")
    graph_path = tmp_path / "upscale_image.json"
    graph = json.loads(graph_path.read_text())
    upscaler = next(n for n in graph.values() if n["class_type"] == "ImageScaleBy")
    upscaler["class_type"] = "ImageScaleByMagic"
    graph_path.write_text(json.dumps(graph))
    spec = load_workflows(tmp_path)["upscale_image"]  # fine on its own: no server to ask
    backend = ComfyBackend(ComfyPool([comfy_server.url]))

    with pytest.raises(WorkflowError, match=r"upscale_image.*ImageScaleByMagic"):
        await backend.run_workflow(spec, {"image": _png()}, label="upscale")

    assert comfy_server.jobs == 0


async def test_a_missing_model_is_refused_before_any_upload_or_job(tmp_path: Path) -> None:
    spec = load_workflows()["upscale_image"]
    with run_comfy_server(models={}) as server:  # as recorded: no model files installed
        backend = ComfyBackend(ComfyPool([server.url]))
        with pytest.raises(WorkflowError) as caught:
            await backend.run_workflow(spec, {"image": _png()}, label="upscale")
        await backend.pool.aclose()

    message = str(caught.value)
    assert str(spec.source) in message
    assert "node 1 (UpscaleModelLoader) input 'model_name'" in message
    assert f"model file '4x-UltraSharp.pth' is not installed on {server.url}" in message
    assert (server.jobs, server.uploads, server.submitted) == (0, {}, [])


async def _running(client: ComfyClient, prompt: dict) -> asyncio.Task:
    """``prompt`` running on ``client``'s server (its ``execution_start`` seen), as a task."""
    started = asyncio.Event()

    async def on_event(event: JobEvent) -> None:
        if event.kind == "started":
            started.set()

    task = asyncio.create_task(client.run(prompt, on_event=on_event))
    await started.wait()
    return task


async def test_a_timed_out_job_is_interrupted_on_the_server(comfy_server: ComfyServer) -> None:
    comfy_server.delay_next(600, 600)  # both attempts would run for ten minutes
    pool = ComfyPool([comfy_server.url], timeout_s=0.3, attempts=2, backoff_s=0)

    with pytest.raises(
        ComfyJobFailed, match=r"failed 2 times.*no result within 0\.3 s of the start.*interrupted"
    ):
        await pool.run(_prompt("image_ok"), label="frame 1")
    await pool.aclose()

    assert comfy_server.jobs == 2
    assert comfy_server.cancelled == [("interrupted", pid) for pid in comfy_server.prompt_ids]


async def test_a_job_that_never_starts_is_removed_from_the_queue(
    comfy_server: ComfyServer,
) -> None:
    comfy_server.delay_next(600)
    ahead = ComfyClient(comfy_server.url, timeout_s=600)
    running = await _running(ahead, _prompt("image_ok"))
    client = ComfyClient(comfy_server.url, timeout_s=600, queue_timeout_s=0.3)

    with pytest.raises(ComfyTimeoutError, match=r"did not start within 0\.3 s.*removed"):
        await client.run(_prompt("video_mp4"))
    running.cancel()  # the run that queued the first job is cancelled: that job is abandoned
    with contextlib.suppress(asyncio.CancelledError):
        await running
    await ahead.aclose()
    await client.aclose()

    first, second = comfy_server.prompt_ids
    assert comfy_server.cancelled == [("deleted", second), ("interrupted", first)]
    assert second not in comfy_server.history


async def test_the_deadline_counts_from_the_start_not_the_queue(
    comfy_server: ComfyServer,
) -> None:
    comfy_server.delay_next(3)  # the job ahead runs 3 s; ours then runs in far less than 1.5 s
    ahead = ComfyClient(comfy_server.url, timeout_s=60)
    running = await _running(ahead, _prompt("image_ok"))
    client = ComfyClient(comfy_server.url, timeout_s=1.5)

    result = await client.run(_prompt("video_mp4"))
    await running
    await ahead.aclose()
    await client.aclose()

    assert result.files
    assert comfy_server.cancelled == []


def test_the_default_backoff_outlasts_a_comfyui_restart() -> None:
    waits = [BACKOFF_S * 2**n for n in range(ATTEMPTS - 1)]

    assert sum(waits) >= 2 * 30  # a restart takes about 30 s


async def test_a_server_restart_within_the_backoff_is_survived(comfy_server: ComfyServer) -> None:
    comfy_server.delay_next(600)  # the first job is still running when the server restarts
    pool = ComfyPool([comfy_server.url], timeout_s=30, attempts=5, backoff_s=0.25)
    messages: list[str] = []

    async def say(message: str) -> None:
        messages.append(message)
        if message.startswith("clip 1 — queued") and comfy_server.jobs == 1:
            comfy_server.restart(down_s=0.3)

    result = await pool.run(_prompt("video_mp4"), label="clip 1", on_progress=say)
    await pool.aclose()

    assert result.files
    assert comfy_server.jobs == 2
    unreachable = [m for m in messages if "unreachable" in m]
    assert unreachable[0] == (
        f"clip 1: ComfyUI at {comfy_server.url} unreachable, retrying in 0.25 s (2/5)"
    )


async def test_sequential_jobs_take_turns_across_the_pool() -> None:
    with run_comfy_server() as first, run_comfy_server() as second:
        pool = ComfyPool([first.url, second.url], timeout_s=30)
        servers = [
            (await pool.run(_prompt("video_mp4"), label=f"clip {n}")).server for n in range(4)
        ]
        await pool.aclose()

    assert servers == [first.url, second.url, first.url, second.url]


async def test_concurrent_jobs_are_spread_by_the_pools_own_count() -> None:
    with run_comfy_server() as first, run_comfy_server() as second:
        pool = ComfyPool([first.url, second.url], timeout_s=30)
        await asyncio.gather(*(pool.run(_prompt("image_ok"), label=f"frame {n}") for n in range(4)))
        await pool.aclose()

    assert (first.jobs, second.jobs) == (2, 2)


async def test_a_retry_goes_back_to_the_server_that_has_the_cached_nodes() -> None:
    with run_comfy_server() as first, run_comfy_server() as second:
        first.fail_next(1)
        pool = ComfyPool([first.url, second.url], timeout_s=30, backoff_s=0)
        result = await pool.run(_prompt("image_ok"), label="frame 1")
        await pool.aclose()

    assert result.server == first.url
    assert (first.jobs, second.jobs) == (2, 0)
