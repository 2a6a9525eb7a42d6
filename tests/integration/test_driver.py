"""The run driver in-process: runs queued, executed and decided the API's way.

The CLI's and the evals' driver; a run whose process died is taken over at once.
"""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from api.driver import APPROVE, Driver, open_driver
from api.launch import ConflictError
from api.settings import SAMPLE_INPUT, Settings
from tests.servers import GATE_SCENES, GATES, SAMPLE_SCENES, SCENE_FRAMES

pytestmark = pytest.mark.slow

SAMPLE = json.loads(SAMPLE_INPUT.read_text())


@pytest.fixture
async def driver(database_url: str, tmp_path: Path) -> AsyncIterator[Driver]:
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url, openai_api_key=None)
    async with open_driver(settings, owner="driver-test") as opened:
        yield opened


@pytest.mark.long
async def test_every_gate_is_an_approval_decided_through_the_queue(driver: Driver) -> None:
    progress: list[dict[str, Any]] = []
    run = await driver.start("full_video", SAMPLE)
    stop = await driver.wait(run, progress.append)
    gates = []
    while stop.gate is not None:
        gates.append(stop.gate)
        stop = await driver.wait(await driver.decide(stop.gate, APPROVE), progress.append)

    assert [gate["stage"] for gate in gates] == GATES
    assert [gate["payload"]["scene"] for gate in gates] == GATE_SCENES
    assert stop.values["video"]["file"]["key"].endswith(".mp4")
    frames_done = [
        event["message"]
        for event in progress
        if event.get("stage") == "frames" and event["message"].endswith(" done")
    ]  # each scene draws only its own keyframes
    assert frames_done == [f"frame {k}/{SCENE_FRAMES} done" for k in range(1, SCENE_FRAMES + 1)] * (
        SAMPLE_SCENES
    )
    approvals = await driver.db.fetch(
        "SELECT stage, status, decided_by FROM auteur_approvals WHERE thread_id = %s"
        " ORDER BY created_at",
        (stop.thread_id,),
    )
    assert approvals == [
        {"stage": stage, "status": "decided", "decided_by": "driver-test"} for stage in GATES
    ]
    runs = await driver.db.list_runs(stop.thread_id, status=None, limit=100, offset=0)
    assert [r["status"] for r in reversed(runs)] == ["success"] * (len(GATES) + 1)
    with pytest.raises(ConflictError):
        await driver.decide(gates[0], APPROVE)  # decided once: the decision stands


async def test_a_run_whose_process_died_is_taken_over_at_once(driver: Driver) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    run = await driver.start("full_video", SAMPLE)
    await driver.db.fetch(
        "UPDATE auteur_runs SET status = 'running', worker = %s,"
        " lease_until = now() + interval '1 hour' WHERE run_id = %s RETURNING run_id",
        (f"{socket.gethostname()}:{dead.pid}:gone", run["run_id"]),
    )

    [listed] = [t for t in await driver.threads(100) if t["thread_id"] == run["thread_id"]]
    assert listed["stopped"]
    continued = await driver.continue_thread(run["thread_id"])
    assert continued is not None and continued["run_id"] == run["run_id"]
    stop = await driver.wait(continued)
    assert stop.gate is not None and stop.gate["stage"] == "treatment"
