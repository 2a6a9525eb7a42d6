"""A run survives its server: killed with SIGKILL mid-stage, it resumes after a restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk import get_client

from api.settings import SAMPLE_INPUT
from tests.api.conftest import api_settings, serve
from tests.servers import (
    AUTEUR,
    BEFORE_FRAMES,
    SCENE_FRAMES,
    auteur_serve,
    free_port,
    start_frames_run,
)

SAMPLE = json.loads(SAMPLE_INPUT.read_text())


@pytest.mark.long
async def test_a_run_cut_off_by_sigkill_resumes_after_restart(database_url: str) -> None:
    port = free_port()
    env = {
        **os.environ,
        "AUTEUR_DATABASE_URL": database_url,
        "AUTEUR_DATA_DIR": tempfile.mkdtemp(prefix="auteur-restart-"),
        "AUTEUR_API_KEYS": json.dumps({"alice-key": "alice"}),
        "AUTEUR_RUN_LEASE_S": "1",
    }
    env.pop("OPENAI_API_KEY", None)
    client = get_client(url=f"http://127.0.0.1:{port}", api_key="alice-key")
    with auteur_serve(env, port) as first:
        thread_id, run = await start_frames_run(client)
        seen = []
        async for part in client.runs.join_stream(thread_id, run["run_id"], last_event_id="-1"):
            seen.append(part)
            if part.event == "custom" and part.data["message"] == f"frame 3/{SCENE_FRAMES} done":
                first.send_signal(signal.SIGKILL)
                break
        first.wait(timeout=30)
    before = await _values_after_restart(env, port, client, thread_id, run["run_id"], seen)
    assert before["approved"] == BEFORE_FRAMES


async def _values_after_restart(
    env: dict[str, str], port: int, client: Any, thread_id: str, run_id: str, seen: list[Any]
) -> dict[str, Any]:
    with auteur_serve(env, port):
        rest = [
            part
            async for part in client.runs.join_stream(thread_id, run_id, last_event_id=seen[-1].id)
        ]
        finished = await client.runs.get(thread_id, run_id)
        assert finished["status"] == "success"  # the run ended at a gate; the thread waits
        state = await client.threads.get_state(thread_id)
        gate = state["interrupts"][0]["value"]
        assert (gate["stage"], gate["scene"]) == ("frames", 1)
        frames = gate["action_requests"][0]["args"]["frames"]
        assert len(frames) == SCENE_FRAMES  # scene 1's keyframes only
        shots = state["values"]["shots"]["shots"]  # scene 2's are not listed yet
        assert {shot["scene"] for shot in shots} == {1}
        assert {frame["shot"] for frame in frames} == {shot["id"] for shot in shots}
        messages = [p.data["message"] for p in rest if p.event == "custom"]
        assert f"frame {SCENE_FRAMES}/{SCENE_FRAMES} done" in messages
        ids = [int(p.id) for p in seen[1:] + rest]
        assert ids == sorted(ids)
        return state["values"]


async def test_a_separate_worker_process_executes_the_queue(database_url: str) -> None:
    """An API process that executes nothing queues; an ``auteur worker`` elsewhere runs it."""
    settings = api_settings(database_url)
    env = {
        **os.environ,
        "AUTEUR_DATABASE_URL": database_url,
        "AUTEUR_DATA_DIR": str(settings.data_dir),
    }
    env.pop("OPENAI_API_KEY", None)
    with serve(settings, execute=False) as url:
        client = get_client(url=url, api_key="alice-key")
        thread_id = (await client.threads.create())["thread_id"]
        run = await client.runs.create(thread_id, "full_video", input=SAMPLE)
        time.sleep(0.5)
        assert (await client.runs.get(thread_id, run["run_id"]))["status"] == "pending"
        worker = subprocess.Popen(
            [AUTEUR, "worker"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        try:
            result = await client.runs.join(thread_id, run["run_id"])
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)
        assert result["__interrupt__"][0]["value"]["stage"] == "treatment"
        assert (await client.runs.get(thread_id, run["run_id"]))["status"] == "success"


def test_serve_refuses_a_public_address_without_api_keys(tmp_path: Path) -> None:
    env = {**os.environ, "AUTEUR_DATA_DIR": str(tmp_path)}
    env.pop("AUTEUR_API_KEYS", None)
    refused = subprocess.run(
        [AUTEUR, "serve", "--host", "0.0.0.0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2
    assert "refusing to bind to 0.0.0.0 with no API keys" in refused.stdout
