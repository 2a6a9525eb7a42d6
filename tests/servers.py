"""Real ``auteur`` server processes for tests that kill, restart and signal them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from api.settings import SAMPLE_INPUT
from graphs.base import load_workflow_types

AUTEUR = str(Path(sys.executable).parent / "auteur")
SAMPLE = json.loads(SAMPLE_INPUT.read_text())
SAMPLE_SCENES = 2
"""The scenes of the offline sample's master script: full_video's scene cycle runs twice."""
SCENE_FRAMES = 6
"""The keyframes a scene of the sample draws: three shots, a start and an end frame each."""
_FULL_VIDEO = load_workflow_types().get("full_video")()
GATES = _FULL_VIDEO.gates(scenes=SAMPLE_SCENES)
"""The gates of the sample's full_video production, in order (the cycle's once per scene)."""
_CYCLE = _FULL_VIDEO.scene_stages()
GATE_SCENES = [None] * (len(GATES) - len(_CYCLE) * SAMPLE_SCENES) + [
    scene for scene in range(1, SAMPLE_SCENES + 1) for _ in _CYCLE
]
"""The scene each of the :data:`GATES` is about, as its payload says: None for the gates
before the scene cycle (the whole film's), then 1 for scene 1's cycle, 2 for scene 2's."""
BEFORE_FRAMES = GATES[: GATES.index("frames")]
"""The full_video gates approved before scene 1's frames are drawn (each stage once)."""
SCENE_REMADE_GATES = ("master_script", "assets", "casting", *_CYCLE)
"""The gates of regenerate_scene on the sample's project, in order: it starts at the master
script, every one of them names the scene."""
APPROVE = {"decisions": [{"type": "approve"}]}


def model_env(database_url: str, base_url: str, *, prefix: str) -> dict[str, str]:
    """A server's environment: this database, a data folder of its own, one user's key, a
    short run lease (a killed server's runs are taken over at once), the model at ``base_url``.
    """
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AUTEUR_"))},
        "AUTEUR_DATABASE_URL": database_url,
        "AUTEUR_DATA_DIR": tempfile.mkdtemp(prefix=prefix),
        "AUTEUR_API_KEYS": json.dumps({"alice-key": "alice"}),
        "AUTEUR_RUN_LEASE_S": "1",
        "OPENAI_API_KEY": "test-key",
        "OPENAI_BASE_URL": base_url,
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def auteur_serve(env: dict[str, str], port: int) -> Iterator[subprocess.Popen[str]]:
    """``auteur serve`` in its own process, ready to answer."""
    server = subprocess.Popen(
        [AUTEUR, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ok", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            output = server.stdout.read() if server.stdout else ""
            raise RuntimeError(f"auteur serve did not start:\n{output}")
        time.sleep(0.1)
    try:
        yield server
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=30)


async def start_frames_run(client: Any) -> tuple[str, dict[str, Any]]:
    """A new thread approved up to the stage before its frames, and the run now drawing them.

    ``client`` is a ``langgraph_sdk`` client; the run streams ``custom`` progress.
    """
    thread_id = (await client.threads.create())["thread_id"]
    result = await client.runs.wait(thread_id, "full_video", input=SAMPLE)
    while result["__interrupt__"][0]["value"]["stage"] != BEFORE_FRAMES[-1]:
        result = await client.runs.wait(thread_id, "full_video", command={"resume": APPROVE})
    run = await client.runs.create(
        thread_id, "full_video", command={"resume": APPROVE}, stream_mode=["custom"]
    )
    return thread_id, run
