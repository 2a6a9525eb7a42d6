"""Fan-out of independent generations: bounded, ordered, stops on failure, never pays twice."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from langgraph.runtime import Runtime
from langgraph.store.memory import InMemoryStore

from agents._media import fan_out
from agents.base import Context, Step
from api.settings import SAMPLE_RECORDINGS
from tests.doubles.comfy_server import object_info_with_models
from tools.comfy import ComfyClient, ComfyPool
from tools.comfy_tools import ComfyBackend, DraftMedia
from tools.draft_renderer import DraftBackend
from tools.llm import ModelProvider
from tools.storage import LocalFileStore
from tools.workflows import WorkflowError, load_workflows


class _Stage(Step):
    stage = "frames"

    async def propose(self, state, runtime):  # type: ignore[no-untyped-def]
        raise NotImplementedError


def _runtime(tmp_path: Path) -> Runtime[Context]:
    context = Context(
        models=ModelProvider(api_key=None, recordings=SAMPLE_RECORDINGS),
        backend=DraftBackend(),
        files=LocalFileStore(tmp_path),
    )
    return Runtime(context=context, store=InMemoryStore(), stream_writer=lambda _: None)


class _Gauge:
    """Counts jobs running now and the most at once."""

    def __init__(self) -> None:
        self.now = self.peak = 0
        self.started: list[int] = []

    async def job(self, n: int, *, fail: bool = False) -> int:
        self.started.append(n)
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            for _ in range(5):  # give every other ready job the chance to start
                await asyncio.sleep(0)
            if fail:
                raise RuntimeError(f"job {n} failed")
            return n
        finally:
            self.now -= 1


async def test_fan_out_runs_the_backends_capacity_at_once_and_keeps_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(DraftMedia, "capacity", 3)
    gauge = _Gauge()

    results = await fan_out(_runtime(tmp_path), [lambda n=n: gauge.job(n) for n in range(10)])

    assert results == list(range(10))
    assert gauge.peak == 3


async def test_the_longest_jobs_start_first_and_the_results_keep_their_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(DraftMedia, "capacity", 2)
    gauge = _Gauge()
    seconds = [2.0, 5.0, 1.0, 5.0, 3.0]

    results = await fan_out(
        _runtime(tmp_path), [lambda n=n: gauge.job(n) for n in range(5)], sizes=seconds
    )

    assert results == list(range(5))
    assert gauge.started == [1, 3, 4, 0, 2]  # ties keep their order
    assert gauge.peak == 2


async def test_after_a_failure_no_job_starts_and_the_running_ones_finish(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(DraftMedia, "capacity", 2)
    gauge = _Gauge()
    jobs = [lambda n=n: gauge.job(n, fail=n == 0) for n in range(6)]

    with pytest.raises(RuntimeError, match="job 0 failed"):
        await fan_out(_runtime(tmp_path), jobs)

    assert gauge.started == [0, 1]
    assert gauge.now == 0


async def test_two_identical_generations_at_once_are_made_once(tmp_path: Path) -> None:
    runtime, step = _runtime(tmp_path), _Stage(agent="frame_generator")
    png = {"extension": "png", "media_type": "image/png"}
    made: list[str] = []

    async def make() -> bytes:
        made.append("job")
        await asyncio.sleep(0.01)
        return b"frame"

    first, second = await asyncio.gather(
        *(step.generate_media(runtime, "same-inputs", make, **png) for _ in range(2))
    )

    assert made == ["job"]
    assert first == second


async def test_a_failed_generation_leaves_its_twin_to_make_it(tmp_path: Path) -> None:
    runtime, step = _runtime(tmp_path), _Stage(agent="frame_generator")
    png = {"extension": "png", "media_type": "image/png"}
    attempts: list[str] = []

    async def make() -> bytes:
        attempts.append("job")
        await asyncio.sleep(0.01)
        if len(attempts) == 1:
            raise RuntimeError("ComfyUI failed")
        return b"frame"

    first, second = await asyncio.gather(
        *(
            step.generate_media(
                runtime, "same-inputs", make, extension="png", media_type="image/png"
            )
            for _ in range(2)
        ),
        return_exceptions=True,
    )

    assert isinstance(first, RuntimeError)
    assert second == runtime.context.files.put(b"frame", **png)
    assert attempts == ["job", "job"]


async def test_a_stages_jobs_check_their_workflow_against_each_server_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fetched: list[str] = []
    installed: dict[str, set[str]] | None = {"UpscaleModelLoader.model_name": {"4x-UltraSharp.pth"}}

    async def object_info(client: ComfyClient) -> dict[str, Any]:
        fetched.append(client.base_url)
        await asyncio.sleep(0.01)
        return object_info_with_models(installed)

    monkeypatch.setattr(ComfyClient, "object_info", object_info)
    pool = ComfyPool(["http://gpu1:8188", "http://gpu2:8188"])
    backend = ComfyBackend(pool)
    specs = load_workflows(object_info=object_info_with_models())
    both = ["http://gpu1:8188", "http://gpu2:8188"]

    await asyncio.gather(*(backend.check(specs["upscale_image"]) for _ in range(6)))
    assert sorted(fetched) == both  # one job fetched, five waited for its verdict
    with pytest.raises(WorkflowError):  # its models are missing, even on a fresh look
        await backend.check(specs["keyframe_pair"])
    assert sorted(fetched) == sorted(both * 2)

    installed = None  # every model of the library installed: a refusal is checked afresh
    await asyncio.gather(*(backend.check(specs["keyframe_pair"]) for _ in range(3)))
    await backend.check(specs["keyframe_pair"])
    await backend.check(specs["upscale_image"])
    assert sorted(fetched) == sorted(both * 3)
    await pool.aclose()
