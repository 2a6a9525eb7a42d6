"""The embedded Postgres under real processes: killed under a server, and left behind by none.

The server must notice a killed postmaster, answer 503 while it is down, start it again by
itself and finish the run it was executing; and every usual way a process stops (SIGTERM,
SIGHUP, Ctrl-C, a normal exit) must release its handle, so the last one stops the server.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fasteners
import httpx
import psutil
import pytest
from langgraph_sdk import get_client
from pgserver.postgres_server import PostgresServer

from tests.integration.test_cli import AUTEUR, THREAD, embedded_env, open_dir
from tests.servers import (
    BEFORE_FRAMES,
    SCENE_FRAMES,
    auteur_serve,
    free_port,
    start_frames_run,
)

__all__ = ["open_dir"]

pytestmark = pytest.mark.slow


def until(condition: Callable[[], Any], what: str, within_s: float = 60) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``within_s``."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.05)
    raise AssertionError(f"not within {within_s:.0f} s: {what}")


def postmaster(pgdata: Path) -> int:
    return int((pgdata / "postmaster.pid").read_text().split()[0])


def health(url: str, status: int) -> httpx.Response | None:
    """``/ok`` if it answers ``status`` (within 5 s: a wait for the pool's timeout fails)."""
    try:
        answer = httpx.get(f"{url}/ok", timeout=5)
    except httpx.TransportError:
        return None
    return answer if answer.status_code == status else None


def ended(url: str, thread_id: str, run_id: str) -> dict[str, Any] | None:
    run = httpx.get(f"{url}/threads/{thread_id}/runs/{run_id}", timeout=5)
    if run.status_code == 200 and run.json()["status"] not in ("pending", "running"):
        return run.json()
    return None


@pytest.mark.long
async def test_the_server_rides_out_its_embedded_postgres_being_killed(open_dir: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    pgdata = open_dir / "data" / "postgres"
    env = embedded_env() | {"AUTEUR_DATA_DIR": str(open_dir / "data")}
    client = get_client(url=url)
    with auteur_serve(env, port):
        thread_id, run = await start_frames_run(client)
        async for part in client.runs.join_stream(thread_id, run["run_id"], last_event_id="-1"):
            if part.event == "custom" and part.data["message"] == f"frame 3/{SCENE_FRAMES} done":
                break
        killed = postmaster(pgdata)
        # Holding pgserver's own lock keeps the server from starting Postgres again, so the
        # outage lasts until the test has seen it.
        restarting = fasteners.InterProcessLock(PostgresServer.lock_path)
        with restarting:
            os.kill(killed, signal.SIGKILL)
            down = until(lambda: health(url, 503), "/ok answers 503")
            assert down.json()["detail"].startswith("database unavailable, retrying")
            thread = httpx.get(f"{url}/threads/{thread_id}", timeout=5)
            assert thread.status_code == 503
            assert thread.json()["detail"].startswith("database unavailable, retrying")
        until(lambda: health(url, 200), "/ok answers 200 again")
        assert postmaster(pgdata) != killed

        finished = until(lambda: ended(url, thread_id, run["run_id"]), "the run ends")
        assert finished["status"] == "success"  # at its gate
        state = await client.threads.get_state(thread_id)
        gate = state["interrupts"][0]["value"]
        assert (gate["stage"], gate["scene"]) == ("frames", 1)
        assert len(gate["action_requests"][0]["args"]["frames"]) == SCENE_FRAMES
        assert state["values"]["approved"] == BEFORE_FRAMES


def _started(command: str, env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    """``auteur <command>`` in its own process, once it holds the embedded server."""
    args = {"demo": ["demo", "--auto-approve"], "worker": ["worker"]}[command]
    process = subprocess.Popen(
        [AUTEUR, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    ready = THREAD if command == "demo" else re.compile("waiting for runs")
    for line in process.stdout:
        if ready.search(line):
            return process
    raise AssertionError(f"auteur {command} exited ({process.wait()}) before it was ready")


@pytest.mark.parametrize(
    ("command", "stop"),
    [
        ("serve", signal.SIGTERM),
        ("serve", signal.SIGHUP),
        ("worker", signal.SIGTERM),
        ("demo", signal.SIGTERM),
    ],
)
def test_a_stopped_process_releases_the_embedded_server(
    command: str, stop: signal.Signals, open_dir: Path
) -> None:
    pgdata = open_dir / ".auteur" / "postgres"
    env = embedded_env()
    if command == "serve":
        port = free_port()
        with auteur_serve(env | {"AUTEUR_DATA_DIR": str(pgdata.parent)}, port) as process:
            server = postmaster(pgdata)
            process.send_signal(stop)
            process.wait(timeout=60)
    else:
        process = _started(command, env, open_dir)
        server = postmaster(pgdata)
        process.send_signal(stop)
        process.wait(timeout=60)
    assert process.returncode == 128 + stop  # a normal exit, not death by the signal
    assert not (pgdata / "postmaster.pid").exists()
    assert not psutil.pid_exists(server) or psutil.Process(server).status() == "zombie"
    assert json.loads((pgdata / ".handle_pids.json").read_text()) == []
